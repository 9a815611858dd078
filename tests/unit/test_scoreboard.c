/*
 * Unit tests for scoreboard.c: slots start free and are found by pid,
 * each sits on its own cache lines, the state moves the way master and
 * worker agree on (a worker never overwrites the master's STOPPING),
 * what a forked child writes into its slot the parent reads, and the
 * counters for metrics: codes in the slot's table (and past it in the
 * totals), the latency histograms, and the totals a dead worker's slot is
 * folded into.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include "scoreboard.h"

static struct drv_scoreboard board(size_t nslots)
{
    struct drv_scoreboard sb;
    assert_int_equal(drv_scoreboard_create(&sb, nslots), 0);
    return sb;
}

/* Claim a slot the way the master's spawn does. */
static struct drv_slot *claim(struct drv_scoreboard *sb, pid_t pid)
{
    struct drv_slot *slot = drv_scoreboard_free_slot(sb);
    assert_non_null(slot);
    drv_slot_set_state(slot, DRV_SLOT_BOOTING);
    slot->pid = pid;
    return slot;
}

/* Release it the way the master's reap does. */
static void release(struct drv_slot *slot)
{
    drv_slot_set_state(slot, DRV_SLOT_FREE);
    slot->pid = 0;
}

static struct drover_request request_line(const char *method,
                                          const char *target)
{
    struct drover_request req = {0};
    req.method = (struct drover_str){method, strlen(method)};
    req.target = (struct drover_str){target, strlen(target)};
    req.version = (struct drover_str){"HTTP/1.1", 8};
    return req;
}

/* How many responses with `code` the slot's table holds. */
static uint64_t code_count(const struct drv_slot *slot, int code)
{
    for (unsigned i = 0; i < DRV_SLOT_CODES; i++) {
        uint64_t n;
        if (drv_slot_code_at(slot, i, &n) == code)
            return n;
    }
    return 0;
}

/* Wait for `pid` and return its exit status (-1 unless it exited). */
static int exit_status(pid_t pid)
{
    int ws;
    assert_int_equal(waitpid(pid, &ws, 0), pid);
    return WIFEXITED(ws) ? WEXITSTATUS(ws) : -1;
}

static void test_a_new_scoreboard_has_every_slot_free_and_zeroed(void **state)
{
    (void)state;
    struct drv_scoreboard sb = board(8);
    assert_int_equal(sb.nslots, 8);
    assert_true(sb.fd >= 0);
    for (size_t i = 0; i < sb.nslots; i++) {
        struct drv_slot *slot = &sb.slots[i];
        assert_int_equal(drv_slot_state(slot), DRV_SLOT_FREE);
        assert_int_equal(slot->pid, 0);
        assert_int_equal(drv_slot_load(&slot->requests), 0);
        assert_int_equal(drv_slot_load(&slot->busy_since_ms), 0);
    }
    assert_ptr_equal(drv_scoreboard_free_slot(&sb), &sb.slots[0]);
    drv_scoreboard_free(&sb);
}

static void test_slots_never_share_a_cache_line(void **state)
{
    (void)state;
    assert_int_equal(sizeof(struct drv_slot) % 64, 0);
    struct drv_scoreboard sb = board(3);
    for (size_t i = 0; i < sb.nslots; i++)
        assert_int_equal((uintptr_t)&sb.slots[i] % 64, 0);
    drv_scoreboard_free(&sb);
}

static void test_free_slot_skips_taken_slots_until_none_is_left(void **state)
{
    (void)state;
    struct drv_scoreboard sb = board(3);
    struct drv_slot *a = claim(&sb, 101);
    struct drv_slot *b = claim(&sb, 102);
    struct drv_slot *c = claim(&sb, 103);
    assert_ptr_equal(a, &sb.slots[0]);
    assert_ptr_equal(b, &sb.slots[1]);
    assert_ptr_equal(c, &sb.slots[2]);
    assert_null(drv_scoreboard_free_slot(&sb));

    release(b);
    assert_ptr_equal(drv_scoreboard_free_slot(&sb), b);
    drv_scoreboard_free(&sb);
}

