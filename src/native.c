/*
 * native: apps in shared objects, through the ABI in <drover/app.h>.
 *
 * The .so is opened with RTLD_NOW (a missing symbol fails at load, not in
 * the middle of a request) and RTLD_LOCAL (two apps' globals never mix).
 * The exported symbol is a `struct drover_app`; its abi_version must match
 * ours exactly.
 *
 * For --dev the kind names one source file, the .so itself: rebuilding it
 * reloads the app, and a .so that failed to load is watched the same way.
 */
#include <dlfcn.h>
#include <pthread.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "app.h"
#include "log.h"

struct native_app {
    struct drv_app base;
    void *dl;
    const struct drover_app *abi;
    void *state;
};

/* What a response's `server` pointer leads to during one call. */
struct native_call {
    struct drv_request *req;
    struct drv_response *res;
};

static struct native_call *call_of(struct drover_response *r)
{
    return r->server;
}

static int n_start(struct drover_response *r, int status, const char *reason,
                   const struct drover_header *headers, size_t nheaders)
{
    struct drv_response *res = call_of(r)->res;
    if (drv_response_start(res, status, reason, reason ? strlen(reason) : 0))
        return -1;
    for (size_t i = 0; i < nheaders; i++) {
        const struct drover_header *h = &headers[i];
        if (drv_response_header(res, h->name.ptr, h->name.len, h->value.ptr,
                                h->value.len) != 0) {
            drv_response_cancel(res);
            return -1;
        }
    }
    return 0;
}

static int n_write(struct drover_response *r, const void *data, size_t len)
{
    return drv_response_write(call_of(r)->res, data, len) ? -1 : 0;
}

static int n_stream(struct drover_response *r,
                    const struct drover_body_source *source)
{
    return drv_response_stream(call_of(r)->res, source) ? -1 : 0;
}

static ssize_t n_read(struct drover_response *r, void *buf, size_t len)
{
    ssize_t n = drv_body_read(&call_of(r)->req->body, buf, len);
    return n < 0 ? -1 : n;
}

static void n_log(struct drover_response *r, const char *message)
{
    (void)r;
    drv_error("%s", message);
}

static int native_call(struct drv_app *app, struct drv_request *req,
                       struct drv_response *res)
{
    struct native_app *na = (struct native_app *)app;
    struct native_call call = {req, res};
    struct drover_response r = {
        .start = n_start, .write = n_write, .stream = n_stream,
        .read = n_read, .log = n_log, .server = &call,
    };
    int rc = na->abi->handle(na->state, &req->view, &r);
    if (rc != 0)
        return -1;
    if (!drv_response_started(res)) {
        drv_error("%s: handle returned 0 without starting a response",
                  app->spec);
        return -1;
    }
    return 0;
}

static int native_post_fork(struct drv_app *app, char *err, size_t errlen)
{
    struct native_app *na = (struct native_app *)app;
    if (na->abi->post_fork && na->abi->post_fork(na->state) != 0) {
        snprintf(err, errlen, "%s: post_fork hook failed", app->spec);
        return -1;
    }
    return 0;
}

static void native_free(struct drv_app *app)
{
    struct native_app *na = (struct native_app *)app;
    if (na->abi && na->abi->fini)
        na->abi->fini(na->state);
    /* The .so stays mapped: a streamed body's callbacks may still live in
     * it until the process exits, and dlclose buys nothing then. */
    free(app->spec);
    free(na);
}

/* An app thread: a plain pthread, detached (the pool tracks its end). */
struct thread_start {
    void (*body)(void *arg);
    void *arg;
};

static void *thread_main(void *p)
{
    struct thread_start ts = *(struct thread_start *)p;
    free(p);
    ts.body(ts.arg);
    return NULL;
}

