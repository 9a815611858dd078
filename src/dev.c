/*
 * dev: the --dev loop. The worker serves; dev adds to the worker's loop:
 *
 *   - one inotify descriptor under an ev_io. Directories are watched, not
 *     files: an editor that saves by writing a new file and renaming it
 *     over the old one leaves a file watch on the dead inode, while the
 *     directory reports IN_MOVED_TO with the name. Each watched directory
 *     lists the names that matter in it (the app kind's source files: a
 *     Python app's modules, a native app's .so; the config file), or
 *     takes every name but editor scratch files (a directory from
 *     reload_extra_files, walked to its subdirectories);
 *   - a settle timer: the first matching event arms it and each further
 *     one re-arms it, so a burst (write, rename, chmod; a git checkout)
 *     reloads once; changes that go on longer than SETTLE_MAX reload
 *     anyway;
 *   - a rescan timer, for a kind that asks for one (Python): modules
 *     imported after start-up (inside a view, say) are watched from the
 *     next rescan on;
 *   - SIGINT and SIGTERM stop at once, exit status 0. The loop stops
 *     cleanly (the app's atexit handlers run) when it gets control, but a
 *     signal arriving in the middle of an app call cannot wait for that
 *     call: our handler feeds the signal to libev and arms a one-second
 *     alarm that ends the process if the loop has not by then. A second
 *     signal ends it immediately.
 *
 * A reload stops the worker with the listeners kept (new connections wait
 * in the backlog for the new image; requests in flight, and requests
 * already sent on idle connections, are answered; idle connections
 * close), then re-executes
 * drover in place. A fresh image is the only reliable re-import: it drops every
 * old module, C extension state and app thread. The time the reload began
 * crosses exec() in RELOAD_VAR, so the new image can say how long it took.
 *
 * What differs between app kinds is asked of the kind (app.h): which files
 * to watch, whether to rescan them, the failed load's traceback, the
 * environment dev mode sets (python_interp.c says why Python's).
 */
#include "dev.h"

#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "accesslog.h"
#include "app.h"
#include "log.h"
#include "loop.h"
#include "reexec.h"
#include "response.h"
#include "worker.h"

#define SETTLE     0.1  /* quiet time that ends a burst of changes */
#define SETTLE_MAX 1.0  /* reload after this long even if changes go on */
#define RESCAN     1.0  /* period of the look for newly imported modules */
#define MAX_DIRS   8192 /* directories one process watches at most */
#define MAX_DEPTH  32   /* how deep a reload_extra_files directory is walked */
#define RELOAD_VAR "DROVER_DEV_RELOAD_NS"
#define WATCH_MASK                                                             \
    (IN_CLOSE_WRITE | IN_MODIFY | IN_ATTRIB | IN_CREATE | IN_DELETE |          \
     IN_MOVED_FROM | IN_MOVED_TO | IN_ONLYDIR)

/* What in a watched directory counts as a change. */
enum match {
    M_NAMES, /* the listed names */
    M_NEW,   /* the listed names and any name with the kind's module_suffix
                (the app module is missing) */
    M_ANY,   /* every name except editor scratch files */
};

struct watch_dir {
    int wd; /* inotify watch descriptor (shared by aliases of one dir) */
    char *path;
    enum match match;
    char **names;
    size_t nnames, cap;
};

struct dev {
    const struct drv_settings *s;
    struct drv_worker w;
    struct drv_app *app;
    const struct drv_app_kind *kind;
    bool loaded; /* app is the real app, not the load-error page */

    int ifd; /* inotify, -1 when unavailable (no reloading then) */
    ev_io inotify;
    struct watch_dir *dirs;
    size_t ndirs;
    size_t nfiles;     /* names watched, for the banner */
    bool warned_limit; /* the watch limit was hit (logged once) */

    ev_timer settle;
    ev_timer rescan;
    ev_timer arm; /* first iteration: take SIGINT/SIGTERM over from libev */
    ev_signal sig_int, sig_term;
    ev_cleanup cleanup;
    ev_tstamp first_change;
    size_t nchanges;
    char trigger[PATH_MAX];

    bool reloading; /* a change was seen: re-exec once the loop ends */
    bool stopped;   /* SIGINT/SIGTERM: exit */
};

/* ------------------------------------------------------------------ */
/* Signals                                                             */