static void test_every_taken_state_holds_its_slot(void **state)
{
    (void)state;
    struct drv_scoreboard sb = board(1);
    struct drv_slot *slot = claim(&sb, 7);
    assert_null(drv_scoreboard_free_slot(&sb));
    assert_true(drv_slot_mark_ready(slot));
    assert_null(drv_scoreboard_free_slot(&sb));
    drv_slot_set_state(slot, DRV_SLOT_STOPPING);
    assert_null(drv_scoreboard_free_slot(&sb));
    release(slot);
    assert_ptr_equal(drv_scoreboard_free_slot(&sb), slot);
    drv_scoreboard_free(&sb);
}

static void test_find_returns_the_slot_of_a_live_pid(void **state)
{
    (void)state;
    struct drv_scoreboard sb = board(4);
    claim(&sb, 201);
    struct drv_slot *b = claim(&sb, 202);
    assert_ptr_equal(drv_scoreboard_find(&sb, 202), b);
    assert_null(drv_scoreboard_find(&sb, 999));
    drv_scoreboard_free(&sb);
}

static void test_find_ignores_a_free_slot_that_still_names_a_pid(void **state)
{
    (void)state;
    struct drv_scoreboard sb = board(2);
    struct drv_slot *slot = claim(&sb, 301);
    drv_slot_set_state(slot, DRV_SLOT_FREE); /* reaped, pid not yet cleared */
    assert_null(drv_scoreboard_find(&sb, 301));
    /* pid 0 names every never-used slot: still no match. */
    assert_null(drv_scoreboard_find(&sb, 0));
    drv_scoreboard_free(&sb);
}

static void test_mark_ready_moves_a_booting_slot_to_ready(void **state)
{
    (void)state;
    struct drv_scoreboard sb = board(1);
    struct drv_slot *slot = claim(&sb, 1);
    assert_true(drv_slot_mark_ready(slot));
    assert_int_equal(drv_slot_state(slot), DRV_SLOT_READY);
    assert_false(drv_slot_mark_ready(slot)); /* once */
    assert_int_equal(drv_slot_state(slot), DRV_SLOT_READY);
    drv_scoreboard_free(&sb);
}

static void test_mark_ready_leaves_the_masters_stopping_in_place(void **state)
{
    (void)state;
    struct drv_scoreboard sb = board(1);
    struct drv_slot *slot = claim(&sb, 1);
    drv_slot_set_state(slot, DRV_SLOT_STOPPING); /* told to stop at boot */
    assert_false(drv_slot_mark_ready(slot));
    assert_int_equal(drv_slot_state(slot), DRV_SLOT_STOPPING);
    release(slot);
    assert_false(drv_slot_mark_ready(slot)); /* nor revives a free slot */
    assert_int_equal(drv_slot_state(slot), DRV_SLOT_FREE);
    drv_scoreboard_free(&sb);
}

static void test_busy_records_the_request_line_and_when(void **state)
{
    (void)state;
    struct drv_scoreboard sb = board(1);
    struct drv_slot *slot = claim(&sb, 1);
    struct drover_request req = request_line("GET", "/slow?x=1");
    uint64_t before = drv_now_ms();
    drv_slot_busy(slot, &req, 7);
    uint64_t after = drv_now_ms();
    assert_string_equal(slot->request, "GET /slow?x=1 HTTP/1.1");
    uint64_t since = drv_slot_load(&slot->busy_since_ms);
    assert_true(since >= before && since <= after);
    assert_int_equal(drv_slot_load(&slot->busy_fd), 7 + 1);
    drv_scoreboard_free(&sb);
}

