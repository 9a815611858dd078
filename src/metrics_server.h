/*
 * metrics_server: the master's own small HTTP listener (--metrics-bind).
 *
 * It runs in the master's event loop, apart from the workers, so it
 * answers while every worker is busy, and it never touches the app's
 * listeners. It speaks just enough HTTP/1.x for Prometheus, probes and
 * `drover status`: one request per connection, then close.
 *
 *   GET or HEAD of /metrics, /healthz, /readyz, /status (a query string
 *                       is ignored): the owner's answer (drv_metrics_page_cb)
 *   any other path      404
 *   any other method    405, with Allow: GET, HEAD
 *   a malformed head    400
 *   a head larger than DRV_METRICS_HEAD_MAX bytes   431
 *   no complete head within DRV_METRICS_HEAD_SECONDS   408
 *
 * Every answer carries Connection: close; once it is written our side is
 * shut down and what the client still sends is drained for a moment (so
 * unread bytes do not turn the close into a reset that destroys the
 * answer). A slow or hostile client costs one small buffer and a timer:
 * sockets are non-blocking, writes wait for EV_WRITE within a timeout,
 * and at most DRV_METRICS_MAX_CLIENTS connections are open at once (a
 * new one past that closes the oldest that has sent nothing yet, else
 * the oldest). A client is never freed inside
 * its own callback: closed clients are freed before the loop next blocks
 * (an ev_prepare).
 */
#ifndef DRV_METRICS_SERVER_H
#define DRV_METRICS_SERVER_H

#include <ev.h>
#include <stddef.h>

#include "buf.h"

struct drv_listener;

#define DRV_METRICS_HEAD_MAX 8192
#define DRV_METRICS_HEAD_SECONDS 5.0
#define DRV_METRICS_MAX_CLIENTS 64

enum drv_metrics_page {
    DRV_PAGE_METRICS, /* /metrics */
    DRV_PAGE_HEALTHZ, /* /healthz */
    DRV_PAGE_READYZ,  /* /readyz */
    DRV_PAGE_STATUS,  /* /status */
};

/* The owner's answer for `page`: append the body to `body`, set *type to
 * its Content-Type (a static string), and return the status (200, 503). */
typedef int (*drv_metrics_page_cb)(void *arg, enum drv_metrics_page page,
                                   struct drv_buf *body, const char **type);

struct drv_metrics_server;

/* Start serving on the listeners `l` (n of them, non-blocking, owned by
 * the caller and outliving the server) in `loop`. Returns the server
 * (aborts when out of memory, buf.h's policy). */
struct drv_metrics_server *drv_metrics_server_start(struct ev_loop *loop,
                                                    struct drv_listener *l,
                                                    size_t n,
                                                    drv_metrics_page_cb page,
                                                    void *arg);

/* Stop its watchers, close its clients (not the listeners) and free it.
 * NULL is fine. */
void drv_metrics_server_free(struct drv_metrics_server *s);

/* In a child forked from the loop's process: close the clients'
 * descriptors and free the memory without touching the loop (which the
 * child abandons). NULL is fine. */
void drv_metrics_server_forget(struct drv_metrics_server *s);

#endif
