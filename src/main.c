/*
 * main: drover's start-up sequence.
 *
 *   settings -> error log -> access log -> listeners -> app -> serve
 *
 * Every step before serving either succeeds or stops the start with one
 * line on stderr. Exit statuses:
 *   0  clean stop, or --help/--version/--print-config/--check-config OK
 *   1  a run-time resource failure at start (a bind address in use, ...)
 *   2  bad configuration: a flag, variable or YAML value, or an app spec
 *      that cannot be loaded
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "accesslog.h"
#include "address.h"
#include "app.h"
#include "listener.h"
#include "log.h"
#include "settings.h"
#include "worker.h"

extern char **environ;

enum { EXIT_RUNTIME = 1, EXIT_CONFIG = 2 };

struct server {
    struct drv_settings s;
    struct drv_accesslog *accesslog;
    struct drv_listener *listeners;
    size_t nlisteners;
    struct drv_app *app;
};

static int fail(int status, const char *what)
{
    fprintf(stderr, "drover: %s\n", what);
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

static int open_listeners(struct server *srv, char *err, size_t errlen)
{
    const struct drv_strlist *bind = &srv->s.bind;
    struct drv_addr *addrs = calloc(bind->n ? bind->n : 1, sizeof(*addrs));
    if (!addrs)
        return -1;
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
    return rc;
}

/* --chdir and --env act before anything is opened or imported. */
static int prepare_process(const struct drv_settings *s, char *err,
                           size_t errlen)
{
    if (s->chdir && chdir(s->chdir) != 0) {
        snprintf(err, errlen, "--chdir '%s': %s", s->chdir, strerror(errno));
        return -1;
    }
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

/* --check-config: everything a start would check, short of binding. */
static int check_config(struct server *srv)
{
    char err[1024];
    if (prepare_process(&srv->s, err, sizeof(err)) != 0)
        return fail(EXIT_CONFIG, err);
    if (srv->s.access_log_format) {
        struct drv_accesslog *log = drv_accesslog_create(
            srv->s.access_log_format, err, sizeof(err));
        if (!log) {
            fprintf(stderr, "drover: --access-logformat: %s\n", err);
            return EXIT_CONFIG;
        }
        drv_accesslog_free(log);
    }
    if (srv->s.app) {
        struct drv_app *app = drv_app_load(srv->s.app, &srv->s, err, sizeof(err));
        if (!app)
            return fail(EXIT_CONFIG, err);
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
    char err[1024];
    const struct drv_settings *s = &srv->s;
    if (open_logs(srv, err, sizeof(err)) != 0 ||
        prepare_process(s, err, sizeof(err)) != 0)
        return fail(EXIT_CONFIG, err);
    if (open_listeners(srv, err, sizeof(err)) != 0)
        return fail(EXIT_RUNTIME, err);
    srv->app = drv_app_load(s->app, s, err, sizeof(err));
    if (!srv->app) {
        drv_listeners_close(srv->listeners, srv->nlisteners, true);
        return fail(EXIT_CONFIG, err);
    }

    drv_info("Starting drover %s", DROVER_VERSION);
    for (size_t i = 0; i < srv->nlisteners; i++)
        drv_info("Listening at: %s (%d)", srv->listeners[i].name, getpid());
    drv_info("Serving %s app %s", srv->app->ops->kind, srv->app->spec);
    if (s->workers > 1)
        drv_warn("workers=%d: this build serves with a single process",
                 s->workers);

    struct drv_worker w;
    drv_worker_init(&w, s, srv->listeners, srv->nlisteners, srv->app,
                    srv->accesslog);
    int status = drv_worker_run(&w);
    drv_info("Shutting down: drover %s", DROVER_VERSION);

    drv_app_free(srv->app);
    drv_listeners_close(srv->listeners, srv->nlisteners, true);
    drv_accesslog_free(srv->accesslog);
    return status;
}

int main(int argc, char **argv)
{
    /* A client that goes away must cost an EPIPE, not the process. */
    signal(SIGPIPE, SIG_IGN);

    struct server srv = {0};
    enum drv_action action = DRV_ACTION_SERVE;
    char err[1024];
    if (drv_settings_load(&srv.s, argc, argv, environ, &action, err,
                          sizeof(err)) != 0)
        return fail(EXIT_CONFIG, err);

    int status = 0;
    switch (action) {
    case DRV_ACTION_HELP:
        drv_settings_print_help(stdout, "drover");
        break;
    case DRV_ACTION_VERSION:
        printf("drover %s\n", DROVER_VERSION);
        break;
    case DRV_ACTION_PRINT_CONFIG:
        drv_settings_print_yaml(&srv.s, stdout);
        break;
    case DRV_ACTION_PRINT_REFERENCE:
        drv_settings_print_reference(stdout);
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
