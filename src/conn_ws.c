/*
 * conn_ws: WebSockets (RFC 6455) for event-driven (ASGI) apps.
 *
 * A request that asks for an upgrade goes to the app like any other,
 * and the connection waits in WRITING while the app decides. The app
 * accepts (drv_conn_ws_accept: the 101 goes out, the connection enters
 * C_WS), or denies with an ordinary HTTP response (403 when it just
 * closes). In C_WS, framing is libwslay's: bytes read from the socket go
 * into the connection's `in` buffer as before and wslay takes them from
 * there (recv callback); what wslay sends goes into `out` (send
 * callback), which the connection writes as it writes any response. So
 * backpressure is the same as for HTTP bodies: the app waits while
 * `out` holds more than DRV_CONN_HIGH_WATER bytes, and the read side
 * stops while the app has not taken the messages already received
 * (drv_conn_ws_pause).
 *
 * wslay answers pings, echoes a close, refuses unmasked or malformed
 * frames (1002) and messages past --ws-max-size (1009), and assembles
 * fragmented messages. A WebSocket quiet for --ws-ping-interval gets a
 * ping; one that has not answered within --ws-ping-timeout is dropped.
 * Closing: once both close frames have crossed (or our close has waited
 * CLOSE_WAIT_SECONDS for the peer's), the TCP connection closes.
 */
#include <errno.h>
#include <nettle/base64.h>
#include <nettle/sha1.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <wslay/wslay.h>

#include "conn_int.h"

#include "app.h"
#include "log.h"
#include "settings.h"

#define CLOSE_WAIT_SECONDS 2.0
#define WS_GUID "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

struct conn_ws {
    wslay_event_context_ptr ctx;
    bool told;     /* the app heard the close (ws_closed) */
    bool pinged;   /* a ping is out, unanswered */
    bool paused;   /* the app has not taken what came: read nothing */
};

/* ---- the handshake ---- */

/* Whether a comma-separated header `name` has the token `token` (both
 * given in lower case; compared without case). */
static bool has_token(const struct drv_request *req, const char *name,
                      const char *token)
{
    const struct drover_request *v = &req->view;
    for (size_t i = 0; i < v->nheaders; i++) {
        const struct drover_header *h = &v->headers[i];
        if (!drv_str_eq_lower((struct drv_str){h->name.ptr, h->name.len},
                              name))
            continue;
        const char *p = h->value.ptr, *end = p + h->value.len;
        struct drv_str item;
        while (drv_list_next(&p, end, &item))
            if (drv_str_eq_lower(item, token))
                return true;
    }
    return false;
}

bool conn_ws_wanted(const struct drv_request *req)
{
    const struct drover_request *v = &req->view;
    return v->method.len == 3 && memcmp(v->method.ptr, "GET", 3) == 0 &&
           req->http_minor == 1 && has_token(req, "upgrade", "websocket") &&
           has_token(req, "connection", "upgrade");
}

int conn_ws_check(const struct drv_request *req, const char **why)
{
    const struct drover_header *version = drv_http_header(req, "sec-websocket-version");
    if (!version || version->value.len != 2 ||
        memcmp(version->value.ptr, "13", 2) != 0) {
        *why = "WebSocket version is not 13";
        return 426;
    }
    const struct drover_header *key = drv_http_header(req, "sec-websocket-key");
    /* 16 random bytes, base64: 24 characters (RFC 6455 4.1). */
    uint8_t raw[BASE64_DECODE_LENGTH(24)];
    size_t n = sizeof(raw);
    struct base64_decode_ctx dctx;
    base64_decode_init(&dctx);
    if (!key || key->value.len != 24 ||
        !base64_decode_update(&dctx, &n, raw, 24,
                              (const char *)key->value.ptr) ||
        !base64_decode_final(&dctx) || n != 16) {
        *why = "bad Sec-WebSocket-Key";
        return 400;
    }
    return 0;
}

