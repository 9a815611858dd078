/*
 * worker: the event loop around the connections: accepting, signals,
 * graceful stop, and freeing closed connections between iterations.
 */
#include "worker.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

#include "accesslog.h"
#include "app.h"
#include "cpus.h"
#include "log.h"
#include "loop.h"
#include "pool.h"
#include "reqid.h"
#include "proxy.h"
#include "response.h"
#include "scoreboard.h"

/* Connections taken per wake-up. Each one's request is served as it is
 * accepted (see drv_conn_accepted), so a worker busy in the app takes no
 * more meanwhile and its idle siblings, woken too, get them: that keeps
 * the spread even. A batch of one would also starve accepting under load
 * (one accept per loop iteration behind hundreds of busy connections: 2 s
 * to take a burst of 200); 16 takes it in a few iterations. */
#define ACCEPT_BATCH_ALONE 64
#define ACCEPT_BATCH_SHARED 16
#define BEAT_SECONDS 1.0
/* After a forced stop (INT, QUIT, the graceful timeout ran out), what an
 * event-driven app gets to wind down (ASGI: cancel tasks, lifespan
 * shutdown). */
#define FORCED_GRACE_SECONDS 1.0

static void check_budget(struct drv_worker *w);

/* Accept one connection from `l` and hand it to conn.c (which serves its
 * request at once if it is there). Returns 0, or the errno of accept4. */
static int take_connection(struct drv_worker *w, struct drv_listener *l)
{
    struct sockaddr_storage ss;
    socklen_t len = sizeof(ss);
    int fd = accept4(l->fd, (struct sockaddr *)&ss, &len,
                     SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0)
        return errno;
    drv_conn_accept(&w->conns, fd, (struct sockaddr *)&ss, l);
    return 0;
}

/* accept4 failures that only concern that one attempt. */
static bool retry_accept(int err)
{
    return err == EINTR || err == ECONNABORTED;
}

static void stop_accepting(struct drv_worker *w)
{
    for (size_t k = 0; k < w->nlisteners; k++)
        ev_io_stop(w->loop, &w->accepts[k].io);
}

static void start_accepting(struct drv_worker *w)
{
    for (size_t k = 0; k < w->nlisteners; k++)
        ev_io_start(w->loop, &w->accepts[k].io);
}

/* Accept again, unless something still says not to: a stop, the
 * connection limit, or a pause (out of descriptors, or balancing). */
static void resume_accepting(struct drv_worker *w)
{
    if (!w->stopping && !w->full && !ev_is_active(&w->accept_pause) &&
        !ev_is_active(&w->balance_pause))
        start_accepting(w);
}

/* --worker-connections: at the limit, leave new connections in the
 * kernel's backlog (for a sibling, or for us once one closes: see
 * on_reap). */
static bool full(struct drv_worker *w)
{
    if (w->conns.n < (size_t)w->settings->worker_connections)
        return false;
    if (!w->full) {
        w->full = true;
        stop_accepting(w);
    }
    return true;
}

/* Connection balancing. The workers share the listening socket and the
 * kernel wakes all of them for a new connection; whichever runs first
 * takes it. With a core for each worker that is the busiest worker more
 * often than not (it is awake anyway), and keep-alive connections stay
 * where they landed: wrk's 50 connections ended up 40 and 10 on 2
 * workers, the clients of one waiting on a queue four times as long as
 * on the other's. So before each accept a worker looks at its siblings'
 * open connections on the scoreboard (a few cache lines a worker): when
 * a sibling that can take the connection now has BALANCE_SLACK fewer,
 * it leaves the connection to that sibling and stops watching the socket
 * for BALANCE_PAUSE_S. A sibling "can take it" when its loop waits in
 * its poll or began its current iteration within BALANCE_FRESH_MS
 * (drv_slot_beat): one held by a long app call, or stuck, never holds a
 * connection back longer than that. The worker with the fewest
 * connections always takes it, so one of them always accepts.
 *
 * Only while the workers have a CPU each (drv_usable_cpus: the CPUs this
 * process may run on, or its cgroup's CPU quota, against the READY
 * workers). With more workers than CPUs, spreading
 * the connections evenly makes every client wait out the other workers'
 * time slices: 2 workers on one CPU, evenly spread, had a p99 of 7 ms
 * against 0.8 ms when the kernel's wake-ups left most connections with
 * one worker, which then serves them all in one batch per iteration and
 * the other stays out of its way (bench/README.md, "Balancing"). */
