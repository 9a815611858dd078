/*
 * master: fork, watch and replace the workers.
 *
 * Loop shape (nginx's): ev_run(EVRUN_ONCE) lets the callbacks record
 * signals and the tick; then drv_master_run's loop does the work:
 * reaping, timeouts, stopping, reloading and forking. fork() therefore
 * always happens here, outside libev, and a new worker returns straight
 * up to main() with its own loop, leaving the master's behind.
 */
#include "master.h"

#include <errno.h>
#include <grp.h>
#include <pwd.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <ev.h>

#include "accesslog.h"
#include "app.h"
#include "buf.h"
#include "log.h"
#include "metrics.h"
#include "metrics_server.h"
#include "notify.h"
#include "proctitle.h"
#include "reexec.h"
#include "response.h"
#include "scoreboard.h"
#include "worker.h"

#define TICK_SECONDS 0.2
#define ABORT_GRACE_MS 1000 /* SIGABRT, then SIGKILL this much later */
#define FAST_STOP_MS 1000
#define MAX_BOOT_FAILURES 3

enum phase {
    RUNNING,
    STOPPING, /* graceful: waiting for the workers to finish */
    QUITTING, /* fast */
};

struct master {
    const struct drv_master_args *a;
    const struct drv_settings *s;
    struct ev_loop *loop;
    struct drv_scoreboard sb;
    uint32_t generation;
    int target;              /* workers wanted in the current generation */
    enum phase phase;
    int exit_status;
    int boot_failures;       /* in a row, since a worker last became ready */
    uint64_t failed_ms;      /* when the last one failed */
    bool gave_up;            /* fork nothing: the new generation cannot boot
                                (or this image is a caretaker); the old
                                one serves until the next SIGHUP */
    bool ready_once;         /* the current generation has been all ready */
    pid_t probe;             /* reload check in progress, 0 = none */
    bool reload_go;          /* the probe passed: re-exec next time round */
    const char *name;        /* for titles */
    struct drv_identity id;  /* --user/--group, resolved once at start */
    bool switch_ids;         /* workers switch to id */
    uint64_t watchdog_ms;    /* systemd WatchdogSec= ping interval, 0 = none */
    uint64_t pinged_ms;      /* last WATCHDOG=1 */
    uint64_t status_ms;      /* last STATUS= */
    struct drv_metrics_server *metrics; /* --metrics-bind, or NULL */

    /* what the callbacks recorded */
    int pending[NSIG];

    ev_signal sigs[8];
    ev_timer tick;
};

static const int handled[] = {SIGTERM, SIGINT, SIGQUIT, SIGHUP,
                              SIGTTIN, SIGTTOU, SIGUSR1, SIGCHLD};
#define NHANDLED (sizeof(handled) / sizeof(handled[0]))

static void on_signal(struct ev_loop *loop, ev_signal *w, int revents)
{
    (void)loop;
    (void)revents;
    struct master *m = w->data;
    m->pending[w->signum]++;
}

static void on_tick(struct ev_loop *loop, ev_timer *t, int revents)
{
    (void)loop;
    (void)t;
    (void)revents;
    /* Nothing to record: waking the loop is the point (timeouts, readiness,
     * systemd reports are checked each time round). */
}

/* ---- slots ---- */

static bool live(const struct drv_slot *slot)
{
    return drv_slot_state(slot) != DRV_SLOT_FREE;
}

static uint32_t slot_state(const struct drv_slot *slot)
{
    return drv_slot_state(slot);
}

/* Workers of the current generation that are booting or serving. */
static int count_current(struct master *m, bool ready_only)
{
    int n = 0;
    for (size_t i = 0; i < m->sb.nslots; i++) {
        struct drv_slot *slot = &m->sb.slots[i];
        uint32_t st = slot_state(slot);
        if (slot->generation != m->generation)
            continue;
        if (st == DRV_SLOT_READY || (!ready_only && st == DRV_SLOT_BOOTING))
            n++;
    }
    return n;
}

static bool any_live(struct master *m)
{
    for (size_t i = 0; i < m->sb.nslots; i++)
        if (live(&m->sb.slots[i]))
            return true;
    return m->probe != 0;
}

/* How long a worker told to finish gets before SIGKILL. */
static uint64_t graceful_ms(const struct master *m)
{
    return (uint64_t)(m->s->graceful_timeout * 1000) + 500;
}

/* Tell one worker to stop with `sig` for `why`, SIGKILL after
 * `grace_ms`. The first reason given is the one its death counts for. */