static void exit_now(int sig)
{
    (void)sig;
    _exit(0);
}

/* Until the loop watches them (and while exec() is on its way), SIGINT
 * and SIGTERM end the process with status 0 right away. */
static void exit_on_signals(void)
{
    struct sigaction sa = {.sa_handler = exit_now};
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
}

static volatile sig_atomic_t stop_requested;

/* Runs in the signal context: libev's own handler, plus the deadline. */
static void stop_soon(int sig)
{
    if (stop_requested)
        _exit(0);
    stop_requested = 1;
    ev_feed_signal(sig);
    alarm(1);
}

/* The worker's and our ev_signal watchers are registered now (libev
 * installed its handler when they started): replace the handler, keep the
 * watchers, which stop_soon() feeds. */
static void on_arm(struct ev_loop *loop, ev_timer *t, int revents)
{
    (void)loop;
    (void)t;
    (void)revents;
    struct sigaction sa = {.sa_handler = stop_soon};
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    sa.sa_handler = exit_now;
    sigaction(SIGALRM, &sa, NULL);
}

static void on_stop_signal(struct ev_loop *loop, ev_signal *sig, int revents)
{
    (void)revents;
    struct dev *d = sig->data;
    drv_info("%s: stopping now (development mode)",
             sig->signum == SIGINT ? "SIGINT" : "SIGTERM");
    d->stopped = true;
    drv_loop_break(loop);
}

/* ------------------------------------------------------------------ */
/* The watch list                                                      */

static bool has_name(const struct watch_dir *dir, const char *name)
{
    for (size_t i = 0; i < dir->nnames; i++)
        if (strcmp(dir->names[i], name) == 0)
            return true;
    return false;
}

static struct watch_dir *find_dir(struct dev *d, const char *path)
{
    for (size_t i = 0; i < d->ndirs; i++)
        if (strcmp(d->dirs[i].path, path) == 0)
            return &d->dirs[i];
    return NULL;
}

/* The entry for directory `path`, watched from now on; NULL when it
 * cannot be (missing, not a directory, out of watches). */
static struct watch_dir *watch_dir(struct dev *d, const char *path)
{
    struct watch_dir *dir = find_dir(d, path);
    if (dir)
        return dir;
    int wd = -1;
    if (d->ndirs < MAX_DIRS)
        wd = inotify_add_watch(d->ifd, path, WATCH_MASK);
    else
        errno = ENOSPC;
    if (wd < 0) {
        /* A file Python imported from a zip, or a directory gone since:
         * nothing to watch. Running out of watches is worth a line. */
        if ((errno == ENOSPC || errno == ENOMEM) && !d->warned_limit) {
            d->warned_limit = true;
            drv_log_errno(errno, "inotify_add_watch",
                          "cannot watch %s (and maybe more): changes there "
                          "will not reload (see fs.inotify.max_user_watches)",
                          path);
        }
        return NULL;
    }
    if ((d->ndirs & (d->ndirs - 1)) == 0) /* 0, 1, 2, 4, ...: grow */
        d->dirs = drv_xrealloc(d->dirs, (d->ndirs ? d->ndirs * 2 : 1) *
                                            sizeof(*d->dirs));
    dir = &d->dirs[d->ndirs++];
    *dir = (struct watch_dir){.wd = wd, .path = drv_xstrdup(path)};
    return dir;
}

static void add_name(struct dev *d, struct watch_dir *dir, const char *name)
{
    if (has_name(dir, name))
        return;
    if (dir->nnames == dir->cap) {
        dir->cap = dir->cap ? dir->cap * 2 : 8;
        dir->names = drv_xrealloc(dir->names, dir->cap * sizeof(*dir->names));
    }
    dir->names[dir->nnames++] = drv_xstrdup(name);
    d->nfiles++;
}

/* `path` made absolute against `base` (NULL: the working directory).
 * Returns 0, or -1 when it does not fit. */
static int absolute(const char *path, const char *base, char *out,
                    size_t outlen)
{
    char cwd[PATH_MAX];
    if (path[0] == '/')
        return snprintf(out, outlen, "%s", path) < (int)outlen ? 0 : -1;
    if (!base)
        base = getcwd(cwd, sizeof(cwd));
    if (!base)
        return -1;
    while (path[0] == '.' && path[1] == '/')
        path += 2;
    return snprintf(out, outlen, "%s/%s", base, path) < (int)outlen ? 0 : -1;
}

