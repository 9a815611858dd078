/*
 * accesslog: gunicorn-compatible access log lines.
 *
 * The format uses gunicorn's atoms, written %(atom)s:
 *   h remote address   l '-'              u user (HTTP Basic) or '-'
 *   t [date]           r request line     m method
 *   U path             q query string     H protocol
 *   s status           B body bytes       b body bytes or '-' when 0
 *   f referer          a user agent       T duration, whole seconds
 *   M duration, ms     D duration, us     L duration, decimal seconds
 *   p <pid>            {Name}i request header   {Name}o response header
 * The format is compiled once; formatting a line allocates nothing but the
 * output buffer's growth. Request-controlled text is escaped (\xHH for
 * control bytes, quotes and backslashes) so a line can never be forged.
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

/* Append one formatted line, with its newline, to out. */
void drv_accesslog_format(const struct drv_accesslog *log,
                          const struct drv_access_entry *e,
                          struct drv_buf *out);
/* Format and write one line (one write(2)). */
void drv_accesslog_write(struct drv_accesslog *log,
                         const struct drv_access_entry *e);

#endif