static void stop_worker(struct drv_slot *slot, int sig, uint64_t grace_ms,
                        enum drv_stop_reason why)
{
    if (!slot->stop_reason)
        slot->stop_reason = why;
    if (drv_slot_state(slot) == DRV_SLOT_STOPPING && slot->kill_at_ms &&
        slot->kill_at_ms <= drv_now_ms() + grace_ms)
        return; /* already told, with a deadline at least as near */
    drv_slot_set_state(slot, DRV_SLOT_STOPPING);
    slot->kill_at_ms = drv_now_ms() + grace_ms;
    if (kill(slot->pid, sig) != 0 && errno != ESRCH)
        drv_log_errno(errno, "kill", "worker %d (pid %d)", (int)slot->number,
                      (int)slot->pid);
}

static void signal_all(struct master *m, int sig, uint64_t grace_ms)
{
    for (size_t i = 0; i < m->sb.nslots; i++)
        if (live(&m->sb.slots[i]))
            stop_worker(&m->sb.slots[i], sig, grace_ms, DRV_STOP_SHUTDOWN);
}

/* ---- the worker side of fork() ---- */

/* A user or group named by name or by number. */
static struct passwd *find_user(const char *text)
{
    struct passwd *pw = getpwnam(text);
    char *end;
    unsigned long v = strtoul(text, &end, 10);
    if (!pw && end != text && *end == '\0')
        pw = getpwuid((uid_t)v);
    return pw;
}

static struct group *find_group(const char *text)
{
    struct group *gr = getgrnam(text);
    char *end;
    unsigned long v = strtoul(text, &end, 10);
    if (!gr && end != text && *end == '\0')
        gr = getgrgid((gid_t)v);
    return gr;
}

int drv_master_identity(const struct drv_settings *s,
                        struct drv_identity *id, char *err, size_t errlen)
{
    *id = (struct drv_identity){.uid = getuid(), .gid = getgid()};
    if (s->user) {
        struct passwd *pw = find_user(s->user);
        if (!pw) {
            snprintf(err, errlen, "--user '%s': no such user", s->user);
            return -1;
        }
        id->uid = pw->pw_uid;
        id->gid = pw->pw_gid;
        snprintf(id->name, sizeof(id->name), "%s", pw->pw_name);
    }
    if (s->group) {
        struct group *gr = find_group(s->group);
        if (!gr) {
            snprintf(err, errlen, "--group '%s': no such group", s->group);
            return -1;
        }
        id->gid = gr->gr_gid;
    }
    return 0;
}

static int drop_privileges(struct master *m, char *err, size_t errlen)
{
    const struct drv_identity *id = &m->id;
    if (!m->switch_ids)
        return 0;
    if ((id->name[0] ? initgroups(id->name, id->gid)
                     : setgroups(1, &id->gid)) != 0 ||
        setgid(id->gid) != 0 || setuid(id->uid) != 0) {
        snprintf(err, errlen, "cannot switch to user %s / group %s: %s",
                 m->s->user ? m->s->user : "-",
                 m->s->group ? m->s->group : "-", strerror(errno));
        return -1;
    }
    return 0;
}

/* With --user, the log files belong to the workers' user: they reopen
 * them themselves after a rotation (USR1), without root. */
static void give_logs(struct master *m)
{
    if (!m->switch_ids || geteuid() != 0)
        return;
    int rc = drv_log_chown(m->id.uid, m->id.gid);
    if (rc == 0 && m->a->accesslog)
        rc = drv_accesslog_chown(m->a->accesslog, m->id.uid, m->id.gid);
    if (rc != 0)
        drv_log_errno(-rc, "fchown", "log files for --user/--group");
}

/* Leave the master's loop behind: its watchers go (restoring the default
 * signal actions), then its loop. Signals stay blocked until the worker's
 * own loop watches them. */
static void forget_master(struct master *m)
{
    for (size_t i = 0; i < NHANDLED; i++)
        ev_signal_stop(m->loop, &m->sigs[i]);
    ev_timer_stop(m->loop, &m->tick);
    /* The metrics listener and its clients are the master's alone. */
    drv_metrics_server_forget(m->metrics);
    m->metrics = NULL;
    for (size_t i = 0; i < m->a->nmetrics; i++) {
        if (m->a->metrics[i].fd >= 0)
            close(m->a->metrics[i].fd);
        m->a->metrics[i].fd = -1;
    }
    ev_loop_destroy(m->loop);
    m->loop = NULL;
    /* A signal meant for the master's process group must not stop a
     * worker. */
    signal(SIGTTIN, SIG_IGN);
    signal(SIGTTOU, SIG_IGN);
}

