/*
 * metrics_server: accept, read one request head, answer, close; see
 * metrics_server.h for what is answered and the limits.
 *
 * A client moves through three states, each with one timer:
 *
 *   READING  bytes accumulate in `head` until a blank line ends it;
 *            DRV_METRICS_HEAD_SECONDS from accept, then 408
 *   WRITING  the answer drains from `out`; WRITE_SECONDS without
 *            progress, then the connection is dropped
 *   LINGER   our side is shut down; what the client still sends is read
 *            and dropped until it closes, or LINGER_SECONDS pass
 *
 * Requests are parsed here, not with llhttp: only the request line
 * matters (method, path, HTTP/1.x), header lines are skipped unread, and
 * a body is never read (it is drained in LINGER).
 */
#include "metrics_server.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "listener.h"
#include "log.h"
#include "response.h"

#define ACCEPT_BATCH 16
#define WRITE_SECONDS 5.0
#define LINGER_SECONDS 1.0
#define ACCEPT_PAUSE_SECONDS 1.0

enum client_state { READING, WRITING, LINGER };

struct client {
    ev_io io;
    ev_timer timer;
    struct drv_metrics_server *s;
    struct client *older, *newer; /* open clients, oldest first */
    struct client *next_dead;
    int fd;
    enum client_state state;
    bool closed;
    size_t got;     /* bytes in head */
    size_t scanned; /* of which searched for the head's end */
    char head[DRV_METRICS_HEAD_MAX];
    struct drv_buf out;
};

struct accept_watch {
    ev_io io;
    struct drv_metrics_server *s;
    struct drv_listener *listener;
};

struct drv_metrics_server {
    struct ev_loop *loop;
    drv_metrics_page_cb page;
    void *arg;
    struct accept_watch *accepts;
    size_t naccepts;
    struct client *oldest, *newest;
    size_t nclients;
    struct client *dead;
    ev_prepare reaper;
    ev_timer accept_pause; /* out of descriptors: accept again later */
};

static void on_client(struct ev_loop *loop, ev_io *io, int revents);
static void on_client_timer(struct ev_loop *loop, ev_timer *t, int revents);

/* ---- client life ---- */

static void set_events(struct client *c, int events)
{
    if (c->io.events == events && ev_is_active(&c->io))
        return;
    ev_io_stop(c->s->loop, &c->io);
    ev_io_set(&c->io, c->fd, events);
    ev_io_start(c->s->loop, &c->io);
}

static void set_timer(struct client *c, double seconds)
{
    ev_timer_stop(c->s->loop, &c->timer);
    ev_timer_set(&c->timer, seconds, 0.0);
    ev_timer_start(c->s->loop, &c->timer);
}

/* Close now, free before the loop next blocks (on_reap). */
static void close_client(struct client *c)
{
    struct drv_metrics_server *s = c->s;
    if (c->closed)
        return;
    c->closed = true;
    ev_io_stop(s->loop, &c->io);
    ev_timer_stop(s->loop, &c->timer);
    close(c->fd);
    c->fd = -1;
    if (c->older)
        c->older->newer = c->newer;
    else
        s->oldest = c->newer;
    if (c->newer)
        c->newer->older = c->older;
    else
        s->newest = c->older;
    s->nclients--;
    c->next_dead = s->dead;
    s->dead = c;
}

static void on_reap(struct ev_loop *loop, ev_prepare *p, int revents)
{
    (void)loop;
    (void)revents;
    struct drv_metrics_server *s =
        drv_container_of(p, struct drv_metrics_server, reaper);
    while (s->dead) {
        struct client *c = s->dead;
        s->dead = c->next_dead;
        drv_buf_free(&c->out);
        free(c);
    }
}

/* ---- answering ---- */

/* Our side is done: drain what the client still sends, then close. */
static void start_linger(struct client *c)
{
    if (shutdown(c->fd, SHUT_WR) != 0) {
        close_client(c);
        return;
    }
    c->state = LINGER;
    set_events(c, EV_READ);
    set_timer(c, LINGER_SECONDS);
}

static void flush(struct client *c)
{
    while (drv_buf_size(&c->out)) {
        ssize_t n = write(c->fd, drv_buf_data(&c->out), drv_buf_size(&c->out));
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && errno == EAGAIN) {
            set_events(c, EV_WRITE);
            set_timer(c, WRITE_SECONDS);
            return;
        }
        if (n < 0) {
            close_client(c);
            return;
        }
        drv_buf_consume(&c->out, (size_t)n);
    }
    start_linger(c);
}

static void answer(struct client *c, int status, const char *type,
                   const char *extra, const char *body, size_t len,
                   bool head_only)
{
    char date[64];
    time_t now = time(NULL);
    struct tm tm;
    gmtime_r(&now, &tm);
    strftime(date, sizeof(date), "%a, %d %b %Y %H:%M:%S GMT", &tm);
    drv_buf_printf(&c->out,
                   "HTTP/1.1 %d %s\r\nServer: drover\r\nDate: %s\r\n"
                   "Content-Type: %s\r\nContent-Length: %zu\r\n%s"
                   "Cache-Control: no-store\r\nConnection: close\r\n\r\n",
                   status, drv_status_reason(status), date, type, len,
                   extra ? extra : "");
    if (!head_only)
        drv_buf_append(&c->out, body, len);
    c->state = WRITING;
    ev_timer_stop(c->s->loop, &c->timer);
    flush(c);
}

