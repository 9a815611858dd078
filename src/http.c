/*
 * http: llhttp callbacks that build a drv_request while enforcing limits.
 *
 * llhttp runs in strict mode (see CMakeLists.txt) and rejects the lenient
 * forms request smuggling relies on: bare LF line endings, whitespace
 * before the colon, both Content-Length and Transfer-Encoding, repeated
 * Content-Length. On top of it this file refuses:
 *
 *   400  over-long request line; HTTP/1.1 without exactly one Host
 *   413  Content-Length or de-chunked body over max_body_size
 *   417  an Expect other than 100-continue
 *   431  too many header fields, one field too large, or the whole head
 *        over its limit
 *   501  a Transfer-Encoding other than chunked
 *   505  a version other than HTTP/1.0 and HTTP/1.1
 *
 * A callback that refuses stores the status and returns HPE_USER, which
 * makes llhttp_execute stop at once.
 */
#include "http.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <strings.h>
#include <unistd.h>

#include "log.h"

static struct drv_http *from_parser(llhttp_t *p)
{
    return p->data;
}

static int refuse(struct drv_http *h, int status, const char *reason)
{
    h->error_status = status;
    h->error_reason = reason;
    return HPE_USER;
}

static int on_message_begin(llhttp_t *p)
{
    from_parser(p)->started = true;
    return 0;
}

static int count_line(struct drv_http *h, size_t len)
{
    h->line_len += (uint32_t)len;
    int limit = h->limits->request_line;
    if (limit > 0 && h->line_len > (uint32_t)limit)
        return refuse(h, 400, "request line too long");
    return 0;
}

static int on_method(llhttp_t *p, const char *at, size_t len)
{
    struct drv_http *h = from_parser(p);
    drv_buf_append(&h->req.head, at, len);
    h->method_len += (uint32_t)len;
    return count_line(h, len);
}

static int on_url(llhttp_t *p, const char *at, size_t len)
{
    struct drv_http *h = from_parser(p);
    /* "GET " + target + " HTTP/1.1": count the separators and version once. */
    if (h->target_len == 0 && count_line(h, 1 + 1 + 8) != 0)
        return HPE_USER;
    drv_buf_append(&h->req.head, at, len);
    h->target_len += (uint32_t)len;
    return count_line(h, len);
}

static int on_version_complete(llhttp_t *p)
{
    struct drv_http *h = from_parser(p);
    if (p->http_major != 1 || p->http_minor > 1)
        return refuse(h, 505, "unsupported HTTP version");
    return 0;
}

static int count_field(struct drv_http *h, size_t len)
{
    h->field_len += (uint32_t)len;
    int limit = h->limits->field_size;
    if (limit > 0 && h->field_len > (uint32_t)limit)
        return refuse(h, 431, "header field too large");
    int64_t head = h->limits->head;
    if (head > 0 && (int64_t)h->req.head.len > head)
        return refuse(h, 431, "request head too large");
    return 0;
}

/* Room for the header (or trailer) whose name begins. */
static void push_span(struct drv_request *r)
{
    if (r->nheaders == r->cap_headers) {
        r->cap_headers = r->cap_headers ? r->cap_headers * 2 : 16;
        r->spans = drv_xrealloc(r->spans, r->cap_headers * sizeof(*r->spans));
    }
    r->spans[r->nheaders] = (struct drv_header_span){
        .name_off = (uint32_t)r->head.len};
}

/*
 * Trailer fields (after a chunked body) pass through the same callbacks.
 * They are counted against the limits and dropped: the views built at the
 * end of the head point into req.head, which must not move from then on.
 */
static int on_header_field(llhttp_t *p, const char *at, size_t len)
{
    struct drv_http *h = from_parser(p);
    struct drv_request *r = &h->req;
    if (!h->in_field) {
        int limit = h->limits->fields;
        if (limit > 0 && r->nheaders + h->trailers >= (size_t)limit)
            return refuse(h, 431, "too many header fields");
        if (h->head_done) {
            h->trailers++;
            h->trailer_len = 0;
        } else {
            push_span(r);
        }
        h->in_field = true;
        h->value_started = false;
        h->field_len = 0;
    }
    if (!h->head_done) {
        r->spans[r->nheaders].name_len += (uint32_t)len;
        drv_buf_append(&r->head, at, len);
    } else {
        size_t room = sizeof(h->trailer) - h->trailer_len;
        size_t n = len < room ? len : room;
        memcpy(h->trailer + h->trailer_len, at, n);
        h->trailer_len = (uint8_t)(h->trailer_len + n);
    }
    return count_field(h, len);
}

