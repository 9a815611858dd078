/*
 * metrics: what the master tells about its workers on --metrics-bind.
 *
 * drv_metrics_collect() takes a snapshot: the scoreboard (each live
 * slot's counters plus the totals of the workers that are gone), every
 * worker's resident memory (/proc/PID/statm), the listeners' accept
 * queues (TCP_INFO), the kernel's ListenOverflows counter
 * (/proc/net/netstat) and the master's own process figures
 * (/proc/self/stat). Then one of two renderings:
 *
 *   drv_metrics_render()         the Prometheus text format, version
 *                                0.0.4 (GET /metrics)
 *   drv_metrics_render_status()  the line format `drover status` reads
 *                                (GET /status), described below
 *
 * Rendering is pure (the unit tests feed it snapshots they build). The
 * worker's side lives here too: reading X-Request-Start.
 *
 * The /status format, version 1: lines of space-separated fields, each
 * line naming its kind first; the last field of a `worker` and of a
 * `listener` line is the rest of the line (a request line, an address
 * that may contain spaces). Control characters are sent as '?'. Kinds
 * that a reader does not know are to be skipped, so that fields and
 * kinds can be added without a new version.
 *
 *   drover-status 1
 *   master PID GENERATION UPTIME_MS READY WORKERS
 *   worker NUMBER PID STATE AGE_MS REQUESTS RSS_BYTES BUSY_MS REQUEST
 *   totals REQUESTS IN_FLIGHT CONNECTIONS RESTARTS
 *   listener QUEUE MAX NAME
 *
 * READY is 1 or 0 (what /readyz answers), STATE one of booting, idle,
 * busy, stopping; RSS_BYTES, QUEUE and MAX are -1 when unknown; BUSY_MS
 * is 0 and REQUEST "-" for a worker that is not in an app call.
 */
#ifndef DRV_METRICS_H
#define DRV_METRICS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "scoreboard.h"

struct drv_listener;

/* What a worker is doing, for drover_workers{state}. */
enum drv_worker_state {
    DRV_WORKER_BOOTING,
    DRV_WORKER_IDLE,
    DRV_WORKER_BUSY, /* in an app call */
    DRV_WORKER_STOPPING,
    DRV_WORKER_STATES
};

struct drv_metrics_worker {
    uint32_t number; /* slot number, 1-based */
    int32_t pid;
    enum drv_worker_state state;
    uint64_t age_ms;
    uint64_t requests;
    int64_t rss;      /* resident bytes, -1 unknown */
    uint64_t busy_ms; /* in the current app call for this long, 0 = idle */
    char request[DRV_SLOT_REQUEST_MAX]; /* its request line when busy */
};

struct drv_metrics_listener {
    char name[300]; /* drv_listener.name */
    int64_t queue;  /* connections in the accept queue, -1 unknown */
    int64_t max;    /* the queue's limit (backlog), -1 unknown */
};

struct drv_metrics {
    /* the master (collect fills what it can; the caller the rest) */
    int pid;
    uint32_t generation;
    bool ready;          /* what /readyz says */
    bool threads;        /* --threads > 1: drover_app_threads_busy */
    int workers_wanted;
    double start_time;   /* process start, seconds since the epoch */
    double cpu_seconds;  /* user + system */
    int64_t rss;         /* bytes, -1 unknown */
    uint64_t uptime_ms;
    /* requests, from the live slots and the totals */
    uint64_t requests;
    uint64_t codes[DRV_STATUS_CODES]; /* [status - DRV_STATUS_MIN] */
    struct drv_hist duration;
    struct drv_hist queue;
    uint64_t in_flight;
    uint64_t conns;
    uint64_t threads_busy;
    /* workers */
    uint64_t states[DRV_WORKER_STATES];
    uint64_t restarts[DRV_RESTART_REASONS];
    struct drv_metrics_worker *workers; /* live slots, in slot order */
    size_t nworkers;
    /* the kernel */
    struct drv_metrics_listener *listeners;
    size_t nlisteners;
    int64_t listen_overflows; /* -1 unknown */
};

/* Label values, indexed by the enums. */
extern const char *const drv_worker_state_names[DRV_WORKER_STATES];
extern const char *const drv_restart_names[DRV_RESTART_REASONS];

/* Fill *m (which it first zeroes) from the scoreboard, the listeners
 * (those with fd < 0 are skipped), /proc and the sockets, at `now_ms`
 * (drv_now_ms). Allocates m->workers and m->listeners: free them with
 * drv_metrics_clear. Never fails: what cannot be read is -1 or absent. */
void drv_metrics_collect(struct drv_metrics *m, const struct drv_scoreboard *sb,
                         const struct drv_listener *l, size_t nl,
                         uint64_t now_ms);

/* Free what collect allocated and zero *m. */
void drv_metrics_clear(struct drv_metrics *m);

/* Append the Prometheus text exposition of *m to `out`. */
void drv_metrics_render(const struct drv_metrics *m, struct drv_buf *out);

/* Append the /status lines of *m to `out` (format above). */
void drv_metrics_render_status(const struct drv_metrics *m,
                               struct drv_buf *out);

/*
 * The time a proxy received a request, from its X-Request-Start value
 * (`len` bytes at `p`): "t=1700000000.123" (nginx's t=${msec}), or the
 * number alone, optionally with a fraction. The unit is told by the
 * magnitude, as Heroku's and New Relic's readers do: below 1e11 seconds,
 * below 1e14 milliseconds, below 1e17 microseconds, below 1e20
 * nanoseconds. Surrounding blanks are allowed, nothing else. Returns
 * true with microseconds since the epoch in *epoch_us; false for
 * anything else (then *epoch_us is unchanged).
 */
bool drv_metrics_request_start(const char *p, size_t len, uint64_t *epoch_us);

/* How long the request waited, at `now_us` (microseconds since the
 * epoch): true with the wait in *us, false when the value does not parse,
 * lies in the future, or is more than DRV_QUEUE_MAX_US old (a clock that
 * is off, or not a timestamp). */
#define DRV_QUEUE_MAX_US (3600ull * 1000000)
bool drv_metrics_queue_us(const char *p, size_t len, uint64_t now_us,
                          uint64_t *us);

/* The value of `name` in /proc/net/netstat's text (pairs of "TcpExt:"
 * lines: names, then values), or -1. */
int64_t drv_metrics_netstat_value(const char *text, const char *prefix,
                                  const char *name);

#endif
