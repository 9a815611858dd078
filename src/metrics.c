/*
 * metrics: a snapshot of the scoreboard, /proc and the listeners, and
 * its two renderings; see metrics.h.
 *
 * The snapshot is taken in the master's loop when a request for it
 * arrives: a pass over the slots (relaxed loads; a worker may count a
 * request meanwhile, so a histogram's buckets and its sum can differ by
 * that request, which Prometheus tolerates), one small read of /proc per
 * worker, one getsockopt per listener. Nothing is cached between scrapes.
 */
#include "metrics.h"

#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "listener.h"

const char *const drv_worker_state_names[DRV_WORKER_STATES] = {
    [DRV_WORKER_BOOTING] = "booting",
    [DRV_WORKER_IDLE] = "idle",
    [DRV_WORKER_BUSY] = "busy",
    [DRV_WORKER_STOPPING] = "stopping",
};

const char *const drv_restart_names[DRV_RESTART_REASONS] = {
    [DRV_RESTART_MAX_REQUESTS] = "max_requests",
    [DRV_RESTART_MEMORY] = "memory",
    [DRV_RESTART_TIMEOUT] = "timeout",
    [DRV_RESTART_CRASH] = "crash",
    [DRV_RESTART_RELOAD] = "reload",
    [DRV_RESTART_SCALE] = "scale",
};

/* ---- X-Request-Start ---- */

bool drv_metrics_request_start(const char *p, size_t len, uint64_t *epoch_us)
{
    const char *end = p + len;
    while (p < end && (*p == ' ' || *p == '\t'))
        p++;
    while (end > p && (end[-1] == ' ' || end[-1] == '\t'))
        end--;
    if (end - p >= 2 && p[0] == 't' && p[1] == '=')
        p += 2;
    double v = 0, scale = 1;
    int digits = 0;
    for (; p < end && *p >= '0' && *p <= '9'; p++, digits++)
        v = v * 10 + (*p - '0');
    if (digits == 0 || digits > 20)
        return false;
    if (p < end && *p == '.') {
        int frac = 0;
        for (p++; p < end && *p >= '0' && *p <= '9'; p++, frac++)
            if (frac < 9)
                v += (*p - '0') * (scale /= 10);
        if (frac == 0)
            return false;
    }
    if (p != end)
        return false;
    if (v < 1e11)
        v *= 1e6; /* seconds */
    else if (v < 1e14)
        v *= 1e3; /* milliseconds */
    else if (v < 1e17)
        ;         /* microseconds */
    else if (v < 1e20)
        v /= 1e3; /* nanoseconds */
    else
        return false;
    *epoch_us = (uint64_t)v;
    return true;
}

bool drv_metrics_queue_us(const char *p, size_t len, uint64_t now_us,
                          uint64_t *us)
{
    uint64_t start;
    if (!drv_metrics_request_start(p, len, &start) || start > now_us ||
        now_us - start > DRV_QUEUE_MAX_US)
        return false;
    *us = now_us - start;
    return true;
}

/* ---- reading /proc ---- */

/* A small file's text, NUL-terminated; false if unreadable. */
static bool read_text(const char *path, char *buf, size_t len)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return false;
    size_t got = 0;
    while (got + 1 < len) {
        ssize_t n = read(fd, buf + got, len - 1 - got);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        got += (size_t)n;
    }
    close(fd);
    buf[got] = '\0';
    return got > 0;
}

static int64_t page_size(void)
{
    long v = sysconf(_SC_PAGESIZE);
    return v > 0 ? v : 4096;
}

/* Resident bytes of `pid` (/proc/PID/statm's second field), or -1. */
static int64_t resident(int pid)
{
    char path[64], text[256];
    unsigned long long size, res;
    snprintf(path, sizeof(path), "/proc/%d/statm", pid);
    if (!read_text(path, text, sizeof(text)) ||
        sscanf(text, "%llu %llu", &size, &res) != 2)
        return -1;
    return (int64_t)res * page_size();
}

