/*
 * python_body: calling the app, and sending what it returns.
 *
 * py_call takes the GIL, builds the environ and the start_response
 * context (python_environ.c, python_request.c), calls the app, and turns
 * its result into the drv_response:
 *   - a list or tuple is written at once, Content-Length known (the
 *     usual [body] is the fast path: one copy into the output buffer);
 *   - wsgi.file_wrapper over a regular file becomes a file body the
 *     connection sends with sendfile(2);
 *   - any other iterable is pulled up to its first non-empty chunk (a
 *     generator may call start_response there), then lazily as the
 *     socket drains, through a drover_body_source whose next() and
 *     close() take the GIL and whose close() calls the iterable's
 *     close().
 * The request's Python objects stay usable while a body source streams;
 * the request ends (end_request) when the call returns otherwise, or when
 * the source is closed.
 *
 * A failed call is logged with its traceback; drover answers 500, or in
 * --dev the traceback page (python_dev.c) stands in for the response.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include "log.h"
#include "python_int.h"

/* State of a lazily pulled response iterable. */
struct pybody {
    PyObject *iterable; /* what the app returned (has .close maybe) */
    PyObject *iter;
    PyObject *current;  /* the chunk handed out last */
    struct pyreq *ctx;
};

/* Log `what` (and the app spec, when known), then the traceback. */
void py_log_exception(const char *what, const char *spec)
{
    if (spec)
        drv_error("%s in app %s:", what, spec);
    else
        drv_error("%s:", what);
    /* traceback to sys.stderr = the error log. Not PyErr_Print(): it
     * keeps the exception in sys.last_*, and with it the failed request's
     * frames and everything they hold, until the next failure. */
    PyErr_PrintEx(0);
}

/* A call failed with an exception set: log it. Returns -1 (drover answers
 * 500), or 0 when --dev wrote its traceback page instead. */
static int call_failed(struct python_app *pa, struct drv_response *res)
{
    PyObject *text = pa->dev && !drv_response_committed(res)
                         ? py_current_traceback_text()
                         : NULL;
    py_log_exception("exception", pa->base.spec);
    int rc = text ? py_dev_error_page(res, text) : -1;
    Py_XDECREF(text);
    return rc;
}

/* The request is over: make its objects inert, and break the cycle
 * ctx -> write -> ctx (write is bound to ctx; the type has no GC). */
static void end_request(struct pyreq *ctx)
{
    ctx->req = NULL;
    ctx->res = NULL;
    Py_CLEAR(ctx->write);
}

/* Call iterable.close() if there is one; log what it raises. */
static void close_iterable(PyObject *iterable)
{
    /* The common bodies have no close(): no AttributeError to raise and
     * clear for each request. */
    if (PyList_CheckExact(iterable) || PyTuple_CheckExact(iterable) ||
        PyBytes_CheckExact(iterable))
        return;
    PyObject *r = PyObject_CallMethod(iterable, "close", NULL);
    if (r) {
        Py_DECREF(r);
        return;
    }
    if (PyErr_ExceptionMatches(PyExc_AttributeError)) {
        PyErr_Clear();
        return;
    }
    py_log_exception("exception in close()", NULL);
}

static int body_next_locked(struct pybody *b, const void **data, size_t *len)
{
    Py_CLEAR(b->current);
    for (;;) {
        PyObject *item = PyIter_Next(b->iter);
        if (!item) {
            if (!PyErr_Occurred())
                return 0;
            py_log_exception("exception while streaming the response", NULL);
            return -1;
        }
        if (!py_is_body_bytes(item, "response body items")) {
            Py_DECREF(item);
            py_log_exception("response cut", NULL);
            return -1;
        }
        if (PyBytes_GET_SIZE(item) == 0) {
            Py_DECREF(item);
            continue;
        }
        b->current = item;
        *data = PyBytes_AS_STRING(item);
        *len = (size_t)PyBytes_GET_SIZE(item);
        return 1;
    }
}

static int body_next(void *state, const void **data, size_t *len)
{
    py_enter();
    int rc = body_next_locked(state, data, len);
    py_leave();
    return rc;
}

