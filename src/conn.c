/*
 * conn: one client connection's state machine.
 *
 *   READING  bytes go through the parser; a complete request calls the
 *            app at once (the whole body has arrived by then, so a slow
 *            client never holds an app call). Timer: header_timeout from
 *            the request's first byte (or from accept), io_timeout while
 *            a body arrives, keepalive while idle between requests.
 *   WRITING  the response drains to the socket; a streamed body is pulled
 *            from its source only when the output buffer runs low. The
 *            parser is not fed, so pipelined requests wait their turn in
 *            `in`. Timer: io_timeout without progress.
 *   APP      (with app threads) an app thread runs the app call, or pulls
 *            the next part of a streamed body; meanwhile the loop touches
 *            neither the request, the response nor `out`, and no timer or
 *            write watcher of the connection is active (a read watcher is
 *            left on, and stopped if it fires meanwhile). The job's done()
 *            (loop thread) moves it on to WRITING.
 *            An event-driven (ASGI) app answers from its own callbacks
 *            on the loop thread (drv_conn_progress) while the
 *            connection stays WRITING: the read watcher stays on to
 *            notice a client that goes away, and no timer runs while
 *            the app thinks.
 *   LINGER   after an error response: our side is shut down and whatever
 *            the client still sends is read and dropped for a moment, so
 *            the kernel does not reset the connection (and destroy the
 *            error response) over unread data.
 *
 * A connection is never freed inside one of its callbacks: conn_close()
 * stops its watchers and moves it to the set's dead list, which the
 * reaper frees before the loop next blocks. A connection closed while an
 * app thread works on it (only at a forced stop) joins the dead list when
 * the job comes back.
 *
 * With app threads (set->pool), every piece of app code runs on them:
 * the call, pulling a streamed body, and closing a body source (the
 * response's closer hands it to the pool). The loop thread never waits
 * for the GIL. The jobs in flight are kept in dispatch order, so the
 * scoreboard slot can show the oldest to the master's --timeout check.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/sendfile.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "conn.h"
#include "conn_int.h"

#include "accesslog.h"
#include "app.h"
#include "listener.h"
#include "loop.h"
#include "log.h"
#include "metrics.h"
#include "pool.h"
#include "proxy.h"
#include "reqid.h"
#include "response.h"
#include "scoreboard.h"
#include "settings.h"

/* A body source closed on an app thread (see close_source_later). */
struct close_job {
    struct drv_job job;
    struct drover_body_source source;
};

#define READ_CHUNK (16 * 1024)
#define OUT_LOW_WATER (64 * 1024)
#define LINGER_SECONDS 2.0
#define PIPELINE_HOLD (64 * 1024)
/* A stopping server's idle keep-alive connections: see
 * drv_conns_close_idle. */
#define LAST_CALL_SECONDS 0.2

static void on_io(struct ev_loop *loop, ev_io *io, int revents);
static void on_timer(struct ev_loop *loop, ev_timer *t, int revents);
static void process(struct drv_conn *c);
/* A response that completed may have left pipelined requests. */
static void serve_pipelined(struct drv_conn *c)
{
    if (!c->closed && c->state == C_READING && drv_buf_size(&c->in))
        process(c);
}
static void flush(struct drv_conn *c);
static void write_held(struct drv_conn *c);
static void attach(struct drv_conn *c);
static void detach(struct drv_conn *c);
static void close_source_later(void *arg,
                               const struct drover_body_source *source);

void conn_set_events(struct drv_conn *c, int events)
{
    if (c->io.events == events && ev_is_active(&c->io))
        return;
    ev_io_stop(c->set->loop, &c->io);
    ev_io_set(&c->io, c->fd, events);
    ev_io_start(c->set->loop, &c->io);
}

void conn_set_timer(struct drv_conn *c, double seconds)
{
    ev_timer_stop(c->set->loop, &c->timer);
    ev_timer_set(&c->timer, seconds, 0.0);
    ev_timer_start(c->set->loop, &c->timer);
}

/* An event-driven app is done with, or told to drop, its request. */
static void release_app(struct drv_conn *c, bool gone)
{
    void *handle = c->handle;
    if (!handle)
        return;
    c->handle = NULL;
    c->set->app->ops->release(handle, gone);
}

/* To the dead list, freed by the reaper. */
static void bury(struct drv_conn *c)
{
    if (c->x)
        drv_response_clear(&c->x->res);
    c->next = c->set->dead;
    c->prev = NULL;
    c->set->dead = c;
}

/* The request the app had is answered, or will never be. */
static void end_in_flight(struct drv_conn *c)
{
    struct drv_conns *set = c->set;
    if (!c->in_flight)
        return;
    c->in_flight = false;
    set->in_flight--;
    if (set->slot)
        drv_slot_set_in_flight(set->slot, set->in_flight);
}