/* The boot time in seconds since the epoch (/proc/stat's btime), or 0. */
static double boot_time(void)
{
    static double btime; /* does not change while we run */
    if (btime > 0)
        return btime;
    char text[16384];
    if (!read_text("/proc/stat", text, sizeof(text)))
        return 0;
    const char *p = strstr(text, "\nbtime ");
    unsigned long long v;
    if (p && sscanf(p + 7, "%llu", &v) == 1)
        btime = (double)v;
    return btime;
}

/* The master's own figures from /proc/self/stat (proc(5): utime is
 * field 14, stime 15, starttime 22, rss 24; the command name in field 2
 * may hold spaces, so fields are counted from its closing parenthesis). */
static void process_figures(struct drv_metrics *m)
{
    char text[1024];
    m->rss = -1;
    if (!read_text("/proc/self/stat", text, sizeof(text)))
        return;
    char *p = strrchr(text, ')');
    if (!p)
        return;
    for (p++; *p == ' '; p++)
        ;
    if (*p)
        p++; /* the state letter, field 3 */
    unsigned long long f[25] = {0};
    for (int field = 4; field <= 24; field++)
        f[field] = strtoull(p, &p, 10);
    long tck = sysconf(_SC_CLK_TCK);
    if (tck <= 0)
        tck = 100;
    m->cpu_seconds = (double)(f[14] + f[15]) / (double)tck;
    m->start_time = boot_time() + (double)f[22] / (double)tck;
    m->rss = (int64_t)f[24] * page_size();
}

int64_t drv_metrics_netstat_value(const char *text, const char *prefix,
                                  const char *name)
{
    size_t plen = strlen(prefix), nlen = strlen(name);
    for (const char *line = text; line && *line;) {
        const char *next = strchr(line, '\n');
        if (strncmp(line, prefix, plen) != 0 || !next) {
            line = next ? next + 1 : NULL;
            continue;
        }
        /* `line` names the fields, `next + 1` holds their values. */
        const char *values = next + 1;
        if (strncmp(values, prefix, plen) != 0)
            return -1;
        const char *n = line + plen, *v = values + plen;
        for (;;) {
            while (*n == ' ')
                n++;
            while (*v == ' ')
                v++;
            if (*n == '\n' || *n == '\0' || *v == '\n' || *v == '\0')
                break;
            size_t len = strcspn(n, " \n");
            if (len == nlen && strncmp(n, name, nlen) == 0) {
                char *end;
                long long x = strtoll(v, &end, 10);
                return end != v && x >= 0 ? x : -1;
            }
            n += len;
            v += strcspn(v, " \n");
        }
        line = strchr(values, '\n');
        line = line ? line + 1 : NULL;
    }
    return -1;
}

static int64_t listen_overflows(void)
{
    static char text[32768]; /* the master's loop only */
    if (!read_text("/proc/net/netstat", text, sizeof(text)))
        return -1;
    return drv_metrics_netstat_value(text, "TcpExt:", "ListenOverflows");
}

/* A listening TCP socket's accept queue: Linux reports its length in
 * tcpi_unacked and its limit in tcpi_sacked (tcp_get_info, LISTEN). */
static void accept_queue(const struct drv_listener *l,
                         struct drv_metrics_listener *out)
{
    snprintf(out->name, sizeof(out->name), "%s", l->name);
    out->queue = out->max = -1;
    if (l->family != AF_INET && l->family != AF_INET6)
        return;
    struct tcp_info ti;
    socklen_t len = sizeof(ti);
    memset(&ti, 0, sizeof(ti));
    if (getsockopt(l->fd, IPPROTO_TCP, TCP_INFO, &ti, &len) != 0 ||
        ti.tcpi_state != TCP_LISTEN)
        return;
    out->queue = ti.tcpi_unacked;
    out->max = ti.tcpi_sacked;
}

/* ---- the snapshot ---- */

static enum drv_worker_state worker_state(const struct drv_slot *slot)
{
    switch (drv_slot_state(slot)) {
    case DRV_SLOT_BOOTING:
        return DRV_WORKER_BOOTING;
    case DRV_SLOT_STOPPING:
        return DRV_WORKER_STOPPING;
    default:
        return drv_slot_load(&slot->busy_since_ms) ? DRV_WORKER_BUSY
                                                   : DRV_WORKER_IDLE;
    }
}

