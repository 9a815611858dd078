/*
 * main: drover's start-up sequence.
 *
 *   settings -> error log -> access log -> listeners -> metrics listener
 *     -> [preload app] -> master (master.c), which forks the workers
 *     (worker.c)
 *   --dev: settings -> logs -> listeners -> one process (dev.c)
 *   `drover status ...`: status.c asks a running master
 *     (drv_status_main), nothing else
 *
 * Every step before serving either succeeds or stops the start with one
 * line on stderr. Exit statuses (master.h's DRV_EXIT_*):
 *   0  clean stop, or --help/--version/--print-config/--check-config OK
 *   1  a run-time resource failure at start (a bind address in use, ...)
 *   2  bad configuration: a flag, variable or YAML value, or an app spec
 *      that cannot be loaded
 *   3  the workers failed to boot (an app that does not import without
 *      preload, a user the workers cannot switch to)
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "accesslog.h"
#include "address.h"
#include "app.h"
#include "buf.h"
#include "dev.h"
#include "doc.h"
#include "listener.h"
#include "log.h"
#include "master.h"
#include "proctitle.h"
#include "reexec.h"
#include "settings.h"
#include "status.h"

extern char **environ;

struct server {
    struct drv_settings s;
    struct drv_accesslog *accesslog;
    struct drv_listener *listeners;
    size_t nlisteners;
    struct drv_listener *metrics; /* --metrics-bind */
    size_t nmetrics;
    struct drv_app *app;
};

/* `what` is a step's error buffer; the buffers start empty, so a step
 * that fails without filling one still prints a sentence, not stack
 * garbage. */
static int fail(int status, const char *what)
{
    fprintf(stderr, "drover: %s\n", what[0] ? what : "start-up failed");
    return status;
}

static int open_logs(struct server *srv, char *err, size_t errlen)
{
    const struct drv_settings *s = &srv->s;
    if (drv_log_open(s->errorlog, s->loglevel, err, errlen) != 0)
        return -1;
    if (!s->accesslog)
        return 0;
    char why[512];
    srv->accesslog = drv_accesslog_create(s->access_log_format, why,
                                          sizeof(why));
    if (!srv->accesslog) {
        snprintf(err, errlen, "--access-logformat: %s", why);
        return -1;
    }
    return drv_accesslog_open(srv->accesslog, s->accesslog, err, errlen);
}

/* Sockets adopted across a reload keep what they were: one drover had
 * bound itself is still its own to shut down, and a unix socket's path
 * still its own to unlink at the final stop. */
static void mark_inherited(struct drv_listener *ls, size_t nl,
                           const bool *owned, size_t n)
{
    for (size_t i = 0; i < nl && i < n; i++) {
        struct drv_listener *l = &ls[i];
        l->owned = owned[i];
        if (owned[i] && l->family == AF_UNIX && !l->unix_path &&
            strncmp(l->name, "unix:", 5) == 0)
            l->unix_path = drv_xstrdup(l->name + 5);
    }
}

static int open_listeners(struct server *srv, char *err, size_t errlen)
{
    /* After a re-exec (reload) the sockets we had are adopted, not bound. */
    struct drv_strlist inherited = {0};
    bool *owned;
    inherited.v = drv_reexec_listen_fds(&inherited.n, &owned);
    const struct drv_strlist *bind = inherited.v ? &inherited : &srv->s.bind;
    /* A few addresses: out of memory here aborts (buf.h's policy) rather
     * than returning without an error line. */
    struct drv_addr *addrs = drv_xcalloc(bind->n, sizeof(*addrs));
    int rc = 0;
    for (size_t i = 0; i < bind->n && rc == 0; i++) {
        char why[256];
        rc = drv_addr_parse(bind->v[i], &addrs[i], why, sizeof(why));
        if (rc != 0)
            snprintf(err, errlen, "--bind '%s': %s", bind->v[i], why);
    }
    if (rc == 0)
        rc = drv_listeners_open(addrs, bind->n, srv->s.backlog,
                                &srv->listeners, &srv->nlisteners, err, errlen);
    free(addrs);
    if (rc == 0 && inherited.v)
        mark_inherited(srv->listeners, srv->nlisteners, owned, inherited.n);
    for (size_t i = 0; i < inherited.n; i++)
        free(inherited.v[i]);
    free(inherited.v);
    free(owned);
    return rc;
}

