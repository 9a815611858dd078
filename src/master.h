/*
 * master: the prefork arbiter.
 *
 * The master holds the listening sockets (and, with preload, the loaded
 * app), forks `workers` worker processes that accept on those sockets,
 * and then only watches: it never accepts a connection. Signal watchers
 * and timers only record what happened; the master acts between loop
 * iterations, so every fork() happens at the top of the master loop,
 * never inside a callback.
 *
 *   SIGTERM        graceful stop: close the listeners, workers finish what
 *                  they serve (graceful_timeout, then SIGKILL), exit 0
 *   SIGINT/QUIT    fast stop: workers get SIGQUIT, SIGKILL after 1 s
 *   SIGHUP         reload: a probe process (drover --check-config with the
 *                  same command line) checks the new configuration and
 *                  app; if they load, the master re-executes itself (same
 *                  pid, same sockets, scoreboard kept), starts a new
 *                  generation of workers and stops the old one once every
 *                  new worker is ready. If they do not, the error is
 *                  logged and the running workers keep serving.
 *   SIGTTIN/TTOU   one worker more / fewer (never below 1)
 *   SIGUSR1        reopen log files, here and in every worker
 *   SIGCHLD        reap; a worker that died is logged and replaced
 *
 * Timeout: a worker whose app call has lasted longer than `timeout`, or
 * whose loop has not beaten for that long, gets SIGABRT (faulthandler
 * writes its Python stacks to the error log) and SIGKILL a second later.
 *
 * Boot failures: a worker that exits with DRV_EXIT_BOOT before becoming
 * ready failed to load the app or to set itself up. Three in a row with no
 * worker of the generation ready stop the master with DRV_EXIT_BOOT.
 *
 * Metrics (--metrics-bind): the master's loop serves GET /metrics,
 * /healthz, /readyz and /status on the listeners main() bound for it
 * (metrics_server.h, metrics.h). Every worker that dies is folded into
 * the scoreboard's totals and counted as a restart with its reason:
 * timeout (the master aborted it), max_requests or memory (it retired
 * itself: drv_slot.retiring), reload (an old generation retired after
 * SIGHUP), scale (SIGTTOU), crash (anything else: an exit or a signal
 * nobody asked for, a failed boot). Workers stopped with the whole server
 * are not restarts.
 *
 * Readiness (/readyz 200): the master runs (no stop under way), some
 * worker accepts, and either every worker of the current generation has
 * been ready once or the previous generation still serves (a reload in
 * progress). So it is 503 while starting, while stopping, and after a
 * reload whose previous workers are gone before the new ones are ready;
 * a worker being replaced does not make it flap.
 */
#ifndef DRV_MASTER_H
#define DRV_MASTER_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "listener.h"
#include "settings.h"

struct drv_app;
struct drv_accesslog;

/* drover's exit statuses (drover(1) lists them, see doc.c); 0 is a
 * clean stop, or an action such as --check-config that succeeded. */
/* A resource that failed at start: a bind address in use, a pid file
 * naming a running drover. */
#define DRV_EXIT_RUNTIME 1
/* Bad configuration: a flag, variable or YAML value, or an app that
 * cannot be loaded. */
#define DRV_EXIT_CONFIG 2
/* A worker that could not boot, and a master that gave up because its
 * workers could not (gunicorn uses 3 as well). */
#define DRV_EXIT_BOOT 3

struct drv_master_args {
    const struct drv_settings *settings;
    struct drv_listener *listeners;
    size_t nlisteners;
    struct drv_app **app; /* in: the preloaded app or NULL; a worker that
                             loads the app itself stores it here */
    struct drv_accesslog *accesslog;
    struct drv_listener *metrics; /* --metrics-bind listeners, or NULL */
    size_t nmetrics;
    int scoreboard_fd;    /* inherited across a reload, or -1 */
    bool caretaker;       /* a reload failed to start: fork nothing, keep
                             the previous workers, wait for SIGHUP */
};

/* Who the workers run as: --user and --group resolved (names or numbers;
 * the user's primary group unless --group says otherwise). */
struct drv_identity {
    uid_t uid;
    gid_t gid;
    char name[64]; /* the user's name, "" when --user is unset */
};

/* Resolve --user/--group. Returns 0, or -1 with one line in err. */
int drv_master_identity(const struct drv_settings *s,
                        struct drv_identity *id, char *err, size_t errlen);

/*
 * Run the master until it stops. Returns the exit status. In a worker
 * process this returns too, with *in_worker set and the worker's exit
 * status: the caller frees what it owns (without unlinking unix sockets)
 * and exits with it.
 */
int drv_master_run(const struct drv_master_args *args, bool *in_worker);

#endif