static int worker_main(struct master *m, struct drv_slot *slot,
                       uint64_t limit)
{
    const struct drv_settings *s = m->s;
    struct drv_app **app = m->a->app;
    pid_t master_pid = getppid();
    char err[1024];

    forget_master(m);
    drv_proctitle_set("drover: worker %u [%s]", slot->number, m->name);
    if (*app && (*app)->ops->post_fork &&
        (*app)->ops->post_fork(*app, err, sizeof(err)) != 0)
        goto fail;
    if (drop_privileges(m, err, sizeof(err)) != 0)
        goto fail;
    /* After the switch of user, which would clear it: a master that dies
     * takes its workers with it (SIGTERM: they finish what they serve).
     * One that died already is noticed here. */
    if (prctl(PR_SET_PDEATHSIG, SIGTERM) != 0)
        drv_log_errno(errno, "prctl", "PR_SET_PDEATHSIG");
    if (getppid() != master_pid) {
        snprintf(err, sizeof(err), "the master is gone");
        goto fail;
    }
    if (!*app) {
        *app = drv_app_load(s->app, s, err, sizeof(err));
        if (!*app || ((*app)->ops->post_fork &&
                      (*app)->ops->post_fork(*app, err, sizeof(err)) != 0))
            goto fail;
    }

    struct drv_worker w;
    if (drv_worker_init(&w, s, m->a->listeners, m->a->nlisteners, *app,
                        m->a->accesslog) != 0)
        return DRV_EXIT_BOOT;
    w.slot = slot;
    w.board = &m->sb;
    w.conns.totals = m->sb.totals;
    w.master_pid = master_pid;
    w.max_requests = limit;
    if ((s->threads > 1 && !(*app)->ops->begin &&
         drv_worker_start_threads(&w, (size_t)s->threads, err,
                                  sizeof(err)) != 0) ||
        drv_worker_start_app(&w, err, sizeof(err)) != 0) {
        drv_worker_abandon(&w);
        goto fail;
    }
    drv_slot_store(&slot->heartbeat_ms, drv_now_ms());
    /* BOOTING -> READY, unless the master has meanwhile told us to stop
     * (then STOPPING stays, and the signal is waiting for the loop). */
    drv_slot_mark_ready(slot);
    int status = drv_worker_run(&w);
    drv_info("Worker exiting (pid: %d)", (int)getpid());
    drv_scoreboard_free(&m->sb);
    return status;

fail:
    drv_error("worker %u failed to boot: %s", slot->number, err);
    return DRV_EXIT_BOOT;
}

/* ---- the master side ---- */

static uint64_t request_limit(const struct drv_settings *s)
{
    if (s->max_requests <= 0)
        return 0;
    uint64_t jitter = 0;
    if (s->max_requests_jitter > 0) {
        uint32_t span = s->max_requests_jitter >= UINT32_MAX
                            ? UINT32_MAX
                            : (uint32_t)s->max_requests_jitter + 1;
        jitter = arc4random_uniform(span);
    }
    return (uint64_t)s->max_requests + jitter;
}

/* Fork one worker into `slot`. Returns 1 in the parent, 0 in the child
 * (which has run and finished its worker: *status is its exit status), -1
 * when fork() failed (logged). */
static int spawn(struct master *m, struct drv_slot *slot, int *status)
{
    struct drv_app *app = *m->a->app;
    uint64_t limit = request_limit(m->s);
    uint64_t now = drv_now_ms();

    *slot = (struct drv_slot){
        .generation = m->generation,
        .number = (uint32_t)(slot - m->sb.slots) + 1,
        .started_ms = now,
        .heartbeat_ms = now,
    };
    drv_slot_set_state(slot, DRV_SLOT_BOOTING);
    /* Buffered output must not be written twice, once by each process. */
    fflush(NULL);
    sigset_t all, old;
    sigfillset(&all);
    sigprocmask(SIG_BLOCK, &all, &old);
    if (app && app->ops->before_fork)
        app->ops->before_fork(app);
    pid_t pid = fork();
    if (pid == 0) {
        *status = worker_main(m, slot, limit);
        return 0;
    }
    int saved = errno;
    if (app && app->ops->after_fork_parent)
        app->ops->after_fork_parent(app);
    sigprocmask(SIG_SETMASK, &old, NULL);
    if (pid < 0) {
        drv_log_errno(saved, "fork", "worker %u", slot->number);
        drv_slot_set_state(slot, DRV_SLOT_FREE);
        return -1;
    }
    slot->pid = pid;
    drv_info("Booting worker %u with pid: %d", slot->number, (int)pid);
    return 1;
}