/* Sec-WebSocket-Accept for `key`: base64(SHA-1(key + GUID)). */
static void accept_value(struct drover_str key,
                         char out[BASE64_ENCODE_RAW_LENGTH(SHA1_DIGEST_SIZE) + 1])
{
    struct sha1_ctx sha;
    uint8_t digest[SHA1_DIGEST_SIZE];
    sha1_init(&sha);
    sha1_update(&sha, key.len, (const uint8_t *)key.ptr);
    sha1_update(&sha, sizeof(WS_GUID) - 1, (const uint8_t *)WS_GUID);
    sha1_digest(&sha, sizeof(digest), digest);
    base64_encode_raw(out, sizeof(digest), digest);
    out[BASE64_ENCODE_RAW_LENGTH(SHA1_DIGEST_SIZE)] = '\0';
}

/* ---- wslay's callbacks ---- */

static ssize_t on_recv(wslay_event_context_ptr ctx, uint8_t *buf, size_t len,
                       int flags, void *user)
{
    (void)flags;
    struct drv_conn *c = user;
    size_t have = drv_buf_size(&c->in);
    if (!have) {
        wslay_event_set_error(ctx, WSLAY_ERR_WOULDBLOCK);
        return -1;
    }
    size_t n = have < len ? have : len;
    memcpy(buf, drv_buf_data(&c->in), n);
    drv_buf_consume(&c->in, n);
    return (ssize_t)n;
}

static ssize_t on_send(wslay_event_context_ptr ctx, const uint8_t *data,
                       size_t len, int flags, void *user)
{
    (void)ctx;
    (void)flags;
    struct drv_conn *c = user;
    drv_buf_append(&c->out, data, len);
    return (ssize_t)len;
}

static int on_genmask(wslay_event_context_ptr ctx, uint8_t *buf, size_t len,
                      void *user)
{
    (void)ctx;
    (void)user;
    memset(buf, 0, len); /* a server sends unmasked frames */
    return 0;
}

/* Tell the app the WebSocket is closed, once, with the peer's reason. */
static void tell_closed_why(struct drv_conn *c, int code, const char *reason,
                            size_t rlen)
{
    struct conn_ws *ws = c->ws;
    if (ws->told || !c->handle)
        return;
    ws->told = true;
    c->set->app->ops->ws_closed(c->handle, code, reason, rlen);
}

static void tell_closed(struct drv_conn *c, int code)
{
    tell_closed_why(c, code, "", 0);
}

static void on_message(wslay_event_context_ptr ctx,
                       const struct wslay_event_on_msg_recv_arg *arg,
                       void *user)
{
    (void)ctx;
    struct drv_conn *c = user;
    if (arg->opcode == WSLAY_TEXT_FRAME || arg->opcode == WSLAY_BINARY_FRAME) {
        if (c->handle && !c->ws->told)
            c->set->app->ops->ws_message(c->handle,
                                         arg->opcode == WSLAY_TEXT_FRAME,
                                         arg->msg, arg->msg_length);
    } else if (arg->opcode == WSLAY_PONG) {
        c->ws->pinged = false;
    } else if (arg->opcode == WSLAY_CONNECTION_CLOSE) {
        /* wslay has queued the echo of the peer's close. */
        /* The payload is the code (2 bytes), then the reason. */
        bool why = arg->status_code && arg->msg_length > 2;
        tell_closed_why(c, arg->status_code ? arg->status_code
                                            : WSLAY_CODE_NO_STATUS_RCVD,
                        why ? (const char *)arg->msg + 2 : "",
                        why ? arg->msg_length - 2 : 0);
    }
}

static const struct wslay_event_callbacks callbacks = {
    .recv_callback = on_recv,
    .send_callback = on_send,
    .genmask_callback = on_genmask,
    .on_msg_recv_callback = on_message,
};

/* ---- moving bytes ---- */

