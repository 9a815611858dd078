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
 *   SIGUSR1          reopen the log files
 *   SIGHUP           (under the master only) retire: like SIGTERM, but
 *                    idle keep-alive connections are not cut; each ends
 *                    with its next response or its keep-alive timer. The
 *                    master retires workers this way on reload and TTOU,
 *                    so that no client loses a request to the race of an
 *                    idle connection closed while it sends.
 *
 * Under the prefork master each worker process runs one, with a slot in
 * the scoreboard: the loop beats into it every iteration (and at least
 * once a second while idle), and marks the slot busy around each app
 * call, so the master can tell a stuck worker from an idle one. A worker
 * whose master is gone stops gracefully. In --dev the worker is the whole
 * server and has no slot.
 */
#ifndef DRV_WORKER_H
#define DRV_WORKER_H

#include <ev.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "conn.h"
#include "listener.h"
#include "settings.h"

struct drv_app;
struct drv_accesslog;
struct drv_proxy_trust;
struct drv_slot;
struct drv_scoreboard;

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
    struct drv_conns conns;          /* the connections this loop serves */
    struct drv_proxy_trust *trust;   /* forwarded_allow_ips, compiled */

    ev_prepare reaper;
    ev_check awake;        /* back from the poll: the scoreboard hears */
    ev_timer accept_pause; /* out of descriptors: retry accepting later */
    ev_timer balance_pause; /* a sibling has fewer connections: let it */
    ev_timer graceful;     /* graceful stop deadline */
    ev_timer beat;         /* heartbeat while idle; master-alive check */
    ev_signal sig_term, sig_int, sig_quit, sig_usr1, sig_hup;

    struct drv_slot *slot; /* scoreboard slot, NULL without a master */
    struct drv_scoreboard *board; /* the siblings' slots, with `slot` */
    size_t cpus;           /* usable (cpus.h): balancing needs one a worker */
    pid_t master_pid;      /* stop when our parent is no longer this */
    bool keep_listeners;   /* a stop leaves the listening sockets open */
    bool stopping;         /* graceful stop under way */
    bool forced;           /* the stop did not wait for every request */
    bool full;             /* at worker_connections: not accepting */
    uint64_t max_requests; /* stop gracefully after this many, 0 = never */
};

/* Prepare a worker for the given settings, listeners and app (all must
 * outlive it): compile forwarded_allow_ips and create its event loop
 * (w->loop), so the caller may add watchers of its own before
 * drv_worker_run. Starts nothing. Returns 0, or -1 (logged) when either
 * fails. */
int drv_worker_init(struct drv_worker *w, const struct drv_settings *s,
                    struct drv_listener *listeners, size_t nlisteners,
                    struct drv_app *app, struct drv_accesslog *accesslog);

/* Free what drv_worker_init (and the start functions) made, for a worker
 * that will not run: it failed to boot. */
void drv_worker_abandon(struct drv_worker *w);

/* Start an app that runs on a loop of its own (ASGI: its asyncio loop
 * and lifespan startup) on the worker's loop. Nothing for other apps.
 * Returns 0, or -1 with err filled: the worker cannot serve. */
int drv_worker_start_app(struct drv_worker *w, char *err, size_t errlen);

/* Start n app threads (--threads): from now on every app call runs on
 * them (see pool.h, conn.c). Returns 0, or -1 with err filled. */
int drv_worker_start_threads(struct drv_worker *w, size_t n, char *err,
                             size_t errlen);

/* Serve until stopped. Returns the process exit status. Destroys the
 * loop and frees the compiled trust list before returning. */
int drv_worker_run(struct drv_worker *w);

/* Begin a graceful stop (also what SIGTERM does): stop accepting, close
 * the idle connections, finish the busy ones (with Connection: close). */
void drv_worker_stop(struct drv_worker *w);

/* Stop after max_requests: like drv_worker_stop, but idle keep-alive
 * connections are left to their keep-alive timer, so that a client about
 * to reuse one gets its answer (with Connection: close) instead of a
 * reset. */
void drv_worker_retire(struct drv_worker *w);


#endif
