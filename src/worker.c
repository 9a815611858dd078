/*
 * worker: the event loop around the connections: accepting, signals,
 * graceful stop, and freeing closed connections between iterations.
 */
#include "worker.h"

#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

#include "log.h"
#include "response.h"

#define ACCEPT_BATCH 64

static void on_accept(struct ev_loop *loop, ev_io *io, int revents)
{
    (void)loop;
    (void)revents;
    struct drv_accept_watch *aw = drv_container_of(io, struct drv_accept_watch, io);
    struct drv_worker *w = aw->w;
    for (int i = 0; i < ACCEPT_BATCH && !w->stopping; i++) {
        struct sockaddr_storage ss;
        socklen_t len = sizeof(ss);
        int fd = accept4(io->fd, (struct sockaddr *)&ss, &len,
                         SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd >= 0) {
            drv_conn_accepted(w, fd, (struct sockaddr *)&ss, len, aw->listener);
            continue;
        }
        if (errno == EINTR || errno == ECONNABORTED)
            continue;
        if (errno == EAGAIN)
            return;
        drv_log_errno(errno, "accept4", "on %s", aw->listener->name);
        if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS ||
            errno == ENOMEM) {
            /* Level-triggered accept would spin: pause, let conns close. */
            for (size_t k = 0; k < w->nlisteners; k++)
                ev_io_stop(w->loop, &w->accepts[k].io);
            ev_timer_start(w->loop, &w->accept_pause);
        }
        return;
    }
}

static void on_accept_pause(struct ev_loop *loop, ev_timer *t, int revents)
{
    (void)revents;
    struct drv_worker *w = drv_container_of(t, struct drv_worker, accept_pause);
    if (w->stopping)
        return;
    for (size_t k = 0; k < w->nlisteners; k++)
        ev_io_start(loop, &w->accepts[k].io);
}

static void on_reap(struct ev_loop *loop, ev_prepare *p, int revents)
{
    (void)revents;
    struct drv_worker *w = drv_container_of(p, struct drv_worker, reaper);
    drv_conn_reap(w);
    drv_response_clock((time_t)ev_now(loop));
}

static void on_graceful_timeout(struct ev_loop *loop, ev_timer *t, int revents)
{
    (void)revents;
    struct drv_worker *w = drv_container_of(t, struct drv_worker, graceful);
    drv_warn("graceful timeout: closing %zu connection(s) still busy",
             w->nconns);
    ev_break(loop, EVBREAK_ALL);
}

void drv_worker_stop(struct drv_worker *w)
{
    if (w->stopping)
        return;
    w->stopping = true;
    for (size_t k = 0; k < w->nlisteners; k++)
        ev_io_stop(w->loop, &w->accepts[k].io);
    ev_timer_stop(w->loop, &w->accept_pause);
    /* Our copies of the listeners go now, so that in single-process mode
     * new connections are refused instead of queueing unanswered. */
    for (size_t k = 0; k < w->nlisteners; k++) {
        if (w->listeners[k].fd >= 0)
            close(w->listeners[k].fd);
        w->listeners[k].fd = -1;
    }
    drv_conn_stop_idle_all(w);
    if (w->nconns == 0) {
        ev_break(w->loop, EVBREAK_ALL);
        return;
    }
    ev_timer_set(&w->graceful, w->settings->graceful_timeout, 0.0);
    ev_timer_start(w->loop, &w->graceful);
}

static void on_signal(struct ev_loop *loop, ev_signal *s, int revents)
{
    (void)revents;
    struct drv_worker *w = s->data;
    if (s->signum == SIGTERM) {
        drv_info("SIGTERM: finishing in-flight requests, then exiting");
        drv_worker_stop(w);
        return;
    }
    drv_info("%s: stopping now", s->signum == SIGINT ? "SIGINT" : "SIGQUIT");
    ev_break(loop, EVBREAK_ALL);
}

void drv_worker_init(struct drv_worker *w, const struct drv_settings *s,
                     struct drv_listener *listeners, size_t nlisteners,
                     struct drv_app *app, struct drv_accesslog *accesslog)
{
    *w = (struct drv_worker){
        .settings = s,
        .app = app,
        .listeners = listeners,
        .nlisteners = nlisteners,
        .accesslog = accesslog,
        .limits = {.request_line = s->limit_request_line,
                   /* gunicorn: 0 means the maximum, not unlimited */
                   .fields = s->limit_request_fields ? s->limit_request_fields
                                                     : 32768,
                   .field_size = s->limit_request_field_size,
                   .max_body = s->max_body_size,
                   .body_memory = s->body_buffer_size},
    };
}

int drv_worker_run(struct drv_worker *w)
{
    w->loop = ev_default_loop(EVFLAG_AUTO | EVFLAG_NOSIGMASK);
    if (!w->loop) {
        drv_error("cannot create the event loop (libev)");
        return 1;
    }
    w->accepts = drv_xcalloc(w->nlisteners, sizeof(*w->accepts));
    for (size_t k = 0; k < w->nlisteners; k++) {
        struct drv_accept_watch *aw = &w->accepts[k];
        aw->w = w;
        aw->listener = &w->listeners[k];
        ev_io_init(&aw->io, on_accept, w->listeners[k].fd, EV_READ);
        ev_io_start(w->loop, &aw->io);
    }
    ev_timer_init(&w->accept_pause, on_accept_pause, 0.5, 0.0);
    ev_init(&w->graceful, on_graceful_timeout);
    ev_prepare_init(&w->reaper, on_reap);
    ev_prepare_start(w->loop, &w->reaper);
    ev_signal_init(&w->sig_term, on_signal, SIGTERM);
    ev_signal_init(&w->sig_int, on_signal, SIGINT);
    ev_signal_init(&w->sig_quit, on_signal, SIGQUIT);
    ev_signal *sigs[] = {&w->sig_term, &w->sig_int, &w->sig_quit};
    for (size_t k = 0; k < 3; k++) {
        sigs[k]->data = w;
        ev_signal_start(w->loop, sigs[k]);
    }

    ev_run(w->loop, 0);

    drv_conn_close_all(w);
    drv_conn_reap(w);
    free(w->accepts);
    w->accepts = NULL;
    return 0;
}
