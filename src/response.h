/*
 * response: turns what an app says (status, headers, body bytes or a body
 * source) into HTTP/1.1 bytes in the connection's output buffer.
 *
 * States, in order:
 *
 *   NEW        nothing said yet; drv_response_start() may be called, and
 *              called again (WSGI exc_info) until the head is committed
 *   STARTED    status and headers held; body bytes written so far are
 *              held in `pending` (so a short body gets a Content-Length)
 *   COMMITTED  the head is in the output buffer; framing is fixed:
 *              Content-Length, chunked, or (HTTP/1.0) close-delimited
 *   DONE       the last body byte (and the last-chunk marker) is queued,
 *              or the body was abandoned (`failed`: close after flushing)
 *
 * A response only moves forward, with one exception before anything is
 * on the wire: drv_response_cancel() takes a STARTED response back to NEW
 * (the app's start failed, or the app failed after starting), and
 * drv_response_error() replaces a response that is not committed with
 * drover's own small one. Only this module writes a response's fields;
 * other modules read them (status, body_bytes, headers for the access
 * log) and act through the verbs below.
 *
 * The head is committed when the app finishes (drv_response_finish), when
 * pending body bytes pass DRV_RESPONSE_HOLD, or when a streamed body is
 * first pulled. Framing is then chosen once:
 *   - no body allowed (HEAD, 204, 304): no body bytes are sent;
 *   - the app gave Content-Length: exactly that many bytes are sent, a
 *     surplus is dropped and logged, a shortfall closes the connection;
 *   - finished with everything pending: Content-Length = pending bytes;
 *   - otherwise chunked on HTTP/1.1, close-delimited on HTTP/1.0.
 *
 * A file body (drv_response_stream_file, for wsgi.file_wrapper over a
 * regular file) is a body source whose bytes the connection sends with
 * sendfile(2) straight from the file, once its output buffer is empty;
 * its length is known, so it always has a Content-Length.
 *
 * Hop-by-hop headers from the app (Connection, Keep-Alive,
 * Transfer-Encoding, Upgrade, Proxy-Connection, TE, Trailer) are drover's
 * business: "Connection: close" from the app closes after the response,
 * the rest are dropped. Date and Server are added unless the app set them,
 * and so is X-Request-ID, with the request's id (view.request_id, see
 * reqid.h), when it has one.
 */
#ifndef DRV_RESPONSE_H
#define DRV_RESPONSE_H

#include <drover/app.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>
#include <time.h>

#include "buf.h"

struct drv_request;

/* Closes a body source somewhere else (an app thread: see conn.c), since
 * its close may run app code. */
typedef void (*drv_source_closer)(void *arg,
                                  const struct drover_body_source *source);

/* Body bytes held before committing the head. */
#define DRV_RESPONSE_HOLD (64 * 1024)

enum drv_response_state {
    DRV_RESPONSE_NEW,
    DRV_RESPONSE_STARTED,
    DRV_RESPONSE_COMMITTED,
    DRV_RESPONSE_DONE,
};

struct drv_response {
    enum drv_response_state state;
    struct drv_buf *out;            /* the connection's output buffer */
    const struct drv_request *req;
    int status;
    char reason[64];
    struct drv_buf headers;         /* the app's "Name: value\r\n" lines */
    struct drv_buf pending;         /* body bytes before commit */
    int64_t content_length;         /* the app's, -1 if none */
    uint64_t body_bytes;            /* body bytes queued after commit */
    uint64_t head_bytes;            /* status line + headers size */
    struct drover_body_source source;
    bool has_source;
    bool has_file;     /* the source's bytes come from `file` */
    struct {
        int fd;        /* not owned: the source's close releases it */
        off_t pos;     /* next byte to send */
        uint64_t left; /* bytes still to send */
    } file;
    bool keep_alive;   /* in: the connection may be kept; out: it will be */
    bool chunked;
    bool no_body;
    bool app_date, app_server, app_request_id;
    bool failed;       /* the body cannot be completed: close after flush */
    drv_source_closer closer; /* NULL: close sources in place */
    void *closer_arg;
};

/* Begin a response to `req` writing into `out`. The response's own
 * buffers (kept from an earlier response on the same connection) are
 * reused. */
void drv_response_init(struct drv_response *r, struct drv_buf *out,
                       const struct drv_request *req, bool keep_alive);
/* From now on, hand body sources to `closer` instead of closing them in
 * place (kept across drv_response_init). */
void drv_response_set_closer(struct drv_response *r, drv_source_closer closer,
                             void *arg);
/* The response is over (sent, or its connection gone): call the source's
 * close if it is still open, and free its buffers (an idle connection
 * keeps none; the next response's come from malloc's thread cache). */
void drv_response_clear(struct drv_response *r);
/* Clear, and free all the response's memory (the connection is going). */
void drv_response_free(struct drv_response *r);

/* Take a STARTED response back to NEW: its status, headers and held body
 * are dropped, as if start had never been called (the app's start failed
 * half-way, or the app failed after starting). Returns 0, or -EALREADY
 * once committed (the response cannot be withdrawn: use abort). NEW is
 * left as it is. */
int drv_response_cancel(struct drv_response *r);
/* The body cannot be completed (the app failed after the head went out):
 * close the source, mark the response failed and DONE, so the connection
 * closes after what is queued and the client sees a truncated body, never
 * a false success. */