static void test_idle_clears_busy_since(void **state)
{
    (void)state;
    struct drv_scoreboard sb = board(1);
    struct drv_slot *slot = claim(&sb, 1);
    struct drover_request req = request_line("POST", "/");
    drv_slot_busy(slot, &req, 7);
    drv_slot_idle(slot);
    assert_int_equal(drv_slot_load(&slot->busy_since_ms), 0);
    assert_int_equal(drv_slot_load(&slot->busy_fd), 0);
    drv_slot_busy(slot, &req, -1); /* a call not to answer on a timeout */
    assert_int_equal(drv_slot_load(&slot->busy_fd), 0);
    drv_scoreboard_free(&sb);
}

static void test_busy_truncates_a_long_request_line_to_the_slot(void **state)
{
    (void)state;
    struct drv_scoreboard sb = board(1);
    struct drv_slot *slot = claim(&sb, 1);
    char target[1000];
    memset(target, 'a', sizeof(target) - 1);
    target[sizeof(target) - 1] = '\0';
    struct drover_request req = request_line("GET", target);
    drv_slot_busy(slot, &req, 7);
    assert_int_equal(strlen(slot->request), DRV_SLOT_REQUEST_MAX - 1);
    assert_memory_equal(slot->request, "GET aaa", 7);
    drv_scoreboard_free(&sb);
}

static void test_count_files_responses_by_status_code(void **state)
{
    (void)state;
    struct drv_scoreboard sb = board(1);
    struct drv_slot *slot = claim(&sb, 1);
    static const int statuses[] = {100, 199, 200, 204, 301, 404, 499, 500,
                                   503, 0,   99,  600, 999, -1,  200};
    uint64_t bytes = 0;
    for (size_t i = 0; i < sizeof(statuses) / sizeof(statuses[0]); i++) {
        drv_slot_count(slot, sb.totals, statuses[i], i * 10, 1000);
        bytes += i * 10;
    }
    assert_int_equal(code_count(slot, 200), 2);
    static const int once[] = {100, 199, 204, 301, 404, 499, 500, 503, 600,
                               999};
    for (size_t i = 0; i < sizeof(once) / sizeof(once[0]); i++)
        assert_int_equal(code_count(slot, once[i]), 1);
    /* Outside 100..999: counted as requests, by no code. */
    assert_int_equal(code_count(slot, 0), 0);
    assert_int_equal(code_count(slot, 99), 0);
    assert_int_equal(drv_slot_load(&slot->requests), 15);
    assert_int_equal(drv_slot_load(&slot->bytes), bytes);
    for (size_t i = 0; i < DRV_STATUS_CODES; i++)
        assert_int_equal(drv_slot_load(&sb.totals->codes[i]), 0);
    drv_scoreboard_free(&sb);
}

static void test_codes_past_the_slots_table_are_counted_in_the_totals(
    void **state)
{
    (void)state;
    struct drv_scoreboard sb = board(1);
    struct drv_slot *slot = claim(&sb, 1);
    for (int code = 200; code < 200 + DRV_SLOT_CODES + 8; code++)
        for (int k = 0; k <= code - 200; k++)
            drv_slot_count(slot, sb.totals, code, 0, 0);
    for (int code = 200; code < 200 + DRV_SLOT_CODES; code++) {
        assert_int_equal(code_count(slot, code), code - 200 + 1);
        assert_int_equal(drv_slot_load(&sb.totals->codes[code - 100]), 0);
    }
    for (int code = 200 + DRV_SLOT_CODES; code < 200 + DRV_SLOT_CODES + 8;
         code++) {
        assert_int_equal(code_count(slot, code), 0);
        assert_int_equal(drv_slot_load(&sb.totals->codes[code - 100]),
                         code - 200 + 1);
    }
    /* Without totals the overflow is dropped, and nothing breaks. */
    drv_slot_count(slot, NULL, 299, 0, 0);
    assert_int_equal(code_count(slot, 299), 0);
    drv_scoreboard_free(&sb);
}