/* Write `out`; settle what the WebSocket's state asks for. */
static void ws_flush(struct drv_conn *c)
{
    struct conn_ws *ws = c->ws;
    wslay_event_send(ws->ctx); /* queued frames into `out` */
    while (drv_buf_size(&c->out)) {
        ssize_t n = write(c->fd, drv_buf_data(&c->out), drv_buf_size(&c->out));
        if (n < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN)
                break;
            if (errno != EPIPE && errno != ECONNRESET)
                drv_log_errno(errno, "write", "WebSocket to %s", c->remote);
            tell_closed(c, WSLAY_CODE_ABNORMAL_CLOSURE);
            conn_close(c);
            return;
        }
        drv_buf_consume(&c->out, (size_t)n);
    }
    bool closing = wslay_event_get_close_sent(ws->ctx);
    if (closing && !drv_buf_size(&c->out) &&
        (wslay_event_get_close_received(ws->ctx) ||
         !wslay_event_get_read_enabled(ws->ctx))) {
        /* Both closes have crossed, or the peer broke the protocol. */
        tell_closed(c, wslay_event_get_status_code_sent(ws->ctx));
        conn_close(c);
        return;
    }
    int events = 0;
    if (drv_buf_size(&c->out))
        events |= EV_WRITE;
    if (!ws->paused && wslay_event_get_read_enabled(ws->ctx))
        events |= EV_READ;
    if (events)
        conn_set_events(c, events);
    else
        ev_io_stop(c->set->loop, &c->io);
    if (drv_buf_size(&c->out) < DRV_CONN_HIGH_WATER / 4 && c->handle &&
        !ws->told)
        c->set->app->ops->drained(c->handle);
}

/* Frames in `in` to wslay, and the clock of the ping. */
static void ws_take(struct drv_conn *c)
{
    struct conn_ws *ws = c->ws;
    if (ws->paused || !drv_buf_size(&c->in))
        return;
    if (wslay_event_recv(ws->ctx) != 0) {
        tell_closed(c, WSLAY_CODE_ABNORMAL_CLOSURE);
        conn_close(c);
        return;
    }
    if (!wslay_event_get_read_enabled(ws->ctx) &&
        !wslay_event_get_close_received(ws->ctx))
        /* wslay refused the peer's bytes and queued a close (1002,
         * 1009): the app hears the code it sent. */
        tell_closed(c, wslay_event_get_status_code_sent(ws->ctx));
    ws->pinged = false;
    double every = c->set->settings->ws_ping_interval;
    if (!wslay_event_get_close_sent(ws->ctx))
        conn_set_timer(c, every > 0 ? every : 3600.0 * 24);
}

void conn_ws_readable(struct drv_conn *c)
{
    drv_buf_reserve(&c->in, 16 * 1024);
    ssize_t n = read(c->fd, c->in.base + c->in.len, c->in.cap - c->in.len);
    if (n < 0) {
        if (errno == EAGAIN || errno == EINTR)
            return;
        tell_closed(c, WSLAY_CODE_ABNORMAL_CLOSURE);
        conn_close(c);
        return;
    }
    if (n == 0) { /* gone without a close frame */
        tell_closed(c, WSLAY_CODE_ABNORMAL_CLOSURE);
        conn_close(c);
        return;
    }
    c->in.len += (size_t)n;
    ws_take(c);
    if (!c->closed)
        ws_flush(c);
}

void conn_ws_writable(struct drv_conn *c)
{
    ws_flush(c);
}

void conn_ws_timer(struct drv_conn *c)
{
    struct conn_ws *ws = c->ws;
    const struct drv_settings *s = c->set->settings;
    if (wslay_event_get_close_sent(ws->ctx)) {
        /* Our close had no answer in time. */
        tell_closed(c, wslay_event_get_status_code_sent(ws->ctx));
        conn_close(c);
        return;
    }
    if (ws->pinged) {
        drv_info("WebSocket from %s: no pong in %.0f s: closing", c->remote,
                 s->ws_ping_timeout);
        tell_closed(c, WSLAY_CODE_ABNORMAL_CLOSURE);
        conn_close(c);
        return;
    }
    struct wslay_event_msg ping = {.opcode = WSLAY_PING};
    wslay_event_queue_msg(ws->ctx, &ping);
    ws->pinged = s->ws_ping_timeout > 0;
    conn_set_timer(c, s->ws_ping_timeout > 0 ? s->ws_ping_timeout
                                             : s->ws_ping_interval);
    ws_flush(c);
}

void conn_ws_going_away(struct drv_conn *c)
{
    if (!c->ws || wslay_event_get_close_sent(c->ws->ctx))
        return;
    drv_conn_ws_close(c, WSLAY_CODE_GOING_AWAY, NULL, 0);
}

void conn_ws_free(struct drv_conn *c)
{
    if (!c->ws)
        return;
    tell_closed(c, WSLAY_CODE_ABNORMAL_CLOSURE);
    wslay_event_context_free(c->ws->ctx);
    free(c->ws);
    c->ws = NULL;
}