static int on_header_value(llhttp_t *p, const char *at, size_t len)
{
    struct drv_http *h = from_parser(p);
    struct drv_request *r = &h->req;
    if (h->head_done)
        return count_field(h, len);
    struct drv_header_span *s = &r->spans[r->nheaders];
    if (!h->value_started) {
        s->value_off = (uint32_t)r->head.len;
        h->value_started = true;
    }
    s->value_len += (uint32_t)len;
    drv_buf_append(&r->head, at, len);
    return count_field(h, len);
}

static struct drv_str span_name(const struct drv_request *r,
                                const struct drv_header_span *s)
{
    return (struct drv_str){r->head.base + s->name_off, s->name_len};
}

static struct drv_str span_value(const struct drv_request *r,
                                 const struct drv_header_span *s)
{
    return (struct drv_str){r->head.base + s->value_off, s->value_len};
}

/* Transfer-Encoding: drover decodes chunked and nothing else. */
static int check_transfer_encoding(struct drv_http *h, struct drv_str v)
{
    const char *p = v.ptr, *end = v.ptr + v.len;
    while (p < end) {
        while (p < end && (*p == ' ' || *p == '\t' || *p == ','))
            p++;
        const char *tok = p;
        while (p < end && *p != ',' && *p != ' ' && *p != '\t')
            p++;
        if (p == tok)
            break;
        struct drv_str t = {tok, (size_t)(p - tok)};
        if (!drv_str_eq_lower(t, "chunked"))
            return refuse(h, 501, "unsupported transfer-coding");
        if (h->te_chunked)
            return refuse(h, 400, "chunked applied twice");
        h->te_chunked = true;
    }
    return 0;
}

/*
 * Fields a trailer may not carry (RFC 9110 6.5.1: framing, routing,
 * request modifiers, authentication, content metadata): a sender that
 * puts them there is confused or smuggling; as gunicorn does, the request
 * is refused rather than the field silently dropped.
 */
static bool forbidden_trailer(struct drv_str name)
{
    static const char *const names[] = {
        "transfer-encoding", "content-length", "host", "content-type",
        "content-encoding", "content-range", "trailer", "te", "expect",
        "max-forwards", "cache-control", "pragma", "range", "if-match",
        "if-none-match", "if-modified-since", "if-unmodified-since",
        "if-range", "authorization", "proxy-authorization", "cookie",
        "connection", "keep-alive", "upgrade", "proxy-connection",
    };
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
        if (drv_str_eq_lower(name, names[i]))
            return true;
    return false;
}

static int on_header_value_complete(llhttp_t *p)
{
    struct drv_http *h = from_parser(p);
    struct drv_request *r = &h->req;
    if (h->head_done) { /* a trailer: checked, then dropped */
        h->in_field = false;
        struct drv_str name = {h->trailer, h->trailer_len};
        if (forbidden_trailer(name))
            return refuse(h, 400, "a field not allowed in a trailer");
        return 0;
    }
    struct drv_header_span *s = &r->spans[r->nheaders];
    if (!h->value_started)
        s->value_off = (uint32_t)r->head.len;
    /* llhttp skips leading whitespace; RFC 9110 also drops trailing. */
    while (s->value_len) {
        char c = r->head.base[s->value_off + s->value_len - 1];
        if (c != ' ' && c != '\t')
            break;
        s->value_len--;
    }
    h->in_field = false;
    r->nheaders++;

    struct drv_str name = span_name(r, s), value = span_value(r, s);
    if (drv_str_eq_lower(name, "transfer-encoding")) {
        h->te_seen = true;
        return check_transfer_encoding(h, value);
    }
    if (drv_str_eq_lower(name, "content-type")) {
        /* A singleton field: copies that disagree leave the body's type
         * to whoever reads which copy (RFC 9110 5.3). */
        if (h->content_type >= 0) {
            struct drv_str first = span_value(r, &r->spans[h->content_type]);
            if (first.len != value.len ||
                memcmp(first.ptr, value.ptr, value.len) != 0)
                return refuse(h, 400, "Content-Type headers disagree");
        }
        h->content_type = (int)(r->nheaders - 1);
        return 0;
    }
    if (drv_str_eq_lower(name, "expect")) {
        if (!drv_str_eq_lower(value, "100-continue"))
            return refuse(h, 417, "unsupported expectation");
        h->expect_seen = true;
    } else if (drv_str_eq_lower(name, "host")) {
        if (h->host_seen)
            return refuse(h, 400, "more than one Host header");
        h->host_seen = true;
    }
    return 0;
}