static void test_a_latency_lands_in_the_first_bucket_that_holds_it(
    void **state)
{
    (void)state;
    assert_int_equal(drv_hist_bucket(0), 0);
    assert_int_equal(drv_hist_bucket(5000), 0); /* le="0.005" includes it */
    assert_int_equal(drv_hist_bucket(5001), 1);
    assert_int_equal(drv_hist_bucket(999999), 7);
    assert_int_equal(drv_hist_bucket(1000000), 7);
    assert_int_equal(drv_hist_bucket(10000000), DRV_HIST_BUCKETS - 1);
    assert_int_equal(drv_hist_bucket(10000001), DRV_HIST_BUCKETS);
    assert_int_equal(drv_hist_bucket(UINT64_MAX), DRV_HIST_BUCKETS);
    for (unsigned i = 1; i < DRV_HIST_BUCKETS; i++)
        assert_true(drv_hist_bounds_us[i] > drv_hist_bounds_us[i - 1]);

    struct drv_scoreboard sb = board(1);
    struct drv_slot *slot = claim(&sb, 1);
    drv_slot_count(slot, sb.totals, 200, 0, 3000);
    drv_slot_count(slot, sb.totals, 200, 0, 300000);
    drv_slot_queued(slot, 20000);
    assert_int_equal(drv_slot_load(&slot->duration.count[0]), 1);
    assert_int_equal(drv_slot_load(&slot->duration.count[6]), 1);
    assert_int_equal(drv_slot_load(&slot->duration.sum_us), 303000);
    assert_int_equal(drv_slot_load(&slot->queue.count[2]), 1);
    assert_int_equal(drv_slot_load(&slot->queue.sum_us), 20000);
    drv_scoreboard_free(&sb);
}

static void test_fold_adds_a_dead_workers_counts_to_the_totals(void **state)
{
    (void)state;
    struct drv_scoreboard sb = board(2);
    for (int round = 1; round <= 2; round++) {
        struct drv_slot *slot = claim(&sb, 100 + round);
        drv_slot_count(slot, sb.totals, 200, 10, 2000);
        drv_slot_count(slot, sb.totals, 404, 5, 2000000);
        drv_slot_queued(slot, 1000);
        drv_scoreboard_fold(&sb, slot);
        release(slot);
        /* The master's spawn starts the next worker on a clean slot. */
        memset(slot, 0, sizeof(*slot));
    }
    struct drv_totals *t = sb.totals;
    assert_int_equal(drv_slot_load(&t->requests), 4);
    assert_int_equal(drv_slot_load(&t->bytes), 30);
    assert_int_equal(drv_slot_load(&t->codes[200 - DRV_STATUS_MIN]), 2);
    assert_int_equal(drv_slot_load(&t->codes[404 - DRV_STATUS_MIN]), 2);
    assert_int_equal(drv_slot_load(&t->duration.count[0]), 2);
    assert_int_equal(drv_slot_load(&t->duration.count[8]), 2);
    assert_int_equal(drv_slot_load(&t->duration.sum_us), 4004000);
    assert_int_equal(drv_slot_load(&t->queue.count[0]), 2);

    drv_scoreboard_restart(&sb, DRV_RESTART_CRASH);
    drv_scoreboard_restart(&sb, DRV_RESTART_CRASH);
    drv_scoreboard_restart(&sb, DRV_RESTART_SCALE);
    drv_scoreboard_restart(&sb, DRV_RESTART_REASONS); /* ignored */
    assert_int_equal(drv_slot_load(&t->restarts[DRV_RESTART_CRASH]), 2);
    assert_int_equal(drv_slot_load(&t->restarts[DRV_RESTART_SCALE]), 1);
    assert_int_equal(drv_slot_load(&t->restarts[DRV_RESTART_RELOAD]), 0);
    drv_scoreboard_free(&sb);
}