static void answer_text(struct client *c, int status, const char *extra,
                        bool head_only)
{
    char text[64];
    int len = snprintf(text, sizeof(text), "%s\n", drv_status_reason(status));
    answer(c, status, "text/plain; charset=utf-8", extra, text, (size_t)len,
           head_only);
}

static bool is_page(const char *path, size_t len, const char *name)
{
    return len == strlen(name) && memcmp(path, name, len) == 0;
}

static bool page_of(const char *path, size_t len, enum drv_metrics_page *p)
{
    static const struct {
        const char *path;
        enum drv_metrics_page page;
    } pages[] = {
        {"/metrics", DRV_PAGE_METRICS},
        {"/healthz", DRV_PAGE_HEALTHZ},
        {"/readyz", DRV_PAGE_READYZ},
        {"/status", DRV_PAGE_STATUS},
    };
    for (size_t i = 0; i < sizeof(pages) / sizeof(pages[0]); i++)
        if (is_page(path, len, pages[i].path)) {
            *p = pages[i].page;
            return true;
        }
    return false;
}

/* A token of the method: upper-case letters (every registered method). */
static size_t method_len(const char *p, size_t len)
{
    size_t n = 0;
    while (n < len && n < 16 && p[n] >= 'A' && p[n] <= 'Z')
        n++;
    return n;
}

/* The request line is `line` (len bytes, no line end): answer it. */
static void serve(struct client *c, const char *line, size_t len)
{
    size_t m = method_len(line, len);
    const char *target = line + m + 1;
    const char *sp = m && m < len && line[m] == ' '
                         ? memchr(target, ' ', len - m - 1)
                         : NULL;
    const char *version = sp ? sp + 1 : NULL;
    size_t vlen = version ? (size_t)(line + len - version) : 0;
    if (!sp || sp == target || target[0] != '/' || vlen != 8 ||
        memcmp(version, "HTTP/1.", 7) != 0 || version[7] < '0' ||
        version[7] > '9') {
        answer_text(c, 400, NULL, false);
        return;
    }
    bool head = m == 4 && memcmp(line, "HEAD", 4) == 0;
    if (!head && !(m == 3 && memcmp(line, "GET", 3) == 0)) {
        answer_text(c, 405, "Allow: GET, HEAD\r\n", false);
        return;
    }
    const char *q = memchr(target, '?', (size_t)(sp - target));
    size_t plen = (size_t)((q ? q : sp) - target);
    enum drv_metrics_page page;
    if (!page_of(target, plen, &page)) {
        answer_text(c, 404, NULL, head);
        return;
    }
    struct drv_buf body = {0};
    const char *type = "text/plain; charset=utf-8";
    int status = c->s->page(c->s->arg, page, &body, &type);
    answer(c, status, type, NULL, drv_buf_data(&body), drv_buf_size(&body),
           head);
    drv_buf_free(&body);
}

/* Whether head[0..got) holds a whole head (it ends with an empty line),
 * with its request line's length in *line. A bare LF ends lines as well
 * as CRLF (RFC 9112 2.2 lets a recipient accept it). Bytes already
 * scanned are not scanned again, so a client sending one byte at a time
 * costs no more than one sending it all. */
static bool head_complete(struct client *c, size_t *line)
{
    const char *p = c->head;
    size_t i = c->scanned > 2 ? c->scanned - 2 : 0;
    for (; i + 1 < c->got; i++) {
        if (p[i] != '\n')
            continue;
        if (p[i + 1] == '\n' ||
            (p[i + 1] == '\r' && i + 2 < c->got && p[i + 2] == '\n')) {
            const char *nl = memchr(p, '\n', c->got);
            *line = (size_t)(nl - p) - (nl > p && nl[-1] == '\r');
            return true;
        }
    }
    c->scanned = c->got;
    return false;
}

static void on_readable(struct client *c)
{
    if (c->state == LINGER) {
        char sink[4096];
        ssize_t n = read(c->fd, sink, sizeof(sink));
        if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR))
            close_client(c);
        return;
    }
    ssize_t n = read(c->fd, c->head + c->got, sizeof(c->head) - c->got);
    if (n < 0 && (errno == EAGAIN || errno == EINTR))
        return;
    if (n <= 0) {
        close_client(c);
        return;
    }
    c->got += (size_t)n;
    size_t line;
    if (head_complete(c, &line)) {
        serve(c, c->head, line);
        return;
    }
    if (c->got == sizeof(c->head))
        answer_text(c, 431, NULL, false);
}