void conn_close(struct drv_conn *c)
{
    struct drv_conns *set = c->set;
    if (c->closed)
        return;
    c->closed = true;
    ev_io_stop(set->loop, &c->io);
    ev_timer_stop(set->loop, &c->timer);
    close(c->fd);
    c->fd = -1;
    conn_ws_free(c); /* the app hears 1006 unless it heard a close */
    release_app(c, true);
    if (c->prev)
        c->prev->next = c->next;
    else
        set->open = c->next;
    if (c->next)
        c->next->prev = c->prev;
    c->next = c->prev = NULL;
    /* An app thread still works on its request and response: the job's
     * done() buries it. */
    if (c->state != C_APP)
        bury(c);
    set->n--;
    if (set->slot)
        drv_slot_set_conns(set->slot, set->n);
    end_in_flight(c);
    if (set->closing && set->n == 0)
        drv_loop_break(set->loop);
}

void drv_conns_reap(struct drv_conns *set)
{
    while (set->dead) {
        struct drv_conn *c = set->dead;
        set->dead = c->next;
        if (c->x) {
            drv_http_free(&c->x->http);
            drv_response_free(&c->x->res);
            free(c->x);
        }
        drv_buf_free(&c->in);
        drv_buf_free(&c->out);
        free(c);
    }
}

static void peer_name(struct drv_conn *c, const struct sockaddr *sa)
{
    if (sa->sa_family == AF_INET) {
        const struct sockaddr_in *a = (const void *)sa;
        c->peer.in = *a;
        inet_ntop(AF_INET, &a->sin_addr, c->remote, sizeof(c->remote));
        c->remote_port = ntohs(a->sin_port);
    } else if (sa->sa_family == AF_INET6) {
        const struct sockaddr_in6 *a = (const void *)sa;
        c->peer.in6 = *a;
        inet_ntop(AF_INET6, &a->sin6_addr, c->remote, sizeof(c->remote));
        c->remote_port = ntohs(a->sin6_port);
    } else {
        c->peer.sa.sa_family = sa->sa_family;
        c->remote[0] = '\0';
        c->remote_port = 0;
    }
}

static void on_readable(struct drv_conn *c);

void drv_conn_accept(struct drv_conns *set, int fd,
                     const struct sockaddr *peer,
                     struct drv_listener *listener)
{
    if (peer->sa_family != AF_UNIX) {
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    }
    struct drv_conn *c = drv_xcalloc(1, sizeof(*c));
    c->set = set;
    c->fd = fd;
    c->listener = listener;
    peer_name(c, peer);
    c->next = set->open;
    if (set->open)
        set->open->prev = c;
    set->open = c;
    set->n++;
    if (set->slot)
        drv_slot_set_conns(set->slot, set->n);
    /* Until its first byte: a request that fails before then (a
     * timeout) is timed from here. */
    c->t0 = ev_time();
    ev_io_init(&c->io, on_io, fd, EV_READ);
    ev_init(&c->timer, on_timer);
    ev_io_start(set->loop, &c->io);
    conn_set_timer(c, set->settings->header_timeout);
    /* The request is usually there already (TCP_DEFER_ACCEPT): serve it
     * now. A worker busy with it takes no further connection meanwhile,
     * so its idle siblings get them. */
    on_readable(c);
}

/* Lingering close: stop sending, drain what the client still sends. */
static void start_linger(struct drv_conn *c)
{
    if (shutdown(c->fd, SHUT_WR) != 0) {
        conn_close(c);
        return;
    }
    c->state = C_LINGER;
    conn_set_events(c, EV_READ);
    conn_set_timer(c, LINGER_SECONDS);
}

void conn_log_access(struct drv_conn *c, int status)
{
    struct drv_conns *set = c->set;
    if (!set->accesslog)
        return;
    struct drv_access_entry e = {
        .req = &c->x->http.req.view,
        .remote = {c->remote, 0}, /* empty for unix sockets */
        .status = status,
        .body_bytes = c->x->res.body_bytes,
        .resp_headers = {drv_buf_data(&c->x->res.headers),
                         drv_buf_size(&c->x->res.headers)},
        .start = c->started,
        .duration = ev_time() - c->t0,
        .pid = getpid(),
    };
    e.remote.len = strlen(e.remote.ptr);
    /* %(h)s is REMOTE_ADDR, as in gunicorn: the client a trusted proxy
     * named, when fill_view() took one for this request. */
    if (e.req->remote_addr.ptr == c->x->fwd.addr)
        e.remote = (struct drv_str){c->x->fwd.addr, strlen(c->x->fwd.addr)};
    drv_accesslog_write(set->accesslog, &e);
}