static void test_retiring_and_gauges_are_the_workers_word(void **state)
{
    (void)state;
    struct drv_scoreboard sb = board(1);
    struct drv_slot *slot = claim(&sb, 1);
    assert_int_equal(drv_slot_retire_reason(slot), DRV_RETIRE_NONE);
    drv_slot_retiring(slot, DRV_RETIRE_MAX_REQUESTS);
    assert_int_equal(drv_slot_retire_reason(slot), DRV_RETIRE_MAX_REQUESTS);
    drv_slot_set_in_flight(slot, 3);
    drv_slot_set_conns(slot, 7);
    assert_int_equal(drv_slot_load(&slot->in_flight), 3);
    assert_int_equal(drv_slot_load(&slot->conns), 7);
    drv_scoreboard_free(&sb);
}

static void test_what_a_forked_worker_writes_the_master_reads(void **state)
{
    (void)state;
    struct drv_scoreboard sb = board(2);
    struct drv_slot *slot = claim(&sb, 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        drv_slot_store(&slot->heartbeat_ms, 12345);
        drv_slot_mark_ready(slot);
        struct drover_request req = request_line("GET", "/in-child");
        drv_slot_busy(slot, &req, 7);
        for (int i = 0; i < 100; i++)
            drv_slot_count(slot, sb.totals, 200, 3, 100);
        drv_slot_count(slot, sb.totals, 502, 1, 100);
        _exit(0);
    }
    slot->pid = pid;
    assert_int_equal(exit_status(pid), 0);
    assert_ptr_equal(drv_scoreboard_find(&sb, pid), slot);
    assert_int_equal(drv_slot_state(slot), DRV_SLOT_READY);
    assert_int_equal(drv_slot_load(&slot->heartbeat_ms), 12345);
    assert_string_equal(slot->request, "GET /in-child HTTP/1.1");
    assert_int_equal(drv_slot_load(&slot->requests), 101);
    assert_int_equal(drv_slot_load(&slot->bytes), 301);
    assert_int_equal(code_count(slot, 200), 100);
    assert_int_equal(code_count(slot, 502), 1);
    assert_int_equal(drv_slot_load(&slot->duration.count[0]), 101);
    /* The neighbouring slot saw none of it. */
    assert_int_equal(drv_slot_load(&sb.slots[1].requests), 0);
    drv_scoreboard_free(&sb);
}

static void test_counts_from_concurrent_processes_add_up(void **state)
{
    (void)state;
    enum { PROCS = 2, EACH = 20000 };
    struct drv_scoreboard sb = board(1);
    struct drv_slot *slot = claim(&sb, 1);
    pid_t pids[PROCS];
    for (int p = 0; p < PROCS; p++) {
        pids[p] = fork();
        assert_true(pids[p] >= 0);
        if (pids[p] == 0) {
            for (int i = 0; i < EACH; i++)
                drv_slot_count(slot, sb.totals, 200 + i % 2, 2, 0);
            _exit(0);
        }
    }
    for (int p = 0; p < PROCS; p++)
        assert_int_equal(exit_status(pids[p]), 0);
    assert_int_equal(drv_slot_load(&slot->requests), PROCS * EACH);
    /* Both claimed 200 and 201 in the same entries. */
    assert_int_equal(code_count(slot, 200), PROCS * EACH / 2);
    assert_int_equal(code_count(slot, 201), PROCS * EACH / 2);
    assert_int_equal(drv_slot_load(&slot->bytes), 2 * PROCS * EACH);
    drv_scoreboard_free(&sb);
}

static void test_a_worker_told_to_stop_while_booting_stays_stopping(
    void **state)
{
    (void)state;
    struct drv_scoreboard sb = board(1);
    struct drv_slot *slot = claim(&sb, 0);
    int go[2];
    assert_int_equal(pipe(go), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        char c;
        close(go[1]);
        if (read(go[0], &c, 1) != 1)
            _exit(3);
        /* The master's STOPPING is already in the slot. */
        _exit(drv_slot_mark_ready(slot) ? 1 : 0);
    }
    close(go[0]);
    slot->pid = pid;
    drv_slot_set_state(slot, DRV_SLOT_STOPPING);
    assert_int_equal(write(go[1], "g", 1), 1);
    close(go[1]);
    assert_int_equal(exit_status(pid), 0);
    assert_int_equal(drv_slot_state(slot), DRV_SLOT_STOPPING);
    drv_scoreboard_free(&sb);
}

