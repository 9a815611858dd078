/*
 * worker: one process serving HTTP with one libev loop.
 *
 * The worker accepts on the shared listening sockets, runs each
 * connection's state machine (conn.c), calls the app synchronously for
 * each complete request, and stops on signals:
 *
 *   SIGTERM          graceful: close the listeners, finish in-flight
 *                    requests (their responses carry Connection: close),
 *                    close idle keep-alive connections, exit 0; bounded by
 *                    graceful_timeout
 *   SIGINT, SIGQUIT  stop now
 *
 * In single-process mode the worker is the whole server; the prefork
 * master runs one per child process.
 */
#ifndef DRV_WORKER_H
#define DRV_WORKER_H

#include <ev.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "http.h"
#include "listener.h"
#include "settings.h"

#define drv_container_of(ptr, type, member)                                   \
    ((type *)(void *)((char *)(ptr) - offsetof(type, member)))

struct drv_app;
struct drv_accesslog;
struct drv_conn;

struct drv_accept_watch {
    ev_io io;
    struct drv_worker *w;
    struct drv_listener *listener;
};

struct drv_worker {
    struct ev_loop *loop;
    const struct drv_settings *settings;
    struct drv_app *app;
    struct drv_listener *listeners;
    size_t nlisteners;
    struct drv_accept_watch *accepts;
    struct drv_accesslog *accesslog; /* NULL: no access log */
    struct drv_http_limits limits;

    struct drv_conn *conns; /* open connections (doubly linked) */
    struct drv_conn *dead;  /* closed, freed before the next poll */
    size_t nconns;

    ev_prepare reaper;
    ev_timer accept_pause; /* out of descriptors: retry accepting later */
    ev_timer graceful;     /* graceful stop deadline */
    ev_signal sig_term, sig_int, sig_quit;

    bool stopping;         /* graceful stop under way */
    uint64_t requests;     /* responses completed */
    uint64_t max_requests; /* stop gracefully after this many, 0 = never */
};

/* Prepare a worker for the given settings, listeners and app (all must
 * outlive it). Does not start anything. */
void drv_worker_init(struct drv_worker *w, const struct drv_settings *s,
                     struct drv_listener *listeners, size_t nlisteners,
                     struct drv_app *app, struct drv_accesslog *accesslog);

/* Serve until stopped. Returns the process exit status. */
int drv_worker_run(struct drv_worker *w);

/* Begin a graceful stop (also what SIGTERM does). */
void drv_worker_stop(struct drv_worker *w);

/* conn.c: take ownership of an accepted socket. */
void drv_conn_accepted(struct drv_worker *w, int fd,
                       const struct sockaddr *peer, socklen_t peerlen,
                       struct drv_listener *listener);
/* conn.c: close every connection that is idle between requests; busy ones
 * close after their current response. */
void drv_conn_stop_idle_all(struct drv_worker *w);
/* conn.c: close every connection at once. */
void drv_conn_close_all(struct drv_worker *w);
/* conn.c: free connections closed during the last loop iteration. */
void drv_conn_reap(struct drv_worker *w);

#endif