/* The response is fully written: log it and decide the connection's fate. */
static void response_done(struct drv_conn *c)
{
    struct drv_conns *set = c->set;
    release_app(c, false);
    conn_log_access(c, c->x->res.status);
    set->responses++;
    end_in_flight(c);
    if (set->slot) {
        double took = ev_time() - c->t0;
        drv_slot_count(set->slot, set->totals, c->x->res.status,
                       c->x->res.body_bytes,
                       took > 0 ? (uint64_t)(took * 1e6) : 0);
    }
    /* What the client was told. A response begun before the server
     * started closing may still have said keep-alive (an event-driven app
     * finishes its responses in any order): its client may send the next
     * request at once, so the connection stays for a last call rather
     * than closing under it. */
    bool keep = drv_response_keeps_alive(&c->x->res);
    drv_response_clear(&c->x->res);
    drv_http_next(&c->x->http);
    if (set->on_response)
        set->on_response(set);
    if (!keep) {
        if (c->linger)
            start_linger(c);
        else
            conn_close(c);
        return;
    }
    c->kept = true;
    c->state = C_READING;
    conn_set_events(c, EV_READ);
    if (drv_buf_size(&c->in) == 0)
        conn_set_timer(c, set->closing && LAST_CALL_SECONDS <
                                              set->settings->keepalive
                              ? LAST_CALL_SECONDS
                              : set->settings->keepalive);
    if (!drv_buf_size(&c->out))
        drv_buf_free(&c->out);
    detach(c);
}

/* The request's id (reqid.h): its first X-Request-ID when sane, else a
 * new one in c->x->reqid. Before the head is complete there are no headers
 * to look at, and a refused request gets a new id. */
static void assign_request_id(struct drv_conn *c)
{
    struct drv_request *req = &c->x->http.req;
    const struct drover_header *h = drv_http_header(req, "x-request-id");
    req->view.request_id = drv_reqid_pick(
        h ? h->value : (struct drover_str){NULL, 0}, c->x->reqid);
}

/* Answer a request that cannot be served (bad bytes, limits, timeouts)
 * with a small error response, then close. */
static void reply_error(struct drv_conn *c, int status, const char *reason)
{
    assign_request_id(c);
    drv_info("%d %s from %s: %s", status, drv_status_reason(status),
             c->remote[0] ? c->remote : c->listener->name,
             reason ? reason : "");
    drv_response_init(&c->x->res, &c->out, &c->x->http.req, false);
    drv_response_error(&c->x->res, status, false);
    c->linger = true;
    c->state = C_WRITING;
    flush(c);
}

static void fill_view(struct drv_conn *c, struct drover_request *v)
{
    assign_request_id(c);
    v->remote_addr = (struct drover_str){c->remote, strlen(c->remote)};
    v->remote_port = c->remote_port;
    v->server_addr = (struct drover_str){c->listener->host,
                                         strlen(c->listener->host)};
    v->server_port = c->listener->port;
    v->url_scheme = (struct drover_str){"http", 4};
    /* Behind a trusted proxy the client and scheme come from its headers
     * (forwarded_allow_ips; see proxy.h). */
    if (!drv_proxy_resolve(c->set->trust, &c->peer.sa, v->headers,
                           v->nheaders, &c->x->fwd))
        return;
    if (c->x->fwd.addr[0]) {
        v->remote_addr = (struct drover_str){c->x->fwd.addr, strlen(c->x->fwd.addr)};
        v->remote_port = c->x->fwd.port;
    }
    if (c->x->fwd.scheme)
        v->url_scheme = (struct drover_str){c->x->fwd.scheme,
                                            strlen(c->x->fwd.scheme)};
}

/* X-Request-Start from a trusted proxy: how long the request queued
 * before the app took it (only when the master serves metrics). */
static void note_queue_time(struct drv_conn *c)
{
    struct drv_conns *set = c->set;
    const struct drover_request *v = &c->x->http.req.view;
    if (!set->slot || !set->settings->metrics_bind)
        return;
    for (size_t i = 0; i < v->nheaders; i++) {
        const struct drover_header *h = &v->headers[i];
        if (h->name.len != 15 ||
            !drv_str_eq_lower((struct drv_str){h->name.ptr, h->name.len},
                              "x-request-start"))
            continue;
        struct timespec now;
        uint64_t us;
        clock_gettime(CLOCK_REALTIME, &now);
        if (drv_proxy_trusted(set->trust, &c->peer.sa) &&
            drv_metrics_queue_us(h->value.ptr, h->value.len,
                                 (uint64_t)now.tv_sec * 1000000 +
                                     (uint64_t)now.tv_nsec / 1000,
                                 &us))
            drv_slot_queued(set->slot, us);
        return;
    }
}

