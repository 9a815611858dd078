/*
 * scoreboard: what the master knows of its workers, in shared memory.
 *
 * One memfd mapping, created by the master before the first fork and
 * inherited by every worker (and across the master's re-exec on reload,
 * so the new image still sees the old generation). One slot per worker,
 * padded to whole cache lines so that workers never share a line.
 *
 * A worker writes only its own slot's worker-owned fields (and its state:
 * BOOTING to READY once booted, READY to STOPPING when it retires on its
 * own); the master reads every slot on its timer
 * and writes the master-owned fields. Fields are written
 * and read with relaxed atomics: the master needs recent values, not a
 * consistent snapshot (a torn request line in a log message is harmless).
 *
 * Slot states:
 *   FREE      no process
 *   BOOTING   forked; loading the app (without preload) or setting up
 *   READY     accepting and serving
 *   STOPPING  told to stop (graceful or timeout kill), or retiring on
 *             its own (max_requests, max_worker_memory): it no longer
 *             counts, so the master starts a replacement at once
 *
 * Counters for metrics (the master serves them on --metrics-bind): each
 * worker counts its responses in its own slot (by status code, a latency
 * histogram, the time requests queued before the app took them), a
 * handful of relaxed atomic adds per request on lines no other worker
 * writes. When a worker dies the master folds its counters into the
 * totals (struct drv_totals, after the last slot in the same memfd), so
 * nothing is lost when workers recycle, nor when the master re-executes
 * itself on reload.
 *
 * Status codes: the slot keeps a table of DRV_SLOT_CODES codes, claimed
 * the first time a worker answers with each one (open addressing, linear
 * probing from code % DRV_SLOT_CODES; a claim is a compare-and-swap, so
 * two writers of one slot agree). Apps answer with a dozen codes or so;
 * a worker that meets more than DRV_SLOT_CODES distinct codes counts the
 * rest directly in the totals' per-code array (an atomic add on a line
 * the workers share: slower, but exact). A fixed array of every code
 * 100..999 per slot would be 7 KB a slot, 15 MB for the whole board.
 */
#ifndef DRV_SCOREBOARD_H
#define DRV_SCOREBOARD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "drover/app.h"

enum drv_slot_state {
    DRV_SLOT_FREE,
    DRV_SLOT_BOOTING,
    DRV_SLOT_READY,
    DRV_SLOT_STOPPING,
};

#define DRV_SLOT_REQUEST_MAX 192
/* With app threads the worker's loop names every request past --timeout
 * itself (the master sees only the oldest); the master waits this long
 * past the limit for it to do so before acting alone. */
#define DRV_SLOT_OVERDUE_GRACE_MS 1500

/* Status codes a response can have (response.h). */
#define DRV_STATUS_MIN 100
#define DRV_STATUS_MAX 999
#define DRV_STATUS_CODES (DRV_STATUS_MAX - DRV_STATUS_MIN + 1)

/* Codes a slot counts itself; see the top comment. */
#define DRV_SLOT_CODES 32

/* Latency histograms: the buckets' upper bounds in microseconds
 * (Prometheus' le="0.005" ... le="10"; above the last is +Inf). */
#define DRV_HIST_BUCKETS 11
extern const uint64_t drv_hist_bounds_us[DRV_HIST_BUCKETS];

struct drv_hist {
    uint64_t count[DRV_HIST_BUCKETS + 1]; /* per bucket, not cumulative;
                                             the last is above every bound */
    uint64_t sum_us;
};

struct drv_codes {
    uint16_t code[DRV_SLOT_CODES]; /* 0 = unclaimed */
    uint64_t n[DRV_SLOT_CODES];
};

/* Why a worker retires itself (worker-owned drv_slot.retiring). */
enum drv_retire {
    DRV_RETIRE_NONE,
    DRV_RETIRE_MAX_REQUESTS, /* served --max-requests (+ jitter) */
    DRV_RETIRE_MEMORY,       /* past --max-worker-memory */
};

/* Why the master told a worker to stop (master-owned stop_reason). */
enum drv_stop_reason {
    DRV_STOP_NONE,
    DRV_STOP_TIMEOUT,  /* past --timeout (or did not boot in time) */
    DRV_STOP_RELOAD,   /* an old generation retired after SIGHUP */
    DRV_STOP_SCALE,    /* SIGTTOU */
    DRV_STOP_SHUTDOWN, /* the server stops: no restart */
};

