/*
 * scoreboard: a memfd of cache-line-sized slots shared by master and
 * workers, followed by the totals of the workers that are gone:
 *
 *   [slot 0][slot 1]...[slot n-1][totals]
 */
#include "scoreboard.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

const uint64_t drv_hist_bounds_us[DRV_HIST_BUCKETS] = {
    5000,   10000,   25000,   50000,   100000,   250000,
    500000, 1000000, 2500000, 5000000, 10000000,
};

uint64_t drv_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static size_t board_size(size_t nslots)
{
    return nslots * sizeof(struct drv_slot) + sizeof(struct drv_totals);
}

static int map(struct drv_scoreboard *sb, int fd, size_t nslots)
{
    void *p = mmap(NULL, board_size(nslots), PROT_READ | PROT_WRITE,
                   MAP_SHARED, fd, 0);
    if (p == MAP_FAILED) {
        int rc = -errno;
        close(fd);
        return rc;
    }
    struct drv_slot *slots = p;
    *sb = (struct drv_scoreboard){.fd = fd, .nslots = nslots, .slots = slots,
                                  .totals = (void *)(slots + nslots)};
    return 0;
}

int drv_scoreboard_create(struct drv_scoreboard *sb, size_t nslots)
{
    int fd = memfd_create("drover-scoreboard", MFD_CLOEXEC);
    if (fd < 0)
        return -errno;
    /* A fresh memfd reads as zeros: every slot starts FREE. */
    if (ftruncate(fd, (off_t)board_size(nslots)) != 0) {
        int rc = -errno;
        close(fd);
        return rc;
    }
    return map(sb, fd, nslots);
}

int drv_scoreboard_adopt(struct drv_scoreboard *sb, int fd)
{
    struct stat st;
    off_t slots = 0;
    if (fstat(fd, &st) == 0)
        slots = st.st_size - (off_t)sizeof(struct drv_totals);
    if (slots <= 0 || slots % (off_t)sizeof(struct drv_slot) != 0) {
        close(fd);
        return -EINVAL;
    }
    return map(sb, fd, (size_t)slots / sizeof(struct drv_slot));
}

void drv_scoreboard_free(struct drv_scoreboard *sb)
{
    if (sb->slots)
        munmap(sb->slots, board_size(sb->nslots));
    if (sb->fd >= 0)
        close(sb->fd);
    *sb = (struct drv_scoreboard){.fd = -1};
}

struct drv_slot *drv_scoreboard_find(struct drv_scoreboard *sb, pid_t pid)
{
    for (size_t i = 0; i < sb->nslots; i++)
        if (drv_slot_state(&sb->slots[i]) != DRV_SLOT_FREE &&
            sb->slots[i].pid == pid)
            return &sb->slots[i];
    return NULL;
}

struct drv_slot *drv_scoreboard_free_slot(struct drv_scoreboard *sb)
{
    for (size_t i = 0; i < sb->nslots; i++) {
        if (drv_slot_state(&sb->slots[i]) != DRV_SLOT_FREE)
            continue;
        if (i + 1 > __atomic_load_n(&sb->totals->slots_used, __ATOMIC_RELAXED))
            __atomic_store_n(&sb->totals->slots_used, (uint32_t)(i + 1),
                             __ATOMIC_RELAXED);
        return &sb->slots[i];
    }
    return NULL;
}

uint64_t drv_scoreboard_fewest_conns(const struct drv_scoreboard *sb,
                                     const struct drv_slot *self,
                                     uint64_t now_ms, uint64_t fresh_ms,
                                     size_t *ready)
{
    uint64_t fewest = UINT64_MAX;
    size_t n = __atomic_load_n(&sb->totals->slots_used, __ATOMIC_RELAXED);
    *ready = 1;
    for (size_t i = 0; i < n && i < sb->nslots; i++) {
        const struct drv_slot *o = &sb->slots[i];
        if (o == self || drv_slot_state(o) != DRV_SLOT_READY)
            continue;
        ++*ready;
        uint64_t beat = drv_slot_load(&o->heartbeat_ms);
        if (!__atomic_load_n(&o->polling, __ATOMIC_RELAXED) &&
            now_ms > beat && now_ms - beat > fresh_ms)
            continue; /* in a long iteration: an app call, or stuck */
        uint64_t c = drv_slot_load(&o->conns);
        if (c < fewest)
            fewest = c;
    }
    return fewest;
}

void drv_slot_busy(struct drv_slot *slot, const struct drover_request *req,
                   int fd)
{
    drv_slot_busy_since(slot, req, drv_now_ms(), fd);
}

/* Append what of `s` fits to the request line at `at` (room kept for
 * the final NUL). Returns the new end. */
static size_t put_request(char *line, size_t at, const char *s, size_t len)
{
    size_t room = DRV_SLOT_REQUEST_MAX - 1 - at;
    if (len > room)
        len = room;
    if (len)
        memcpy(line + at, s, len);
    return at + len;
}