/* Watch the file at absolute path `abs` (it need not exist yet). Returns
 * false when it was watched already. */
static bool watch_path(struct dev *d, const char *abs)
{
    const char *slash = strrchr(abs, '/');
    if (!slash || !slash[1])
        return false;
    char dirpath[PATH_MAX];
    size_t n = slash == abs ? 1 : (size_t)(slash - abs);
    memcpy(dirpath, abs, n);
    dirpath[n] = '\0';
    struct watch_dir *dir = find_dir(d, dirpath);
    if (dir && has_name(dir, slash + 1))
        return false;
    dir = dir ? dir : watch_dir(d, dirpath);
    if (dir)
        add_name(d, dir, slash + 1);
    return true;
}

/* Watch a file by the path it was named by and, when that goes through a
 * symlink, by its real path too (the editor writes one or the other). */
static void watch_file(struct dev *d, const char *path, const char *base)
{
    char abs[PATH_MAX], real[PATH_MAX];
    if (d->ifd < 0 || absolute(path, base, abs, sizeof(abs)) != 0)
        return;
    if (watch_path(d, abs) && realpath(abs, real) && strcmp(real, abs) != 0)
        watch_path(d, real);
}

static void on_source_file(const char *path, void *arg)
{
    watch_file(arg, path, NULL);
}

/* A directory from reload_extra_files: every name in it counts, and in
 * its subdirectories (hidden ones skipped). */
static void watch_tree(struct dev *d, const char *path, int depth)
{
    struct watch_dir *dir = watch_dir(d, path);
    if (!dir)
        return;
    dir->match = M_ANY;
    DIR *dp = depth < MAX_DEPTH ? opendir(path) : NULL;
    if (!dp)
        return;
    struct dirent *e;
    while ((e = readdir(dp))) {
        char sub[PATH_MAX];
        struct stat st;
        if (e->d_name[0] == '.' || strcmp(e->d_name, "__pycache__") == 0 ||
            (e->d_type != DT_DIR && e->d_type != DT_UNKNOWN) ||
            snprintf(sub, sizeof(sub), "%s/%s", path, e->d_name) >=
                (int)sizeof(sub))
            continue;
        if (e->d_type == DT_DIR ||
            (lstat(sub, &st) == 0 && S_ISDIR(st.st_mode)))
            watch_tree(d, sub, depth + 1);
    }
    closedir(dp);
}

static void watch_extra(struct dev *d, const char *path)
{
    char abs[PATH_MAX];
    struct stat st;
    if (absolute(path, NULL, abs, sizeof(abs)) != 0)
        return;
    while (strlen(abs) > 1 && abs[strlen(abs) - 1] == '/')
        abs[strlen(abs) - 1] = '\0';
    if (stat(abs, &st) == 0 && S_ISDIR(st.st_mode))
        watch_tree(d, abs, 0);
    else
        watch_file(d, abs, NULL);
}

/* After a failed import of a module that does not exist yet, creating it
 * must reload: watch the working directory for any new module file. */
static void watch_new_modules(struct dev *d)
{
    char cwd[PATH_MAX];
    struct watch_dir *dir = getcwd(cwd, sizeof(cwd)) ? watch_dir(d, cwd) : NULL;
    if (dir && dir->match == M_NAMES)
        dir->match = M_NEW;
}

static void watch_all(struct dev *d)
{
    const struct drv_settings *s = d->s;
    d->ifd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
    if (d->ifd < 0) {
        drv_log_errno(errno, "inotify_init1",
                      "cannot watch files: changes will not reload");
        return;
    }
    if (s->config)
        watch_file(d, s->config, drv_reexec_start_dir());
    for (size_t i = 0; i < s->reload_extra_files.n; i++)
        watch_extra(d, s->reload_extra_files.v[i]);
    d->kind->source_files(s->app, on_source_file, d);
    if (!d->loaded && d->kind->module_suffix)
        watch_new_modules(d);
}

static void free_watches(struct dev *d)
{
    for (size_t i = 0; i < d->ndirs; i++) {
        for (size_t k = 0; k < d->dirs[i].nnames; k++)
            free(d->dirs[i].names[k]);
        free(d->dirs[i].names);
        free(d->dirs[i].path);
    }
    free(d->dirs);
    d->dirs = NULL;
    d->ndirs = 0;
    if (d->ifd >= 0)
        close(d->ifd);
    d->ifd = -1;
}