#define BALANCE_SLACK 2
#define BALANCE_PAUSE_S 0.001
#define BALANCE_FRESH_MS 25

static bool sibling_has_fewer(struct drv_worker *w)
{
    if (!w->board)
        return false;
    size_t ready;
    uint64_t fewest = drv_scoreboard_fewest_conns(
        w->board, w->slot, drv_now_ms(), BALANCE_FRESH_MS, &ready);
    return ready <= w->cpus && fewest != UINT64_MAX &&
           fewest + BALANCE_SLACK <= w->conns.n;
}

static void on_balance_pause(struct ev_loop *loop, ev_timer *t, int revents)
{
    (void)loop;
    (void)revents;
    resume_accepting(drv_container_of(t, struct drv_worker, balance_pause));
}

static void on_accept(struct ev_loop *loop, ev_io *io, int revents)
{
    (void)loop;
    (void)revents;
    struct drv_accept_watch *aw = drv_container_of(io, struct drv_accept_watch, io);
    struct drv_worker *w = aw->w;
    int batch = w->slot ? ACCEPT_BATCH_SHARED : ACCEPT_BATCH_ALONE;
    for (int i = 0; i < batch && !w->stopping && !full(w); i++) {
        if (sibling_has_fewer(w)) {
            stop_accepting(w);
            ev_timer_start(w->loop, &w->balance_pause);
            return;
        }
        int err = take_connection(w, aw->listener);
        if (err == 0) {
            check_budget(w);
            continue;
        }
        if (retry_accept(err))
            continue;
        if (err == EAGAIN)
            return;
        if (err == EINVAL) {
            /* A sibling shut the socket down: the server is stopping. */
            ev_io_stop(w->loop, io);
            return;
        }
        drv_log_errno(err, "accept4", "on %s", aw->listener->name);
        if (err == EMFILE || err == ENFILE || err == ENOBUFS ||
            err == ENOMEM) {
            /* Level-triggered accept would spin: pause, let conns close. */
            stop_accepting(w);
            ev_timer_start(w->loop, &w->accept_pause);
        }
        return;
    }
}

static void on_accept_pause(struct ev_loop *loop, ev_timer *t, int revents)
{
    (void)revents;
    (void)loop;
    resume_accepting(drv_container_of(t, struct drv_worker, accept_pause));
}

static void on_reap(struct ev_loop *loop, ev_prepare *p, int revents)
{
    (void)revents;
    struct drv_worker *w = drv_container_of(p, struct drv_worker, reaper);
    drv_conns_reap(&w->conns);
    if (w->full && w->conns.n < (size_t)w->settings->worker_connections) {
        w->full = false;
        resume_accepting(w);
    }
    drv_response_clock((time_t)ev_now(loop));
    if (w->slot)
        drv_slot_beat(w->slot, true);
}

/* Back from the poll (first thing in the iteration). */
static void on_awake(struct ev_loop *loop, ev_check *c, int revents)
{
    (void)loop;
    (void)revents;
    struct drv_worker *w = drv_container_of(c, struct drv_worker, awake);
    if (w->slot)
        drv_slot_beat(w->slot, false);
}

static void name_overdue(void *arg, const struct drover_request *req,
                         uint64_t ms)
{
    const struct drv_worker *w = arg;
    drv_critical("WORKER TIMEOUT (pid: %d): worker %u has served "
                 "'%.*s %.*s %.*s' for %.1f s", (int)getpid(),
                 w->slot->number, (int)req->method.len, req->method.ptr,
                 (int)req->target.len, req->target.ptr,
                 (int)req->version.len, req->version.ptr, (double)ms / 1000);
}