static void log_death(struct drv_slot *slot, int wstatus)
{
    if (WIFEXITED(wstatus)) {
        int code = WEXITSTATUS(wstatus);
        if (code == 0)
            drv_info("Worker %u (pid: %d) exited", slot->number, slot->pid);
        else if (code != DRV_EXIT_BOOT)
            drv_error("Worker %u (pid: %d) exited with code %d",
                      slot->number, slot->pid, code);
        return;
    }
    int sig = WTERMSIG(wstatus);
    const char *hint = "";
    if (sig == SIGKILL && !slot->kill_at_ms)
        hint = " Perhaps out of memory?";
    drv_error("Worker %u (pid: %d) was killed by signal %d (%s)%s%s",
              slot->number, slot->pid, sig, strsignal(sig),
              WCOREDUMP(wstatus) ? ", core dumped" : "", hint);
}

static void probe_done(struct master *m, int wstatus)
{
    m->probe = 0;
    if (m->phase != RUNNING)
        return;
    if (WIFEXITED(wstatus) && WEXITSTATUS(wstatus) == 0) {
        m->reload_go = true;
        return;
    }
    drv_error("Reload failed: the new configuration or app does not load "
              "(see above); the running workers keep serving");
    drv_notifyf("READY=1\nSTATUS=reload failed; %d worker(s) serving the "
                "previous code", m->target);
}

/* Why a worker that died was replaced; false when it was not (the
 * server is stopping). */
static bool restart_reason(const struct drv_slot *slot, enum drv_restart *why)
{
    if (slot->timed_out) {
        *why = DRV_RESTART_TIMEOUT;
        return true;
    }
    switch (drv_slot_retire_reason(slot)) {
    case DRV_RETIRE_MAX_REQUESTS:
        *why = DRV_RESTART_MAX_REQUESTS;
        return true;
    case DRV_RETIRE_MEMORY:
        *why = DRV_RESTART_MEMORY;
        return true;
    case DRV_RETIRE_NONE:
        break;
    }
    switch ((enum drv_stop_reason)slot->stop_reason) {
    case DRV_STOP_SHUTDOWN:
        return false;
    case DRV_STOP_RELOAD:
        *why = DRV_RESTART_RELOAD;
        return true;
    case DRV_STOP_SCALE:
        *why = DRV_RESTART_SCALE;
        return true;
    case DRV_STOP_TIMEOUT:
        *why = DRV_RESTART_TIMEOUT;
        return true;
    case DRV_STOP_NONE:
        break;
    }
    *why = DRV_RESTART_CRASH;
    return true;
}

/* A dead worker's counters go to the totals, and its death is counted. */
static void count_death(struct master *m, const struct drv_slot *slot)
{
    enum drv_restart why;
    drv_scoreboard_fold(&m->sb, slot);
    if (restart_reason(slot, &why))
        drv_scoreboard_restart(&m->sb, why);
}

static void reap(struct master *m)
{
    int wstatus;
    pid_t pid;
    while ((pid = waitpid(-1, &wstatus, WNOHANG)) > 0) {
        if (pid == m->probe) {
            probe_done(m, wstatus);
            continue;
        }
        struct drv_slot *slot = drv_scoreboard_find(&m->sb, pid);
        if (!slot) {
            /* As PID 1 in a container we inherit orphans: reap them. */
            drv_debug("reaped process %d", (int)pid);
            continue;
        }
        log_death(slot, wstatus);
        bool boot_failed = (drv_slot_state(slot) == DRV_SLOT_BOOTING &&
                            WIFEXITED(wstatus) &&
                            WEXITSTATUS(wstatus) == DRV_EXIT_BOOT) ||
                           slot->timed_out == 2;
        if (boot_failed && slot->generation == m->generation) {
            m->boot_failures++;
            m->failed_ms = drv_now_ms();
        }
        count_death(m, slot);
        drv_slot_set_state(slot, DRV_SLOT_FREE);
        slot->pid = 0;
    }
}

/*
 * The client of a request past --timeout gets a 504 rather than a dropped
 * connection. The worker is stuck in the app and cannot be trusted to
 * write it, so the master takes a copy of the client socket out of the
 * worker (pidfd_getfd(2), Linux 5.6: allowed to a parent over its child
 * of the same user, or with CAP_SYS_PTRACE) and answers on it before the
 * abort. Where the kernel refuses, the connection is dropped as before.
 */
