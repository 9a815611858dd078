/*
 * status: fetch GET /status from the master's metrics listener, parse
 * it, print it; see status.h.
 *
 * The client is as plain as the server: one blocking socket with send
 * and receive timeouts, one request, read until the master closes.
 */
#include "status.h"

#include <errno.h>
#include <netdb.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "address.h"
#include "buf.h"
#include "settings.h"

#define TIMEOUT_SECONDS 5
#define ANSWER_MAX (8u << 20)

enum { EXIT_UNREACHABLE = 1, EXIT_CONFIG = 2 };

/* ---- formatting ---- */

void drv_status_age(uint64_t ms, char *buf, size_t len)
{
    uint64_t s = ms / 1000;
    if (s < 60)
        snprintf(buf, len, "%llus", (unsigned long long)s);
    else if (s < 3600)
        snprintf(buf, len, "%llum%02llus", (unsigned long long)(s / 60),
                 (unsigned long long)(s % 60));
    else if (s < 86400)
        snprintf(buf, len, "%lluh%02llum", (unsigned long long)(s / 3600),
                 (unsigned long long)(s % 3600 / 60));
    else
        snprintf(buf, len, "%llud%02lluh", (unsigned long long)(s / 86400),
                 (unsigned long long)(s % 86400 / 3600));
}

void drv_status_bytes(int64_t bytes, char *buf, size_t len)
{
    if (bytes < 0)
        snprintf(buf, len, "-");
    else if (bytes < 1024 * 1024)
        snprintf(buf, len, "%lldK", (long long)(bytes / 1024));
    else if (bytes < (int64_t)1024 * 1024 * 1024)
        snprintf(buf, len, "%.1fM", (double)bytes / (1024.0 * 1024));
    else
        snprintf(buf, len, "%.1fG", (double)bytes / (1024.0 * 1024 * 1024));
}

/* Print `text` cut to `width` columns ("..." marks a cut), then a line
 * end. */
static void put_line(FILE *out, const char *text, int width)
{
    int len = (int)strlen(text);
    if (len <= width)
        fprintf(out, "%s\n", text);
    else
        fprintf(out, "%.*s...\n", width - 3, text);
}

static void print_worker(const struct drv_status_worker *w, FILE *out,
                         int width)
{
    char age[32], mem[32], busy[32] = "", line[512];
    drv_status_age(w->age_ms, age, sizeof(age));
    drv_status_bytes(w->rss, mem, sizeof(mem));
    if (strcmp(w->state, "busy") == 0)
        snprintf(busy, sizeof(busy), "%.1fs", (double)w->busy_ms / 1000);
    snprintf(line, sizeof(line), "%4u %7d  %-8s %7s %9llu %7s  %s%s%s",
             w->number, w->pid, w->state, age,
             (unsigned long long)w->requests, mem, busy, busy[0] ? " " : "",
             busy[0] ? w->request : "");
    /* No trailing blanks on an idle worker's line. */
    size_t n = strlen(line);
    while (n && line[n - 1] == ' ')
        line[--n] = '\0';
    put_line(out, line, width);
}

void drv_status_print(const struct drv_status *st, FILE *out, int width)
{
    char up[32], line[512];
    if (width < 40)
        width = 40;
    drv_status_age(st->uptime_ms, up, sizeof(up));
    snprintf(line, sizeof(line),
             "drover master %d, up %s, generation %u: %zu worker(s) (%d "
             "wanted), %s",
             st->pid, up, st->generation, st->nworkers, st->workers_wanted,
             st->ready ? "ready" : "NOT READY");
    put_line(out, line, width);
    put_line(out, "SLOT     PID  STATE        AGE      REQS     MEM  REQUEST",
             width);
    for (size_t i = 0; i < st->nworkers; i++)
        print_worker(&st->workers[i], out, width);
    snprintf(line, sizeof(line),
             "total: %llu requests, %llu in flight, %llu connections, %llu "
             "restarts",
             (unsigned long long)st->requests,
             (unsigned long long)st->in_flight,
             (unsigned long long)st->conns,
             (unsigned long long)st->restarts);
    put_line(out, line, width);
    for (size_t i = 0; i < st->nlisteners; i++) {
        const struct drv_status_listener *l = &st->listeners[i];
        if (l->queue < 0)
            snprintf(line, sizeof(line), "listen queue: %s: unknown", l->name);
        else
            snprintf(line, sizeof(line), "listen queue: %lld of %lld: %s",
                     (long long)l->queue, (long long)l->max, l->name);
        put_line(out, line, width);
    }
}

