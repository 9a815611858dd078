/*
 * scoreboard: a memfd of cache-line-sized slots shared by master and
 * workers.
 */
#include "scoreboard.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

uint64_t drv_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static int map(struct drv_scoreboard *sb, int fd, size_t nslots)
{
    void *p = mmap(NULL, nslots * sizeof(struct drv_slot),
                   PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (p == MAP_FAILED) {
        int rc = -errno;
        close(fd);
        return rc;
    }
    *sb = (struct drv_scoreboard){.fd = fd, .nslots = nslots, .slots = p};
    return 0;
}

int drv_scoreboard_create(struct drv_scoreboard *sb, size_t nslots)
{
    int fd = memfd_create("drover-scoreboard", MFD_CLOEXEC);
    if (fd < 0)
        return -errno;
    /* A fresh memfd reads as zeros: every slot starts FREE. */
    if (ftruncate(fd, (off_t)(nslots * sizeof(struct drv_slot))) != 0) {
        int rc = -errno;
        close(fd);
        return rc;
    }
    return map(sb, fd, nslots);
}

int drv_scoreboard_adopt(struct drv_scoreboard *sb, int fd)
{
    struct stat st;
    if (fstat(fd, &st) != 0 || st.st_size <= 0 ||
        st.st_size % (off_t)sizeof(struct drv_slot) != 0) {
        close(fd);
        return -EINVAL;
    }
    return map(sb, fd, (size_t)st.st_size / sizeof(struct drv_slot));
}

void drv_scoreboard_free(struct drv_scoreboard *sb)
{
    if (sb->slots)
        munmap(sb->slots, sb->nslots * sizeof(struct drv_slot));
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
    for (size_t i = 0; i < sb->nslots; i++)
        if (drv_slot_state(&sb->slots[i]) == DRV_SLOT_FREE)
            return &sb->slots[i];
    return NULL;
}

void drv_slot_busy(struct drv_slot *slot, const struct drover_request *req,
                   int fd)
{
    drv_slot_busy_since(slot, req, drv_now_ms(), fd);
}

void drv_slot_busy_since(struct drv_slot *slot,
                         const struct drover_request *req, uint64_t since_ms,
                         int fd)
{
    drv_slot_store(&slot->busy_fd, fd >= 0 ? (uint64_t)fd + 1 : 0);
    snprintf(slot->request, sizeof(slot->request), "%.*s %.*s %.*s",
             (int)req->method.len, req->method.ptr, (int)req->target.len,
             req->target.ptr, (int)req->version.len, req->version.ptr);
    drv_slot_store(&slot->busy_since_ms, since_ms);
}

void drv_slot_idle(struct drv_slot *slot)
{
    drv_slot_store(&slot->busy_since_ms, 0);
    drv_slot_store(&slot->busy_fd, 0);
}

void drv_slot_count(struct drv_slot *slot, int status, uint64_t bytes)
{
    int cls = status / 100;
    if (cls < 1 || cls > 5)
        cls = 0;
    __atomic_add_fetch(&slot->status[cls], 1, __ATOMIC_RELAXED);
    __atomic_add_fetch(&slot->requests, 1, __ATOMIC_RELAXED);
    __atomic_add_fetch(&slot->bytes, bytes, __ATOMIC_RELAXED);
}