static void body_close(void *state)
{
    struct pybody *b = state;
    py_enter();
    Py_CLEAR(b->current);
    close_iterable(b->iterable);
    end_request(b->ctx);
    Py_DECREF(b->ctx);
    Py_XDECREF(b->iter);
    Py_DECREF(b->iterable);
    py_leave();
    free(b);
}

/* Write every chunk of a list or tuple now. Returns 0 or -1 (raised). */
static int write_sequence(struct pyreq *ctx, PyObject *seq)
{
    PyObject **items = PySequence_Fast_ITEMS(seq);
    Py_ssize_t n = PySequence_Fast_GET_SIZE(seq);
    if (!ctx->started) {
        PyErr_SetString(PyExc_RuntimeError,
                        "app returned without calling start_response");
        return -1;
    }
    /* Check every item before writing any, so a bad one leaves nothing
     * half-sent. The total is then known: the head is committed with its
     * Content-Length and the bytes are copied once, straight into the
     * output buffer (the usual [body] is the fast path). */
    uint64_t total = 0;
    for (Py_ssize_t i = 0; i < n; i++) {
        if (!py_is_body_bytes(items[i], "response body items"))
            return -1;
        total += (uint64_t)PyBytes_GET_SIZE(items[i]);
    }
    drv_response_commit_sized(ctx->res, total); /* or already committed */
    for (Py_ssize_t i = 0; i < n; i++)
        drv_response_write(ctx->res, PyBytes_AS_STRING(items[i]),
                           (size_t)PyBytes_GET_SIZE(items[i]));
    return 0;
}

/* What stream_file and stream_iterable return besides 1 (handed over)
 * and 0 (not theirs, or an empty body: the caller closes the iterable):
 * FAILED, raised, the caller closes it; CLOSED, raised, and the response
 * has closed it already, by refusing its source (which owns the
 * iterable's close(): PEP 3333 wants it called exactly once). */
enum { FAILED = -1, CLOSED = -2 };

/* The response refused a source made of the iterable (the response is
 * not one that can take a body now: a bug, not the app's doing). */
static int refused(void)
{
    PyErr_SetString(PyExc_RuntimeError,
                    "drover's response refused the body");
    return CLOSED;
}

/* Pull until the first non-empty chunk (a generator may call
 * start_response there), then hand the rest to drover as a body source. */
static int stream_iterable(struct pyreq *ctx, PyObject *result)
{
    PyObject *iter = PyObject_GetIter(result);
    if (!iter)
        return FAILED;
    PyObject *first = NULL;
    for (;;) {
        first = PyIter_Next(iter);
        if (!first)
            break;
        if (!py_is_body_bytes(first, "response body items"))
            goto fail;
        if (PyBytes_GET_SIZE(first))
            break;
        Py_DECREF(first);
    }
    if (PyErr_Occurred())
        goto fail;
    if (!ctx->started) {
        PyErr_SetString(PyExc_RuntimeError,
                        "app returned without calling start_response");
        goto fail;
    }
    if (!first) { /* empty body */
        Py_DECREF(iter);
        return 0;
    }
    drv_response_write(ctx->res, PyBytes_AS_STRING(first),
                       (size_t)PyBytes_GET_SIZE(first));
    Py_DECREF(first);
    struct pybody *b = drv_xcalloc(1, sizeof(*b));
    b->iterable = result;
    b->iter = iter;
    b->ctx = ctx;
    Py_INCREF(result);
    Py_INCREF(ctx);
    struct drover_body_source src = {body_next, body_close, b};
    return drv_response_stream(ctx->res, &src) == 0 ? 1 : refused();
fail:
    Py_XDECREF(first);
    Py_DECREF(iter);
    return FAILED;
}

/* The descriptor, offset and size of a regular file behind a file-like,
 * or false (no error set) when it has none: BytesIO, sockets, pipes. */