/* ---- parsing ---- */

/* The text after the first `skip` space-separated fields of `line`. */
static const char *after_fields(const char *line, int skip)
{
    const char *p = line;
    for (int i = 0; i < skip && p; i++) {
        p = strchr(p, ' ');
        if (p)
            p++;
    }
    return p ? p : "";
}

static void copy_rest(char *dst, size_t len, const char *src)
{
    snprintf(dst, len, "%s", strcmp(src, "-") == 0 ? "" : src);
}

static int parse_line(struct drv_status *st, char *line, bool *master)
{
    if (strncmp(line, "master ", 7) == 0) {
        int ready;
        unsigned long long up;
        if (sscanf(line + 7, "%d %u %llu %d %d", &st->pid, &st->generation,
                   &up, &ready, &st->workers_wanted) != 5)
            return -1;
        st->uptime_ms = up;
        st->ready = ready == 1;
        *master = true;
    } else if (strncmp(line, "worker ", 7) == 0) {
        struct drv_status_worker w = {0};
        unsigned long long age, req, busy;
        long long rss;
        if (sscanf(line + 7, "%u %d %15s %llu %llu %lld %llu", &w.number,
                   &w.pid, w.state, &age, &req, &rss, &busy) != 7)
            return -1;
        w.age_ms = age;
        w.requests = req;
        w.rss = rss;
        w.busy_ms = busy;
        copy_rest(w.request, sizeof(w.request), after_fields(line, 8));
        st->workers = drv_xrealloc(st->workers,
                                   (st->nworkers + 1) * sizeof(w));
        st->workers[st->nworkers++] = w;
    } else if (strncmp(line, "totals ", 7) == 0) {
        unsigned long long r, f, c, x;
        if (sscanf(line + 7, "%llu %llu %llu %llu", &r, &f, &c, &x) != 4)
            return -1;
        st->requests = r;
        st->in_flight = f;
        st->conns = c;
        st->restarts = x;
    } else if (strncmp(line, "listener ", 9) == 0) {
        struct drv_status_listener l = {0};
        long long q, m;
        if (sscanf(line + 9, "%lld %lld", &q, &m) != 2)
            return -1;
        l.queue = q;
        l.max = m;
        copy_rest(l.name, sizeof(l.name), after_fields(line, 3));
        st->listeners = drv_xrealloc(st->listeners,
                                     (st->nlisteners + 1) * sizeof(l));
        st->listeners[st->nlisteners++] = l;
    }
    return 0;
}

int drv_status_parse(const char *text, struct drv_status *st)
{
    memset(st, 0, sizeof(*st));
    if (strncmp(text, "drover-status 1\n", 16) != 0)
        return -1;
    char *copy = drv_xstrdup(text + 16), *p = copy, *line;
    bool master = false;
    int rc = 0;
    while (rc == 0 && (line = strsep(&p, "\n")))
        rc = parse_line(st, line, &master);
    free(copy);
    if (rc != 0 || !master) {
        drv_status_free(st);
        return -1;
    }
    return 0;
}

void drv_status_free(struct drv_status *st)
{
    free(st->workers);
    free(st->listeners);
    memset(st, 0, sizeof(*st));
}

/* ---- the client ---- */

/* A socket connected to the metrics address `spec`. Returns the fd, or
 * -1 with a reason in err. A wildcard host is reached on loopback. */