/* Wakes an idle loop so it beats, and notices an orphaned worker. With
 * app threads the loop keeps running while requests overrun --timeout:
 * it names each of them (the master then aborts the worker). */
static void on_beat(struct ev_loop *loop, ev_timer *t, int revents)
{
    (void)loop;
    (void)revents;
    struct drv_worker *w = drv_container_of(t, struct drv_worker, beat);
    if (w->master_pid && getppid() != w->master_pid && !w->stopping) {
        drv_warn("master (pid %d) is gone: stopping", (int)w->master_pid);
        drv_worker_stop(w);
    }
    double limit = w->settings->timeout;
    if (w->conns.pool && w->slot && limit > 0 &&
        !drv_slot_load(&w->slot->overdue)) {
        size_t n = drv_conns_overdue(&w->conns, drv_now_ms(),
                                     (uint64_t)(limit * 1000), name_overdue,
                                     w);
        drv_slot_store(&w->slot->overdue, n);
    }
}

static void on_graceful_timeout(struct ev_loop *loop, ev_timer *t, int revents)
{
    (void)revents;
    struct drv_worker *w = drv_container_of(t, struct drv_worker, graceful);
    drv_warn("graceful timeout: closing %zu connection(s) still busy",
             w->conns.n);
    w->forced = true;
    drv_loop_break(loop);
}

/*
 * The whole server stops. Every worker holds a copy of each listening
 * socket, and one busy in the app cannot close its copy until the call
 * returns: meanwhile the kernel would keep queueing connections, only to
 * reset them when the last copy closes. So the first worker to stop takes
 * what is queued (and serves it, with Connection: close), then shuts the
 * sockets down: shutdown() on a listening socket ends its LISTEN state for
 * every process sharing it, and new connections are refused at once,
 * which a client or proxy can safely retry elsewhere.
 */
static void drain_and_unlisten(struct drv_worker *w)
{
    for (size_t k = 0; k < w->nlisteners; k++) {
        int fd = w->listeners[k].fd, err;
        if (fd < 0)
            continue;
        /* Until EAGAIN (or EINVAL: a sibling shut it down first). */
        while ((err = take_connection(w, &w->listeners[k])) == 0 ||
               retry_accept(err))
            ;
        /* Only a socket drover bound: one systemd (or a parent, fd://)
         * passed in is theirs, and must still listen for the next start. */
        if (w->listeners[k].owned && w->listeners[k].family != AF_UNIX)
            shutdown(fd, SHUT_RD);
    }
}

static void stop(struct drv_worker *w, bool close_idle, bool shutdown_all)
{
    if (w->stopping)
        return;
    w->stopping = true;
    w->conns.closing = true;
    stop_accepting(w);
    ev_timer_stop(w->loop, &w->accept_pause);
    ev_timer_stop(w->loop, &w->balance_pause);
    if (shutdown_all)
        drain_and_unlisten(w);
    /* Our copies of the listeners go now: once the master has closed its
     * own too, new connections are refused instead of queueing
     * unanswered. */
    for (size_t k = 0; k < w->nlisteners && !w->keep_listeners; k++) {
        if (w->listeners[k].fd >= 0)
            close(w->listeners[k].fd);
        w->listeners[k].fd = -1;
    }
    if (close_idle)
        drv_conns_close_idle(&w->conns);
    /* A WebSocket has no end of its own to wait for. */
    drv_conns_close_websockets(&w->conns);
    if (w->conns.n == 0) {
        drv_loop_break(w->loop);
        return;
    }
    ev_timer_set(&w->graceful, w->settings->graceful_timeout, 0.0);
    ev_timer_start(w->loop, &w->graceful);
}

void drv_worker_stop(struct drv_worker *w)
{
    bool all = w->slot && __atomic_load_n(&w->slot->shutdown, __ATOMIC_RELAXED);
    stop(w, true, all);
}

void drv_worker_retire(struct drv_worker *w)
{
    stop(w, false, false);
}