static int native_spawn(struct drv_app *app, void (*body)(void *), void *arg,
                        size_t index, char *err, size_t errlen)
{
    (void)app;
    struct thread_start *ts = drv_xmalloc(sizeof(*ts));
    *ts = (struct thread_start){body, arg};
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    pthread_t t;
    int rc = pthread_create(&t, &attr, thread_main, ts);
    pthread_attr_destroy(&attr);
    if (rc != 0) {
        free(ts);
        snprintf(err, errlen, "cannot start app thread %zu: pthread_create: "
                 "%s", index + 1, strerror(rc));
        return -1;
    }
    return 0;
}

static const struct drv_app_ops native_ops = {
    .kind = "native",
    .call = native_call,
    .spawn = native_spawn,
    .post_fork = native_post_fork,
    .free = native_free,
};

static struct drv_app *native_load(const char *spec,
                                   const struct drv_settings *s, char *err,
                                   size_t errlen)
{
    const char *colon = strrchr(spec, ':');
    if (!colon || !colon[1]) {
        snprintf(err, errlen, "%s: a native app is PATH.so:SYMBOL", spec);
        return NULL;
    }
    char path[4096], symbol[256];
    size_t plen = (size_t)(colon - spec);
    /* dlopen searches the library path for a bare name: anchor it. */
    bool bare = !memchr(spec, '/', plen);
    if (plen + 3 > sizeof(path) || strlen(colon + 1) >= sizeof(symbol)) {
        snprintf(err, errlen, "%s: app spec too long", spec);
        return NULL;
    }
    snprintf(path, sizeof(path), "%s%.*s", bare ? "./" : "", (int)plen, spec);
    snprintf(symbol, sizeof(symbol), "%s", colon + 1);

    void *dl = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    if (!dl) {
        snprintf(err, errlen, "cannot load native app: %s", dlerror());
        return NULL;
    }
    const struct drover_app *abi = dlsym(dl, symbol);
    if (!abi) {
        snprintf(err, errlen, "%s: no symbol '%s' in %s", spec, symbol, path);
        goto out_close;
    }
    if (abi->abi_version != DROVER_APP_ABI_VERSION) {
        snprintf(err, errlen,
                 "%s: app built for ABI version %u, this drover speaks %u",
                 spec, abi->abi_version, DROVER_APP_ABI_VERSION);
        goto out_close;
    }
    if (!abi->handle) {
        snprintf(err, errlen, "%s: struct drover_app has no handle function",
                 spec);
        goto out_close;
    }
    if (s->threads > 1 && !(abi->flags & DROVER_APP_THREADSAFE)) {
        snprintf(err, errlen,
                 "%s: --threads %d needs an app that may be called from "
                 "several threads at once, and this one does not set "
                 "DROVER_APP_THREADSAFE (see drover/app.h)",
                 spec, s->threads);
        goto out_close;
    }
    void *state = NULL;
    if (abi->init) {
        char why[512] = "";
        if (abi->init(&state, why, sizeof(why)) != 0) {
            snprintf(err, errlen, "%s: init failed: %s", spec,
                     why[0] ? why : "(no reason given)");
            goto out_close;
        }
    }
    struct native_app *na = drv_xcalloc(1, sizeof(*na));
    na->base.ops = &native_ops;
    na->base.spec = drv_xstrdup(spec);
    na->dl = dl;
    na->abi = abi;
    na->state = state;
    return &na->base;

out_close:
    dlclose(dl);
    return NULL;
}

/* The .so of `spec`, as native_load opens it: a bare name is in the
 * working directory, which is what a relative path means to the caller. */
static void native_source_files(const char *spec,
                                void (*add)(const char *path, void *arg),
                                void *arg)
{
    const char *colon = strrchr(spec, ':');
    size_t n = colon ? (size_t)(colon - spec) : strlen(spec);
    char path[PATH_MAX];
    if (n < sizeof(path)) {
        memcpy(path, spec, n);
        path[n] = '\0';
        add(path, arg);
    }
}

const struct drv_app_kind drv_native_kind = {
    .name = "native",
    .load = native_load,
    .source_files = native_source_files,
};