static int connect_to(const char *spec, char *err, size_t errlen)
{
    struct drv_addr a;
    char why[128];
    if (drv_addr_parse(spec, &a, why, sizeof(why)) != 0) {
        snprintf(err, errlen, "bad metrics address '%s': %s", spec, why);
        return -1;
    }
    struct timeval tv = {.tv_sec = TIMEOUT_SECONDS};
    if (a.kind == DRV_ADDR_UNIX) {
        int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        struct sockaddr_un sun = {.sun_family = AF_UNIX};
        snprintf(sun.sun_path, sizeof(sun.sun_path), "%s", a.path);
        if (fd >= 0) {
            setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
            setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
        }
        if (fd < 0 || connect(fd, (struct sockaddr *)&sun, sizeof(sun)) != 0) {
            snprintf(err, errlen, "%s", strerror(errno));
            if (fd >= 0)
                close(fd);
            return -1;
        }
        return fd;
    }
    if (a.kind != DRV_ADDR_TCP) {
        snprintf(err, errlen, "'%s' is not a TCP or unix address", spec);
        return -1;
    }
    const char *host = strcmp(a.host, "0.0.0.0") == 0 ? "127.0.0.1"
                       : strcmp(a.host, "::") == 0    ? "::1"
                                                      : a.host;
    char port[16];
    snprintf(port, sizeof(port), "%d", a.port);
    struct addrinfo hints = {.ai_socktype = SOCK_STREAM}, *res, *ai;
    int rc = getaddrinfo(host, port, &hints, &res);
    if (rc != 0) {
        snprintf(err, errlen, "%s", gai_strerror(rc));
        return -1;
    }
    int fd = -1;
    snprintf(err, errlen, "no address");
    for (ai = res; ai && fd < 0; ai = ai->ai_next) {
        fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC, 0);
        if (fd < 0)
            continue;
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
        if (connect(fd, ai->ai_addr, ai->ai_addrlen) != 0) {
            snprintf(err, errlen, "%s", strerror(errno));
            close(fd);
            fd = -1;
        }
    }
    freeaddrinfo(res);
    return fd;
}

/* GET /status. Returns 0 with the body in *body (NUL-terminated), or -1
 * with a reason in err. */
static int fetch(const char *spec, struct drv_buf *body, char *err,
                 size_t errlen)
{
    char why[512];
    int fd = connect_to(spec, why, sizeof(why));
    if (fd < 0) {
        snprintf(err, errlen, "cannot reach the master at %s: %s", spec, why);
        return -1;
    }
    static const char req[] = "GET /status HTTP/1.1\r\nHost: drover\r\n"
                              "Connection: close\r\n\r\n";
    struct drv_buf in = {0};
    int rc = -1;
    if (send(fd, req, sizeof(req) - 1, MSG_NOSIGNAL) !=
        (ssize_t)sizeof(req) - 1) {
        snprintf(err, errlen, "the master at %s: send: %s", spec,
                 strerror(errno));
        goto out;
    }
    for (;;) {
        drv_buf_reserve(&in, 16384);
        ssize_t n = recv(fd, in.base + in.len, in.cap - in.len, 0);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            snprintf(err, errlen, "the master at %s: recv: %s", spec,
                     errno == EAGAIN ? "timed out" : strerror(errno));
            goto out;
        }
        if (n == 0)
            break;
        in.len += (size_t)n;
        if (drv_buf_size(&in) > ANSWER_MAX) {
            snprintf(err, errlen, "the master at %s: answer too large",
                     spec);
            goto out;
        }
    }
    drv_buf_append(&in, "", 1);
    const char *text = drv_buf_data(&in);
    const char *start = strstr(text, "\r\n\r\n");
    int status = 0;
    if (sscanf(text, "HTTP/1.%*d %d", &status) != 1 || !start) {
        snprintf(err, errlen, "the master at %s: not an HTTP answer", spec);
        goto out;
    }
    if (status != 200) {
        snprintf(err, errlen, "the master at %s answered GET /status with "
                 "%d", spec, status);
        goto out;
    }
    drv_buf_puts(body, start + 4);
    drv_buf_append(body, "", 1);
    rc = 0;
