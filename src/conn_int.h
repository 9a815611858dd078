/*
 * conn_int: what conn.c and conn_ws.c (WebSockets) share, and nothing
 * else includes. conn.c has the connection's state machine; conn_ws.c
 * the WebSocket state (C_WS) a connection enters once an event-driven
 * app accepts an upgrade.
 */
#ifndef DRV_CONN_INT_H
#define DRV_CONN_INT_H

#include <arpa/inet.h>
#include <ev.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <time.h>

#include "buf.h"
#include "conn.h"
#include "http.h"
#include "pool.h"
#include "proxy.h"
#include "reqid.h"
#include "response.h"

struct conn_ws;

enum conn_state { C_READING, C_WRITING, C_APP, C_LINGER, C_WS };

struct drv_conn {
    ev_io io;
    ev_timer timer;
    struct drv_conns *set;
    struct drv_conn *prev, *next;
    int fd;
    enum conn_state state;
    bool closed;
    bool linger;       /* after this response: lingering close */
    bool in_flight;    /* counted in set->in_flight: the app has the
                          request and it is not answered yet */
    bool kept;         /* kept alive after a response: idle from then on
                          means between requests (drv_conns_close_idle) */
    bool hold;         /* pipelined requests follow this one: its finished
                          response may wait in `out` for theirs (process) */
    struct drv_buf in, out;
    struct drv_exchange *x; /* the request under way; NULL while idle */
    struct drv_listener *listener;
    char remote[INET6_ADDRSTRLEN];
    int remote_port;
    union { /* the peer in binary, for the trust check (proxy.h) */
        struct sockaddr sa;
        struct sockaddr_in in;
        struct sockaddr_in6 in6;
    } peer;
    struct timespec started; /* wall clock at the request's first byte */
    ev_tstamp t0;            /* loop time of the same */
    /* With app threads: the job in flight (state APP), and its place in
     * the set's list of jobs in flight, oldest first. */
    struct drv_job job;
    struct drv_conn *older, *newer;
    uint64_t dispatched_ms;
    /* With an event-driven app (app->ops->begin): its state for the
     * request it has, until the connection releases it. */
    void *handle;
    struct conn_ws *ws; /* state C_WS: the WebSocket (conn_ws.c) */
    bool ws_wanted;     /* the request is a WebSocket handshake */
};

/* What a connection needs only while a request is under way: the parser
 * and request, the response, the proxy headers. An idle keep-alive
 * connection holds none of it (about 900 bytes): it comes from the set's
 * spares when the next request's first bytes are read. */
struct drv_exchange {
    struct drv_http http;
    struct drv_response res;
    struct drv_forwarded fwd; /* trusted proxy headers of this request */
    char reqid[DRV_REQID_LEN]; /* a generated request id (view.request_id) */
    struct drv_exchange *next; /* in the set's spares */
};


/* conn.c */
void conn_set_events(struct drv_conn *c, int events);
void conn_set_timer(struct drv_conn *c, double seconds);
/* Close now (the app, if it has the request, hears `gone`). */
void conn_close(struct drv_conn *c);
/* The request's access log line, with `status` (the response's, or
 * 101 for a WebSocket's handshake). */
void conn_log_access(struct drv_conn *c, int status);
/* The app accepted a WebSocket: the handshake's 101 counts as the
 * request's response (access log, scoreboard, request budget). */
void conn_ws_upgraded(struct drv_conn *c);

/* conn_ws.c */
/* A complete request asks for a WebSocket (RFC 6455 4.2.1: GET,
 * HTTP/1.1, Upgrade: websocket, Connection: upgrade). */
bool conn_ws_wanted(const struct drv_request *req);
/* The handshake's other fields are right: 0, or the status to refuse it
 * with (400, or 426 for a version other than 13). */
int conn_ws_check(const struct drv_request *req, const char **why);
/* State C_WS: the socket is readable, writable, or its timer fired. */
void conn_ws_readable(struct drv_conn *c);
void conn_ws_writable(struct drv_conn *c);
void conn_ws_timer(struct drv_conn *c);
/* The server stops: close with 1001 (going away). */
void conn_ws_going_away(struct drv_conn *c);
/* The connection is closing: free the WebSocket. */
void conn_ws_free(struct drv_conn *c);

#endif