void drv_response_abort(struct drv_response *r);
/* Replace a response that is not committed with drover's own small one
 * (drv_response_simple: status, text/plain reason; no body for HEAD when
 * `head_only`), complete (DONE). Whatever the app said is dropped and
 * its source closed. The connection stays open when the response's
 * keep_alive allows. Returns 0, or -EALREADY once committed. */
int drv_response_error(struct drv_response *r, int status, bool head_only);

/* Set the status (200..999: a final one; drover sends no 1xx of an app's)
 * and reason (NULL: the standard phrase). Valid before commit; a second
 * call replaces the first response whole: status, headers, held body and
 * body source (closed). Returns 0 or -EINVAL (bad status or reason with
 * control characters; nothing changes), -EALREADY after commit. */
int drv_response_start(struct drv_response *r, int status, const char *reason,
                       size_t reason_len);
/* Add a header. Returns 0, or -EINVAL when the name is not a token or the
 * value contains CR, LF or NUL (nothing is added then). */
int drv_response_header(struct drv_response *r, const char *name, size_t nlen,
                        const char *value, size_t vlen);
/* Append body bytes. Returns 0, or -EINVAL (nothing is added) before
 * start, after the end, with a file body, or with a body source before
 * commit. Committed, the bytes go out at once, so a source's next() may
 * write (they go out before the chunk it returns). */
int drv_response_write(struct drv_response *r, const void *data, size_t len);
/* The rest of the body is `total` bytes, written next: commit now with
 * Content-Length = held bytes + total (unless the app gave one), so the
 * writes go straight to the output buffer instead of being held. Returns
 * 0, or -EINVAL when not STARTED or a source was given (nothing changes;
 * writes work as before). */
int drv_response_commit_sized(struct drv_response *r, uint64_t total);
/* Commit a STARTED response now and queue what it holds (a streamed
 * body's bytes must not wait for DRV_RESPONSE_HOLD): without an app-given
 * Content-Length the body is chunked. Returns 0, or -EINVAL when not
 * STARTED or a source was given. */
int drv_response_flush(struct drv_response *r);
/* Whether a header could be sent as is: a token name, and a value
 * without CR, LF or NUL. */
bool drv_response_header_ok(const char *name, size_t nlen, const char *value,
                            size_t vlen);
/* Hand over a body source; the response owns it from now on (closed by
 * drv_response_free even on error). Returns 0 or -EINVAL. */
int drv_response_stream(struct drv_response *r,
                        const struct drover_body_source *source);
/* Hand over a body of `len` bytes read from `fd` at `pos` with sendfile(2);
 * `source` (its next unused) is closed when the body is done, as with
 * drv_response_stream. Valid before commit only: without an app-given
 * Content-Length the length becomes held bytes + len. Returns 0, or
 * -EINVAL / -EALREADY (the source is closed then too). */
int drv_response_stream_file(struct drv_response *r,
                             const struct drover_body_source *source, int fd,
                             off_t pos, uint64_t len);
/* The connection sent n more bytes of the file body (n == 0: the file
 * ended before `left` did). Returns 1 when more remains, 0 when the body
 * is complete (state DONE), -1 when it cannot be (r->failed: close). */
int drv_response_file_sent(struct drv_response *r, size_t n);
/* The app returned successfully: commit and, without a source, complete.
 * Returns 0 or -EINVAL (never started). */
int drv_response_finish(struct drv_response *r);
/*
 * Pull the next chunk from the source into the output buffer. Returns 1
 * when more may come, 0 when the body is complete (state DONE), -1 when the
 * source failed (r->failed is set: flush and close).
 */
int drv_response_pull(struct drv_response *r);

/* Predicates, for callers deciding what to do with a response. */
static inline bool drv_response_started(const struct drv_response *r)
{
    return r->state != DRV_RESPONSE_NEW;
}
static inline bool drv_response_committed(const struct drv_response *r)
{
    return r->state >= DRV_RESPONSE_COMMITTED;
}

/* Whether the connection stays open after this response. */
static inline bool drv_response_keeps_alive(const struct drv_response *r)
{
    return r->keep_alive && !r->failed;
}

/*
 * Write a complete, small response for an error or a refusal into out:
 * status line, Server, Date, Content-Type: text/plain, Content-Length,
 * X-Request-ID when `request_id` is not empty (it must be a sane id, see
 * reqid.h), then "Connection: close" unless keep_alive, or "Connection:
 * keep-alive" when keeping an HTTP/1.0 (`http10`) connection. `body` may
 * be NULL (the reason phrase is sent). Returns the body bytes added (0
 * when head_only).
 */
size_t drv_response_simple(struct drv_buf *out, int status, const char *body,
                           bool keep_alive, bool http10, bool head_only,
                           struct drv_str request_id);

/*
 * A request the worker will not finish (--timeout): send a complete "504
 * Gateway Timeout" with Connection: close straight to the client socket
 * `fd` and shut its sending side, so the client gets an answer and an
 * end even while another copy of the socket stays open in a stuck
 * process. Only for a request none of whose response was sent. Never
 * blocks. `request_id` may be empty. Returns 0, or -errno.
 */
int drv_response_send_timeout(int fd, bool head_only,
                              struct drv_str request_id);

/* The standard reason phrase for a status, "Unknown" if none. */
const char *drv_status_reason(int status);

/* Refresh the cached Date header value if the second changed. */
void drv_response_clock(time_t now);
/* The cached IMF-fixdate, e.g. "Sat, 21 Nov 2026 22:42:00 GMT". */
const char *drv_response_date(void);

#endif