out:
    drv_buf_free(&in);
    close(fd);
    return rc;
}

/* One look: fetch, parse, print. Returns 0, or -1 with err filled. */
static int show(const char *spec, bool clear, char *err, size_t errlen)
{
    struct drv_buf body = {0};
    struct drv_status st;
    int rc = fetch(spec, &body, err, errlen);
    if (rc == 0 && drv_status_parse(drv_buf_data(&body), &st) != 0) {
        snprintf(err, errlen, "the master at %s: GET /status: not a status "
                 "this drover reads", spec);
        rc = -1;
    }
    drv_buf_free(&body);
    int width = 80;
    struct winsize ws;
    if (isatty(STDOUT_FILENO) && ioctl(STDOUT_FILENO, TIOCGWINSZ, &ws) == 0 &&
        ws.ws_col > 0)
        width = ws.ws_col;
    if (clear)
        fputs("\033[H\033[2J", stdout);
    if (rc == 0) {
        drv_status_print(&st, stdout, width);
        drv_status_free(&st);
    }
    fflush(stdout);
    return rc;
}

static volatile sig_atomic_t interrupted;

static void on_interrupt(int sig)
{
    (void)sig;
    interrupted = 1;
}

static int watch(const char *spec)
{
    struct sigaction sa = {.sa_handler = on_interrupt};
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    while (!interrupted) {
        char err[512];
        if (show(spec, true, err, sizeof(err)) != 0)
            printf("drover status: %s\n", err);
        fflush(stdout);
        struct timespec second = {.tv_sec = 1};
        nanosleep(&second, NULL); /* a signal cuts it short */
    }
    return 0;
}

static void usage(FILE *out)
{
    fputs("usage: drover status [--watch] [--metrics-bind ADDRESS | -c "
          "FILE]\n\n"
          "Show a running drover's workers (slot, pid, state, age, "
          "requests,\nmemory, the request a busy worker serves), the "
          "totals and the\nlisten queue, from the master's metrics "
          "listener (GET /status).\nThe address is read like drover's "
          "own settings: --metrics-bind,\nDROVER_METRICS_BIND, or "
          "metrics_bind in the YAML file (-c).\n\n"
          "  --watch   refresh every second, until Ctrl-C\n",
          out);
}

int drv_status_main(int argc, char **argv, char **envp)
{
    bool watching = false;
    char **args = drv_xcalloc((size_t)argc + 1, sizeof(*args));
    int n = 0;
    args[n++] = "drover status";
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--watch") == 0) {
            watching = true;
        } else if (strcmp(argv[i], "-h") == 0 ||
                   strcmp(argv[i], "--help") == 0) {
            usage(stdout);
            free(args);
            return 0;
        } else {
            args[n++] = argv[i];
        }
    }
    struct drv_settings s;
    enum drv_action action;
    char err[1024] = "";
    int rc = drv_settings_load(&s, n, args, envp, &action, err, sizeof(err));
    free(args);
    if (rc != 0) {
        fprintf(stderr, "drover status: %s\n", err);
        return EXIT_CONFIG;
    }
    if (!s.metrics_bind) {
        fprintf(stderr, "drover status: no metrics address: give "
                        "--metrics-bind ADDRESS, or -c with a file that "
                        "sets metrics_bind\n");
        drv_settings_free(&s);
        return EXIT_CONFIG;
    }
    if (watching) {
        rc = watch(s.metrics_bind);
    } else if (show(s.metrics_bind, false, err, sizeof(err)) != 0) {
        fprintf(stderr, "drover status: %s\n", err);
        rc = EXIT_UNREACHABLE;
    }
    drv_settings_free(&s);
    return rc;
}