static bool regular_file(PyObject *filelike, int *fd, off_t *pos,
                         uint64_t *left)
{
    PyObject *r = PyObject_CallMethod(filelike, "fileno", NULL);
    *fd = r ? PyLong_AsLong(r) : -1;
    Py_XDECREF(r);
    struct stat st;
    if (*fd < 0 || fstat(*fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        PyErr_Clear();
        return false;
    }
    /* tell() is right for a buffered file that was read ahead; the
     * descriptor's own offset for anything else. */
    r = PyObject_CallMethod(filelike, "tell", NULL);
    long long at = r ? PyLong_AsLongLong(r) : -1;
    Py_XDECREF(r);
    if (at < 0) {
        PyErr_Clear();
        at = lseek(*fd, 0, SEEK_CUR);
        if (at < 0)
            return false;
    }
    *pos = (off_t)at;
    *left = st.st_size > at ? (uint64_t)(st.st_size - at) : 0;
    return true;
}

/* wsgi.file_wrapper over a regular file: drover sends it with sendfile(2)
 * and calls close() when done. Returns 1 when handed over, 0 when this is
 * for stream_iterable (another iterable, a file-like without a file, a
 * head already committed by write()), FAILED or CLOSED (raised). */
static int stream_file(struct pyreq *ctx, PyObject *result)
{
    if (!Py_IS_TYPE(result, (PyTypeObject *)py_file_wrapper_type) ||
        ctx->res->state != DRV_RESPONSE_STARTED)
        return 0;
    PyObject *filelike = PyObject_GetAttrString(result, "filelike");
    if (!filelike)
        return FAILED;
    int fd;
    off_t pos;
    uint64_t left;
    bool is_file = regular_file(filelike, &fd, &pos, &left);
    Py_DECREF(filelike);
    if (!is_file)
        return 0;
    struct pybody *b = drv_xcalloc(1, sizeof(*b));
    b->iterable = result;
    b->ctx = ctx;
    Py_INCREF(result);
    Py_INCREF(ctx);
    struct drover_body_source src = {NULL, body_close, b};
    return drv_response_stream_file(ctx->res, &src, fd, pos, left) == 0
               ? 1
               : refused();
}

static int python_call_locked(struct drv_app *app, struct drv_request *req,
                              struct drv_response *res)
{
    struct python_app *pa = (struct python_app *)app;
    int rc = -1, streaming = 0;
    struct pyreq *ctx = PyObject_New(struct pyreq, &py_req_type);
    if (!ctx) {
        py_log_exception("out of memory", app->spec);
        return -1;
    }
    ctx->req = req;
    ctx->res = res;
    ctx->started = false;
    ctx->write = PyCFunction_New(&py_write_def, (PyObject *)ctx);
    bool outside = false;
    PyObject *env = ctx->write ? py_build_environ(req, ctx, pa->script_name,
                                                  &outside)
                               : NULL;
    if (outside) { /* not under --script-name: not ours to serve */
        drv_response_start(res, 404, NULL, 0);
        drv_response_header(res, "Content-Type", 12, "text/plain", 10);
        drv_response_write(res, "Not Found\n", 10);
        end_request(ctx);
        Py_DECREF(ctx);
        return 0;
    }
    PyObject *result = env ? PyObject_CallFunctionObjArgs(
                                 pa->callable, env, (PyObject *)ctx, NULL)
                           : NULL;
    Py_XDECREF(env);
    if (!result)
        goto out_error;
    if (PyList_CheckExact(result) || PyTuple_CheckExact(result)) {
        if (write_sequence(ctx, result) != 0)
            goto out_close;
        close_iterable(result);
    } else {
        streaming = stream_file(ctx, result);
        if (streaming == 0)
            streaming = stream_iterable(ctx, result);
        if (streaming == CLOSED)
            goto out_error; /* close() has run: not again */
        if (streaming == FAILED)
            goto out_close;
        if (streaming == 0)
            close_iterable(result);
    }
    rc = 0;
    goto out;

out_close:
    rc = call_failed(pa, res);
    close_iterable(result);
    goto out;
out_error:
    rc = call_failed(pa, res);
out:
    Py_XDECREF(result);
    /* Keep ctx usable by a streaming body; otherwise the request is over. */
    if (streaming <= 0)
        end_request(ctx);
    /* A failed call leaves nothing started for drover to send. */
    if (rc != 0)
        drv_response_cancel(res);
    Py_DECREF(ctx);
    return rc;
}

int py_call(struct drv_app *app, struct drv_request *req,
            struct drv_response *res)
{
    py_enter();
    int rc = python_call_locked(app, req, res);
    py_leave();
    return rc;
}