static void add_codes(struct drv_metrics *m, const struct drv_slot *slot)
{
    for (unsigned i = 0; i < DRV_SLOT_CODES; i++) {
        uint64_t n;
        int code = drv_slot_code_at(slot, i, &n);
        if (code >= DRV_STATUS_MIN && code <= DRV_STATUS_MAX)
            m->codes[code - DRV_STATUS_MIN] += n;
    }
}

static void take_worker(struct drv_metrics *m, const struct drv_slot *slot,
                        uint64_t now_ms)
{
    struct drv_metrics_worker *w = &m->workers[m->nworkers++];
    w->number = slot->number;
    w->pid = slot->pid;
    w->state = worker_state(slot);
    w->age_ms = now_ms > slot->started_ms ? now_ms - slot->started_ms : 0;
    w->requests = drv_slot_load(&slot->requests);
    w->rss = resident(slot->pid);
    uint64_t busy = drv_slot_load(&slot->busy_since_ms);
    if (busy && w->state == DRV_WORKER_BUSY) {
        w->busy_ms = now_ms > busy ? now_ms - busy : 0;
        /* Written by the worker as we read: a torn line is harmless. */
        memcpy(w->request, slot->request, sizeof(w->request));
        w->request[sizeof(w->request) - 1] = '\0';
    }
    m->states[w->state]++;
    m->requests += w->requests;
    m->in_flight += drv_slot_load(&slot->in_flight);
    m->conns += drv_slot_load(&slot->conns);
    m->threads_busy += drv_slot_load(&slot->threads_busy);
    add_codes(m, slot);
    drv_hist_add(&m->duration, &slot->duration);
    drv_hist_add(&m->queue, &slot->queue);
}

static void take_totals(struct drv_metrics *m, const struct drv_totals *t)
{
    m->requests += drv_slot_load(&t->requests);
    for (size_t i = 0; i < DRV_STATUS_CODES; i++)
        m->codes[i] += drv_slot_load(&t->codes[i]);
    drv_hist_add(&m->duration, &t->duration);
    drv_hist_add(&m->queue, &t->queue);
    for (size_t i = 0; i < DRV_RESTART_REASONS; i++)
        m->restarts[i] = drv_slot_load(&t->restarts[i]);
}