/* The worker retires on its own (max_requests, max_worker_memory): its
 * slot says STOPPING at once, so the master starts the replacement while
 * this one finishes what it has in flight. */
static void retire_self(struct drv_worker *w, enum drv_retire why)
{
    if (w->slot)
        drv_slot_retiring(w->slot, why);
    drv_worker_retire(w);
    if (w->slot)
        drv_slot_set_state(w->slot, DRV_SLOT_STOPPING);
}

/*
 * max_requests, exactly: once the requests served plus the connections
 * open reach the limit, the worker stops accepting and every response
 * from then on closes its connection. Each open connection then gets at
 * most one more response, so the total never passes the limit, and no
 * client has its keep-alive connection closed under a request it is
 * sending: it was told "Connection: close" with its last response.
 */
static void check_budget(struct drv_worker *w)
{
    struct drv_conns *set = &w->conns;
    if (!w->max_requests || w->stopping ||
        set->responses + set->n < w->max_requests)
        return;
    drv_info("Autorestarting worker: %llu requests served, %zu "
             "connection(s) finishing",
             (unsigned long long)set->responses, set->n);
    retire_self(w, DRV_RETIRE_MAX_REQUESTS);
}

/* This process's resident memory in bytes (/proc/self/statm, kept open:
 * one pread per call), or 0 when it cannot be read. */
static uint64_t resident_bytes(void)
{
    static int fd = -1;
    if (fd < 0 && (fd = open("/proc/self/statm", O_RDONLY | O_CLOEXEC)) < 0)
        return 0;
    char text[128];
    ssize_t n = pread(fd, text, sizeof(text) - 1, 0);
    if (n <= 0)
        return 0;
    text[n] = '\0';
    unsigned long long size, resident;
    if (sscanf(text, "%llu %llu", &size, &resident) != 2)
        return 0;
    return (uint64_t)resident * (uint64_t)sysconf(_SC_PAGESIZE);
}

/* --max-worker-memory: checked after each response (uWSGI's
 * reload-on-rss, granian's --workers-max-rss), so a worker that has grown
 * past the limit retires like one at max_requests: it finishes what it
 * has in flight while the master starts its replacement. Only under a
 * master, which replaces it. */
static void check_memory(struct drv_worker *w)
{
    long limit_mb = w->settings->max_worker_memory;
    if (limit_mb <= 0 || w->stopping || !w->slot)
        return;
    uint64_t rss = resident_bytes();
    if (rss <= (uint64_t)limit_mb << 20)
        return;
    drv_info("Autorestarting worker: resident memory %llu MiB is past "
             "--max-worker-memory %ld MiB; %zu connection(s) finishing",
             (unsigned long long)(rss >> 20), limit_mb, w->conns.n);
    retire_self(w, DRV_RETIRE_MEMORY);
}

static void on_response(struct drv_conns *set)
{
    struct drv_worker *w = drv_container_of(set, struct drv_worker, conns);
    check_budget(w);
    check_memory(w);
}

static void on_signal(struct ev_loop *loop, ev_signal *s, int revents)
{
    (void)revents;
    struct drv_worker *w = s->data;
    if (s->signum == SIGUSR1) {
        int rc = drv_log_reopen();
        if (rc == 0 && w->accesslog)
            rc = drv_accesslog_reopen(w->accesslog);
        if (rc != 0)
            drv_log_errno(-rc, "open", "reopening the log files");
        return;
    }
    if (s->signum == SIGHUP) {
        drv_info("SIGHUP: finishing in-flight requests, then exiting");
        drv_worker_retire(w);
        return;
    }
    if (s->signum == SIGTERM) {
        drv_info("SIGTERM: finishing in-flight requests, then exiting");
        drv_worker_stop(w);
        return;
    }
    drv_info("%s: stopping now", s->signum == SIGINT ? "SIGINT" : "SIGQUIT");
    w->forced = true;
    drv_loop_break(loop);
}

