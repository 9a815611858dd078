/*
 * status: `drover status`, a running master's workers at a glance.
 *
 *   drover status [--watch] [--metrics-bind ADDRESS | -c FILE | ...]
 *
 * The address comes from the settings as drover itself would read them
 * (command line, DROVER_METRICS_BIND, the YAML file named by -c or
 * DROVER_CONFIG); the command asks the master's metrics listener for
 * GET /status (the line format in metrics.h) and prints one line per
 * worker (slot, pid, state, age, requests served, resident memory, and
 * for a busy worker how long it has served which request), then the
 * totals and each listener's accept queue. --watch prints it again every
 * second on a cleared screen, until Ctrl-C.
 *
 * Exit status: 0 shown; 1 the master cannot be reached or answers
 * nonsense (one line on stderr); 2 no metrics address configured, or bad
 * settings (one line).
 */
#ifndef DRV_STATUS_H
#define DRV_STATUS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#define DRV_STATUS_TEXT_MAX 200

struct drv_status_worker {
    unsigned number;
    int pid;
    char state[16];
    uint64_t age_ms, requests, busy_ms;
    int64_t rss; /* -1 unknown */
    char request[DRV_STATUS_TEXT_MAX];
};

struct drv_status_listener {
    int64_t queue, max; /* -1 unknown */
    char name[DRV_STATUS_TEXT_MAX];
};

/* One /status answer, parsed. */
struct drv_status {
    int pid;
    unsigned generation;
    uint64_t uptime_ms;
    bool ready;
    int workers_wanted;
    uint64_t requests, in_flight, conns, restarts;
    struct drv_status_worker *workers;
    size_t nworkers;
    struct drv_status_listener *listeners;
    size_t nlisteners;
};

/* Parse a /status body (NUL-terminated). Returns 0, or -1 when it is not
 * version 1 of the format (no "drover-status 1" first line, or no master
 * line). Lines of unknown kinds are skipped. Free with drv_status_free. */
int drv_status_parse(const char *text, struct drv_status *st);

void drv_status_free(struct drv_status *st);

/* Print *st for a terminal `width` columns wide (at least 40). */
void drv_status_print(const struct drv_status *st, FILE *out, int width);

/* "45s", "5m03s", "2h05m", "3d04h". */
void drv_status_age(uint64_t ms, char *buf, size_t len);

/* "512K", "38.1M", "1.2G"; "-" when negative. */
void drv_status_bytes(int64_t bytes, char *buf, size_t len);

/* `drover status` itself: argv[0] is "status". Returns the exit status. */
int drv_status_main(int argc, char **argv, char **envp);

#endif