/* --metrics-bind: the master's own listener, bound like the app's (and,
 * like them, adopted as they are after a reload's re-exec: a change of
 * the address takes a restart). Without the setting, sockets a previous
 * image passed are closed. */
static int open_metrics(struct server *srv, char *err, size_t errlen)
{
    struct drv_strlist inherited = {0};
    bool *owned;
    inherited.v = drv_reexec_metrics_fds(&inherited.n, &owned);
    const char *spec = srv->s.metrics_bind;
    int rc = 0;
    if (!spec || srv->s.dev) {
        for (size_t i = 0; i < inherited.n; i++)
            close(atoi(inherited.v[i] + strlen("fd://")));
        if (spec)
            drv_info("--metrics-bind is not served with --dev");
    } else {
        size_t n = inherited.v ? inherited.n : 1;
        struct drv_addr *addrs = drv_xcalloc(n, sizeof(*addrs));
        char why[256];
        for (size_t i = 0; i < n && rc == 0; i++) {
            const char *text = inherited.v ? inherited.v[i] : spec;
            rc = drv_addr_parse(text, &addrs[i], why, sizeof(why));
            if (rc != 0)
                snprintf(err, errlen, "--metrics-bind '%s': %s", text, why);
        }
        if (rc == 0 && drv_listeners_bind(addrs, n, srv->s.backlog,
                                          &srv->metrics, &srv->nmetrics, why,
                                          sizeof(why)) != 0) {
            snprintf(err, errlen, "--metrics-bind: %s", why);
            rc = -1;
        }
        if (rc == 0 && inherited.v)
            mark_inherited(srv->metrics, srv->nmetrics, owned, inherited.n);
        free(addrs);
    }
    for (size_t i = 0; i < inherited.n; i++)
        free(inherited.v[i]);
    free(inherited.v);
    free(owned);
    return rc;
}

/* --chdir, --user/--group (checked; workers switch) and --env act
 * before anything is opened or imported. */
static int prepare_process(const struct drv_settings *s, char *err,
                           size_t errlen)
{
    if (s->chdir && chdir(s->chdir) != 0) {
        snprintf(err, errlen, "--chdir '%s': %s", s->chdir, strerror(errno));
        return -1;
    }
    struct drv_identity id;
    if (drv_master_identity(s, &id, err, errlen) != 0)
        return -1;
    for (size_t i = 0; i < s->env.n; i++) {
        char *kv = s->env.v[i], *eq = strchr(kv, '=');
        *eq = '\0';
        int rc = setenv(kv, eq + 1, 1);
        *eq = '=';
        if (rc != 0) {
            snprintf(err, errlen, "--env '%s': %s", kv, strerror(errno));
            return -1;
        }
    }
    return 0;
}

/* The pid file: refused if it names another live process. */
static int write_pidfile(const char *path, char *err, size_t errlen)
{
    FILE *f = fopen(path, "r");
    if (f) {
        long pid = 0;
        int n = fscanf(f, "%ld", &pid);
        fclose(f);
        if (n == 1 && pid > 0 && pid != getpid() &&
            (kill((pid_t)pid, 0) == 0 || errno == EPERM)) {
            snprintf(err, errlen, "--pid '%s': drover is already running "
                     "as pid %ld", path, pid);
            return -1;
        }
    }
    char tmp[4096];
    snprintf(tmp, sizeof(tmp), "%s.%d.tmp", path, (int)getpid());
    f = fopen(tmp, "w");
    if (!f || fprintf(f, "%d\n", (int)getpid()) < 0 || fclose(f) != 0 ||
        rename(tmp, path) != 0) {
        snprintf(err, errlen, "--pid '%s': %s", path, strerror(errno));
        unlink(tmp);
        return -1;
    }
    return 0;
}

/* Removed only while it still holds our pid. */
static void remove_pidfile(const char *path)
{
    FILE *f = fopen(path, "r");
    long pid = 0;
    if (!f)
        return;
    if (fscanf(f, "%ld", &pid) == 1 && pid == getpid())
        unlink(path);
    fclose(f);
}

/* --check-config: everything a start would check, short of binding. */
/* A log file must be writable (it is created if missing, as a start
 * would); "-" is a standard stream. */