static void test_adopt_maps_the_same_slots_from_an_inherited_fd(void **state)
{
    (void)state;
    struct drv_scoreboard sb = board(5);
    struct drv_slot *slot = claim(&sb, 401);
    drv_slot_count(slot, sb.totals, 200, 10, 0);
    drv_scoreboard_restart(&sb, DRV_RESTART_RELOAD);

    struct drv_scoreboard again;
    assert_int_equal(drv_scoreboard_adopt(&again, dup(sb.fd)), 0);
    assert_int_equal(again.nslots, 5);
    assert_ptr_equal(drv_scoreboard_find(&again, 401), &again.slots[0]);
    assert_int_equal(drv_slot_load(&again.slots[0].bytes), 10);
    /* One memory, two mappings: writes through either show in both. */
    drv_slot_count(&again.slots[0], again.totals, 404, 5, 0);
    assert_int_equal(drv_slot_load(&slot->bytes), 15);
    assert_int_equal(code_count(slot, 404), 1);
    /* The totals cross over too (a reload keeps what was counted). */
    assert_int_equal(
        drv_slot_load(&again.totals->restarts[DRV_RESTART_RELOAD]), 1);

    drv_scoreboard_free(&sb);
    /* The adopted mapping outlives the original. */
    assert_int_equal(drv_slot_load(&again.slots[0].requests), 2);
    drv_scoreboard_free(&again);
}

static bool fd_is_open(int fd)
{
    return fcntl(fd, F_GETFD) != -1 || errno != EBADF;
}

static void test_adopt_refuses_a_size_that_is_not_whole_slots(void **state)
{
    (void)state;
    struct drv_scoreboard sb = {.fd = -1};
    int fd = memfd_create("not-a-scoreboard", MFD_CLOEXEC);
    assert_true(fd >= 0);
    assert_int_equal(ftruncate(fd, sizeof(struct drv_totals) +
                                       sizeof(struct drv_slot) + 1),
                     0);
    assert_int_equal(drv_scoreboard_adopt(&sb, fd), -EINVAL);
    assert_false(fd_is_open(fd)); /* closed, as promised */
    assert_null(sb.slots);

    /* Totals and no slot at all. */
    fd = memfd_create("no-slots", MFD_CLOEXEC);
    assert_true(fd >= 0);
    assert_int_equal(ftruncate(fd, sizeof(struct drv_totals)), 0);
    assert_int_equal(drv_scoreboard_adopt(&sb, fd), -EINVAL);
    assert_false(fd_is_open(fd));

    fd = memfd_create("empty", MFD_CLOEXEC);
    assert_true(fd >= 0);
    assert_int_equal(drv_scoreboard_adopt(&sb, fd), -EINVAL);
    assert_false(fd_is_open(fd));
}

static void test_free_leaves_an_empty_scoreboard_that_frees_again(void **state)
{
    (void)state;
    struct drv_scoreboard sb = board(2);
    int fd = sb.fd;
    drv_scoreboard_free(&sb);
    assert_null(sb.slots);
    assert_int_equal(sb.fd, -1);
    assert_int_equal(sb.nslots, 0);
    assert_false(fd_is_open(fd));
    drv_scoreboard_free(&sb); /* harmless */
    assert_null(drv_scoreboard_free_slot(&sb));
    assert_null(drv_scoreboard_find(&sb, 1));
}

