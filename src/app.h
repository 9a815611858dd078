/*
 * app: the kinds of application drover hosts, behind two small tables.
 *
 * The spec on the command line picks the kind: a Python file
 * (path/to/script.py[:callable]) is Python; otherwise a spec whose part
 * before the last ':' ends in ".so" or contains '/' is a native app
 * (path/to/app.so:symbol, native.c), anything else a Python WSGI app
 * (package.module:callable, python_*.c). Loading happens once: in the
 * master when preloading, in each worker otherwise.
 *
 * A kind (struct drv_app_kind) is what is known before and without an
 * app: how to load one, and what --dev needs even when the load failed
 * (the files whose change must reload, the failed load's traceback, the
 * environment dev mode sets). A loaded app (struct drv_app) carries its
 * kind's ops: the call and the fork hooks. dev.c asks the kind what to
 * do instead of testing which kind it has.
 */
#ifndef DRV_APP_H
#define DRV_APP_H

#include <stdbool.h>
#include <stddef.h>

#include "http.h"
#include "settings.h"
#include "response.h"

struct drv_app;
struct drv_conn;
struct ev_loop;

struct drv_app_ops {
    const char *kind; /* "native", "python", "ASGI": for log lines */
    /* Serve one request. Returns 0 when the response was started (see
     * response.h), -1 when the app failed: the caller answers 500 if the
     * head was not committed, else drops the connection. */
    int (*call)(struct drv_app *app, struct drv_request *req,
                struct drv_response *res);
    /* In the master, right before each fork(), and in the master right
     * after it. Either may be NULL. Nothing may run between the two but
     * fork() itself. */
    void (*before_fork)(struct drv_app *app);
    void (*after_fork_parent)(struct drv_app *app);
    /* In each worker after fork. Returns 0 or -1 with err filled. */
    int (*post_fork)(struct drv_app *app, char *err, size_t errlen);
    /* In the master once the app is loaded and before the first fork:
     * settle what the workers will share (may be NULL). */
    void (*preloaded)(struct drv_app *app);
    /* Start one app thread (--threads) running body(arg) without the
     * GIL or any other app lock; `index` counts from 0 and names it.
     * Returns 0, or -1 with err filled. NULL: the kind cannot run on app
     * threads. */
    int (*spawn)(struct drv_app *app, void (*body)(void *arg), void *arg,
                 size_t index, char *err, size_t errlen);
    /* Release the app (calls its fini). */
    void (*free)(struct drv_app *app);

    /* ---- Apps that run on an event loop of their own (ASGI) ----
     * NULL for apps that are called and return (call above). Such an app
     * drives the worker's libev loop itself (see python_asgi_loop.c), serves
     * many requests at once on it, and answers each through the
     * drv_conn_* functions of conn.h:
     *
     *   begin     a complete request on connection `c`: start the app on
     *             it and return 0 with *handle set (the app's state for
     *             the request), or -1 when the app could not even start
     *             (the connection answers 500);
     *   drained   the response's unsent bytes fell below the low-water
     *             mark (a send waiting on backpressure may go on);
     *   release   the connection is done with the request: the response
     *             is complete, or the client is gone (`gone`). From here
     *             on the app must not touch `c`.
     *
     * In the worker: loop_start after fork, before serving (lifespan
     * startup; -1 with err is a boot failure), loop_run in place of
     * ev_run (returns once the worker's loop is broken: drv_loop_break),
     * loop_stop once the connections are closed (lifespan shutdown,
     * within `grace` seconds: short after a forced stop). */
    int (*begin)(struct drv_app *app, struct drv_conn *c, void **handle);
    void (*drained)(void *handle);
    void (*release)(void *handle, bool gone);
    /* A WebSocket the app accepted (drv_conn_ws_accept) received a
     * message, or closed: `code` is the peer's close code, 1005 when it
     * gave none, 1006 when the connection went without a close; `reason`
     * the peer's reason (UTF-8 by RFC 6455, not checked), empty when none. */
    void (*ws_message)(void *handle, bool text, const void *data,
                       size_t len);
    void (*ws_closed)(void *handle, int code, const char *reason,
                      size_t rlen);
    int (*loop_start)(struct drv_app *app, struct ev_loop *loop, char *err,
                      size_t errlen);
    void (*loop_run)(struct drv_app *app, struct ev_loop *loop);
    void (*loop_stop)(struct drv_app *app, struct ev_loop *loop,
                      double grace);
};

struct drv_app {
    const struct drv_app_ops *ops;
    char *spec;
};

/* A variable dev mode sets before loading (setenv(name, value,
 * overwrite)). */
struct drv_app_env {
    const char *name, *value;
    bool overwrite;
};

struct drv_app_kind {
    const char *name; /* "native", "python" */
    /* Load the app `spec` with the settings that shape loading. Returns
     * the app, or NULL with one line in err. */
    struct drv_app *(*load)(const char *spec, const struct drv_settings *s,
                            char *err, size_t errlen);
    /* --dev: call add(path, arg) for every file whose change must reload
     * the app `spec`, loaded or not (a failed load included). A relative
     * path is relative to the working directory. Paths may repeat. */
    void (*source_files)(const char *spec,
                         void (*add)(const char *path, void *arg), void *arg);
    /* --dev: the traceback of the last failed load as plain text
     * (malloc'd, the caller frees), or NULL when there is none. NULL when
     * the kind has no tracebacks. */
    char *(*load_traceback)(void);
    /* --dev: the app can start using files after it loaded (a Python
     * module imported inside a view): source_files is called again
     * periodically. */
    bool rescan;
    /* --dev, after a failed load: a new file with this suffix in the
     * working directory reloads (the missing module is being written).
     * NULL: none does. */
    const char *module_suffix;
    /* --dev: set before loading; NULL, or ends with a NULL name. */
    const struct drv_app_env *dev_env;
};

extern const struct drv_app_kind drv_native_kind; /* native.c */
extern const struct drv_app_kind drv_python_kind; /* python_interp.c */

/* True when `spec` names a native app. */
bool drv_app_spec_is_native(const char *spec);

/* The kind of app `spec` names (never NULL). */
const struct drv_app_kind *drv_app_kind_of(const char *spec);

/* Load the app `spec` with the settings that shape loading (pythonpath,
 * virtualenv, script_name). Returns the app, or NULL with one line in
 * err. */
struct drv_app *drv_app_load(const char *spec, const struct drv_settings *s,
                             char *err, size_t errlen);

static inline void drv_app_free(struct drv_app *app)
{
    if (app)
        app->ops->free(app);
}

#endif