static int check_log_file(const char *flag, const char *path, char *err,
                          size_t errlen)
{
    if (!path || strcmp(path, "-") == 0)
        return 0;
    int fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0) {
        snprintf(err, errlen, "%s '%s': %s", flag, path, strerror(errno));
        return -1;
    }
    close(fd);
    return 0;
}

/* The pid file's directory must let us create it. */
static int check_pidfile(const char *path, char *err, size_t errlen)
{
    if (!path)
        return 0;
    char dir[4096];
    snprintf(dir, sizeof(dir), "%s", path);
    char *slash = strrchr(dir, '/');
    if (!slash)
        snprintf(dir, sizeof(dir), ".");
    else if (slash == dir)
        dir[1] = '\0';
    else
        *slash = '\0';
    if (access(dir, W_OK | X_OK) != 0) {
        snprintf(err, errlen, "--pid '%s': cannot create it: %s", path,
                 strerror(errno));
        return -1;
    }
    return 0;
}

static int check_config(struct server *srv)
{
    char err[1024] = "";
    const struct drv_settings *s = &srv->s;
    /* Everything a start opens, short of binding: a reload's check must
     * catch what would stop the new image. */
    if (prepare_process(s, err, sizeof(err)) != 0 ||
        check_log_file("--error-logfile", s->errorlog, err, sizeof(err)) ||
        check_log_file("--access-logfile", s->accesslog, err, sizeof(err)) ||
        check_pidfile(s->pidfile, err, sizeof(err)))
        return fail(DRV_EXIT_CONFIG, err);
    if (srv->s.access_log_format) {
        struct drv_accesslog *log = drv_accesslog_create(
            srv->s.access_log_format, err, sizeof(err));
        if (!log) {
            fprintf(stderr, "drover: --access-logformat: %s\n", err);
            return DRV_EXIT_CONFIG;
        }
        drv_accesslog_free(log);
    }
    if (srv->s.app) {
        struct drv_app *app = drv_app_load(srv->s.app, &srv->s, err, sizeof(err));
        if (!app)
            return fail(DRV_EXIT_CONFIG, err);
        drv_app_free(app);
    }
    if (srv->s.config)
        printf("drover: configuration OK (%s)\n", srv->s.config);
    else
        printf("drover: configuration OK\n");
    return 0;
}