/* ------------------------------------------------------------------ */
/* Changes                                                             */

/* Files editors write beside the real one while saving or editing. */
static bool is_scratch(const char *name)
{
    size_t n = strlen(name);
    static const char *const suffixes[] = {"~",    ".swp", ".swx",
                                           ".swo", ".tmp", ".pyc"};
    if (name[0] == '.' || name[0] == '#' || strcmp(name, "4913") == 0 ||
        strcmp(name, "__pycache__") == 0)
        return true;
    for (size_t i = 0; i < sizeof(suffixes) / sizeof(suffixes[0]); i++) {
        size_t k = strlen(suffixes[i]);
        if (n >= k && strcmp(name + n - k, suffixes[i]) == 0)
            return true;
    }
    return false;
}

static bool matches(const struct dev *d, const struct watch_dir *dir,
                    const char *name)
{
    const char *suffix = d->kind->module_suffix; /* set when M_NEW is */
    size_t n = strlen(name);
    switch (dir->match) {
    case M_ANY:
        return !is_scratch(name);
    case M_NEW:
        if (n > strlen(suffix) &&
            strcmp(name + n - strlen(suffix), suffix) == 0 &&
            !is_scratch(name))
            return true;
        break;
    case M_NAMES:
        break;
    }
    return has_name(dir, name);
}

static void changed(struct dev *d, const char *path)
{
    if (d->reloading)
        return;
    ev_tstamp now = ev_now(d->w.loop);
    if (d->nchanges++ == 0) {
        d->first_change = now;
        snprintf(d->trigger, sizeof(d->trigger), "%s", path);
    }
    if (now - d->first_change < SETTLE_MAX) {
        ev_timer_stop(d->w.loop, &d->settle);
        ev_timer_set(&d->settle, SETTLE, 0.0);
        ev_timer_start(d->w.loop, &d->settle);
    }
}

static void on_event(struct dev *d, const struct inotify_event *ev)
{
    if (ev->mask & IN_Q_OVERFLOW) {
        changed(d, "(too many changes at once to name them)");
        return;
    }
    if (ev->len == 0)
        return;
    for (size_t i = 0; i < d->ndirs; i++) {
        const struct watch_dir *dir = &d->dirs[i];
        if (dir->wd != ev->wd || !matches(d, dir, ev->name))
            continue;
        char path[PATH_MAX];
        snprintf(path, sizeof(path), "%s/%s",
                 strcmp(dir->path, "/") == 0 ? "" : dir->path, ev->name);
        changed(d, path);
        return;
    }
}

static void on_inotify(struct ev_loop *loop, ev_io *io, int revents)
{
    (void)loop;
    (void)revents;
    struct dev *d = drv_container_of(io, struct dev, inotify);
    char buf[16384] __attribute__((aligned(__alignof__(struct inotify_event))));
    for (;;) {
        ssize_t n = read(io->fd, buf, sizeof(buf));
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            if (errno != EAGAIN)
                drv_log_errno(errno, "read", "inotify");
            return;
        }
        if (n == 0)
            return;
        for (char *p = buf; p < buf + n;) {
            const struct inotify_event *ev = (const void *)p;
            on_event(d, ev);
            p += sizeof(*ev) + ev->len;
        }
    }
}

/* The burst is over: finish what is in flight, then re-exec (after the
 * loop ends, in drv_dev_run). */
