/*
 * response: status line, headers and body framing (see response.h for the
 * state machine). Everything for one response lands in the connection's
 * single output buffer, so the head and the first body bytes leave in one
 * write(2).
 */
#include "response.h"

#include <errno.h>
#include <stdio.h>
#include <sys/socket.h>
#include <time.h>
#include <stdlib.h>
#include <strings.h>

#include "http.h"
#include "log.h"

static char date_value[40];
static time_t date_second = -1;

void drv_response_clock(time_t now)
{
    if (now == date_second)
        return;
    struct tm tm;
    gmtime_r(&now, &tm);
    strftime(date_value, sizeof(date_value), "%a, %d %b %Y %H:%M:%S GMT", &tm);
    date_second = now;
}

const char *drv_response_date(void)
{
    if (date_second < 0)
        drv_response_clock(time(NULL));
    return date_value;
}

const char *drv_status_reason(int status)
{
    switch (status) {
    case 100: return "Continue";
    case 101: return "Switching Protocols";
    case 200: return "OK";
    case 201: return "Created";
    case 202: return "Accepted";
    case 203: return "Non-Authoritative Information";
    case 204: return "No Content";
    case 205: return "Reset Content";
    case 206: return "Partial Content";
    case 300: return "Multiple Choices";
    case 301: return "Moved Permanently";
    case 302: return "Found";
    case 303: return "See Other";
    case 304: return "Not Modified";
    case 307: return "Temporary Redirect";
    case 308: return "Permanent Redirect";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 406: return "Not Acceptable";
    case 408: return "Request Timeout";
    case 409: return "Conflict";
    case 410: return "Gone";
    case 411: return "Length Required";
    case 412: return "Precondition Failed";
    case 413: return "Content Too Large";
    case 414: return "URI Too Long";
    case 415: return "Unsupported Media Type";
    case 416: return "Range Not Satisfiable";
    case 417: return "Expectation Failed";
    case 422: return "Unprocessable Content";
    case 426: return "Upgrade Required";
    case 428: return "Precondition Required";
    case 429: return "Too Many Requests";
    case 431: return "Request Header Fields Too Large";
    case 500: return "Internal Server Error";
    case 501: return "Not Implemented";
    case 502: return "Bad Gateway";
    case 503: return "Service Unavailable";
    case 504: return "Gateway Timeout";
    case 505: return "HTTP Version Not Supported";
    default: return "Unknown";
    }
}

void drv_response_init(struct drv_response *r, struct drv_buf *out,
                       const struct drv_request *req, bool keep_alive)
{
    struct drv_buf headers = r->headers, pending = r->pending;
    drv_buf_reset(&headers);
    drv_buf_reset(&pending);
    *r = (struct drv_response){.out = out, .req = req, .headers = headers,
                               .pending = pending, .content_length = -1,
                               .keep_alive = keep_alive, .closer = r->closer,
                               .closer_arg = r->closer_arg};
}

void drv_response_set_closer(struct drv_response *r, drv_source_closer closer,
                             void *arg)
{
    r->closer = closer;
    r->closer_arg = arg;
}

static void close_source(struct drv_response *r)
{
    if (!r->has_source)
        return;
    r->has_source = false;
    if (!r->source.close)
        return;
    if (r->closer)
        r->closer(r->closer_arg, &r->source);
    else
        r->source.close(r->source.state);
}

void drv_response_clear(struct drv_response *r)
{
    close_source(r);
    drv_buf_free(&r->headers);
    drv_buf_free(&r->pending);
}

void drv_response_free(struct drv_response *r)
{
    close_source(r);
    drv_buf_free(&r->headers);
    drv_buf_free(&r->pending);
}

/* Drop what the app said of a response not yet committed: its headers,
 * held body, length and body source. */
static void withdraw(struct drv_response *r)
{
    close_source(r);
    drv_buf_reset(&r->headers);
    drv_buf_reset(&r->pending);
    r->content_length = -1;
    r->has_file = false;
    r->app_date = r->app_server = r->app_request_id = false;
}