/* An absolute-form target ("http://user@h:8080/x?y"): true, with the
 * authority ("user@h:8080", userinfo still in; it may be empty) in *auth.
 * It ends at the first '/', '?' or '#' ("http://h?q" has the query "q"). */
static bool absolute_form(struct drover_str t, struct drover_str *auth)
{
    if (t.len <= 7 || (strncasecmp(t.ptr, "http://", 7) != 0 &&
                       strncasecmp(t.ptr, "https://", 8) != 0))
        return false;
    size_t start = t.ptr[4] == ':' ? 7 : 8, n = start;
    while (n < t.len && t.ptr[n] != '/' && t.ptr[n] != '?' && t.ptr[n] != '#')
        n++;
    *auth = (struct drover_str){t.ptr + start, n - start};
    return true;
}

/* Split the request-target into path and query (RFC 9112 3.2: origin-form
 * or absolute-form, whose path starts after `auth`, NULL for origin-form;
 * authority-form only comes with CONNECT). */
static void split_target(struct drover_request *v,
                         const struct drover_str *auth)
{
    const char *end = v->target.ptr + v->target.len;
    const char *path = auth ? auth->ptr + auth->len : v->target.ptr;
    const char *q = path;
    while (q < end && *q != '?' && *q != '#')
        q++;
    v->path = (struct drover_str){path, (size_t)(q - path)};
    if (v->path.len == 0)
        v->path = (struct drover_str){"/", 1};
    if (q < end && *q == '?') {
        const char *qs = q + 1, *qe = qs;
        while (qe < end && *qe != '#')
            qe++;
        v->query = (struct drover_str){qs, (size_t)(qe - qs)};
    } else {
        v->query = (struct drover_str){"", 0};
    }
}

/* Split an authority ("host", "host:port", "[v6]:port") into host and
 * port; the port is empty when there is none or it is empty. */
static void split_authority(struct drover_request *v)
{
    const char *p = v->authority.ptr, *end = p + v->authority.len;
    const char *colon = NULL;
    if (p < end && *p == '[') {
        const char *close = memchr(p, ']', v->authority.len);
        if (close && close + 1 < end && close[1] == ':')
            colon = close + 1;
    } else {
        colon = memchr(p, ':', v->authority.len);
    }
    v->host = (struct drover_str){p, colon ? (size_t)(colon - p)
                                           : v->authority.len};
    v->port = colon ? (struct drover_str){colon + 1, (size_t)(end - colon - 1)}
                    : (struct drover_str){"", 0};
}

/*
 * The host the request is for. RFC 9112 3.2.2: an absolute-form target's
 * authority (`auth`, NULL for origin-form) wins over the Host header.
 * Userinfo ("user:pass@") is dropped: it names no host, and an app must
 * never take it for one.
 */
static void find_authority(struct drv_request *r,
                           const struct drover_str *auth)
{
    struct drover_request *v = &r->view;
    v->authority = (struct drover_str){"", 0};
    r->authority_from_target = false;
    if (auth) {
        struct drover_str a = *auth;
        for (size_t i = a.len; i-- > 0;) {
            if (a.ptr[i] == '@') {
                a = (struct drover_str){a.ptr + i + 1, a.len - i - 1};
                break;
            }
        }
        if (a.len) {
            v->authority = a;
            r->authority_from_target = true;
        }
    }
    if (!r->authority_from_target) {
        const struct drover_header *h = drv_http_header(r, "host");
        if (h)
            v->authority = h->value;
    }
    split_authority(v);
}

