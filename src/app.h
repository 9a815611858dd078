/*
 * app: the kinds of application drover hosts, behind one small vtable.
 *
 * The spec on the command line picks the kind: a spec whose part before
 * the last ':' ends in ".so" or contains '/' is a native app
 * (path/to/app.so:symbol), anything else a Python WSGI app
 * (package.module:callable). Loading happens once: in the master when
 * preloading, in each worker otherwise.
 */
#ifndef DRV_APP_H
#define DRV_APP_H

#include <stdbool.h>
#include <stddef.h>

#include "http.h"
#include "settings.h"
#include "response.h"

struct drv_app;

struct drv_app_ops {
    const char *kind; /* "native", "python" */
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
};

struct drv_app {
    const struct drv_app_ops *ops;
    char *spec;
};

/* True when `spec` names a native app. */
bool drv_app_spec_is_native(const char *spec);

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

/* Kinds. */
struct drv_app *drv_native_load(const char *spec, char *err, size_t errlen);
struct drv_app *drv_python_load(const char *spec, const struct drv_settings *s,
                                char *err, size_t errlen);

/* --dev (dev.c). The traceback of the last failed drv_python_load as
 * plain text (malloc'd), or NULL when there is none. */
char *drv_python_load_traceback(void);
/* --dev: call add(path) for every file the interpreter imported (the
 * __file__ of each module in sys.modules) and every file the traceback of
 * the last failed load names. Absolute paths, in no order. Does nothing
 * when Python was never started. */
void drv_python_source_files(void (*add)(const char *path, void *arg),
                             void *arg);

#endif