int drv_response_cancel(struct drv_response *r)
{
    if (r->state >= DRV_RESPONSE_COMMITTED)
        return -EALREADY;
    if (r->state == DRV_RESPONSE_STARTED) {
        withdraw(r);
        r->status = 0;
        r->state = DRV_RESPONSE_NEW;
    }
    return 0;
}

void drv_response_abort(struct drv_response *r)
{
    close_source(r);
    r->failed = true;
    r->state = DRV_RESPONSE_DONE;
}

int drv_response_error(struct drv_response *r, int status, bool head_only)
{
    if (r->state >= DRV_RESPONSE_COMMITTED)
        return -EALREADY;
    withdraw(r);
    const struct drv_request *req = r->req;
    bool http10 = req && req->http_minor == 0;
    size_t before = drv_buf_size(r->out);
    struct drv_str id = {NULL, 0};
    if (req)
        id = (struct drv_str){req->view.request_id.ptr,
                              req->view.request_id.len};
    r->body_bytes = drv_response_simple(r->out, status, NULL, r->keep_alive,
                                        http10, head_only, id);
    r->head_bytes = drv_buf_size(r->out) - before - r->body_bytes;
    r->status = status;
    r->chunked = false;
    r->no_body = head_only;
    r->state = DRV_RESPONSE_DONE;
    return 0;
}

int drv_response_start(struct drv_response *r, int status, const char *reason,
                       size_t reason_len)
{
    if (r->state >= DRV_RESPONSE_COMMITTED)
        return -EALREADY;
    /* A 1xx is interim: sent as the response, the client would wait on
     * for the final one and take the next request's answer for it. */
    if (status < 200 || status > 999)
        return -EINVAL;
    if (!reason) {
        reason = drv_status_reason(status);
        reason_len = strlen(reason);
    }
    for (size_t i = 0; i < reason_len; i++) {
        unsigned char c = (unsigned char)reason[i];
        if ((c < 0x20 && c != '\t') || c == 0x7f)
            return -EINVAL;
    }
    if (reason_len >= sizeof(r->reason))
        reason_len = sizeof(r->reason) - 1;
    memcpy(r->reason, reason, reason_len);
    r->reason[reason_len] = '\0';
    r->status = status;
    /* A restart (WSGI exc_info) drops what the failed response had said,
     * its body source too: none of it may end up in the error page. (A
     * kept file body would even go out raw inside a chunked one.) */
    withdraw(r);
    r->state = DRV_RESPONSE_STARTED;
    return 0;
}

/* RFC 9110 token characters. */
static bool is_tchar(unsigned char c)
{
    if (c >= 'a' && c <= 'z')
        return true;
    if (c >= 'A' && c <= 'Z')
        return true;
    if (c >= '0' && c <= '9')
        return true;
    return c && strchr("!#$%&'*+-.^_`|~", c) != NULL;
}

static bool name_is(const char *name, size_t nlen, const char *lower)
{
    return drv_str_eq_lower((struct drv_str){name, nlen}, lower);
}

static bool has_close_token(const char *v, size_t vlen)
{
    for (size_t i = 0; i + 5 <= vlen; i++)
        if (strncasecmp(v + i, "close", 5) == 0)
            return true;
    return false;
}

static int parse_length(const char *v, size_t vlen, int64_t *out)
{
    if (!vlen || vlen > 18)
        return -EINVAL;
    int64_t n = 0;
    for (size_t i = 0; i < vlen; i++) {
        if (v[i] < '0' || v[i] > '9')
            return -EINVAL;
        n = n * 10 + (v[i] - '0');
    }
    *out = n;
    return 0;
}

bool drv_response_header_ok(const char *name, size_t nlen, const char *value,
                            size_t vlen)
{
    if (!nlen)
        return false;
    for (size_t i = 0; i < nlen; i++)
        if (!is_tchar((unsigned char)name[i]))
            return false;
    /* RFC 9110 5.5: no control characters but HTAB (CR, LF and NUL
     * would split or end the head). */
    for (size_t i = 0; i < vlen; i++) {
        unsigned char c = (unsigned char)value[i];
        if ((c < 0x20 && c != '\t') || c == 0x7f)
            return false;
    }
    return true;
}