static void answer_timed_out(const struct drv_slot *slot)
{
    uint64_t fd1 = drv_slot_load(&slot->busy_fd);
    if (!fd1)
        return;
    int pidfd = (int)syscall(SYS_pidfd_open, slot->pid, 0);
    int fd = pidfd < 0 ? -1
                       : (int)syscall(SYS_pidfd_getfd, pidfd, (int)(fd1 - 1), 0);
    int err = errno;
    if (pidfd >= 0)
        close(pidfd);
    if (fd < 0) {
        drv_debug("cannot answer the timed-out request with a 504: "
                  "pidfd_getfd: %s", strerror(err));
        return;
    }
    bool head = strncmp(slot->request, "HEAD ", 5) == 0;
    int rc = drv_response_send_timeout(fd, head, (struct drv_str){NULL, 0});
    if (rc < 0)
        drv_debug("504 to the timed-out request: %s", strerror(-rc));
    close(fd);
}

static void check_timeouts(struct master *m)
{
    uint64_t now = drv_now_ms();
    uint64_t limit = (uint64_t)(m->s->timeout * 1000);
    for (size_t i = 0; i < m->sb.nslots; i++) {
        struct drv_slot *slot = &m->sb.slots[i];
        uint32_t st = slot_state(slot);
        if (st == DRV_SLOT_FREE)
            continue;
        if (st == DRV_SLOT_BOOTING) {
            /* An import that hangs (a database that does not answer)
             * must not hold the slot for ever: timeout covers boot too,
             * as in gunicorn. Signals are blocked while a worker boots:
             * SIGKILL follows. */
            if (limit && !slot->timed_out && now - slot->started_ms > limit) {
                drv_critical("WORKER TIMEOUT (pid: %d): worker %u did not "
                             "boot in %.1f s", slot->pid, slot->number,
                             (double)(now - slot->started_ms) / 1000);
                slot->timed_out = 2;
                stop_worker(slot, SIGABRT, ABORT_GRACE_MS, DRV_STOP_TIMEOUT);
            }
            continue;
        }
        /* A worker forked after the last boot failure made it. */
        if (st == DRV_SLOT_READY && slot->generation == m->generation &&
            slot->started_ms >= m->failed_ms)
            m->boot_failures = 0;
        if (slot->kill_at_ms && now >= slot->kill_at_ms) {
            if (kill(slot->pid, SIGKILL) == 0)
                drv_warn("Worker %u (pid: %d) did not stop in time: "
                         "SIGKILL", slot->number, slot->pid);
            slot->kill_at_ms = UINT64_MAX; /* once */
            continue;
        }
        if (limit == 0 || slot->timed_out)
            continue;
        uint64_t busy = drv_slot_load(&slot->busy_since_ms);
        uint64_t beat = drv_slot_load(&slot->heartbeat_ms);
        uint64_t named = drv_slot_load(&slot->overdue);
        if (named) {
            drv_critical("WORKER TIMEOUT (pid: %d): worker %u: aborting it "
                         "for the %llu request(s) named above",
                         slot->pid, slot->number, (unsigned long long)named);
        } else if (busy && now > busy && now - busy > limit) {
            /* A worker with app threads names its requests itself, unless
             * its loop is stuck too. */
            if (m->s->threads > 1 && now - busy <= limit +
                DRV_SLOT_OVERDUE_GRACE_MS && now - beat < limit)
                continue;
            drv_critical("WORKER TIMEOUT (pid: %d): worker %u has served "
                         "'%.*s' for %.1f s",
                         slot->pid, slot->number, DRV_SLOT_REQUEST_MAX,
                         slot->request, (double)(now - busy) / 1000);
            answer_timed_out(slot);
        } else if (!busy && now > beat && now - beat > limit) {
            drv_critical("WORKER TIMEOUT (pid: %d): worker %u's loop has "
                         "not run for %.1f s",
                         slot->pid, slot->number, (double)(now - beat) / 1000);
        } else {
            continue;
        }
        /* faulthandler answers SIGABRT with every thread's stack. */
        slot->timed_out = 1;
        stop_worker(slot, SIGABRT, ABORT_GRACE_MS, DRV_STOP_TIMEOUT);
    }
}