/* Call the app and settle its response (on whichever thread runs app
 * code). */
static void call_app(struct drv_conn *c)
{
    struct drv_conns *set = c->set;
    struct drv_request *req = &c->x->http.req;
    note_queue_time(c);
    int rc = set->app->ops->call(set->app, req, &c->x->res);
    if (rc != 0) {
        /* Part of the body is out when the error page cannot replace the
         * response: cut the connection so the client sees a truncated
         * response, never a false success. */
        if (drv_response_error(&c->x->res, 500, req->is_head) != 0)
            drv_response_abort(&c->x->res);
    } else if (drv_response_finish(&c->x->res) != 0) {
        /* The app returned without a valid response started. */
        drv_response_error(&c->x->res, 500, req->is_head);
    }
}

/* A streamed body runs low in `out`: pull from its source. */
static bool needs_pull(const struct drv_conn *c)
{
    const struct drv_response *r = &c->x->res;
    return r->state == DRV_RESPONSE_COMMITTED && r->has_source &&
           !r->has_file && drv_buf_size(&c->out) < OUT_LOW_WATER;
}

static void pull_body(struct drv_conn *c)
{
    while (needs_pull(c))
        if (drv_response_pull(&c->x->res) < 0)
            break;
}

/* ---- app threads (set->pool) ---- */

static void on_close_job(struct drv_job *job)
{
    struct close_job *cj = drv_container_of(job, struct close_job, job);
    cj->source.close(cj->source.state);
    free(cj);
}

/* The response's closer: a source's close may run app code, which only
 * app threads do, and the one that called the app. */
static void close_source_later(void *arg,
                               const struct drover_body_source *source)
{
    struct drv_conn *c = arg;
    if (drv_pool_on_app_thread()) {
        source->close(source->state);
        return;
    }
    struct close_job *cj = drv_xcalloc(1, sizeof(*cj));
    cj->job.run = on_close_job;
    cj->job.thread = c->job.thread;
    cj->source = *source;
    drv_pool_submit(c->set->pool, &cj->job);
}

static void on_call_job(struct drv_job *job);

/* An app call: nothing of its response is on the wire until the job is
 * done (a pull job's response has begun). */
static bool in_call(const struct drv_conn *c)
{
    return c->state == C_APP && c->job.run == on_call_job;
}

/* The scoreboard slot shows the oldest job in flight. */
static void show_oldest(struct drv_conns *set)
{
    if (!set->slot)
        return;
    struct drv_conn *c = set->oldest;
    if (c)
        drv_slot_busy_since(set->slot, &c->x->http.req.view, c->dispatched_ms,
                            in_call(c) ? c->fd : -1);
    else
        drv_slot_idle(set->slot);
}

static void on_job_done(struct drv_job *job)
{
    struct drv_conn *c = drv_container_of(job, struct drv_conn, job);
    struct drv_conns *set = c->set;
    if (c->older)
        c->older->newer = c->newer;
    else
        set->oldest = c->newer;
    if (c->newer)
        c->newer->older = c->older;
    else
        set->newest = c->older;
    if (!c->older)
        show_oldest(set);
    c->older = c->newer = NULL;
    c->state = C_WRITING;
    if (c->closed) {
        bury(c);
        return;
    }
    flush(c);
    serve_pipelined(c);
}

/* The call, and the first part of a streamed body while the app's state
 * is warm (it would otherwise be the next job at once). */
static void on_call_job(struct drv_job *job)
{
    struct drv_conn *c = drv_container_of(job, struct drv_conn, job);
    call_app(c);
    pull_body(c);
}

static void on_pull_job(struct drv_job *job)
{
    pull_body(drv_container_of(job, struct drv_conn, job));
}

/* Hand the connection to an app thread (any for the call, then the one
 * that made it); nothing of it is touched here until on_job_done. */
static void start_job(struct drv_conn *c, drv_job_cb run)
{
    struct drv_conns *set = c->set;
    c->state = C_APP;
    /* A read watcher stays: stopping and restarting it costs epoll_ctl
     * calls per request, and it seldom fires meanwhile (on_io stops it
     * then). A write watcher would fire at once. */
    if (c->io.events & EV_WRITE)
        ev_io_stop(set->loop, &c->io);
    ev_timer_stop(set->loop, &c->timer);
    c->job.run = run;
    c->job.done = on_job_done;
    if (run == on_call_job)
        c->job.thread = -1;
    c->dispatched_ms = drv_now_ms();
    c->older = set->newest;
    c->newer = NULL;
    if (set->newest)
        set->newest->newer = c;
    else
        set->oldest = c;
    set->newest = c;
    if (!c->older)
        show_oldest(set);
    drv_pool_submit(set->pool, &c->job);
}

