/*
 * accesslog: the access log, one line per response.
 *
 * Two shapes. By default the format uses gunicorn's atoms, written %(atom)s:
 *   h remote address   l '-'              u user (HTTP Basic) or '-'
 *   t [date]           r request line     m method
 *   U path             q query string     H protocol
 *   s status           B body bytes       b body bytes or '-' when 0
 *   f referer          a user agent       T duration, whole seconds
 *   M duration, ms     D duration, us     L duration, decimal seconds
 *   p <pid>            {Name}i request header   {Name}o response header
 *   R request id (drover's; gunicorn has no such atom, see reqid.h)
 * %({X-Request-ID}i)s, as gunicorn formats name it, is the request id
 * too: the one the app saw, which is the header's value when that was
 * sane and the generated id otherwise. %({X-Request-ID}o)s is what the
 * response carried: the app's own header, else that same id. Request-controlled text is escaped
 * (\xHH for control bytes, bytes above 0x7E, quotes and backslashes) so a
 * line can never be forged (gunicorn issue #2457).
 *
 * The format "json" instead writes one JSON object per line:
 *   {"time":"2026-11-21T22:42:00.123+01:00","remote_addr":"10.0.0.1",
 *    "method":"GET","path":"/a","query":"x=1","status":200,"bytes":11,
 *    "duration":0.000312,"user_agent":"curl/8.0","referer":"",
 *    "request_id":"5e0c..."}
 * time is the request's start in the error log's clock (local time, with
 * its UTC offset), to the millisecond; status and bytes are integers,
 * duration seconds; a missing header is "". Every string is valid UTF-8
 * and escaped per RFC 8259 (see drv_accesslog_json_string), so whatever
 * a client sends, each line parses on its own.
 *
 * The format is compiled once; formatting a line allocates nothing but the
 * output buffer's growth.
 */
#ifndef DRV_ACCESSLOG_H
#define DRV_ACCESSLOG_H

#include <drover/app.h>
#include <stdint.h>
#include <sys/types.h>
#include <time.h>

#include "buf.h"

struct drv_accesslog;

struct drv_access_entry {
    const struct drover_request *req;
    struct drv_str remote;       /* client address */
    int status;
    uint64_t body_bytes;         /* response body bytes sent */
    struct drv_str resp_headers; /* "Name: value\r\n" lines */
    struct timespec start;       /* wall clock at request start */
    double duration;             /* seconds */
    pid_t pid;
};

/* Compile `format`. Returns the log (not yet writing anywhere), or NULL
 * with "unknown atom 'x'"-style text in err. */
struct drv_accesslog *drv_accesslog_create(const char *format, char *err,
                                           size_t errlen);
void drv_accesslog_free(struct drv_accesslog *log);

/* Send lines to `path` ("-" = stdout). Returns 0 or -1 with err. */
int drv_accesslog_open(struct drv_accesslog *log, const char *path, char *err,
                       size_t errlen);
/* Reopen the file (log rotation). Returns 0 or -errno. */
int drv_accesslog_reopen(struct drv_accesslog *log);

/* Hand the log file (if it is one) to the workers' user (see
 * drv_log_chown). Returns 0 or -errno. */
int drv_accesslog_chown(struct drv_accesslog *log, uid_t uid, gid_t gid);

/* Append one formatted line, with its newline, to out. `log` keeps the
 * last second's formatted time, hence not const. */
void drv_accesslog_format(struct drv_accesslog *log,
                          const struct drv_access_entry *e,
                          struct drv_buf *out);
/* Format and write one line (one write(2)). */
void drv_accesslog_write(struct drv_accesslog *log,
                         const struct drv_access_entry *e);

/*
 * Append p[0..n) to out as a JSON string, quotes included (RFC 8259):
 * '"' and '\' are escaped; control characters (C0, DEL and the C1 range
 * U+0080-U+009F) and U+2028/U+2029, which some readers take for line
 * breaks, become \uXXXX (\n, \r, \t, \b, \f for those that have
 * one). Valid UTF-8 passes through as it is. Each maximal invalid
 * subsequence (a stray byte, a truncated, overlong or surrogate sequence;
 * Unicode 3.9's "maximal subpart") becomes one \ufffd, written as that
 * escape so that it stands apart from a U+FFFD the client really sent.
 * Python's bytes.decode("utf-8", "replace") substitutes the same way.
 */
void drv_accesslog_json_string(struct drv_buf *out, const char *p, size_t n);

#endif