static void on_settle(struct ev_loop *loop, ev_timer *t, int revents)
{
    (void)revents;
    struct dev *d = drv_container_of(t, struct dev, settle);
    struct timespec ts;
    char ns[32];
    clock_gettime(CLOCK_MONOTONIC, &ts);
    snprintf(ns, sizeof(ns), "%lld",
             (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec);
    setenv(RELOAD_VAR, ns, 1);
    drv_info("Reloading: %s changed", d->trigger);
    d->reloading = true;
    ev_io_stop(loop, &d->inotify);
    ev_timer_stop(loop, &d->rescan);
    drv_worker_stop(&d->w);
}

static void on_rescan(struct ev_loop *loop, ev_timer *t, int revents)
{
    (void)loop;
    (void)revents;
    struct dev *d = drv_container_of(t, struct dev, rescan);
    d->kind->source_files(d->s->app, on_source_file, d);
}

/* The worker destroys its loop when it returns: nothing of ours may stay
 * on it (a signal reaching a destroyed loop would crash). */
static void on_loop_destroy(struct ev_loop *loop, ev_cleanup *c, int revents)
{
    (void)revents;
    struct dev *d = drv_container_of(c, struct dev, cleanup);
    ev_io_stop(loop, &d->inotify);
    ev_timer_stop(loop, &d->settle);
    ev_timer_stop(loop, &d->rescan);
    ev_timer_stop(loop, &d->arm);
    ev_signal_stop(loop, &d->sig_int);
    ev_signal_stop(loop, &d->sig_term);
}

static void start_watchers(struct dev *d)
{
    struct ev_loop *loop = d->w.loop;
    ev_init(&d->settle, on_settle);
    ev_timer_init(&d->rescan, on_rescan, RESCAN, RESCAN);
    ev_io_init(&d->inotify, on_inotify, d->ifd, EV_READ);
    if (d->ifd >= 0) {
        ev_io_start(loop, &d->inotify);
        if (d->kind->rescan)
            ev_timer_start(loop, &d->rescan);
    }
    ev_signal_init(&d->sig_int, on_stop_signal, SIGINT);
    ev_signal_init(&d->sig_term, on_stop_signal, SIGTERM);
    d->sig_int.data = d->sig_term.data = d;
    ev_signal_start(loop, &d->sig_int);
    ev_signal_start(loop, &d->sig_term);
    ev_timer_init(&d->arm, on_arm, 0.0, 0.0);
    ev_timer_start(loop, &d->arm);
    ev_cleanup_init(&d->cleanup, on_loop_destroy);
    ev_cleanup_start(loop, &d->cleanup);
}

/* ------------------------------------------------------------------ */
/* The app, or the page that stands in for it                         */

struct error_app {
    struct drv_app base;
    char *text;
};

static int error_call(struct drv_app *app, struct drv_request *req,
                      struct drv_response *res)
{
    (void)req;
    struct error_app *ea = (struct error_app *)app;
    if (drv_response_start(res, 500, NULL, 0) != 0)
        return -1;
    drv_response_header(res, "Content-Type", 12, "text/plain; charset=utf-8",
                        25);
    drv_response_write(res, ea->text, strlen(ea->text));
    return 0;
}

static void error_free(struct drv_app *app)
{
    struct error_app *ea = (struct error_app *)app;
    free(ea->text);
    free(app->spec);
    free(ea);
}

static const struct drv_app_ops error_ops = {
    .kind = "error page",
    .call = error_call,
    .free = error_free,
};

static struct drv_app *error_app(const char *spec, const char *why,
                                 const char *traceback)
{
    struct error_app *ea = drv_xcalloc(1, sizeof(*ea));
    struct drv_buf text = {0};
    drv_buf_printf(&text,
                   "drover --dev: the app %s could not be loaded.\n"
                   "Fix the error and save: the app reloads by itself.\n\n"
                   "%s\n",
                   spec, traceback ? traceback : why);
    drv_buf_append(&text, "", 1);
    ea->text = drv_xstrdup(drv_buf_data(&text));
    drv_buf_free(&text);
    ea->base.ops = &error_ops;
    ea->base.spec = drv_xstrdup(spec);
    return &ea->base;
}

static struct drv_app *load_app(struct dev *d)
{
    char err[1024];
    struct drv_app *app = drv_app_load(d->s->app, d->s, err, sizeof(err));
    if (app) {
        d->loaded = true;
        return app;
    }
    drv_error("%s", err);
    char *tb = d->kind->load_traceback ? d->kind->load_traceback() : NULL;
    app = error_app(d->s->app, err, tb);
    free(tb);
    return app;
}

/* Access log on by default, to stderr beside the error log. */
static struct drv_accesslog *stderr_accesslog(const struct drv_settings *s)
{
    char err[512];
    struct drv_accesslog *log =
        drv_accesslog_create(s->access_log_format, err, sizeof(err));
    if (log && drv_accesslog_open(log, "/dev/stderr", err, sizeof(err)) != 0 &&
        drv_accesslog_open(log, "-", err, sizeof(err)) != 0) {
        drv_accesslog_free(log);
        log = NULL;
    }
    return log;
}

/* ------------------------------------------------------------------ */

static void banner(const struct dev *d, const struct drv_listener *l, size_t n)
{
    const char *since = getenv(RELOAD_VAR);
    if (since) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        long long now = (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec;
        drv_info("Reloaded drover %s in %.2fs", DROVER_VERSION,
                 (double)(now - atoll(since)) / 1e9);
        unsetenv(RELOAD_VAR);
    } else {
        drv_info("Starting drover %s in development mode", DROVER_VERSION);
    }
    for (size_t i = 0; i < n; i++)
        drv_info("Listening at: %s (%d)", l[i].name, (int)getpid());
    if (d->loaded)
        drv_info("Serving %s app %s", d->app->ops->kind, d->app->spec);
    else
        drv_warn("Serving the load-error page for app %s until a watched "
                 "file changes",
                 d->app->spec);
    if (d->ifd >= 0)
        drv_info("Watching %zu files in %zu directories: a change reloads",
                 d->nfiles, d->ndirs);
    if (!since)
        drv_warn("Development mode: one process, reloads on change, "
                 "tracebacks in responses. Do not use it in production.");
    if (d->s->workers > 1)
        drv_info("workers=%d ignored: development mode serves with one "
                 "process",
                 d->s->workers);
}

static bool later(const struct timespec *a, const struct timespec *b)
{
    return a->tv_sec > b->tv_sec ||
           (a->tv_sec == b->tv_sec && a->tv_nsec > b->tv_nsec);
}

/* The watches exist only once the app is imported: a file saved while the
 * import ran (a formatter's second save, "save all") would go unseen, and
 * the old code served with no word. A watched file modified since the
 * load began reloads now. A modification time in the future (a clock
 * skew, an unpacked archive) does not count, or every reload would call
 * the next. */
static void catch_up(struct dev *d, const struct timespec *since)
{
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    for (size_t i = 0; i < d->ndirs; i++) {
        const struct watch_dir *dir = &d->dirs[i];
        for (size_t k = 0; k < dir->nnames; k++) {
            char path[PATH_MAX];
            struct stat st;
            snprintf(path, sizeof(path), "%s/%s", dir->path, dir->names[k]);
            if (stat(path, &st) != 0)
                continue;
            if (later(&st.st_mtim, since) && !later(&st.st_mtim, &now)) {
                changed(d, path);
                return;
            }
        }
    }
}

int drv_dev_run(const struct drv_settings *s, struct drv_listener *listeners,
                size_t nlisteners, struct drv_accesslog *accesslog)
{
    if (!s->app || !*s->app) {
        fprintf(stderr, "drover: no app given: drover --dev [OPTIONS] APP "
                        "(module:callable, path/to/script.py:callable or "
                        "path/to/app.so:symbol)\n");
        return 2;
    }
    exit_on_signals();
    if (s->threads > 1)
        drv_warn("--dev serves on one thread: --threads %d is ignored here",
                 s->threads);
    struct dev d = {.s = s, .ifd = -1};
    d.kind = drv_app_kind_of(s->app);
    for (const struct drv_app_env *e = d.kind->dev_env; e && e->name; e++)
        setenv(e->name, e->value, e->overwrite);
    struct drv_accesslog *own_log = accesslog ? NULL : stderr_accesslog(s);
    struct timespec load_started;
    clock_gettime(CLOCK_REALTIME, &load_started);
    d.app = load_app(&d);
    int status = 1;
    if (drv_worker_init(&d.w, s, listeners, nlisteners, d.app,
                        accesslog ? accesslog : own_log) != 0)
        goto out_app;
    d.w.keep_listeners = true; /* a reload hands them to the new image */
    char err[1024];
    if (drv_worker_start_app(&d.w, err, sizeof(err)) != 0)
        drv_error("%s (serving anyway: --dev)", err);
    watch_all(&d);
    banner(&d, listeners, nlisteners);
    start_watchers(&d);
    catch_up(&d, &load_started);

    status = drv_worker_run(&d.w);
    exit_on_signals();
    free_watches(&d);
    if (d.reloading && !d.stopped) {
        int rc = drv_reexec(listeners, nlisteners, NULL, 0, -1);
        drv_log_errno(-rc, "execv", "cannot reload drover");
        status = 1;
    } else {
        drv_info("Shutting down: drover %s", DROVER_VERSION);
    }
out_app:
    drv_app_free(d.app);
    drv_accesslog_free(own_log);
    return status;
}