size_t drv_conns_overdue(const struct drv_conns *set, uint64_t now_ms,
                         uint64_t limit_ms,
                         void (*each)(void *arg,
                                      const struct drover_request *req,
                                      uint64_t ms),
                         void *arg)
{
    size_t n = 0;
    for (const struct drv_conn *c = set->oldest; c; c = c->newer) {
        if (now_ms < c->dispatched_ms || now_ms - c->dispatched_ms <= limit_ms)
            break; /* dispatch order: the rest are younger */
        const struct drover_request *req = &c->x->http.req.view;
        each(arg, req, now_ms - c->dispatched_ms);
        /* The loop does not write to a connection in the app (C_APP), so
         * the answer cannot interleave with anything. */
        if (in_call(c))
            drv_response_send_timeout(
                c->fd, c->x->http.req.is_head,
                (struct drv_str){req->request_id.ptr, req->request_id.len});
        n++;
    }
    return n;
}

/* A handshake that cannot be a WebSocket: 400, or 426 naming the
 * version drover speaks (RFC 6455 4.4). */
static void refuse_websocket(struct drv_conn *c, int status, const char *why)
{
    struct drv_response *r = &c->x->res;
    drv_response_start(r, status, NULL, 0);
    if (status == 426)
        drv_response_header(r, "Sec-WebSocket-Version", 21, "13", 2);
    drv_response_header(r, "Content-Type", 12, "text/plain", 10);
    drv_response_write(r, why, strlen(why));
    drv_response_write(r, "\n", 1);
    drv_response_finish(r);
}

static void run_app(struct drv_conn *c)
{
    struct drv_conns *set = c->set;
    struct drv_request *req = &c->x->http.req;
    bool keep =
        req->keep_alive && set->settings->keepalive > 0 && !set->closing;
    fill_view(c, &req->view);
    drv_response_init(&c->x->res, &c->out, req, keep);
    c->state = C_WRITING;
    c->in_flight = true;
    set->in_flight++;
    if (set->slot)
        drv_slot_set_in_flight(set->slot, set->in_flight);
    ev_timer_stop(set->loop, &c->timer);
    if (set->pool) {
        start_job(c, on_call_job);
        return;
    }
    if (set->app->ops->begin) {
        /* The app answers later, from its own callbacks; its loop's
         * heartbeat, not a busy slot, tells the master it is alive. */
        note_queue_time(c);
        c->ws_wanted = conn_ws_wanted(req);
        const char *why = NULL;
        int refuse = c->ws_wanted ? conn_ws_check(req, &why) : 0;
        if (c->ws_wanted)
            c->x->res.keep_alive = false; /* a refusal ends it */
        if (refuse) {
            drv_info("%d %s from %s: %s", refuse, drv_status_reason(refuse),
                     c->remote[0] ? c->remote : c->listener->name, why);
            refuse_websocket(c, refuse, why);
        } else if (set->app->ops->begin(set->app, c, &c->handle) != 0) {
            drv_response_error(&c->x->res, 500, req->is_head);
        }
        flush(c);
        return;
    }
    if (set->slot)
        drv_slot_busy(set->slot, &req->view, c->fd);
    call_app(c);
    if (set->slot)
        drv_slot_idle(set->slot);
    flush(c);
}

/* Wait until the socket takes more: EV_WRITE, with the io_timeout. */
static void wait_writable(struct drv_conn *c)
{
    conn_set_events(c, EV_WRITE);
    conn_set_timer(c, c->set->settings->io_timeout);
}

/* Send the next part of a file body with sendfile(2). Returns 0 to go on
 * flushing, -1 when waiting for the socket or the connection is closed. */
static int send_file(struct drv_conn *c)
{
    struct drv_response *r = &c->x->res;
    size_t count = r->file.left < 0x7ffff000 ? (size_t)r->file.left
                                             : 0x7ffff000;
    off_t pos = r->file.pos;
    ssize_t n = sendfile(c->fd, r->file.fd, &pos, count);
    if (n < 0) {
        if (errno == EINTR)
            return 0;
        if (errno == EAGAIN) {
            wait_writable(c);
            return -1;
        }
        if (errno != EPIPE && errno != ECONNRESET)
            drv_log_errno(errno, "sendfile", "response to %s", c->remote);
        conn_close(c);
        return -1;
    }
    drv_response_file_sent(r, (size_t)n); /* 0: the file was cut short */
    return 0;
}

/* One write of what `out` holds. Returns the bytes written, 0 when the
 * socket takes no more for now, or -1 when the connection failed (and is
 * closed). */