static int serve(struct server *srv)
{
    char err[1024] = "";
    const struct drv_settings *s = &srv->s;
    /* Set after a reload: the previous image's workers are serving. */
    int scoreboard_fd = drv_reexec_inherited_fd();
    int status = DRV_EXIT_CONFIG;
    bool ready = open_logs(srv, err, sizeof(err)) == 0 &&
                 prepare_process(s, err, sizeof(err)) == 0;
    if (!ready && scoreboard_fd < 0)
        return fail(DRV_EXIT_CONFIG, err);
    if (open_listeners(srv, err, sizeof(err)) != 0)
        return fail(DRV_EXIT_RUNTIME, err);
    if (open_metrics(srv, err, sizeof(err)) != 0) {
        /* After a reload the site must stay up: serve without metrics. */
        if (scoreboard_fd < 0) {
            drv_listeners_close(srv->listeners, srv->nlisteners, true);
            return fail(DRV_EXIT_RUNTIME, err);
        }
        drv_error("%s; serving without metrics", err);
    }
    if (s->dev) { /* loads the app itself: a failed import is a 500 page */
        if (s->pidfile && write_pidfile(s->pidfile, err, sizeof(err)) != 0) {
            status = fail(DRV_EXIT_RUNTIME, err);
        } else {
            status = drv_dev_run(s, srv->listeners, srv->nlisteners,
                                 srv->accesslog);
            if (s->pidfile)
                remove_pidfile(s->pidfile);
        }
        drv_listeners_close(srv->listeners, srv->nlisteners, true);
        drv_accesslog_free(srv->accesslog);
        return status;
    }
    if (ready && s->preload) {
        srv->app = drv_app_load(s->app, s, err, sizeof(err));
        ready = srv->app != NULL;
    }
    if (ready && s->pidfile && write_pidfile(s->pidfile, err, sizeof(err))) {
        ready = false;
        status = DRV_EXIT_RUNTIME;
    }
    /* A reload whose check passed but whose start fails (a file changed
     * in between, say) must not take the site down: this image keeps the
     * sockets and the previous workers, forks nothing, and waits for the
     * next SIGHUP. */
    bool caretaker = !ready && scoreboard_fd >= 0;
    if (caretaker) {
        drv_error("Reload failed: %s; the previous workers keep serving, "
                  "fix it and send SIGHUP", err);
    } else if (!ready) {
        fail(status, err);
        goto out;
    }

    drv_info("Starting drover %s", DROVER_VERSION);
    for (size_t i = 0; i < srv->nlisteners; i++)
        drv_info("Listening at: %s (%d)", srv->listeners[i].name, getpid());
    for (size_t i = 0; i < srv->nmetrics; i++)
        drv_info("Metrics at: %s/metrics (%d)", srv->metrics[i].name,
                 getpid());
    drv_info("Serving %s app %s with %d worker(s)%s",
             srv->app ? srv->app->ops->kind
                      : drv_app_spec_is_native(s->app) ? "native" : "python",
             s->app, s->workers, srv->app ? "" : ", loaded in each worker");

    struct drv_master_args args = {
        .settings = s,
        .listeners = srv->listeners,
        .nlisteners = srv->nlisteners,
        .app = &srv->app,
        .accesslog = srv->accesslog,
        .metrics = srv->metrics,
        .nmetrics = srv->nmetrics,
        .scoreboard_fd = scoreboard_fd,
        .caretaker = caretaker,
    };
    bool in_worker;
    status = drv_master_run(&args, &in_worker);
    if (in_worker) {
        /* A worker leaves the sockets and the pid file to the master. */
        drv_app_free(srv->app);
        drv_listeners_close(srv->listeners, srv->nlisteners, false);
        drv_listeners_close(srv->metrics, srv->nmetrics, false);
        drv_accesslog_free(srv->accesslog);
        return status;
    }
    drv_info("Shutting down: drover %s", DROVER_VERSION);
    if (s->pidfile)
        remove_pidfile(s->pidfile);
out:
    drv_app_free(srv->app);
    drv_listeners_close(srv->listeners, srv->nlisteners, true);
    drv_listeners_close(srv->metrics, srv->nmetrics, true);
    drv_accesslog_free(srv->accesslog);
    return status;
}

int main(int argc, char **argv)
{
    /* Titles overwrite argv's memory: from here on only the copy is used
     * (for settings and for re-exec on reload). */
    argv = drv_proctitle_init(argc, argv);
    drv_reexec_save_argv(argc, argv);
    /* A client that goes away must cost an EPIPE, not the process. */
    signal(SIGPIPE, SIG_IGN);
    if (argc > 1 && strcmp(argv[1], "status") == 0)
        return drv_status_main(argc - 1, argv + 1, environ);

    struct server srv = {0};
    enum drv_action action = DRV_ACTION_SERVE;
    char err[1024] = "";
    if (drv_settings_load(&srv.s, argc, argv, environ, &action, err,
                          sizeof(err)) != 0)
        return fail(DRV_EXIT_CONFIG, err);

    /* Before anything is created (log files, the pid file, a check's
     * test files), so every one of them gets it. */
    if (action == DRV_ACTION_SERVE || action == DRV_ACTION_CHECK_CONFIG)
        umask((mode_t)drv_settings_parse_umask(srv.s.umask ? srv.s.umask
                                                           : "0"));
    int status = 0;
    switch (action) {
    case DRV_ACTION_HELP:
        drv_doc_help(stdout, "drover");
        break;
    case DRV_ACTION_VERSION:
        printf("drover %s\n", DROVER_VERSION);
        break;
    case DRV_ACTION_PRINT_CONFIG:
        drv_settings_print_yaml(&srv.s, stdout);
        break;
    case DRV_ACTION_PRINT_REFERENCE:
        drv_doc_reference(stdout);
        break;
    case DRV_ACTION_PRINT_MAN:
        drv_doc_man(stdout);
        break;
    case DRV_ACTION_CHECK_CONFIG:
        status = check_config(&srv);
        break;
    case DRV_ACTION_SERVE:
        status = serve(&srv);
        break;
    }
    drv_settings_free(&srv.s);
    return status;
}