int drv_response_header(struct drv_response *r, const char *name, size_t nlen,
                        const char *value, size_t vlen)
{
    if (r->state != DRV_RESPONSE_STARTED ||
        !drv_response_header_ok(name, nlen, value, vlen))
        return -EINVAL;

    if (name_is(name, nlen, "content-length")) {
        int64_t n;
        if (parse_length(value, vlen, &n) != 0)
            return -EINVAL;
        r->content_length = n;
        return 0; /* emitted at commit, once */
    }
    if (name_is(name, nlen, "connection")) {
        if (has_close_token(value, vlen))
            r->keep_alive = false;
        return 0;
    }
    if (name_is(name, nlen, "transfer-encoding") ||
        name_is(name, nlen, "keep-alive") || name_is(name, nlen, "upgrade") ||
        name_is(name, nlen, "proxy-connection") || name_is(name, nlen, "te") ||
        name_is(name, nlen, "trailer"))
        return 0;
    if (name_is(name, nlen, "date"))
        r->app_date = true;
    else if (name_is(name, nlen, "server"))
        r->app_server = true;
    else if (name_is(name, nlen, "x-request-id"))
        r->app_request_id = true;
    drv_buf_append(&r->headers, name, nlen);
    drv_buf_append(&r->headers, ": ", 2);
    drv_buf_append(&r->headers, value, vlen);
    drv_buf_append(&r->headers, "\r\n", 2);
    return 0;
}

static bool status_has_body(int status)
{
    return status >= 200 && status != 204 && status != 304;
}

/* X-Request-ID: the request's id (reqid.h), unless the app set its own.
 * The id is printable ASCII without spaces: safe in a header as it is. */
static void put_request_id(struct drv_buf *o, struct drover_str id,
                           bool app_set)
{
    if (app_set || !id.len)
        return;
    drv_buf_puts(o, "X-Request-ID: ");
    drv_buf_append(o, id.ptr, id.len);
    drv_buf_puts(o, "\r\n");
}

/* Write the status line and headers; fix the framing (see response.h). */
static void commit(struct drv_response *r, bool complete)
{
    const struct drv_request *req = r->req;
    bool http11 = req->http_minor == 1;
    r->no_body = req->is_head || !status_has_body(r->status);
    uint64_t pending = drv_buf_size(&r->pending);
    int64_t length = r->content_length;
    /* A complete body's length is known, except for HEAD when the app made
     * none: it did not compute the GET body, and "Content-Length: 0"
     * would say the resource is empty (RFC 9110 8.6). */
    if (length < 0 && complete && status_has_body(r->status) &&
        (!req->is_head || pending > 0))
        length = (int64_t)pending;
    if (length < 0 && !r->no_body) {
        if (http11)
            r->chunked = true;
        else
            r->keep_alive = false; /* the close delimits the body */
    }
    r->content_length = length;

    struct drv_buf *o = r->out;
    size_t before = drv_buf_size(o);
    drv_buf_puts(o, http11 ? "HTTP/1.1 " : "HTTP/1.0 ");
    drv_buf_put_dec(o, (uint64_t)r->status);
    drv_buf_append(o, " ", 1);
    drv_buf_puts(o, r->reason);
    drv_buf_append(o, "\r\n", 2);
    if (!r->app_server)
        drv_buf_puts(o, "Server: drover\r\n");
    if (!r->app_date) {
        drv_buf_puts(o, "Date: ");
        drv_buf_puts(o, drv_response_date());
        drv_buf_puts(o, "\r\n");
    }
    drv_buf_append(o, drv_buf_data(&r->headers), drv_buf_size(&r->headers));
    put_request_id(o, req->view.request_id, r->app_request_id);
    if (length >= 0 && status_has_body(r->status)) {
        drv_buf_puts(o, "Content-Length: ");
        drv_buf_put_dec(o, (uint64_t)length);
        drv_buf_append(o, "\r\n", 2);
    }
    if (r->chunked)
        drv_buf_puts(o, "Transfer-Encoding: chunked\r\n");
    if (!r->keep_alive)
        drv_buf_puts(o, "Connection: close\r\n");
    else if (!http11)
        drv_buf_puts(o, "Connection: keep-alive\r\n");
    drv_buf_puts(o, "\r\n");
    r->head_bytes = drv_buf_size(o) - before;
    r->state = DRV_RESPONSE_COMMITTED;
}