static ssize_t write_some(struct drv_conn *c)
{
    for (;;) {
        ssize_t n = write(c->fd, drv_buf_data(&c->out), drv_buf_size(&c->out));
        if (n >= 0) {
            drv_buf_consume(&c->out, (size_t)n);
            return n;
        }
        if (errno == EINTR)
            continue;
        if (errno == EAGAIN)
            return 0;
        if (errno != EPIPE && errno != ECONNRESET)
            drv_log_errno(errno, "write", "response to %s", c->remote);
        conn_close(c);
        return -1;
    }
}

/* Responses held for pipelined requests (process), out now that no more
 * follow at once; between requests, so the socket's writability is
 * watched here rather than by flush. */
static void write_held(struct drv_conn *c)
{
    while (drv_buf_size(&c->out)) {
        ssize_t n = write_some(c);
        if (n < 0)
            return;
        if (n == 0) {
            conn_set_events(c, EV_READ | EV_WRITE);
            conn_set_timer(c, c->set->settings->io_timeout);
            return;
        }
    }
    drv_buf_free(&c->out);
    conn_set_events(c, EV_READ);
}

/* Write what the output buffer holds, topping it up from a streamed body
 * while the socket takes it; a file body goes out with sendfile(2) once
 * the buffer (head, held bytes) is empty. */
static void flush(struct drv_conn *c)
{
    struct drv_response *r = &c->x->res;
    for (;;) {
        if (!c->set->pool) {
            pull_body(c);
        } else if (needs_pull(c)) {
            start_job(c, on_pull_job);
            return;
        }
        size_t size = drv_buf_size(&c->out);
        if (size == 0 && r->state == DRV_RESPONSE_COMMITTED && r->has_file) {
            if (send_file(c) < 0)
                return;
            continue;
        }
        if (size == 0) {
            if (r->state == DRV_RESPONSE_DONE) {
                response_done(c);
            } else if (c->handle) {
                /* All sent: the app's turn. Listen for a client that
                 * goes away meanwhile; no time limit on the app. */
                ev_timer_stop(c->set->loop, &c->timer);
                if (drv_buf_size(&c->in) < PIPELINE_HOLD)
                    conn_set_events(c, EV_READ);
                else
                    ev_io_stop(c->set->loop, &c->io);
                c->set->app->ops->drained(c->handle);
            }
            return;
        }
        if (c->hold && r->state == DRV_RESPONSE_DONE &&
            size < PIPELINE_HOLD && drv_response_keeps_alive(r)) {
            response_done(c); /* its bytes go with the next response's */
            return;
        }
        ssize_t n = write_some(c);
        if (n < 0)
            return;
        if (n == 0) {
            wait_writable(c);
            return;
        }
        if (c->handle && (size_t)n < size &&
            drv_buf_size(&c->out) < OUT_LOW_WATER)
            c->set->app->ops->drained(c->handle);
    }
}

static void send_continue(struct drv_conn *c)
{
    static const char line[] = "HTTP/1.1 100 Continue\r\n\r\n";
    if (drv_buf_size(&c->out) == 0) {
        ssize_t n = write(c->fd, line, sizeof(line) - 1);
        if (n == (ssize_t)sizeof(line) - 1)
            return;
        if (n < 0)
            n = 0;
        drv_buf_append(&c->out, line + n, sizeof(line) - 1 - (size_t)n);
    } else {
        /* Behind responses held for pipelining: it goes out with them at
         * the end of process()'s batch, in order. */
        drv_buf_append(&c->out, line, sizeof(line) - 1);
    }
}

/* Feed buffered bytes to the parser and act on what it finds. */
static void process(struct drv_conn *c)
{
    const struct drv_settings *s = c->set->settings;
    if (drv_buf_size(&c->in))
        attach(c);
    while (!c->closed && c->state == C_READING && drv_buf_size(&c->in)) {
        bool was_idle = drv_http_idle(&c->x->http);
        size_t used = 0;
        enum drv_http_result r = drv_http_parse(
            &c->x->http, drv_buf_data(&c->in), drv_buf_size(&c->in), &used);
        drv_buf_consume(&c->in, used);
        if (was_idle && !drv_http_idle(&c->x->http)) {
            clock_gettime(CLOCK_REALTIME, &c->started);
            c->t0 = ev_time();
            conn_set_timer(c, s->header_timeout);
        }
        switch (r) {
        case DRV_HTTP_AGAIN:
            if (c->x->http.head_done)
                conn_set_timer(c, s->io_timeout);
            break;
        case DRV_HTTP_HEAD:
            send_continue(c);
            conn_set_timer(c, s->io_timeout);
            break;
        case DRV_HTTP_ERROR:
            drv_buf_reset(&c->in);
            reply_error(c, c->x->http.error_status, c->x->http.error_reason);
            return;
        case DRV_HTTP_DONE:
            /* Pipelined requests behind this one: a response the app
             * finishes at once may wait in `out` for theirs, so that one
             * write carries the lot (one per response was 16 writes for
             * wrk's 16 pipelined requests). */
            c->hold = drv_buf_size(&c->in) && !c->set->pool &&
                      !c->set->app->ops->begin;
            run_app(c);
            c->hold = false;
            break;
        }
    }
    if (!c->closed && c->state == C_READING && drv_buf_size(&c->out))
        write_held(c);
}