static void begin_stop(struct master *m, enum phase phase)
{
    if (m->phase >= phase)
        return;
    m->phase = phase;
    drv_notify_stopping();
    if (m->probe)
        kill(m->probe, SIGKILL);
    /* Our copies of the listeners go first, so that once the workers have
     * closed theirs new connections are refused, not left queued. */
    for (size_t i = 0; i < m->a->nlisteners; i++) {
        if (m->a->listeners[i].fd >= 0)
            close(m->a->listeners[i].fd);
        m->a->listeners[i].fd = -1;
    }
    if (phase == STOPPING) {
        /* The first worker to act on it drains the accept queue and
         * stops the sockets listening for every process at once. */
        for (size_t i = 0; i < m->sb.nslots; i++)
            __atomic_store_n(&m->sb.slots[i].shutdown, 1, __ATOMIC_RELAXED);
        signal_all(m, SIGTERM, graceful_ms(m));
    } else {
        signal_all(m, SIGQUIT, FAST_STOP_MS);
    }
}

static void start_probe(struct master *m)
{
    if (m->probe || m->reload_go) {
        drv_warn("SIGHUP: a reload is already under way");
        return;
    }
    drv_info("Hang up: checking the new configuration and app");
    drv_notify_reloading();
    m->probe = drv_reexec_check();
    if (m->probe < 0) {
        drv_log_errno(-m->probe, "fork", "reload check");
        m->probe = 0;
    }
}

static void reexec(struct master *m)
{
    m->reload_go = false;
    drv_info("Reloading: re-executing the master (pid %d) with the new "
             "configuration", (int)getpid());
    fflush(NULL);
    /* Blocked across exec(): the new image unblocks once it watches
     * them, so no signal meets a default action in between. */
    sigset_t all, old;
    sigfillset(&all);
    sigprocmask(SIG_BLOCK, &all, &old);
    int rc = drv_reexec(m->a->listeners, m->a->nlisteners, m->a->metrics,
                        m->a->nmetrics, m->sb.fd);
    sigprocmask(SIG_SETMASK, &old, NULL);
    drv_log_errno(-rc, "execv", "reload of /proc/self/exe; the running "
                  "workers keep serving");
    drv_notify_ready();
}

/* Retire the previous generation once the current one is all ready. */
static void hand_over(struct master *m)
{
    if (count_current(m, true) < m->target)
        return;
    if (!m->ready_once) {
        m->ready_once = true;
        m->boot_failures = 0;
        drv_info("%d worker(s) ready (generation %u)", m->target,
                 m->generation);
        /* systemd: only now, with every worker accepting (gunicorn tells
         * it before any worker exists). After a reload too. */
        drv_notifyf("READY=1\nMAINPID=%d\nSTATUS=%d worker(s) serving",
                    (int)getpid(), m->target);
    }
    for (size_t i = 0; i < m->sb.nslots; i++) {
        struct drv_slot *slot = &m->sb.slots[i];
        if (live(slot) && slot->generation != m->generation &&
            drv_slot_state(slot) != DRV_SLOT_STOPPING) {
            drv_info("Retiring old worker %u (pid: %d)", slot->number,
                     slot->pid);
            stop_worker(slot, SIGHUP, graceful_ms(m), DRV_STOP_RELOAD);
        }
    }
}

/* One fewer worker: the newest of the current generation goes. */
static void shrink(struct master *m)
{
    struct drv_slot *victim = NULL;
    for (size_t i = 0; i < m->sb.nslots; i++) {
        struct drv_slot *slot = &m->sb.slots[i];
        uint32_t st = slot_state(slot);
        if (slot->generation == m->generation &&
            (st == DRV_SLOT_READY || st == DRV_SLOT_BOOTING) &&
            (!victim || slot->started_ms >= victim->started_ms))
            victim = slot;
    }
    if (victim)
        stop_worker(victim, SIGHUP, graceful_ms(m), DRV_STOP_SCALE);
}

static void handle_signals(struct master *m)
{
    int *p = m->pending;
    if (p[SIGCHLD]) {
        p[SIGCHLD] = 0;
        reap(m);
    }
    if (p[SIGINT] || p[SIGQUIT]) {
        drv_info("%s: stopping now", p[SIGINT] ? "SIGINT" : "SIGQUIT");
        p[SIGINT] = p[SIGQUIT] = 0;
        begin_stop(m, QUITTING);
    }
    if (p[SIGTERM]) {
        p[SIGTERM] = 0;
        if (m->phase == RUNNING)
            drv_info("SIGTERM: stopping gracefully");
        begin_stop(m, STOPPING);
    }
    if (p[SIGUSR1]) {
        p[SIGUSR1] = 0;
        drv_info("SIGUSR1: reopening log files");
        int rc = drv_log_reopen();
        if (rc == 0 && m->a->accesslog)
            rc = drv_accesslog_reopen(m->a->accesslog);
        if (rc != 0)
            drv_log_errno(-rc, "open", "reopening the log files");
        give_logs(m);
        for (size_t i = 0; i < m->sb.nslots; i++)
            if (live(&m->sb.slots[i]))
                kill(m->sb.slots[i].pid, SIGUSR1);
    }
    if (m->phase != RUNNING) {
        p[SIGHUP] = p[SIGTTIN] = p[SIGTTOU] = 0;
        return;
    }
    for (; p[SIGTTIN] > 0; p[SIGTTIN]--) {
        if ((size_t)m->target * 2 < m->sb.nslots)
            m->target++;
        drv_info("SIGTTIN: %d worker(s)", m->target);
    }
    for (; p[SIGTTOU] > 0; p[SIGTTOU]--) {
        if (m->target > 1) {
            m->target--;
            shrink(m);
        }
        drv_info("SIGTTOU: %d worker(s)", m->target);
    }
    if (p[SIGHUP]) {
        p[SIGHUP] = 0;
        start_probe(m);
    }
}