/* ---- the app's verbs (conn.h) ---- */

bool drv_conn_is_websocket(const struct drv_conn *c)
{
    return c->ws_wanted;
}

int drv_conn_ws_accept(struct drv_conn *c, const char *subprotocol,
                       size_t splen, const struct drover_header *headers,
                       size_t nheaders)
{
    if (c->state != C_WRITING || !c->ws_wanted || c->ws ||
        drv_response_started(&c->x->res))
        return -EINVAL;
    for (size_t i = 0; i < nheaders; i++)
        if (!drv_response_header_ok(headers[i].name.ptr, headers[i].name.len,
                                    headers[i].value.ptr,
                                    headers[i].value.len))
            return -EINVAL;
    if (subprotocol && !drv_response_header_ok("x", 1, subprotocol, splen))
        return -EINVAL;
    struct conn_ws *ws = drv_xcalloc(1, sizeof(*ws));
    if (wslay_event_context_server_init(&ws->ctx, &callbacks, c) != 0) {
        free(ws);
        return -ENOMEM;
    }
    wslay_event_config_set_max_recv_msg_length(
        ws->ctx, (uint64_t)c->set->settings->ws_max_size);
    c->ws = ws;

    char accept[BASE64_ENCODE_RAW_LENGTH(SHA1_DIGEST_SIZE) + 1];
    const struct drover_header *key = drv_http_header(&c->x->http.req,
                                                      "sec-websocket-key");
    accept_value(key->value, accept);
    struct drv_buf *o = &c->out;
    drv_buf_puts(o, "HTTP/1.1 101 Switching Protocols\r\n"
                    "Upgrade: websocket\r\nConnection: Upgrade\r\n"
                    "Sec-WebSocket-Accept: ");
    drv_buf_puts(o, accept);
    drv_buf_puts(o, "\r\n");
    if (subprotocol) {
        drv_buf_puts(o, "Sec-WebSocket-Protocol: ");
        drv_buf_append(o, subprotocol, splen);
        drv_buf_puts(o, "\r\n");
    }
    for (size_t i = 0; i < nheaders; i++) {
        drv_buf_append(o, headers[i].name.ptr, headers[i].name.len);
        drv_buf_puts(o, ": ");
        drv_buf_append(o, headers[i].value.ptr, headers[i].value.len);
        drv_buf_puts(o, "\r\n");
    }
    drv_buf_puts(o, "\r\n");

    /* The handshake is the request's response: logged and counted now. */
    conn_ws_upgraded(c);
    c->state = C_WS;
    double every = c->set->settings->ws_ping_interval;
    conn_set_timer(c, every > 0 ? every : 3600.0 * 24);
    ws_take(c); /* frames that came with the handshake */
    if (!c->closed)
        ws_flush(c);
    return 0;
}

int drv_conn_ws_send(struct drv_conn *c, bool text, const void *data,
                     size_t len)
{
    if (c->state != C_WS || c->closed)
        return -EINVAL;
    struct wslay_event_msg msg = {
        .opcode = text ? WSLAY_TEXT_FRAME : WSLAY_BINARY_FRAME,
        .msg = data,
        .msg_length = len,
    };
    if (wslay_event_queue_msg(c->ws->ctx, &msg) != 0)
        return -EPIPE; /* closing: no more messages */
    ws_flush(c);
    return 0;
}

int drv_conn_ws_close(struct drv_conn *c, int code, const char *reason,
                      size_t rlen)
{
    if (c->state != C_WS || c->closed)
        return -EINVAL;
    if (rlen > 123)
        rlen = 123;
    if (wslay_event_get_close_sent(c->ws->ctx))
        return 0;
    wslay_event_queue_close(c->ws->ctx, (uint16_t)code,
                            (const uint8_t *)reason, reason ? rlen : 0);
    conn_set_timer(c, CLOSE_WAIT_SECONDS);
    ws_flush(c);
    return 0;
}

void drv_conn_ws_pause(struct drv_conn *c, bool paused)
{
    if (c->state != C_WS || c->closed || c->ws->paused == paused)
        return;
    c->ws->paused = paused;
    if (!paused)
        ws_take(c);
    if (!c->closed)
        ws_flush(c);
}