/* The request state for `c`'s next request (see struct drv_exchange). */
static void attach(struct drv_conn *c)
{
    struct drv_conns *set = c->set;
    if (c->x)
        return;
    if (set->spare_x) {
        c->x = set->spare_x;
        set->spare_x = c->x->next;
        set->nspare_x--;
        *c->x = (struct drv_exchange){0};
    } else {
        c->x = drv_xcalloc(1, sizeof(*c->x));
    }
    drv_http_init(&c->x->http, &set->limits);
    if (set->pool)
        drv_response_set_closer(&c->x->res, close_source_later, c);
}

/* Between requests, with nothing unparsed: give it back. */
static void detach(struct drv_conn *c)
{
    struct drv_conns *set = c->set;
    if (!c->x || drv_buf_size(&c->in))
        return;
    drv_http_free(&c->x->http);
    drv_response_free(&c->x->res);
    if (set->nspare_x < 64) {
        c->x->next = set->spare_x;
        set->spare_x = c->x;
        set->nspare_x++;
    } else {
        free(c->x);
    }
    c->x = NULL;
}

/* No request under way: not one byte of the next has been read. */
static bool between_requests(const struct drv_conn *c)
{
    return !c->x || drv_http_idle(&c->x->http);
}

/* A read buffer for `c`, from the set's spares when it has none. */
static void take_in(struct drv_conn *c)
{
    struct drv_conns *set = c->set;
    if (!c->in.base && set->nspare_in)
        c->in = set->spare_in[--set->nspare_in];
    drv_buf_reserve(&c->in, READ_CHUNK);
}

/* Once every byte read has been parsed, the buffer goes back. */
static void give_back_in(struct drv_conn *c)
{
    struct drv_conns *set = c->set;
    if (!c->in.base || drv_buf_size(&c->in))
        return;
    if (set->nspare_in < sizeof(set->spare_in) / sizeof(set->spare_in[0])) {
        drv_buf_reset(&c->in);
        set->spare_in[set->nspare_in++] = c->in;
        c->in = (struct drv_buf){0};
    } else {
        drv_buf_free(&c->in);
    }
}

static void on_readable(struct drv_conn *c)
{
    take_in(c);
    attach(c);
    ssize_t n = read(c->fd, c->in.base + c->in.len, c->in.cap - c->in.len);
    if (n < 0) {
        if (errno == EAGAIN || errno == EINTR)
            return;
        if (errno != ECONNRESET)
            drv_log_errno(errno, "read", "connection from %s", c->remote);
        conn_close(c);
        return;
    }
    if (c->state == C_LINGER) {
        drv_buf_reset(&c->in);
        if (n == 0)
            conn_close(c);
        return;
    }
    if (n == 0) {
        if (!between_requests(c))
            drv_debug("client %s closed mid-request", c->remote);
        conn_close(c);
        return;
    }
    c->in.len += (size_t)n;
    /* An event-driven app still has the request: what comes meanwhile is
     * pipelined, and waits in `in` up to a bound. */
    if (c->handle && drv_buf_size(&c->in) >= PIPELINE_HOLD)
        ev_io_stop(c->set->loop, &c->io);
    process(c);
    if (!c->closed) {
        give_back_in(c);
        if (c->state == C_READING && between_requests(c))
            detach(c);
    }
}

static void on_io(struct ev_loop *loop, ev_io *io, int revents)
{
    struct drv_conn *c = drv_container_of(io, struct drv_conn, io);
    if (c->state == C_APP) { /* the next request waits for this one */
        ev_io_stop(loop, io);
        return;
    }
    if (c->state == C_WS) {
        if (revents & EV_WRITE)
            conn_ws_writable(c);
        if ((revents & EV_READ) && !c->closed && c->state == C_WS)
            conn_ws_readable(c);
        return;
    }
    if (revents & EV_WRITE) {
        if (c->state == C_WRITING)
            flush(c);
        else if (c->state == C_READING)
            write_held(c);
    } else if (revents & EV_READ) {
        on_readable(c);
    }
    serve_pipelined(c);
}

/* Bytes the client has sent that we have not read yet: a request to
 * answer (with Connection: close) rather than to drop by closing. */
static bool request_waiting(const struct drv_conn *c)
{
    char byte;
    return recv(c->fd, &byte, 1, MSG_PEEK | MSG_DONTWAIT) > 0;
}