/* The parser's limits, from the settings (gunicorn's meanings). */
static void http_limits(struct drv_http_limits *l, const struct drv_settings *s)
{
    *l = (struct drv_http_limits){
        .request_line = s->limit_request_line,
        /* gunicorn: 0 means the maximum, not unlimited */
        .fields = s->limit_request_fields ? s->limit_request_fields : 32768,
        .field_size = s->limit_request_field_size,
        .max_body = s->max_body_size,
        .body_memory = s->body_buffer_size,
    };
    /* The whole head is bounded even when one field is not (field size
     * 0): by as many fields as allowed of the default field size. */
    int64_t field = l->field_size > 0 ? l->field_size : DRV_HTTP_FIELD_DEFAULT;
    int64_t line = l->request_line > 0 ? l->request_line
                                       : DRV_HTTP_FIELD_DEFAULT;
    l->head = line + (int64_t)l->fields * (field + 4) + 2;
}

int drv_worker_init(struct drv_worker *w, const struct drv_settings *s,
                    struct drv_listener *listeners, size_t nlisteners,
                    struct drv_app *app, struct drv_accesslog *accesslog)
{
    *w = (struct drv_worker){
        .settings = s,
        .app = app,
        .listeners = listeners,
        .nlisteners = nlisteners,
        .accesslog = accesslog,
        .conns = {.settings = s,
                  .app = app,
                  .accesslog = accesslog,
                  .on_response = on_response},
    };
    http_limits(&w->conns.limits, s);
    /* After fork(): each worker's request ids from its own seed. */
    drv_reqid_seed();
    /* Once per worker, not per proxied request. The settings were
     * checked with the same compiler at start, so this fails only on a
     * bug. */
    char err[256];
    w->trust = drv_proxy_trust_create(&s->forwarded_allow_ips, err,
                                      sizeof(err));
    if (!w->trust) {
        drv_error("forwarded_allow_ips: %s", err);
        return -1;
    }
    w->conns.trust = w->trust;
    /* Not the default loop: its SIGCHLD watcher would reap the children
     * an app starts itself (subprocess.run) behind the app's back. */
    w->loop = ev_loop_new(EVFLAG_AUTO | EVFLAG_NOSIGMASK);
    if (!w->loop) {
        drv_error("cannot create the event loop (libev)");
        drv_proxy_trust_free(w->trust);
        w->trust = NULL;
        return -1;
    }
    w->conns.loop = w->loop;
    return 0;
}

void drv_worker_abandon(struct drv_worker *w)
{
    drv_pool_free(w->conns.pool, false);
    w->conns.pool = NULL;
    ev_loop_destroy(w->loop);
    w->loop = NULL;
    drv_proxy_trust_free(w->trust);
    w->trust = NULL;
    w->conns.trust = NULL;
}

int drv_worker_start_app(struct drv_worker *w, char *err, size_t errlen)
{
    if (!w->app || !w->app->ops->loop_start)
        return 0;
    return w->app->ops->loop_start(w->app, w->loop, err, errlen);
}

int drv_worker_start_threads(struct drv_worker *w, size_t n, char *err,
                             size_t errlen)
{
    w->conns.pool = drv_pool_create(w->loop, w->app, n, err, errlen);
    if (w->conns.pool && w->slot)
        drv_pool_publish_busy(w->conns.pool, &w->slot->threads_busy);
    return w->conns.pool ? 0 : -1;
}