/* Why a worker was replaced: drover_worker_restarts_total{reason}. */
enum drv_restart {
    DRV_RESTART_MAX_REQUESTS,
    DRV_RESTART_MEMORY,
    DRV_RESTART_TIMEOUT,
    DRV_RESTART_CRASH,  /* died without being told to, or failed to boot */
    DRV_RESTART_RELOAD,
    DRV_RESTART_SCALE,
    DRV_RESTART_REASONS
};

struct drv_slot {
    /* master-owned */
    int32_t pid;
    uint32_t generation; /* reload count of the master that forked it */
    /* enum drv_slot_state. Master and worker both write it, so every read
     * and write is a relaxed __atomic builtin, through drv_slot_state(),
     * drv_slot_set_state() and drv_slot_mark_ready() below. (spawn's reset
     * of a whole FREE slot, which no other process touches, is plain.) */
    uint32_t state;
    uint32_t number;     /* worker number shown in logs and titles */
    uint32_t timed_out;  /* SIGABRT sent for a timeout: 1 serving, 2 booting */
    uint32_t shutdown;   /* the whole server stops: see drv_worker_stop */
    uint32_t stop_reason; /* enum drv_stop_reason: why it was told to stop */
    uint64_t kill_at_ms; /* SIGKILL deadline once told to stop, 0 = none */
    uint64_t started_ms;
    /* worker-owned */
    uint64_t heartbeat_ms; /* loop's last beat (CLOCK_MONOTONIC): as it
                              goes to poll and as it comes back */
    uint32_t polling;      /* the loop waits in its poll */
    uint64_t busy_since_ms; /* app call under way since, 0 = idle */
    uint64_t busy_fd;    /* that call's client socket + 1, 0 = none: the
                            master answers it 504 if it times out */
    uint64_t overdue;    /* requests the worker named as past --timeout */
    uint32_t retiring;   /* enum drv_retire: why it stops by itself */
    uint64_t requests;
    uint64_t bytes;
    uint64_t in_flight;  /* requests handed to the app, not yet answered */
    uint64_t conns;      /* open connections */
    uint64_t threads_busy; /* app threads in a job (--threads > 1) */
    char request[DRV_SLOT_REQUEST_MAX]; /* request line being served */
    /* Counted per response, on lines of their own. */
    struct drv_codes codes __attribute__((aligned(64)));
    struct drv_hist duration; /* request start to response end */
    struct drv_hist queue;    /* X-Request-Start to the app call */
} __attribute__((aligned(64)));

/* What the slots of dead workers counted, and the restarts; after the
 * slots, in the same memfd. Master-owned, except that workers add to
 * `codes` for the codes their own table has no room for (see the top
 * comment): every access is a relaxed atomic. */
struct drv_totals {
    uint64_t requests;
    uint64_t bytes;
    uint64_t codes[DRV_STATUS_CODES]; /* [status - DRV_STATUS_MIN] */
    struct drv_hist duration;
    struct drv_hist queue;
    uint64_t restarts[DRV_RESTART_REASONS];
    /* Slots [0, slots_used) may hold a worker: how far a worker looks
     * for its siblings (drv_scoreboard_fewest_conns). */
    uint32_t slots_used;
} __attribute__((aligned(64)));

struct drv_scoreboard {
    int fd;
    size_t nslots;
    struct drv_slot *slots;
    struct drv_totals *totals;
};

/* Milliseconds of CLOCK_MONOTONIC. */
uint64_t drv_now_ms(void);

/* Create a scoreboard of `nslots` free slots. Returns 0, or -errno. */
int drv_scoreboard_create(struct drv_scoreboard *sb, size_t nslots);

/* Map the scoreboard a previous image of this process created (fd from
 * drv_reexec_inherited_fd). Returns 0, or -errno (the fd is closed). */
int drv_scoreboard_adopt(struct drv_scoreboard *sb, int fd);

/* Unmap and close. */
void drv_scoreboard_free(struct drv_scoreboard *sb);

/* The slot of `pid`, or NULL. */
struct drv_slot *drv_scoreboard_find(struct drv_scoreboard *sb, pid_t pid);

/* A free slot, or NULL when all are taken. Master side: the slot counts
 * as used from then on (totals->slots_used). */
struct drv_slot *drv_scoreboard_free_slot(struct drv_scoreboard *sb);

/* Worker side, for connection balancing: the fewest open connections of
 * the READY workers other than `self` that would take a connection now
 * (waiting in their poll, or in an iteration of their loop that began
 * within `fresh_ms` of `now_ms`), UINT64_MAX when there is none; and in
 * *ready, how many READY workers there are, `self` included. */
uint64_t drv_scoreboard_fewest_conns(const struct drv_scoreboard *sb,
                                     const struct drv_slot *self,
                                     uint64_t now_ms, uint64_t fresh_ms,
                                     size_t *ready);