static void on_timer(struct ev_loop *loop, ev_timer *t, int revents)
{
    (void)loop;
    (void)revents;
    struct drv_conn *c = drv_container_of(t, struct drv_conn, timer);
    if (c->state == C_WS) {
        conn_ws_timer(c);
        return;
    }
    /* The keep-alive wait ran out while the worker was busy in the app,
     * but the client's next request came in time and is waiting unread:
     * answer it rather than reset the connection under it. */
    if (c->state == C_READING && between_requests(c) &&
        drv_buf_size(&c->in) == 0 && request_waiting(c)) {
        conn_set_timer(c, c->set->settings->header_timeout);
        on_readable(c);
        return;
    }
    if (c->state == C_READING && !between_requests(c)) {
        reply_error(c, 408, c->x->http.head_done ? "body read timed out"
                                              : "request head timed out");
        return;
    }
    if (c->state == C_WRITING)
        drv_debug("closing %s: no write progress for %.0fs", c->remote,
                  c->set->settings->io_timeout);
    conn_close(c);
}

/*
 * Closing an idle keep-alive connection races with its client, which may
 * be sending the next request at that moment; the client then sees the
 * connection close with no answer (RFC 9112 9.3.1 leaves it to retry,
 * and nginx does not retry a POST). Under load that client is exactly
 * the busy one whose next request is microseconds away, so a short last
 * call answers it instead (with Connection: close, as `closing` is set),
 * and only connections quiet for that long are closed. A stop takes at
 * most LAST_CALL_SECONDS longer.
 *
 * A connection that has not had its first request yet is not idle: its
 * client opened it to send one, which is on its way. Accepted sockets
 * usually hold the request already (TCP_DEFER_ACCEPT on the sockets
 * drover binds), but a socket passed in by systemd has no defer unless
 * DeferAcceptSec= says so: there a worker accepts the connection as soon
 * as it is made, and a client slow to send (a busy machine, a thread
 * waiting for the GIL) would find it closed by the last call, without a
 * response, under `systemctl restart` (seen: 1 request in ~750). It
 * keeps its header_timeout instead; graceful_timeout still bounds the stop.
 */
void drv_conns_close_idle(struct drv_conns *set)
{
    for (struct drv_conn *c = set->open; c; c = c->next) {
        if (!c->kept || c->state != C_READING || !between_requests(c) ||
            drv_buf_size(&c->in) || drv_buf_size(&c->out) ||
            request_waiting(c))
            continue;
        if (!ev_is_active(&c->timer) ||
            ev_timer_remaining(set->loop, &c->timer) > LAST_CALL_SECONDS)
            conn_set_timer(c, LAST_CALL_SECONDS);
    }
}

void drv_conns_close_all(struct drv_conns *set)
{
    while (set->open)
        conn_close(set->open);
    while (set->nspare_in)
        drv_buf_free(&set->spare_in[--set->nspare_in]);
    while (set->spare_x) {
        struct drv_exchange *x = set->spare_x;
        set->spare_x = x->next;
        free(x);
    }
    set->nspare_x = 0;
}

/* ---- event-driven apps (conn.h) ---- */

void conn_ws_upgraded(struct drv_conn *c)
{
    struct drv_conns *set = c->set;
    conn_log_access(c, 101);
    set->responses++;
    end_in_flight(c);
    if (set->slot) {
        double took = ev_time() - c->t0;
        drv_slot_count(set->slot, set->totals, 101, 0,
                       took > 0 ? (uint64_t)(took * 1e6) : 0);
    }
    if (set->on_response)
        set->on_response(set);
}

void drv_conns_close_websockets(struct drv_conns *set)
{
    for (struct drv_conn *c = set->open, *next; c; c = next) {
        next = c->next;
        if (c->state == C_WS)
            conn_ws_going_away(c);
    }
}

struct drv_request *drv_conn_request(struct drv_conn *c)
{
    return &c->x->http.req;
}

struct drv_response *drv_conn_response(struct drv_conn *c)
{
    return &c->x->res;
}

size_t drv_conn_unsent(const struct drv_conn *c)
{
    return drv_buf_size(&c->out);
}

void drv_conn_progress(struct drv_conn *c)
{
    /* Waiting for the socket already: its watcher flushes. */
    if (c->closed || c->state != C_WRITING ||
        (ev_is_active(&c->io) && (c->io.events & EV_WRITE)))
        return;
    flush(c);
    serve_pipelined(c);
}

void drv_conn_fail(struct drv_conn *c)
{
    struct drv_response *r = &c->x->res;
    if (drv_response_error(r, 500, c->x->http.req.is_head) != 0)
        drv_response_abort(r);
    drv_conn_progress(c);
}