static bool old_generation_serves(struct master *m)
{
    for (size_t i = 0; i < m->sb.nslots; i++) {
        struct drv_slot *slot = &m->sb.slots[i];
        if (slot_state(slot) == DRV_SLOT_READY &&
            slot->generation != m->generation)
            return true;
    }
    return false;
}

/* Workers that cannot boot: a first start gives up (exit 3); after a
 * reload the previous generation keeps serving and the master stops
 * trying; once the generation has served, replacements back off instead
 * of looping through fork(). Returns true when no fork should happen. */
static bool boot_trouble(struct master *m)
{
    if (m->boot_failures == 0)
        return false;
    if (m->boot_failures >= MAX_BOOT_FAILURES && !m->ready_once) {
        if (old_generation_serves(m)) {
            drv_critical("New workers failed to boot %d times: the "
                         "previous workers keep serving; fix the app and "
                         "send SIGHUP", m->boot_failures);
            drv_notifyf("READY=1\nSTATUS=new workers failed to boot; the "
                        "previous ones serve");
            m->gave_up = true;
            return true;
        }
        drv_critical("Workers failed to boot %d times in a row: stopping",
                     m->boot_failures);
        m->exit_status = DRV_EXIT_BOOT;
        begin_stop(m, STOPPING);
        return true;
    }
    int steps = m->boot_failures < 10 ? m->boot_failures : 10;
    return drv_now_ms() < m->failed_ms + (uint64_t)steps * 500;
}

/* Fork what is missing. Returns 0 in the master, 1 in a child that ran
 * its worker (status in *status). */
static int fill(struct master *m, int *status)
{
    if (m->gave_up || boot_trouble(m))
        return 0;
    while (count_current(m, false) < m->target) {
        struct drv_slot *slot = drv_scoreboard_free_slot(&m->sb);
        if (!slot) {
            drv_error("no free scoreboard slot for another worker");
            return 0;
        }
        int rc = spawn(m, slot, status);
        if (rc == 0)
            return 1;
        if (rc < 0)
            return 0; /* the tick retries */
    }
    return 0;
}

/* systemd: WATCHDOG=1 at half the interval, sent from here so that a
 * master whose loop or checks stall stops pinging; STATUS= every few
 * seconds with the counters of the scoreboard. */
static void report(struct master *m)
{
    uint64_t now = drv_now_ms();
    if (m->watchdog_ms && now - m->pinged_ms >= m->watchdog_ms / 2) {
        drv_notify_watchdog();
        m->pinged_ms = now;
    }
    if (!m->ready_once || now - m->status_ms < 5000)
        return;
    m->status_ms = now;
    uint64_t served = 0;
    int n = 0;
    for (size_t i = 0; i < m->sb.nslots; i++) {
        if (live(&m->sb.slots[i]))
            n++;
        served += drv_slot_load(&m->sb.slots[i].requests);
    }
    drv_notify_status("%d worker(s), %llu requests served", n,
                      (unsigned long long)served);
}

/* ---- metrics ---- */

static bool ready(struct master *m)
{
    if (m->phase != RUNNING || (!m->ready_once && !old_generation_serves(m)))
        return false;
    for (size_t i = 0; i < m->sb.nslots; i++)
        if (slot_state(&m->sb.slots[i]) == DRV_SLOT_READY)
            return true;
    return false;
}