void drv_slot_busy_since(struct drv_slot *slot,
                         const struct drover_request *req, uint64_t since_ms,
                         int fd)
{
    drv_slot_store(&slot->busy_fd, fd >= 0 ? (uint64_t)fd + 1 : 0);
    /* "METHOD TARGET VERSION", cut to the slot; once per app call, where
     * snprintf's format parsing was 1-2 % of a hello request's CPU. */
    char *line = slot->request;
    size_t at = put_request(line, 0, req->method.ptr, req->method.len);
    at = put_request(line, at, " ", 1);
    at = put_request(line, at, req->target.ptr, req->target.len);
    at = put_request(line, at, " ", 1);
    at = put_request(line, at, req->version.ptr, req->version.len);
    line[at] = '\0';
    drv_slot_store(&slot->busy_since_ms, since_ms);
}

void drv_slot_idle(struct drv_slot *slot)
{
    drv_slot_store(&slot->busy_since_ms, 0);
    drv_slot_store(&slot->busy_fd, 0);
}

static void add(uint64_t *field, uint64_t v)
{
    __atomic_add_fetch(field, v, __ATOMIC_RELAXED);
}

unsigned drv_hist_bucket(uint64_t us)
{
    unsigned i = 0;
    while (i < DRV_HIST_BUCKETS && us > drv_hist_bounds_us[i])
        i++;
    return i;
}

static void hist_record(struct drv_hist *h, uint64_t us)
{
    add(&h->count[drv_hist_bucket(us)], 1);
    add(&h->sum_us, us);
}

void drv_hist_add(struct drv_hist *into, const struct drv_hist *from)
{
    for (unsigned i = 0; i <= DRV_HIST_BUCKETS; i++)
        add(&into->count[i], drv_slot_load(&from->count[i]));
    add(&into->sum_us, drv_slot_load(&from->sum_us));
}

/* The entry of `code` in the slot's table, claimed if need be; NULL when
 * the table is full of other codes. */
static uint64_t *code_counter(struct drv_codes *t, uint16_t code)
{
    unsigned home = code % DRV_SLOT_CODES;
    for (unsigned k = 0; k < DRV_SLOT_CODES; k++) {
        unsigned i = (home + k) % DRV_SLOT_CODES;
        uint16_t have = __atomic_load_n(&t->code[i], __ATOMIC_RELAXED);
        /* Unclaimed: claim it. A claim that loses to another writer
         * leaves that writer's code in `have`. */
        if (have == 0 &&
            __atomic_compare_exchange_n(&t->code[i], &have, code, false,
                                        __ATOMIC_RELAXED, __ATOMIC_RELAXED))
            return &t->n[i];
        if (have == code)
            return &t->n[i];
    }
    return NULL;
}

void drv_slot_count(struct drv_slot *slot, struct drv_totals *spill,
                    int status, uint64_t bytes, uint64_t duration_us)
{
    if (status >= DRV_STATUS_MIN && status <= DRV_STATUS_MAX) {
        uint64_t *n = code_counter(&slot->codes, (uint16_t)status);
        if (!n && spill)
            n = &spill->codes[status - DRV_STATUS_MIN];
        if (n)
            add(n, 1);
    }
    hist_record(&slot->duration, duration_us);
    add(&slot->requests, 1);
    add(&slot->bytes, bytes);
}

void drv_slot_queued(struct drv_slot *slot, uint64_t us)
{
    hist_record(&slot->queue, us);
}

int drv_slot_code_at(const struct drv_slot *slot, unsigned i, uint64_t *n)
{
    if (i >= DRV_SLOT_CODES)
        return 0;
    int code = __atomic_load_n(&slot->codes.code[i], __ATOMIC_RELAXED);
    *n = code ? drv_slot_load(&slot->codes.n[i]) : 0;
    return code;
}

void drv_scoreboard_fold(struct drv_scoreboard *sb,
                         const struct drv_slot *slot)
{
    struct drv_totals *t = sb->totals;
    add(&t->requests, drv_slot_load(&slot->requests));
    add(&t->bytes, drv_slot_load(&slot->bytes));
    for (unsigned i = 0; i < DRV_SLOT_CODES; i++) {
        uint64_t n;
        int code = drv_slot_code_at(slot, i, &n);
        if (code >= DRV_STATUS_MIN && code <= DRV_STATUS_MAX)
            add(&t->codes[code - DRV_STATUS_MIN], n);
    }
    drv_hist_add(&t->duration, &slot->duration);
    drv_hist_add(&t->queue, &slot->queue);
}

void drv_scoreboard_restart(struct drv_scoreboard *sb, enum drv_restart why)
{
    if ((unsigned)why < DRV_RESTART_REASONS)
        add(&sb->totals->restarts[why], 1);
}
