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
    uint64_t kill_at_ms; /* SIGKILL deadline once told to stop, 0 = none */
    uint64_t started_ms;
    /* worker-owned */
    uint64_t heartbeat_ms; /* loop's last beat (CLOCK_MONOTONIC) */
    uint64_t busy_since_ms; /* app call under way since, 0 = idle */
    uint64_t busy_fd;    /* that call's client socket + 1, 0 = none: the
                            master answers it 504 if it times out */
    uint64_t overdue;    /* requests the worker named as past --timeout */
    uint64_t requests;
    uint64_t bytes;
    uint64_t status[6]; /* responses by class: [1] 1xx ... [5] 5xx, [0] other */
    char request[DRV_SLOT_REQUEST_MAX]; /* request line being served */
} __attribute__((aligned(64)));

struct drv_scoreboard {
    int fd;
    size_t nslots;
    struct drv_slot *slots;
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

/* A free slot, or NULL when all are taken. */
struct drv_slot *drv_scoreboard_free_slot(struct drv_scoreboard *sb);

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

/* A response is done: count it. */
void drv_slot_count(struct drv_slot *slot, int status, uint64_t bytes);

#endif