/* Build the app-facing views; the head buffer no longer moves. */
static void build_views(struct drv_http *h)
{
    struct drv_request *r = &h->req;
    struct drover_request *v = &r->view;
    const char *base = r->head.base;
    v->method = (struct drover_str){base, h->method_len};
    v->target = (struct drover_str){base + h->method_len, h->target_len};
    v->version = r->http_minor ? (struct drover_str){"HTTP/1.1", 8}
                               : (struct drover_str){"HTTP/1.0", 8};
    struct drover_str auth;
    const struct drover_str *absolute =
        absolute_form(v->target, &auth) ? &auth : NULL;
    split_target(v, absolute);
    if (r->nheaders > r->cap_views) {
        r->cap_views = r->cap_headers;
        r->headers = drv_xrealloc(r->headers,
                                  r->cap_views * sizeof(*r->headers));
    }
    for (size_t i = 0; i < r->nheaders; i++) {
        struct drv_str n = span_name(r, &r->spans[i]);
        struct drv_str val = span_value(r, &r->spans[i]);
        r->headers[i] = (struct drover_header){{n.ptr, n.len},
                                               {val.ptr, val.len}};
    }
    v->headers = r->headers;
    v->nheaders = r->nheaders;
    v->body = (struct drover_str){"", 0};
    find_authority(r, absolute);
}

static int on_headers_complete(llhttp_t *p)
{
    struct drv_http *h = from_parser(p);
    struct drv_request *r = &h->req;
    r->http_major = p->http_major;
    r->http_minor = p->http_minor;
    /* The views first, so that a refusal below still has the headers
     * (the refused request's X-Request-ID, say). */
    build_views(h);
    if (r->http_minor == 1 && !h->host_seen)
        return refuse(h, 400, "HTTP/1.1 request without Host");
    /* RFC 9112 6.1: an HTTP/1.0 message with Transfer-Encoding has
     * faulty framing (a 1.0 hop may not have understood it). */
    if (r->http_minor == 0 && h->te_seen)
        return refuse(h, 400, "Transfer-Encoding in an HTTP/1.0 request");
    if (p->method == HTTP_CONNECT)
        return refuse(h, 501, "CONNECT is not supported");
    /* The asterisk-form target is for OPTIONS only (RFC 9112 3.2.4). */
    if (h->target_len == 1 && r->head.base[h->method_len] == '*' &&
        p->method != HTTP_OPTIONS)
        return refuse(h, 400, "'*' target for a method other than OPTIONS");
    /* An upgrade offer (WebSocket, h2c) is an ordinary request to a WSGI
     * app, and the connection goes on in HTTP/1.1: without this, llhttp
     * would stop after the message, taking what follows for the new
     * protocol, and the next request would be lost. */
    p->upgrade = 0;
    bool has_length = (p->flags & F_CONTENT_LENGTH) != 0;
    r->content_length = has_length ? (int64_t)p->content_length : -1;
    int64_t max = h->limits->max_body;
    if (max > 0 && has_length && p->content_length > (uint64_t)max)
        return refuse(h, 413, "body larger than max_body_size");
    r->is_head = p->method == HTTP_HEAD;
    h->head_done = true;
    bool body_follows = h->te_chunked || (has_length && p->content_length);
    if (h->expect_seen && body_follows && r->http_minor == 1) {
        r->expect_continue = true;
        h->paused_at_head = true;
        return HPE_PAUSED;
    }
    return 0;
}

static const char *tmp_dir(void)
{
    const char *d = getenv("TMPDIR");
    return d && *d ? d : "/tmp";
}