static void test_fewest_conns_looks_at_ready_siblings_that_can_accept(
    void **state)
{
    (void)state;
    struct drv_scoreboard sb = board(8);
    struct drv_slot *me = claim(&sb, 100), *a = claim(&sb, 101),
                    *b = claim(&sb, 102), *c = claim(&sb, 103);
    size_t ready;
    /* Only slots [0, slots_used) are looked at: 4 claimed. */
    assert_int_equal(sb.totals->slots_used, 4);
    assert_int_equal(drv_scoreboard_fewest_conns(&sb, me, 1000, 25, &ready),
                     UINT64_MAX);
    assert_int_equal(ready, 1); /* none READY yet: me alone */
    for (struct drv_slot *s = me; s <= c; s++)
        assert_true(drv_slot_mark_ready(s));
    drv_slot_set_conns(me, 9);
    drv_slot_set_conns(a, 7);
    drv_slot_set_conns(b, 3);
    drv_slot_set_conns(c, 5);
    a->heartbeat_ms = b->heartbeat_ms = c->heartbeat_ms = 990;
    /* Each running an iteration begun 10 ms ago: all can accept. */
    assert_int_equal(drv_scoreboard_fewest_conns(&sb, me, 1000, 25, &ready),
                     3);
    assert_int_equal(ready, 4);
    /* b's iteration has run 50 ms (an app call, or stuck): not b. */
    b->heartbeat_ms = 950;
    assert_int_equal(drv_scoreboard_fewest_conns(&sb, me, 1000, 25, &ready),
                     5);
    /* ... unless it waits in its poll, however long ago it went there. */
    b->polling = 1;
    assert_int_equal(drv_scoreboard_fewest_conns(&sb, me, 1000, 25, &ready),
                     3);
    /* A stopping sibling neither takes connections nor counts. */
    drv_slot_set_state(b, DRV_SLOT_STOPPING);
    assert_int_equal(drv_scoreboard_fewest_conns(&sb, me, 1000, 25, &ready),
                     5);
    assert_int_equal(ready, 3);
    drv_scoreboard_free(&sb);
}

static void test_now_ms_never_goes_back(void **state)
{
    (void)state;
    uint64_t a = drv_now_ms();
    usleep(2000);
    uint64_t b = drv_now_ms();
    assert_true(b >= a + 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_a_new_scoreboard_has_every_slot_free_and_zeroed),
        cmocka_unit_test(test_slots_never_share_a_cache_line),
        cmocka_unit_test(test_free_slot_skips_taken_slots_until_none_is_left),
        cmocka_unit_test(test_every_taken_state_holds_its_slot),
        cmocka_unit_test(test_find_returns_the_slot_of_a_live_pid),
        cmocka_unit_test(test_find_ignores_a_free_slot_that_still_names_a_pid),
        cmocka_unit_test(test_mark_ready_moves_a_booting_slot_to_ready),
        cmocka_unit_test(test_mark_ready_leaves_the_masters_stopping_in_place),
        cmocka_unit_test(test_busy_records_the_request_line_and_when),
        cmocka_unit_test(test_idle_clears_busy_since),
        cmocka_unit_test(test_busy_truncates_a_long_request_line_to_the_slot),
        cmocka_unit_test(test_count_files_responses_by_status_code),
        cmocka_unit_test(
            test_codes_past_the_slots_table_are_counted_in_the_totals),
        cmocka_unit_test(
            test_a_latency_lands_in_the_first_bucket_that_holds_it),
        cmocka_unit_test(test_fold_adds_a_dead_workers_counts_to_the_totals),
        cmocka_unit_test(test_retiring_and_gauges_are_the_workers_word),
        cmocka_unit_test(test_what_a_forked_worker_writes_the_master_reads),
        cmocka_unit_test(test_counts_from_concurrent_processes_add_up),
        cmocka_unit_test(
            test_a_worker_told_to_stop_while_booting_stays_stopping),
        cmocka_unit_test(test_adopt_maps_the_same_slots_from_an_inherited_fd),
        cmocka_unit_test(test_adopt_refuses_a_size_that_is_not_whole_slots),
        cmocka_unit_test(test_free_leaves_an_empty_scoreboard_that_frees_again),
        cmocka_unit_test(test_fewest_conns_looks_at_ready_siblings_that_can_accept),
        cmocka_unit_test(test_now_ms_never_goes_back),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