/* The slot's state (a relaxed atomic load: see the field). */
static inline enum drv_slot_state drv_slot_state(const struct drv_slot *slot)
{
    return (enum drv_slot_state)__atomic_load_n(&slot->state,
                                                __ATOMIC_RELAXED);
}

/* Master side: set the slot's state (a relaxed atomic store). */
static inline void drv_slot_set_state(struct drv_slot *slot,
                                      enum drv_slot_state state)
{
    __atomic_store_n(&slot->state, (uint32_t)state, __ATOMIC_RELAXED);
}

/* Worker side: BOOTING -> READY, unless the master has meanwhile set
 * another state (STOPPING), which a compare-and-swap leaves in place.
 * Returns whether the slot became READY. */
static inline bool drv_slot_mark_ready(struct drv_slot *slot)
{
    uint32_t booting = DRV_SLOT_BOOTING;
    return __atomic_compare_exchange_n(&slot->state, &booting, DRV_SLOT_READY,
                                       false, __ATOMIC_RELAXED,
                                       __ATOMIC_RELAXED);
}

/* Worker side. */
static inline void drv_slot_store(uint64_t *field, uint64_t v)
{
    __atomic_store_n(field, v, __ATOMIC_RELAXED);
}

static inline uint64_t drv_slot_load(const uint64_t *field)
{
    return __atomic_load_n(field, __ATOMIC_RELAXED);
}

/* Record that the app is being called for `req` on client socket `fd`
 * (-1: do not answer it on a timeout). Its request line is kept for the
 * master's timeout message; nothing of its response has been sent. */
void drv_slot_busy(struct drv_slot *slot, const struct drover_request *req,
                   int fd);

/* The same, for an app call under way since `since_ms` (drv_now_ms):
 * with app threads the slot shows the oldest call in flight. */
void drv_slot_busy_since(struct drv_slot *slot,
                         const struct drover_request *req, uint64_t since_ms,
                         int fd);

/* The app call is over. */
void drv_slot_idle(struct drv_slot *slot);

/* A response is done: count it, its status (codes outside
 * DRV_STATUS_MIN..MAX are not counted by code), its body bytes, and its
 * duration from the request's first byte. `spill` takes the codes the
 * slot has no room for (the scoreboard's totals; NULL: they are not
 * counted by code). */
void drv_slot_count(struct drv_slot *slot, struct drv_totals *spill,
                    int status, uint64_t bytes, uint64_t duration_us);

/* A request waited `us` between its proxy and the app (X-Request-Start). */
void drv_slot_queued(struct drv_slot *slot, uint64_t us);

/* Worker side: gauges, published as they change. */
static inline void drv_slot_set_in_flight(struct drv_slot *slot, uint64_t n)
{
    drv_slot_store(&slot->in_flight, n);
}

static inline void drv_slot_set_conns(struct drv_slot *slot, uint64_t n)
{
    drv_slot_store(&slot->conns, n);
}

/* Worker side: the loop goes to its poll (true) or comes back from it. */
static inline void drv_slot_beat(struct drv_slot *slot, bool polling)
{
    drv_slot_store(&slot->heartbeat_ms, drv_now_ms());
    __atomic_store_n(&slot->polling, polling, __ATOMIC_RELAXED);
}

/* Worker side: the worker is retiring by itself, for `why`. */
static inline void drv_slot_retiring(struct drv_slot *slot, enum drv_retire why)
{
    __atomic_store_n(&slot->retiring, (uint32_t)why, __ATOMIC_RELAXED);
}

static inline enum drv_retire drv_slot_retire_reason(const struct drv_slot *slot)
{
    return (enum drv_retire)__atomic_load_n(&slot->retiring,
                                            __ATOMIC_RELAXED);
}

/* The bucket of a latency of `us` microseconds (0..DRV_HIST_BUCKETS). */
unsigned drv_hist_bucket(uint64_t us);

/* Add what `from` counted to `into` (both may be shared: relaxed atomic
 * loads and adds). */
void drv_hist_add(struct drv_hist *into, const struct drv_hist *from);

/* The code a slot's code table holds at `i` (0 when unclaimed or out of
 * range), and its count. */
int drv_slot_code_at(const struct drv_slot *slot, unsigned i, uint64_t *n);

/* Master side: a worker is gone: add its counters to the totals. Call it
 * once per dead worker, before its slot is freed. */
void drv_scoreboard_fold(struct drv_scoreboard *sb,
                         const struct drv_slot *slot);

/* Master side: one worker replaced for `why`. */
void drv_scoreboard_restart(struct drv_scoreboard *sb, enum drv_restart why);

#endif