/* Move the in-memory body into an unlinked temporary file. */
static int spill(struct drv_body *b)
{
    const char *dir = tmp_dir();
    int fd = open(dir, O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
    if (fd < 0) {
        char path[4096];
        snprintf(path, sizeof(path), "%s/drover-body-XXXXXX", dir);
        fd = mkostemp(path, O_CLOEXEC);
        if (fd < 0) {
            drv_log_errno(errno, "mkostemp", "cannot spool request body");
            return -1;
        }
        unlink(path);
    }
    const char *p = drv_buf_data(&b->mem);
    size_t n = drv_buf_size(&b->mem);
    while (n) {
        ssize_t w = write(fd, p, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0) {
            drv_log_errno(errno, "write", "cannot spool request body");
            close(fd);
            return -1;
        }
        p += w;
        n -= (size_t)w;
    }
    drv_buf_free(&b->mem);
    b->fd = fd;
    return 0;
}

static int store_body(struct drv_http *h, const char *at, size_t len)
{
    struct drv_body *b = &h->req.body;
    if (b->fd < 0 && b->len + len > (uint64_t)h->limits->body_memory &&
        spill(b) != 0)
        return -1;
    if (b->fd < 0) {
        drv_buf_append(&b->mem, at, len);
    } else {
        while (len) {
            ssize_t w = write(b->fd, at, len);
            if (w < 0 && errno == EINTR)
                continue;
            if (w < 0) {
                drv_log_errno(errno, "write", "cannot spool request body");
                return -1;
            }
            at += w;
            len -= (size_t)w;
            b->len += (uint64_t)w;
        }
        return 0;
    }
    b->len += len;
    return 0;
}

static int on_body(llhttp_t *p, const char *at, size_t len)
{
    struct drv_http *h = from_parser(p);
    int64_t max = h->limits->max_body;
    if (max > 0 && h->req.body.len + len > (uint64_t)max)
        return refuse(h, 413, "body larger than max_body_size");
    if (store_body(h, at, len) != 0)
        return refuse(h, 500, "cannot store request body");
    return 0;
}

static int on_message_complete(llhttp_t *p)
{
    struct drv_http *h = from_parser(p);
    struct drv_request *r = &h->req;
    r->keep_alive = llhttp_should_keep_alive(p);
    r->view.body_length = r->body.len;
    if (r->body.fd < 0)
        r->view.body = (struct drover_str){drv_buf_data(&r->body.mem),
                                           r->body.len};
    else
        r->view.body = (struct drover_str){NULL, 0};
    h->paused_at_head = false;
    return HPE_PAUSED;
}

static llhttp_settings_t parser_settings;

void drv_http_init(struct drv_http *h, const struct drv_http_limits *limits)
{
    if (!parser_settings.on_message_complete) {
        llhttp_settings_init(&parser_settings);
        parser_settings.on_message_begin = on_message_begin;
        parser_settings.on_method = on_method;
        parser_settings.on_url = on_url;
        parser_settings.on_version_complete = on_version_complete;
        parser_settings.on_header_field = on_header_field;
        parser_settings.on_header_value = on_header_value;
        parser_settings.on_header_value_complete = on_header_value_complete;
        parser_settings.on_headers_complete = on_headers_complete;
        parser_settings.on_body = on_body;
        parser_settings.on_message_complete = on_message_complete;
    }
    *h = (struct drv_http){.limits = limits, .content_type = -1};
    h->req.body.fd = -1;
    h->req.content_length = -1;
    llhttp_init(&h->p, HTTP_REQUEST, &parser_settings);
    h->p.data = h;
}

static void body_clear(struct drv_body *b)
{
    if (b->fd >= 0)
        close(b->fd);
    b->fd = -1;
    b->len = b->read_pos = 0;
    drv_buf_free(&b->mem);
}

void drv_http_free(struct drv_http *h)
{
    struct drv_request *r = &h->req;
    body_clear(&r->body);
    drv_buf_free(&r->body.mem);
    drv_buf_free(&r->head);
    free(r->spans);
    free(r->headers);
    r->spans = NULL;
    r->headers = NULL;
}

void drv_http_next(struct drv_http *h)
{
    struct drv_request *r = &h->req;
    body_clear(&r->body);
    /* An idle keep-alive connection keeps no request memory: the blocks
     * are small, and malloc's per-thread cache hands them straight to
     * the next request, of this connection or another. */
    drv_buf_free(&r->head);
    free(r->spans);
    free(r->headers);
    r->spans = NULL;
    r->headers = NULL;
    r->cap_headers = r->cap_views = 0;
    r->nheaders = 0;
    r->view = (struct drover_request){0};
    r->keep_alive = r->expect_continue = r->is_head = false;
    r->authority_from_target = false;
    r->content_length = -1;
    h->error_status = 0;
    h->error_reason = NULL;
    h->line_len = h->field_len = 0;
    h->trailers = 0;
    h->method_len = h->target_len = 0;
    h->in_field = h->value_started = false;
    h->started = h->head_done = h->paused_at_head = false;
    h->te_chunked = h->expect_seen = h->host_seen = h->te_seen = false;
    h->content_type = -1;
    h->trailer_len = 0;
    h->head_scanned = h->text_seen = false;
    h->prev = 0;
    h->scan_line = 0;
}

static int status_for(llhttp_errno_t e)
{
    switch (e) {
    case HPE_INVALID_VERSION:
        return 505;
    case HPE_INVALID_TRANSFER_ENCODING:
        return 501;
    default:
        return 400;
    }
}

/*
 * Every line of the head must end in CRLF. llhttp 8 takes a bare LF after
 * the request line, which a proxy in front may read differently (gunicorn
 * refuses it too), so the head's bytes are checked before they are
 * parsed, up to the empty line that ends it: a memchr per line. Returns
 * the offset of a bare LF, or -1.
 */
static ssize_t scan_head(struct drv_http *h, const char *data, size_t len)
{
    size_t i = 0;
    while (!h->head_scanned && i < len) {
        const char *nl = memchr(data + i, '\n', len - i);
        if (!nl) {
            h->scan_line += (uint32_t)(len - i);
            h->prev = data[len - 1];
            break;
        }
        size_t j = (size_t)(nl - data);
        char before = j > i ? data[j - 1] : h->prev;
        if (before != '\r')
            return (ssize_t)j;
        uint32_t line = h->scan_line + (uint32_t)(j - i) - 1;
        if (line > 0)
            h->text_seen = true;
        else if (h->text_seen)
            h->head_scanned = true; /* the empty line: the body follows */
        h->scan_line = 0;
        h->prev = '\n';
        i = j + 1;
    }
    return -1;
}

enum drv_http_result drv_http_parse(struct drv_http *h, const char *data,
                                    size_t len, size_t *consumed)
{
    ssize_t bad = h->head_scanned ? -1 : scan_head(h, data, len);
    if (bad >= 0) {
        *consumed = (size_t)bad;
        h->error_status = 400;
        h->error_reason = "bare LF in the request head";
        return DRV_HTTP_ERROR;
    }
    llhttp_errno_t e = llhttp_execute(&h->p, data, len);
    if (e == HPE_OK) {
        *consumed = len;
        return DRV_HTTP_AGAIN;
    }
    const char *pos = llhttp_get_error_pos(&h->p);
    *consumed = pos && pos >= data ? (size_t)(pos - data) : len;
    if (e == HPE_PAUSED) {
        llhttp_resume(&h->p);
        return h->paused_at_head ? DRV_HTTP_HEAD : DRV_HTTP_DONE;
    }
    /* A refusing callback stored its status; llhttp reports it as
     * HPE_USER from data callbacks but as HPE_CB_* from the others. */
    if (!h->error_status) {
        h->error_status = status_for(e);
        h->error_reason = llhttp_get_error_reason(&h->p);
    }
    return DRV_HTTP_ERROR;
}

bool drv_http_idle(const struct drv_http *h)
{
    return !h->started;
}

const struct drover_header *drv_http_header(const struct drv_request *r,
                                            const char *lower_name)
{
    for (size_t i = 0; i < r->view.nheaders; i++) {
        const struct drover_header *hd = &r->view.headers[i];
        struct drv_str n = {hd->name.ptr, hd->name.len};
        if (drv_str_eq_lower(n, lower_name))
            return hd;
    }
    return NULL;
}

ssize_t drv_body_read(struct drv_body *b, void *dst, size_t n)
{
    uint64_t left = b->len - b->read_pos;
    if (n > left)
        n = (size_t)left;
    if (!n)
        return 0;
    if (b->fd < 0) {
        memcpy(dst, drv_buf_data(&b->mem) + b->read_pos, n);
        b->read_pos += n;
        return (ssize_t)n;
    }
    ssize_t r;
    do
        r = pread(b->fd, dst, n, (off_t)b->read_pos);
    while (r < 0 && errno == EINTR);
    if (r < 0)
        return -errno;
    b->read_pos += (uint64_t)r;
    return r;
}