static void on_client(struct ev_loop *loop, ev_io *io, int revents)
{
    (void)loop;
    struct client *c = drv_container_of(io, struct client, io);
    if (revents & EV_WRITE && c->state == WRITING)
        flush(c);
    else if (revents & EV_READ && c->state != WRITING)
        on_readable(c);
}

static void on_client_timer(struct ev_loop *loop, ev_timer *t, int revents)
{
    (void)loop;
    (void)revents;
    struct client *c = drv_container_of(t, struct client, timer);
    if (c->state == READING && c->got > 0)
        answer_text(c, 408, NULL, false);
    else
        close_client(c);
}

/* ---- accepting ---- */

/* The client to drop for a new one: the oldest that has sent nothing,
 * else the oldest. */
static struct client *victim(struct drv_metrics_server *s)
{
    for (struct client *c = s->oldest; c; c = c->newer)
        if (c->state == READING && c->got == 0)
            return c;
    return s->oldest;
}

static void take(struct drv_metrics_server *s, int fd)
{
    if (s->nclients >= DRV_METRICS_MAX_CLIENTS)
        close_client(victim(s));
    struct client *c = drv_xcalloc(1, sizeof(*c));
    c->s = s;
    c->fd = fd;
    c->older = s->newest;
    if (s->newest)
        s->newest->newer = c;
    else
        s->oldest = c;
    s->newest = c;
    s->nclients++;
    ev_io_init(&c->io, on_client, fd, EV_READ);
    ev_init(&c->timer, on_client_timer);
    ev_io_start(s->loop, &c->io);
    set_timer(c, DRV_METRICS_HEAD_SECONDS);
    on_readable(c); /* the request is usually there already */
}

static void set_accepting(struct drv_metrics_server *s, bool on)
{
    for (size_t i = 0; i < s->naccepts; i++) {
        if (on)
            ev_io_start(s->loop, &s->accepts[i].io);
        else
            ev_io_stop(s->loop, &s->accepts[i].io);
    }
}

static void on_accept(struct ev_loop *loop, ev_io *io, int revents)
{
    (void)loop;
    (void)revents;
    struct accept_watch *aw = drv_container_of(io, struct accept_watch, io);
    struct drv_metrics_server *s = aw->s;
    for (int i = 0; i < ACCEPT_BATCH; i++) {
        int fd = accept4(aw->listener->fd, NULL, NULL,
                         SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd >= 0) {
            take(s, fd);
            continue;
        }
        if (errno == EINTR || errno == ECONNABORTED)
            continue;
        if (errno == EAGAIN)
            return;
        drv_log_errno(errno, "accept4", "metrics listener %s",
                      aw->listener->name);
        if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS ||
            errno == ENOMEM) {
            /* Level-triggered accept would spin: pause. */
            set_accepting(s, false);
            ev_timer_start(s->loop, &s->accept_pause);
        }
        return;
    }
}

static void on_accept_pause(struct ev_loop *loop, ev_timer *t, int revents)
{
    (void)loop;
    (void)revents;
    set_accepting(drv_container_of(t, struct drv_metrics_server, accept_pause),
                  true);
}

struct drv_metrics_server *drv_metrics_server_start(struct ev_loop *loop,
                                                    struct drv_listener *l,
                                                    size_t n,
                                                    drv_metrics_page_cb page,
                                                    void *arg)
{
    struct drv_metrics_server *s = drv_xcalloc(1, sizeof(*s));
    s->loop = loop;
    s->page = page;
    s->arg = arg;
    s->accepts = drv_xcalloc(n ? n : 1, sizeof(*s->accepts));
    s->naccepts = n;
    for (size_t i = 0; i < n; i++) {
        struct accept_watch *aw = &s->accepts[i];
        aw->s = s;
        aw->listener = &l[i];
        ev_io_init(&aw->io, on_accept, l[i].fd, EV_READ);
    }
    set_accepting(s, true);
    ev_timer_init(&s->accept_pause, on_accept_pause, ACCEPT_PAUSE_SECONDS,
                  0.0);
    ev_prepare_init(&s->reaper, on_reap);
    ev_prepare_start(loop, &s->reaper);
    return s;
}

void drv_metrics_server_free(struct drv_metrics_server *s)
{
    if (!s)
        return;
    while (s->oldest)
        close_client(s->oldest);
    set_accepting(s, false);
    ev_timer_stop(s->loop, &s->accept_pause);
    ev_prepare_stop(s->loop, &s->reaper);
    on_reap(s->loop, &s->reaper, 0);
    free(s->accepts);
    free(s);
}

void drv_metrics_server_forget(struct drv_metrics_server *s)
{
    if (!s)
        return;
    for (struct client *c = s->oldest, *next; c; c = next) {
        next = c->newer;
        close(c->fd);
        drv_buf_free(&c->out);
        free(c);
    }
    while (s->dead) {
        struct client *c = s->dead;
        s->dead = c->next_dead;
        drv_buf_free(&c->out);
        free(c);
    }
    free(s->accepts);
    free(s);
}