static int on_page(void *arg, enum drv_metrics_page page, struct drv_buf *body,
                   const char **type)
{
    struct master *m = arg;
    if (page == DRV_PAGE_HEALTHZ) {
        drv_buf_puts(body, "ok\n");
        return 200;
    }
    bool is_ready = ready(m);
    if (page == DRV_PAGE_READYZ) {
        drv_buf_puts(body, is_ready ? "ready\n" : "not ready\n");
        return is_ready ? 200 : 503;
    }
    struct drv_metrics *snap = drv_xcalloc(1, sizeof(*snap));
    drv_metrics_collect(snap, &m->sb, m->a->listeners, m->a->nlisteners,
                        drv_now_ms());
    snap->generation = m->generation;
    snap->ready = is_ready;
    snap->threads = m->s->threads > 1;
    snap->workers_wanted = m->target;
    if (page == DRV_PAGE_METRICS) {
        drv_metrics_render(snap, body);
        *type = "text/plain; version=0.0.4; charset=utf-8";
    } else {
        drv_metrics_render_status(snap, body);
    }
    drv_metrics_clear(snap);
    free(snap);
    return 200;
}

/* Slots still marked live whose process is gone were children of the
 * image before a reload that exited while exec() ran: their SIGCHLD did
 * not survive exec, so reap them now. */
static void adopt_old_generation(struct master *m)
{
    uint32_t newest = 0;
    for (size_t i = 0; i < m->sb.nslots; i++)
        if (live(&m->sb.slots[i]) && m->sb.slots[i].generation > newest)
            newest = m->sb.slots[i].generation;
    m->generation = newest + 1;
    reap(m);
}

static int setup(struct master *m, const struct drv_master_args *a)
{
    *m = (struct master){.a = a, .s = a->settings, .target = a->settings->workers};
    m->name = m->s->proc_name ? m->s->proc_name : m->s->app;
    m->switch_ids = m->s->user || m->s->group;
    char err[256];
    if (m->switch_ids && drv_master_identity(m->s, &m->id, err, sizeof(err))) {
        drv_error("%s", err);
        return -1;
    }
    int rc = a->scoreboard_fd >= 0
                 ? drv_scoreboard_adopt(&m->sb, a->scoreboard_fd)
                 : drv_scoreboard_create(&m->sb, 2 * 1024 + 8);
    if (rc != 0) {
        drv_log_errno(-rc, "memfd", "scoreboard");
        return -1;
    }
    m->loop = ev_loop_new(EVFLAG_AUTO | EVFLAG_NOSIGMASK);
    if (!m->loop) {
        drv_error("cannot create the event loop (libev)");
        drv_scoreboard_free(&m->sb);
        return -1;
    }
    for (size_t i = 0; i < NHANDLED; i++) {
        ev_signal_init(&m->sigs[i], on_signal, handled[i]);
        m->sigs[i].data = m;
        ev_signal_start(m->loop, &m->sigs[i]);
    }
    ev_timer_init(&m->tick, on_tick, TICK_SECONDS, TICK_SECONDS);
    ev_timer_start(m->loop, &m->tick);
    /* Signals may have been blocked across a reload's exec(). */
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
    drv_proctitle_set("drover: master [%s]", m->name);
    if (a->scoreboard_fd >= 0)
        adopt_old_generation(m);
    else
        m->generation = 1;
    if (a->caretaker) {
        m->gave_up = true;
        drv_notifyf("READY=1\nSTATUS=reload failed; the previous workers "
                    "serve");
    }
    m->watchdog_ms = drv_watchdog_usec() / 1000;
    if (a->nmetrics)
        m->metrics = drv_metrics_server_start(m->loop, a->metrics,
                                              a->nmetrics, on_page, m);
    give_logs(m);
    if (*a->app && (*a->app)->ops->preloaded)
        (*a->app)->ops->preloaded(*a->app);
    return 0;
}

int drv_master_run(const struct drv_master_args *a, bool *in_worker)
{
    struct master m;
    *in_worker = false;
    if (setup(&m, a) != 0)
        return 1;
    for (;;) {
        handle_signals(&m);
        if (m.phase == RUNNING) {
            int status;
            if (fill(&m, &status)) {
                *in_worker = true;
                return status;
            }
            hand_over(&m);
            if (m.reload_go)
                reexec(&m);
        }
        check_timeouts(&m);
        report(&m);
        if (m.phase != RUNNING && !any_live(&m))
            break;
        ev_run(m.loop, EVRUN_ONCE);
    }
    for (size_t i = 0; i < NHANDLED; i++)
        ev_signal_stop(m.loop, &m.sigs[i]);
    drv_metrics_server_free(m.metrics);
    ev_loop_destroy(m.loop);
    drv_scoreboard_free(&m.sb);
    return m.exit_status;
}