int drv_worker_run(struct drv_worker *w)
{
    w->cpus = drv_usable_cpus();
    w->conns.slot = w->slot;
    w->accepts = drv_xcalloc(w->nlisteners, sizeof(*w->accepts));
    for (size_t k = 0; k < w->nlisteners; k++) {
        struct drv_accept_watch *aw = &w->accepts[k];
        aw->w = w;
        aw->listener = &w->listeners[k];
        ev_io_init(&aw->io, on_accept, w->listeners[k].fd, EV_READ);
        /* Requests on open connections go first: a worker about to call
         * the app takes no new connection in the same iteration, and its
         * idle siblings, woken as well, get it instead. */
        ev_set_priority(&aw->io, EV_MINPRI);
        ev_io_start(w->loop, &aw->io);
    }
    ev_timer_init(&w->accept_pause, on_accept_pause, 0.5, 0.0);
    ev_timer_init(&w->balance_pause, on_balance_pause, BALANCE_PAUSE_S, 0.0);
    ev_init(&w->graceful, on_graceful_timeout);
    ev_prepare_init(&w->reaper, on_reap);
    ev_prepare_start(w->loop, &w->reaper);
    ev_check_init(&w->awake, on_awake);
    ev_set_priority(&w->awake, EV_MAXPRI);
    ev_check_start(w->loop, &w->awake);
    ev_signal_init(&w->sig_term, on_signal, SIGTERM);
    ev_signal_init(&w->sig_int, on_signal, SIGINT);
    ev_signal_init(&w->sig_quit, on_signal, SIGQUIT);
    ev_signal_init(&w->sig_usr1, on_signal, SIGUSR1);
    ev_signal_init(&w->sig_hup, on_signal, SIGHUP);
    ev_signal *sigs[] = {&w->sig_term, &w->sig_int, &w->sig_quit,
                         &w->sig_usr1, &w->sig_hup};
    /* SIGHUP (retire) is the master's word; alone, leave it alone. */
    size_t nsigs = sizeof(sigs) / sizeof(sigs[0]) - (w->slot ? 0 : 1);
    for (size_t k = 0; k < nsigs; k++) {
        sigs[k]->data = w;
        ev_signal_start(w->loop, sigs[k]);
    }
    /* A forked worker starts with every signal blocked, so that none
     * arrives before it is watched. */
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
    /* An idle loop beats well within --timeout, however short. */
    double beat = BEAT_SECONDS;
    if (w->settings->timeout > 0 && w->settings->timeout / 4 < beat)
        beat = w->settings->timeout / 4;
    ev_timer_init(&w->beat, on_beat, beat, beat);
    if (w->slot || w->master_pid) {
        ev_timer_start(w->loop, &w->beat);
        ev_unref(w->loop); /* the beat alone does not keep the loop alive */
    }

    if (w->app && w->app->ops->loop_run)
        w->app->ops->loop_run(w->app, w->loop);
    else
        ev_run(w->loop, 0);

    drv_conns_close_all(&w->conns);
    drv_conns_reap(&w->conns);
    /* The app's own loop winds down (ASGI lifespan shutdown) once no
     * connection is left. */
    if (w->app && w->app->ops->loop_stop) {
        /* What is left of the graceful stop's time, so the master's
         * deadline does not cut the lifespan shutdown short. */
        double grace = w->settings->graceful_timeout;
        if (ev_is_active(&w->graceful))
            grace = ev_timer_remaining(w->loop, &w->graceful);
        ev_timer_stop(w->loop, &w->graceful);
        if (w->forced || grace < FORCED_GRACE_SECONDS)
            grace = FORCED_GRACE_SECONDS;
        w->app->ops->loop_stop(w->app, w->loop, grace);
    }
    /* After a forced stop, threads still in the app are left behind: the
     * process is about to exit (and unmaps the scoreboard first, so they
     * must no longer publish into it). */
    if (w->conns.pool)
        drv_pool_publish_busy(w->conns.pool, NULL);
    drv_pool_free(w->conns.pool, !w->forced);
    w->conns.pool = NULL;
    free(w->accepts);
    w->accepts = NULL;
    /* A signal must not reach a destroyed loop: stop its watchers first
     * (which restores the default action), then ignore what is left of
     * the shutdown's signals. */
    for (size_t k = 0; k < nsigs; k++) {
        ev_signal_stop(w->loop, sigs[k]);
        signal(sigs[k]->signum, SIG_IGN);
    }
    ev_loop_destroy(w->loop);
    w->loop = NULL;
    drv_proxy_trust_free(w->trust);
    w->trust = NULL;
    w->conns.trust = NULL;
    return 0;
}