/* Queue body bytes after commit, framed and bounded by Content-Length. */
static void emit(struct drv_response *r, const void *data, size_t len)
{
    if (!len || r->no_body)
        return;
    if (r->content_length >= 0) {
        uint64_t room = (uint64_t)r->content_length - r->body_bytes;
        if (len > room) {
            if (!r->failed)
                drv_error("app wrote more than its Content-Length of %lld; "
                          "surplus dropped",
                          (long long)r->content_length);
            r->failed = true;
            len = (size_t)room;
        }
        drv_buf_append(r->out, data, len);
    } else if (r->chunked) {
        drv_buf_put_hex(r->out, len);
        drv_buf_append(r->out, "\r\n", 2);
        drv_buf_append(r->out, data, len);
        drv_buf_append(r->out, "\r\n", 2);
    } else {
        drv_buf_append(r->out, data, len);
    }
    r->body_bytes += len;
}

static void flush_pending(struct drv_response *r)
{
    emit(r, drv_buf_data(&r->pending), drv_buf_size(&r->pending));
    drv_buf_reset(&r->pending);
}

int drv_response_write(struct drv_response *r, const void *data, size_t len)
{
    /* Once a source is handed over, held bytes would go out ahead of
     * its bytes, and a file body's length is fixed already. (Committed,
     * a write goes out in order: WSGI's write() called while drover pulls
     * the iterable.) */
    if (r->state == DRV_RESPONSE_NEW || r->state == DRV_RESPONSE_DONE ||
        r->has_file || (r->state == DRV_RESPONSE_STARTED && r->has_source))
        return -EINVAL;
    if (r->state == DRV_RESPONSE_STARTED) {
        drv_buf_append(&r->pending, data, len);
        if (drv_buf_size(&r->pending) >= DRV_RESPONSE_HOLD) {
            commit(r, false);
            flush_pending(r);
        }
        return 0;
    }
    emit(r, data, len);
    return 0;
}

int drv_response_commit_sized(struct drv_response *r, uint64_t total)
{
    if (r->state != DRV_RESPONSE_STARTED || r->has_source)
        return -EINVAL;
    if (r->content_length < 0 && status_has_body(r->status))
        r->content_length = (int64_t)(drv_buf_size(&r->pending) + total);
    commit(r, false);
    flush_pending(r);
    return 0;
}

int drv_response_flush(struct drv_response *r)
{
    if (r->state != DRV_RESPONSE_STARTED || r->has_source)
        return -EINVAL;
    commit(r, false);
    flush_pending(r);
    return 0;
}

int drv_response_stream(struct drv_response *r,
                        const struct drover_body_source *source)
{
    if (r->state == DRV_RESPONSE_NEW || r->state == DRV_RESPONSE_DONE ||
        r->has_source) {
        if (source->close)
            source->close(source->state);
        return -EINVAL;
    }
    r->source = *source;
    r->has_source = true;
    return 0;
}

/* The body is complete: terminate it and check the length. */
static void complete(struct drv_response *r)
{
    if (r->chunked && !r->failed)
        drv_buf_append(r->out, "0\r\n\r\n", 5);
    if (!r->no_body && r->content_length >= 0 &&
        r->body_bytes < (uint64_t)r->content_length) {
        drv_error("app sent %llu of its Content-Length of %lld bytes; "
                  "closing the connection",
                  (unsigned long long)r->body_bytes,
                  (long long)r->content_length);
        r->failed = true;
    }
    r->state = DRV_RESPONSE_DONE;
}

int drv_response_stream_file(struct drv_response *r,
                             const struct drover_body_source *source, int fd,
                             off_t pos, uint64_t len)
{
    if (r->state != DRV_RESPONSE_STARTED) {
        if (source->close)
            source->close(source->state);
        return r->state == DRV_RESPONSE_NEW ? -EINVAL : -EALREADY;
    }
    int rc = drv_response_stream(r, source);
    if (rc != 0)
        return rc;
    r->has_file = true;
    r->file.fd = fd;
    r->file.pos = pos;
    r->file.left = len;
    if (r->content_length < 0)
        r->content_length = (int64_t)(drv_buf_size(&r->pending) + len);
    return 0;
}

