/*
 * conn: client connections, from accept to close, for one event loop.
 *
 * A drv_conns is the set of connections one loop serves (conn.c has the
 * state machine of each one). Its owner (the worker) fills in what the
 * connections need (the loop, settings, parser limits, app, access log,
 * scoreboard slot) and hands each accepted socket to drv_conn_accept().
 * With a slot, conn.c counts each response in it (scoreboard.h) and keeps
 * the slot's gauges of open connections and requests in flight.
 * The set never calls back into its owner but through `on_response`, so
 * conn.c knows nothing of accepting, signals or recycling.
 *
 * `closing` is the owner's word that the server is stopping: from then on
 * every response says "Connection: close", and the set breaks the loop
 * once its last connection is gone.
 */
#ifndef DRV_CONN_H
#define DRV_CONN_H

#include <ev.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "http.h"

struct drv_accesslog;
struct drv_app;
struct drv_conn;
struct drv_exchange;
struct drv_listener;
struct drv_proxy_trust;
struct drv_settings;
struct drv_slot;
struct drv_totals;

struct drv_conns {
    /* Filled in by the owner before the first accept. */
    struct ev_loop *loop;
    const struct drv_settings *settings;
    struct drv_http_limits limits;
    const struct drv_proxy_trust *trust; /* forwarded_allow_ips, compiled */
    struct drv_app *app;
    struct drv_accesslog *accesslog; /* NULL: no access log */
    struct drv_slot *slot;           /* NULL: no scoreboard */
    struct drv_totals *totals;       /* the scoreboard's (with `slot`) */
    struct drv_pool *pool;           /* app threads; NULL: the app runs
                                        on the loop thread */
    /* Called after every completed response (the owner's request budget
     * lives there). May set `closing`; must not close connections. */
    void (*on_response)(struct drv_conns *set);

    /* Kept by conn.c; the owner reads them. */
    struct drv_conn *open;  /* open connections (doubly linked) */
    struct drv_conn *dead;  /* closed, freed by drv_conns_reap */
    /* Read buffers no connection holds: a connection reads into one and
     * gives it back once the parser has taken every byte, so idle
     * connections hold none (conn.c, take_in/give_back_in). */
    struct drv_buf spare_in[4];
    size_t nspare_in;
    struct drv_exchange *spare_x; /* request state no connection holds */
    size_t nspare_x;
    struct drv_conn *oldest, *newest; /* app thread jobs in flight */
    size_t n;               /* open connections */
    size_t in_flight;       /* requests handed to the app, not answered */
    uint64_t responses;     /* responses completed */
    bool closing;           /* set by the owner: see the top comment */
};

/* Take ownership of an accepted, non-blocking socket that arrived on
 * `listener` (which must outlive the connection) from `peer`. The
 * connection's first request is served at once if its bytes are there. */
void drv_conn_accept(struct drv_conns *set, int fd,
                     const struct sockaddr *peer,
                     struct drv_listener *listener);

/* A graceful stop (set `closing` first): every connection idle between
 * requests gets a last call, its keep-alive wait cut to a fifth of a
 * second, then closes; a request already on its way meanwhile is
 * answered, with Connection: close. Busy ones close after their current
 * response. */
void drv_conns_close_idle(struct drv_conns *set);
/* Close every connection at once. */
void drv_conns_close_all(struct drv_conns *set);
/* Each request an app thread has had for longer than `limit_ms` at
 * `now_ms`, oldest first: each(arg, request, milliseconds), then the
 * client gets a 504 if none of the response was sent (the worker is about
 * to be aborted: see drv_response_send_timeout). Returns how many. */
size_t drv_conns_overdue(const struct drv_conns *set, uint64_t now_ms,
                         uint64_t limit_ms,
                         void (*each)(void *arg,
                                      const struct drover_request *req,
                                      uint64_t ms),
                         void *arg);
/* ---- Event-driven apps (app->ops->begin: ASGI) ----
 * The app has request `c` between its begin and its release (app.h), and
 * answers through these, on the loop thread, at any time in between. */

/* The request, its body readable with drv_body_read. */
struct drv_request *drv_conn_request(struct drv_conn *c);
/* The response to fill in with the verbs of response.h. */
struct drv_response *drv_conn_response(struct drv_conn *c);
/* Send what the response has queued (and complete it, when it is DONE:
 * the connection then releases the app, within this call). */
void drv_conn_progress(struct drv_conn *c);
/* The app failed: a 500 if nothing is committed, else the connection is
 * cut after what is queued. Releases the app within this call. */
void drv_conn_fail(struct drv_conn *c);
/* Bytes queued for the client and not written yet: a producer waits
 * while this is high (the app's drained callback says when to go on). */
size_t drv_conn_unsent(const struct drv_conn *c);
/* A WebSocket handshake (RFC 6455 4.2.1, checked): the app accepts it
 * with drv_conn_ws_accept, or answers it with an HTTP response (which
 * closes the connection). */
bool drv_conn_is_websocket(const struct drv_conn *c);
/* Accept: send the 101 with the subprotocol (NULL: none) and headers,
 * and carry WebSocket messages from now on (ws_message, ws_closed).
 * Returns 0, or -EINVAL (no handshake, answered already, bad header). */
int drv_conn_ws_accept(struct drv_conn *c, const char *subprotocol,
                       size_t splen, const struct drover_header *headers,
                       size_t nheaders);
/* Send one message. Returns 0, or -EPIPE once closing. */
int drv_conn_ws_send(struct drv_conn *c, bool text, const void *data,
                     size_t len);
/* Close with `code` and a reason (at most 123 bytes are sent). */
int drv_conn_ws_close(struct drv_conn *c, int code, const char *reason,
                      size_t rlen);
/* Stop (or resume) reading the client's messages while the app has not
 * taken those received. */
void drv_conn_ws_pause(struct drv_conn *c, bool paused);
/* Every open WebSocket gets a close with 1001 (going away): the server
 * stops. */
void drv_conns_close_websockets(struct drv_conns *set);

/* Above this many unsent bytes a producer should wait for drained. */
#define DRV_CONN_HIGH_WATER (256 * 1024)

/* Free the connections closed since the last call. Call it between loop
 * iterations (an ev_prepare), never from a connection's own callback. */
void drv_conns_reap(struct drv_conns *set);

#endif