void drv_metrics_collect(struct drv_metrics *m, const struct drv_scoreboard *sb,
                         const struct drv_listener *l, size_t nl,
                         uint64_t now_ms)
{
    memset(m, 0, sizeof(*m));
    m->pid = (int)getpid();
    size_t live = 0;
    for (size_t i = 0; i < sb->nslots; i++)
        live += drv_slot_state(&sb->slots[i]) != DRV_SLOT_FREE;
    m->workers = drv_xcalloc(live ? live : 1, sizeof(*m->workers));
    for (size_t i = 0; i < sb->nslots && m->nworkers < live; i++)
        if (drv_slot_state(&sb->slots[i]) != DRV_SLOT_FREE)
            take_worker(m, &sb->slots[i], now_ms);
    if (sb->totals)
        take_totals(m, sb->totals);
    m->listeners = drv_xcalloc(nl ? nl : 1, sizeof(*m->listeners));
    for (size_t i = 0; i < nl; i++)
        if (l[i].fd >= 0)
            accept_queue(&l[i], &m->listeners[m->nlisteners++]);
    m->listen_overflows = listen_overflows();
    process_figures(m);
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    double now = (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
    if (m->start_time > 0 && now > m->start_time)
        m->uptime_ms = (uint64_t)((now - m->start_time) * 1000);
}

void drv_metrics_clear(struct drv_metrics *m)
{
    free(m->workers);
    free(m->listeners);
    memset(m, 0, sizeof(*m));
}

/* ---- Prometheus text format ---- */

static void family(struct drv_buf *out, const char *name, const char *type,
                   const char *help)
{
    drv_buf_printf(out, "# HELP %s %s\n# TYPE %s %s\n", name, help, name,
                   type);
}

/* A label value: backslash, double quote and line feed escaped. */
static void label_value(struct drv_buf *out, const char *v)
{
    for (; *v; v++) {
        if (*v == '\\' || *v == '"')
            drv_buf_printf(out, "\\%c", *v);
        else if (*v == '\n')
            drv_buf_puts(out, "\\n");
        else
            drv_buf_append(out, v, 1);
    }
}

static void labelled(struct drv_buf *out, const char *name, const char *label,
                     const char *value, unsigned long long n)
{
    drv_buf_printf(out, "%s{%s=\"", name, label);
    label_value(out, value);
    drv_buf_printf(out, "\"} %llu\n", n);
}

static void histogram(struct drv_buf *out, const char *name, const char *help,
                      const struct drv_hist *h)
{
    family(out, name, "histogram", help);
    unsigned long long cumulative = 0;
    for (unsigned i = 0; i <= DRV_HIST_BUCKETS; i++) {
        cumulative += h->count[i];
        if (i < DRV_HIST_BUCKETS)
            drv_buf_printf(out, "%s_bucket{le=\"%g\"} %llu\n", name,
                           (double)drv_hist_bounds_us[i] / 1e6, cumulative);
        else
            drv_buf_printf(out, "%s_bucket{le=\"+Inf\"} %llu\n", name,
                           cumulative);
    }
    drv_buf_printf(out, "%s_sum %.6f\n%s_count %llu\n", name,
                   (double)h->sum_us / 1e6, name, cumulative);
}

static void put_requests(const struct drv_metrics *m, struct drv_buf *out)
{
    const char *name = "drover_http_requests_total";
    family(out, name, "counter", "HTTP responses sent, by status code.");
    for (int i = 0; i < DRV_STATUS_CODES; i++) {
        if (!m->codes[i])
            continue;
        char code[8];
        snprintf(code, sizeof(code), "%d", i + DRV_STATUS_MIN);
        labelled(out, name, "code", code, m->codes[i]);
    }
    histogram(out, "drover_http_request_duration_seconds",
              "Time from a request's first byte to the end of its "
              "response.",
              &m->duration);
    family(out, "drover_http_requests_in_flight", "gauge",
           "Requests handed to the app and not yet answered.");
    drv_buf_printf(out, "drover_http_requests_in_flight %llu\n",
                   (unsigned long long)m->in_flight);
    histogram(out, "drover_request_queue_seconds",
              "Time from a trusted proxy receiving a request "
              "(X-Request-Start) to the app starting it.",
              &m->queue);
    family(out, "drover_connections_open", "gauge",
           "Client connections the workers hold open.");
    drv_buf_printf(out, "drover_connections_open %llu\n",
                   (unsigned long long)m->conns);
    if (m->threads) {
        family(out, "drover_app_threads_busy", "gauge",
               "App threads running a job, over all workers.");
        drv_buf_printf(out, "drover_app_threads_busy %llu\n",
                       (unsigned long long)m->threads_busy);
    }
}

static void put_workers(const struct drv_metrics *m, struct drv_buf *out)
{
    family(out, "drover_workers", "gauge", "Worker processes by state.");
    for (int i = 0; i < DRV_WORKER_STATES; i++)
        labelled(out, "drover_workers", "state", drv_worker_state_names[i],
                 m->states[i]);
    family(out, "drover_worker_restarts_total", "counter",
           "Workers replaced, by reason.");
    for (int i = 0; i < DRV_RESTART_REASONS; i++)
        labelled(out, "drover_worker_restarts_total", "reason",
                 drv_restart_names[i], m->restarts[i]);
    family(out, "drover_worker_memory_bytes", "gauge",
           "Resident memory of each worker, by worker (slot) number.");
    for (size_t i = 0; i < m->nworkers; i++) {
        const struct drv_metrics_worker *w = &m->workers[i];
        if (w->rss < 0)
            continue;
        char number[16];
        snprintf(number, sizeof(number), "%u", w->number);
        labelled(out, "drover_worker_memory_bytes", "worker", number,
                 (unsigned long long)w->rss);
    }
}

static void put_kernel(const struct drv_metrics *m, struct drv_buf *out)
{
    family(out, "drover_listen_queue_length", "gauge",
           "Connections waiting in a listening socket's accept queue.");
    for (size_t i = 0; i < m->nlisteners; i++)
        if (m->listeners[i].queue >= 0)
            labelled(out, "drover_listen_queue_length", "listener",
                     m->listeners[i].name,
                     (unsigned long long)m->listeners[i].queue);
    family(out, "drover_listen_queue_max", "gauge",
           "Limit of a listening socket's accept queue (the backlog).");
    for (size_t i = 0; i < m->nlisteners; i++)
        if (m->listeners[i].max >= 0)
            labelled(out, "drover_listen_queue_max", "listener",
                     m->listeners[i].name,
                     (unsigned long long)m->listeners[i].max);
    family(out, "drover_listen_overflows_total", "counter",
           "Connections the kernel dropped because an accept queue was "
           "full (TcpExt ListenOverflows): counts every listening socket "
           "of the host or network namespace, not only drover's.");
    if (m->listen_overflows >= 0)
        drv_buf_printf(out, "drover_listen_overflows_total %llu\n",
                       (unsigned long long)m->listen_overflows);
}

static void put_process(const struct drv_metrics *m, struct drv_buf *out)
{
    family(out, "process_start_time_seconds", "gauge",
           "Start time of the master process since the epoch in seconds.");
    drv_buf_printf(out, "process_start_time_seconds %.2f\n", m->start_time);
    family(out, "process_cpu_seconds_total", "counter",
           "User and system CPU time of the master process in seconds.");
    drv_buf_printf(out, "process_cpu_seconds_total %.2f\n", m->cpu_seconds);
    family(out, "process_resident_memory_bytes", "gauge",
           "Resident memory of the master process in bytes.");
    if (m->rss >= 0)
        drv_buf_printf(out, "process_resident_memory_bytes %lld\n",
                       (long long)m->rss);
}

void drv_metrics_render(const struct drv_metrics *m, struct drv_buf *out)
{
    put_requests(m, out);
    put_workers(m, out);
    put_kernel(m, out);
    put_process(m, out);
}

/* ---- /status ---- */

/* Text to the end of a line, control characters as '?'. */
static void rest_of_line(struct drv_buf *out, const char *text)
{
    if (!*text)
        text = "-";
    for (const unsigned char *p = (const unsigned char *)text; *p; p++) {
        char c = *p < 0x20 || *p == 0x7f ? '?' : (char)*p;
        drv_buf_append(out, &c, 1);
    }
    drv_buf_puts(out, "\n");
}

void drv_metrics_render_status(const struct drv_metrics *m,
                               struct drv_buf *out)
{
    drv_buf_printf(out, "drover-status 1\nmaster %d %u %llu %d %d\n", m->pid,
                   m->generation, (unsigned long long)m->uptime_ms,
                   m->ready ? 1 : 0, m->workers_wanted);
    for (size_t i = 0; i < m->nworkers; i++) {
        const struct drv_metrics_worker *w = &m->workers[i];
        drv_buf_printf(out, "worker %u %d %s %llu %llu %lld %llu ", w->number,
                       w->pid, drv_worker_state_names[w->state],
                       (unsigned long long)w->age_ms,
                       (unsigned long long)w->requests, (long long)w->rss,
                       (unsigned long long)w->busy_ms);
        rest_of_line(out, w->busy_ms || w->state == DRV_WORKER_BUSY
                              ? w->request
                              : "");
    }
    unsigned long long restarts = 0;
    for (int i = 0; i < DRV_RESTART_REASONS; i++)
        restarts += m->restarts[i];
    drv_buf_printf(out, "totals %llu %llu %llu %llu\n",
                   (unsigned long long)m->requests,
                   (unsigned long long)m->in_flight,
                   (unsigned long long)m->conns, restarts);
    for (size_t i = 0; i < m->nlisteners; i++) {
        drv_buf_printf(out, "listener %lld %lld ",
                       (long long)m->listeners[i].queue,
                       (long long)m->listeners[i].max);
        rest_of_line(out, m->listeners[i].name);
    }
}