int drv_response_file_sent(struct drv_response *r, size_t n)
{
    r->file.pos += (off_t)n;
    r->file.left -= n;
    r->body_bytes += n;
    if (n && r->file.left)
        return 1;
    close_source(r);
    complete(r); /* a file that ended early is a shortfall: failed */
    return r->failed ? -1 : 0;
}

int drv_response_finish(struct drv_response *r)
{
    if (r->state == DRV_RESPONSE_NEW)
        return -EINVAL;
    if (r->state == DRV_RESPONSE_DONE)
        return 0; /* a stream pulled to its end before the app returned */
    if (r->state == DRV_RESPONSE_STARTED) {
        commit(r, !r->has_source);
        flush_pending(r);
    }
    if (!r->has_source) {
        complete(r);
    } else if (r->has_file) {
        /* Never more than the Content-Length, nothing for HEAD/304. */
        uint64_t room = r->no_body ? 0
                                   : (uint64_t)r->content_length - r->body_bytes;
        if (r->file.left > room)
            r->file.left = room;
        if (!r->file.left)
            drv_response_file_sent(r, 0);
    }
    return 0;
}

int drv_response_pull(struct drv_response *r)
{
    if (r->state == DRV_RESPONSE_DONE)
        return 0;
    /* Pulled before finish: the head goes out first (see response.h). */
    if (r->state == DRV_RESPONSE_STARTED) {
        commit(r, false);
        flush_pending(r);
    }
    /* Nothing more can be sent (HEAD, 204, 304, or the Content-Length is
     * reached): iterating on would only burn the worker, and for an
     * endless stream never end. */
    if (r->no_body || (r->content_length >= 0 &&
                       r->body_bytes >= (uint64_t)r->content_length)) {
        close_source(r);
        complete(r);
        return 0;
    }
    const void *data = NULL;
    size_t len = 0;
    int rc = r->source.next ? r->source.next(r->source.state, &data, &len) : 0;
    if (rc < 0) {
        r->failed = true;
        close_source(r);
        r->state = DRV_RESPONSE_DONE;
        return -1;
    }
    if (rc == 0) {
        close_source(r);
        complete(r);
        return 0;
    }
    emit(r, data, len);
    return 1;
}

size_t drv_response_simple(struct drv_buf *out, int status, const char *body,
                           bool keep_alive, bool http10, bool head_only,
                           struct drv_str request_id)
{
    char text[128];
    if (!body) {
        snprintf(text, sizeof(text), "%s\n", drv_status_reason(status));
        body = text;
    }
    const char *connection = !keep_alive ? "Connection: close\r\n"
                             : http10    ? "Connection: keep-alive\r\n"
                                         : "";
    size_t len = strlen(body);
    drv_buf_printf(out,
                   "HTTP/1.1 %d %s\r\nServer: drover\r\nDate: %s\r\n"
                   "Content-Type: text/plain; charset=utf-8\r\n"
                   "Content-Length: %zu\r\n",
                   status, drv_status_reason(status), drv_response_date(),
                   len);
    put_request_id(out, (struct drover_str){request_id.ptr, request_id.len},
                   false);
    drv_buf_printf(out, "%s\r\n", connection);
    if (head_only)
        return 0;
    drv_buf_append(out, body, len);
    return len;
}

int drv_response_send_timeout(int fd, bool head_only,
                              struct drv_str request_id)
{
    drv_response_clock(time(NULL));
    struct drv_buf out = {0};
    drv_response_simple(&out, 504, "The request took too long and was "
                        "stopped (--timeout).\n", false, false, head_only,
                        request_id);
    ssize_t n = send(fd, drv_buf_data(&out), drv_buf_size(&out),
                     MSG_DONTWAIT | MSG_NOSIGNAL);
    int rc = n < 0 ? -errno : (size_t)n < drv_buf_size(&out) ? -EAGAIN : 0;
    drv_buf_free(&out);
    shutdown(fd, SHUT_WR);
    return rc;
}
