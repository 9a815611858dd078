/*
 * python_asgi: one ASGI request (HTTP, and the start of a WebSocket) on
 * drover's connection; the worker's loop is python_asgi_loop.c's.
 *
 * A request: conn.c calls begin() once the request (body included:
 * bodies past --body-buffer-size wait in a temporary file) is complete.
 * begin builds the scope, creates receive and send bound to a struct
 * py_asgi_ex, and schedules app(scope, receive, send) as a Task (inside the
 * glue's run_app, which reports how the app ended). receive()
 * hands out the body in chunks of at most BODY_CHUNK bytes, then waits
 * for the end: http.disconnect once the client is gone or the response
 * is complete. send() writes into the connection's response (response.h)
 * and flushes at once; a send of body bytes returns a future while more
 * than DRV_CONN_HIGH_WATER bytes wait for the client (backpressure). The
 * awaitables that are ready at once are not futures but a small type
 * that completes on its first step, which saves the event loop a round.
 *
 * The spec's edge cases: a send after the client left raises
 * ClientDisconnected (an OSError, ASGI 2.4), which ends the request
 * quietly; an app that returns without starting a response gets a 500,
 * one that returns mid-body or raises after the head went out has its
 * connection cut, so no client takes a truncated body for a whole one.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "conn.h"
#include "log.h"
#include "python_int.h"
#include "python_asgi_int.h"
#include "response.h"

#define BODY_CHUNK (256 * 1024)

/* ------------------------------------------------------------------ */
/* Per-worker state                                                     */


/* Interned strs and other constants (python_asgi_int.h). */
struct py_asgi_names py_k;

enum {
    S_TYPE, S_ASGI, S_HTTP_VERSION, S_METHOD, S_SCHEME, S_PATH, S_RAW_PATH,
    S_QUERY, S_ROOT_PATH, S_HEADERS, S_CLIENT, S_SERVER, S_EXTENSIONS,
    S_STATE, S_SUBPROTOCOLS, S_COUNT
};

static const char *const scope_names[S_COUNT] = {
    "type", "asgi", "http_version", "method", "scheme", "path", "raw_path",
    "query_string", "root_path", "headers", "client", "server",
    "extensions", "state", "subprotocols",
};

static PyObject *intern(const char *s)
{
    return PyUnicode_InternFromString(s);
}

static int make_constants(void)
{
    static bool made;
    if (made)
        return 0;
#define I(field, text) if (!(py_k.field = intern(text))) return -1
    I(type, "type"); I(body, "body"); I(more_body, "more_body");
    I(status, "status"); I(headers, "headers"); I(path, "path");
    I(text, "text"); I(bytes, "bytes"); I(code, "code");
    I(reason, "reason"); I(subprotocol, "subprotocol");
    I(http_request, "http.request"); I(http_disconnect, "http.disconnect");
    I(ws_connect, "websocket.connect"); I(ws_receive, "websocket.receive");
    I(ws_disconnect, "websocket.disconnect");
    I(set_result, "set_result"); I(set_exception, "set_exception");
    I(done, "done");
    I(http10, "1.0"); I(http11, "1.1"); I(http_str, "http");
    I(https_str, "https"); I(ws_str, "ws"); I(wss_str, "wss");
    I(websocket_str, "websocket"); I(empty_str, "");
#undef I
    for (int i = 0; i < S_COUNT; i++)
        if (!(py_k.scope_keys[i] = intern(scope_names[i])))
            return -1;
    py_k.empty_bytes = PyBytes_FromStringAndSize("", 0);
    py_k.asgi = Py_BuildValue("{s:s,s:s}", "version", "3.0", "spec_version",
                           "2.4");
    py_k.extensions = Py_BuildValue("{s:{}}", "http.response.pathsend");
    py_k.ws_extensions = Py_BuildValue("{s:{}}", "websocket.http.response");
    if (!py_k.empty_bytes || !py_k.asgi || !py_k.extensions || !py_k.ws_extensions)
        return -1;
    made = true;
    return 0;
}

/* ------------------------------------------------------------------ */
/* Awaitables that are ready at once                                    */

/* `await x` where x completes on its first step with `value` (NULL:
 * None). Used for what receive() and send() can answer without waiting. */
struct ready {
    PyObject_HEAD
    PyObject *value;
};

static void ready_dealloc(struct ready *r)
{
    Py_XDECREF(r->value);
    PyObject_Free(r);
}

static PyObject *ready_await(PyObject *self)
{
    return Py_NewRef(self);
}

static PyObject *ready_next(struct ready *r)
{
    if (r->value) {
        /* StopIteration(value): the await's result. Built explicitly, as
         * a tuple value would otherwise be taken for the arguments. */
        PyObject *e = PyObject_CallOneArg(PyExc_StopIteration, r->value);
        if (e) {
            PyErr_SetObject(PyExc_StopIteration, e);
            Py_DECREF(e);
        }
    }
    return NULL; /* without an exception set: StopIteration(None) */
}

static PyAsyncMethods ready_async = {.am_await = ready_await};

static PyTypeObject ready_type = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "drover.Ready",
    .tp_basicsize = sizeof(struct ready),
    .tp_dealloc = (destructor)ready_dealloc,
    .tp_as_async = &ready_async,
    .tp_iter = ready_await,
    .tp_iternext = (iternextfunc)ready_next,
    .tp_flags = Py_TPFLAGS_DEFAULT,
};

PyObject *py_ready_none; /* shared: it holds no value */

/* A ready awaitable of `value` (stolen). */
PyObject *py_ready_with(PyObject *value)
{
    if (!value)
        return NULL;
    struct ready *r = PyObject_New(struct ready, &ready_type);
    if (!r) {
        Py_DECREF(value);
        return NULL;
    }
    r->value = value;
    return (PyObject *)r;
}

/* ------------------------------------------------------------------ */
/* One request or WebSocket                                             */


static void ex_dealloc(struct py_asgi_ex *ex)
{
    Py_XDECREF(ex->recv_fut);
    Py_XDECREF(ex->send_fut);
    Py_XDECREF(ex->inbox);
    Py_XDECREF(ex->close_reason);
    PyObject_Free(ex);
}

static PyTypeObject ex_type = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "drover.ASGIRequest",
    .tp_basicsize = sizeof(struct py_asgi_ex),
    .tp_dealloc = (destructor)ex_dealloc,
    .tp_flags = Py_TPFLAGS_DEFAULT,
};

int py_asgi_types(void)
{
    if (make_constants() != 0 || PyType_Ready(&ready_type) != 0 ||
        PyType_Ready(&ex_type) != 0)
        return -1;
    if (!py_ready_none) {
        struct ready *r = PyObject_New(struct ready, &ready_type);
        if (!r)
            return -1;
        r->value = NULL;
        py_ready_none = (PyObject *)r;
    }
    return 0;
}

/* Resolve *fut (if it waits) with `value`, or with the exception `exc`
 * when value is NULL; then forget it. */
void py_settle(PyObject **fut, PyObject *value, PyObject *exc)
{
    PyObject *f = *fut;
    if (!f)
        return;
    *fut = NULL;
    PyObject *done = PyObject_CallMethodNoArgs(f, py_k.done);
    if (done == Py_False) {
        PyObject *r = value ? PyObject_CallMethodOneArg(f, py_k.set_result, value)
                            : PyObject_CallMethodOneArg(f, py_k.set_exception,
                                                        exc);
        Py_XDECREF(r);
    }
    Py_XDECREF(done);
    if (PyErr_Occurred())
        PyErr_WriteUnraisable(f);
    Py_DECREF(f);
}

PyObject *py_event_of(PyObject *type)
{
    PyObject *e = PyDict_New();
    if (e && PyDict_SetItem(e, py_k.type, type) != 0)
        Py_CLEAR(e);
    return e;
}

PyObject *py_new_future(void)
{
    return PyObject_CallNoArgs(py_aw.create_future);
}

/* ---- receive() ---- */

/* The next http.request event: up to BODY_CHUNK bytes of the body. */
static PyObject *body_event(struct py_asgi_ex *ex)
{
    struct drv_request *req = drv_conn_request(ex->c);
    uint64_t total = req->view.body_length;
    uint64_t left = total - ex->body_given;
    size_t n = left < BODY_CHUNK ? (size_t)left : BODY_CHUNK;
    PyObject *chunk;
    if (n == 0) {
        chunk = Py_NewRef(py_k.empty_bytes);
    } else {
        chunk = PyBytes_FromStringAndSize(NULL, (Py_ssize_t)n);
        if (!chunk)
            return NULL;
        ssize_t got = drv_body_read(&req->body, PyBytes_AS_STRING(chunk), n);
        if (got != (ssize_t)n) {
            Py_DECREF(chunk);
            return PyErr_Format(PyExc_OSError,
                                "cannot read the request body");
        }
    }
    ex->body_given += n;
    ex->body_done = ex->body_given >= total;
    PyObject *e = py_event_of(py_k.http_request);
    if (!e || PyDict_SetItem(e, py_k.body, chunk) != 0 ||
        PyDict_SetItem(e, py_k.more_body, ex->body_done ? Py_False : Py_True))
        Py_CLEAR(e);
    Py_DECREF(chunk);
    return e;
}

static PyObject *ex_receive(PyObject *self, PyObject *unused)
{
    (void)unused;
    struct py_asgi_ex *ex = (struct py_asgi_ex *)self;
    if (ex->ws)
        return py_ws_receive(ex);
    if (ex->c && !ex->body_done)
        return py_ready_with(body_event(ex));
    if (!ex->c)
        return py_ready_with(py_event_of(py_k.http_disconnect));
    /* Nothing until the client goes away or the response is complete. */
    if (!ex->recv_fut && !(ex->recv_fut = py_new_future()))
        return NULL;
    return Py_NewRef(ex->recv_fut);
}

/* ---- send() ---- */

PyObject *py_gone_error(void)
{
    PyErr_SetString(py_k.disconnected, "the client has disconnected");
    return NULL;
}

/* An item of a message: required (NULL with KeyError) or optional
 * (def, borrowed, when missing). New reference. */
PyObject *py_field(PyObject *msg, PyObject *key, PyObject *def)
{
    if (PyDict_CheckExact(msg)) { /* the usual case: no KeyError to raise */
        PyObject *v = PyDict_GetItemWithError(msg, key);
        if (v)
            return Py_NewRef(v);
        if (PyErr_Occurred())
            return NULL;
        if (def)
            return Py_NewRef(def);
        PyErr_SetObject(PyExc_KeyError, key);
        return NULL;
    }
    PyObject *v = PyObject_GetItem(msg, key);
    if (v || !def || !PyErr_ExceptionMatches(PyExc_KeyError))
        return v;
    PyErr_Clear();
    return Py_NewRef(def);
}

/* Headers: an iterable of [name, value] byte strings. */
static int put_headers(struct drv_response *res, PyObject *headers)
{
    PyObject *it = PyObject_GetIter(headers);
    if (!it)
        return -1;
    PyObject *item;
    while ((item = PyIter_Next(it))) {
        PyObject *pair = PySequence_Fast(item, "a header must be a pair");
        Py_DECREF(item);
        if (!pair)
            break;
        if (PySequence_Fast_GET_SIZE(pair) != 2) {
            PyErr_SetString(PyExc_ValueError,
                            "a header must be a [name, value] pair");
            Py_DECREF(pair);
            break;
        }
        PyObject *name = PySequence_Fast_GET_ITEM(pair, 0);
        PyObject *value = PySequence_Fast_GET_ITEM(pair, 1);
        char *n, *v;
        Py_ssize_t nlen, vlen;
        if (PyBytes_AsStringAndSize(name, &n, &nlen) != 0 ||
            PyBytes_AsStringAndSize(value, &v, &vlen) != 0) {
            PyErr_SetString(PyExc_TypeError,
                            "header names and values must be bytes");
            Py_DECREF(pair);
            break;
        }
        int rc = drv_response_header(res, n, (size_t)nlen, v, (size_t)vlen);
        Py_DECREF(pair);
        if (rc != 0) {
            PyErr_Format(PyExc_ValueError, "invalid header %R", name);
            break;
        }
    }
    Py_DECREF(it);
    return PyErr_Occurred() ? -1 : 0;
}

PyObject *py_response_start(struct py_asgi_ex *ex, PyObject *msg)
{
    if (ex->started)
        return PyErr_Format(PyExc_RuntimeError,
                            "http.response.start sent twice");
    PyObject *status = py_field(msg, py_k.status, NULL);
    if (!status)
        return NULL;
    long code = PyLong_AsLong(status);
    Py_DECREF(status);
    if (code == -1 && PyErr_Occurred())
        return NULL;
    struct drv_response *res = drv_conn_response(ex->c);
    if (code < 200 || code > 999 ||
        drv_response_start(res, (int)code, NULL, 0) != 0)
        return PyErr_Format(PyExc_ValueError, "invalid status %ld", code);
    PyObject *headers = py_field(msg, py_k.headers, Py_None);
    if (!headers)
        return NULL;
    int rc = headers == Py_None ? 0 : put_headers(res, headers);
    Py_DECREF(headers);
    if (rc != 0) {
        drv_response_cancel(res);
        return NULL;
    }
    ex->started = true;
    return Py_NewRef(py_ready_none);
}

/* After a write: wait while the client is behind. */
PyObject *py_maybe_wait(struct py_asgi_ex *ex)
{
    if (!ex->c || drv_conn_unsent(ex->c) <= DRV_CONN_HIGH_WATER)
        return Py_NewRef(py_ready_none);
    if (!ex->send_fut && !(ex->send_fut = py_new_future()))
        return NULL;
    return Py_NewRef(ex->send_fut);
}

PyObject *py_response_body(struct py_asgi_ex *ex, PyObject *msg)
{
    if (!ex->started)
        return PyErr_Format(PyExc_RuntimeError,
                            "http.response.body sent before "
                            "http.response.start");
    if (ex->finished)
        return PyErr_Format(PyExc_RuntimeError,
                            "http.response.body sent after the response "
                            "was complete");
    PyObject *body = py_field(msg, py_k.body, py_k.empty_bytes);
    if (!body)
        return NULL;
    PyObject *more = py_field(msg, py_k.more_body, Py_False);
    int more_body = more ? PyObject_IsTrue(more) : -1;
    Py_XDECREF(more);
    Py_buffer view;
    if (more_body < 0 || PyObject_GetBuffer(body, &view, PyBUF_SIMPLE) != 0) {
        Py_DECREF(body);
        if (!PyErr_Occurred() || PyErr_ExceptionMatches(PyExc_TypeError)) {
            PyErr_Clear();
            PyErr_SetString(PyExc_TypeError, "body must be bytes");
        }
        return NULL;
    }
    struct drv_response *res = drv_conn_response(ex->c);
    if (view.len)
        drv_response_write(res, view.buf, (size_t)view.len);
    PyBuffer_Release(&view);
    Py_DECREF(body);
    if (more_body) {
        /* Streamed: what the app sent goes out now (server-sent events
         * must not wait for DRV_RESPONSE_HOLD bytes). */
        drv_response_flush(res);
    } else {
        ex->finished = true;
        drv_response_finish(res);
    }
    drv_conn_progress(ex->c); /* may release us */
    return py_maybe_wait(ex);
}

/* A pathsend body's source: its state is the file descriptor. */
static void close_fd_source(void *state)
{
    close((int)(intptr_t)state);
}

static PyObject *response_pathsend(struct py_asgi_ex *ex, PyObject *msg)
{
    if (!ex->started || ex->finished)
        return PyErr_Format(PyExc_RuntimeError,
                            "http.response.pathsend sent %s",
                            ex->finished ? "after the response was complete"
                                         : "before http.response.start");
    PyObject *path = py_field(msg, py_k.path, NULL);
    PyObject *bytes = NULL;
    if (!path || !PyUnicode_FSConverter(path, &bytes)) {
        Py_XDECREF(path);
        return NULL;
    }
    Py_DECREF(path);
    int fd = open(PyBytes_AS_STRING(bytes), O_RDONLY | O_CLOEXEC);
    struct stat st;
    if (fd < 0 || fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        int e = fd < 0 ? errno : EINVAL;
        if (fd >= 0)
            close(fd);
        PyErr_SetFromErrnoWithFilenameObject(PyExc_OSError, bytes);
        errno = e;
        Py_DECREF(bytes);
        return NULL;
    }
    Py_DECREF(bytes);
    struct drv_response *res = drv_conn_response(ex->c);
    struct drover_body_source src = {.close = close_fd_source,
                                     .state = (void *)(intptr_t)fd};
    if (drv_response_stream_file(res, &src, fd, 0, (uint64_t)st.st_size) != 0)
        return PyErr_Format(PyExc_RuntimeError,
                            "http.response.pathsend after body bytes");
    ex->finished = true;
    drv_response_finish(res);
    drv_conn_progress(ex->c);
    return Py_NewRef(py_ready_none);
}

static PyObject *ex_send(PyObject *self, PyObject *msg)
{
    struct py_asgi_ex *ex = (struct py_asgi_ex *)self;
    PyObject *type = py_field(msg, py_k.type, NULL);
    if (!type)
        return NULL;
    const char *t = PyUnicode_Check(type) ? PyUnicode_AsUTF8(type) : NULL;
    if (!t) {
        Py_DECREF(type);
        if (!PyErr_Occurred())
            PyErr_SetString(PyExc_TypeError, "message type must be a str");
        return NULL;
    }
    PyObject *r;
    if (strncmp(t, "websocket.", 10) == 0 && ex->ws) {
        r = py_ws_send(ex, msg, t + 10);
    } else if (strncmp(t, "http.response.", 14) != 0 || ex->ws) {
        r = PyErr_Format(PyExc_RuntimeError, "unexpected ASGI message %R",
                         type);
    } else if (!ex->c) {
        r = ex->gone ? py_gone_error()
                     : PyErr_Format(PyExc_RuntimeError,
                                    "%s sent after the response was "
                                    "complete", t);
    } else if (strcmp(t + 14, "start") == 0) {
        r = py_response_start(ex, msg);
    } else if (strcmp(t + 14, "body") == 0) {
        r = py_response_body(ex, msg);
    } else if (strcmp(t + 14, "pathsend") == 0) {
        r = response_pathsend(ex, msg);
    } else {
        r = PyErr_Format(PyExc_RuntimeError, "unexpected ASGI message %R",
                         type);
    }
    Py_DECREF(type);
    return r;
}

/* ---- the app's end ---- */

/* done(exception or None), from the glue's run_app: the app returned or
 * raised (a CancelledError included: the worker is stopping). */
static PyObject *ex_task_done(PyObject *self, PyObject *exc)
{
    struct py_asgi_ex *ex = (struct py_asgi_ex *)self;
    bool failed = exc != Py_None;
    if (failed && PyErr_GivenExceptionMatches(exc, PyExc_Exception) &&
        !PyErr_GivenExceptionMatches(exc, py_k.disconnected)) {
        PyErr_Restore(Py_NewRef((PyObject *)Py_TYPE(exc)), Py_NewRef(exc),
                      PyException_GetTraceback(exc));
        /* --dev: the traceback in the browser, as for WSGI apps. */
        PyObject *text = py_aw.dev && ex->c && !ex->ws && !ex->finished
                             ? py_current_traceback_text()
                             : NULL;
        py_log_exception("Exception in ASGI application", NULL);
        if (text && py_dev_error_page(drv_conn_response(ex->c), text) == 0) {
            ex->finished = true;
            drv_response_finish(drv_conn_response(ex->c));
            drv_conn_progress(ex->c);
        }
        Py_XDECREF(text);
    }
    if (ex->ws) {
        py_ws_app_done(ex, failed);
    } else if (ex->c && !ex->finished) {
        if (!failed)
            drv_error("ASGI app returned without %s the response",
                      ex->started ? "completing" : "starting");
        drv_conn_fail(ex->c);
    }
    Py_RETURN_NONE;
}

static PyMethodDef receive_def = {"receive", ex_receive, METH_NOARGS, NULL};
static PyMethodDef send_def = {"send", ex_send, METH_O, NULL};
static PyMethodDef done_def = {"_done", ex_task_done, METH_O, NULL};

/* ------------------------------------------------------------------ */
/* The scope                                                            */

/* The path, percent-decoded, as UTF-8 (malformed sequences replaced). */
static PyObject *decoded_path(struct drover_str p)
{
    if (p.len == 0)
        return Py_NewRef(py_k.empty_str);
    char stack[512];
    char *buf = p.len <= sizeof(stack) ? stack : PyMem_Malloc(p.len);
    if (!buf)
        return PyErr_NoMemory();
    size_t n = 0;
    for (size_t i = 0; i < p.len; i++) {
        int hi, lo;
        if (p.ptr[i] == '%' && i + 2 < p.len &&
            (hi = drv_hex_digit(p.ptr[i + 1])) >= 0 &&
            (lo = drv_hex_digit(p.ptr[i + 2])) >= 0) {
            buf[n++] = (char)(hi * 16 + lo);
            i += 2;
        } else {
            buf[n++] = p.ptr[i];
        }
    }
    PyObject *s = PyUnicode_DecodeUTF8(buf, (Py_ssize_t)n, "replace");
    if (buf != stack)
        PyMem_Free(buf);
    return s;
}

static PyObject *str_of(struct drover_str s)
{
    return PyUnicode_DecodeLatin1(s.ptr, (Py_ssize_t)s.len, NULL);
}

static PyObject *bytes_of(struct drover_str s)
{
    return PyBytes_FromStringAndSize(s.ptr, (Py_ssize_t)s.len);
}

/* Header names lowercased, in order, as byte strings. */
static PyObject *header_list(const struct drover_request *v)
{
    PyObject *list = PyList_New((Py_ssize_t)v->nheaders);
    if (!list)
        return NULL;
    for (size_t i = 0; i < v->nheaders; i++) {
        const struct drover_header *h = &v->headers[i];
        PyObject *name = PyBytes_FromStringAndSize(NULL,
                                                   (Py_ssize_t)h->name.len);
        PyObject *value = name ? bytes_of(h->value) : NULL;
        PyObject *pair = value ? PyTuple_Pack(2, name, value) : NULL;
        if (name) {
            char *d = PyBytes_AS_STRING(name);
            for (size_t j = 0; j < h->name.len; j++) {
                char ch = h->name.ptr[j];
                d[j] = ch >= 'A' && ch <= 'Z' ? (char)(ch + 32) : ch;
            }
        }
        Py_XDECREF(name);
        Py_XDECREF(value);
        if (!pair) {
            Py_DECREF(list);
            return NULL;
        }
        PyList_SET_ITEM(list, (Py_ssize_t)i, pair);
    }
    return list;
}

/* The subprotocols a WebSocket handshake offers, in order: every
 * Sec-WebSocket-Protocol header, split at commas. */
static PyObject *subprotocols(const struct drover_request *v)
{
    PyObject *list = PyList_New(0);
    for (size_t i = 0; list && i < v->nheaders; i++) {
        const struct drover_header *h = &v->headers[i];
        if (!drv_str_eq_lower((struct drv_str){h->name.ptr, h->name.len},
                              "sec-websocket-protocol"))
            continue;
        const char *p = h->value.ptr, *end = p + h->value.len;
        struct drv_str item;
        while (list && drv_list_next(&p, end, &item)) {
            PyObject *s = PyUnicode_DecodeLatin1(item.ptr,
                                                 (Py_ssize_t)item.len, NULL);
            if (!s || PyList_Append(list, s) != 0)
                Py_CLEAR(list);
            Py_XDECREF(s);
        }
    }
    return list;
}

/* (host, port), or None when there is no address (a unix socket). */
static PyObject *address(struct drover_str host, int port)
{
    if (!host.len)
        Py_RETURN_NONE;
    PyObject *h = PyUnicode_DecodeLatin1(host.ptr, (Py_ssize_t)host.len,
                                         NULL);
    PyObject *p = h ? PyLong_FromLong(port) : NULL;
    PyObject *t = p ? PyTuple_Pack(2, h, p) : NULL;
    Py_XDECREF(h);
    Py_XDECREF(p);
    return t;
}

/* The server's address: the same few listeners serve every request, so
 * the last one's tuple is kept (host and port compared, not pointers). */
static PyObject *server_address(struct drover_str host, int port)
{
    static PyObject *last;
    static char last_host[64];
    static size_t last_len;
    static int last_port;
    if (last && host.len == last_len && port == last_port &&
        memcmp(host.ptr, last_host, host.len) == 0)
        return Py_NewRef(last);
    PyObject *t = address(host, port);
    if (t && t != Py_None && host.len <= sizeof(last_host)) {
        Py_XSETREF(last, Py_NewRef(t));
        memcpy(last_host, host.ptr, host.len);
        last_len = host.len;
        last_port = port;
    }
    return t;
}

static int put(PyObject *scope, int key, PyObject *value)
{
    if (!value)
        return -1;
    int rc = PyDict_SetItem(scope, py_k.scope_keys[key], value);
    Py_DECREF(value);
    return rc;
}

/* The scope of request `req` ("http" or "websocket"). Returns NULL with
 * an exception, or NULL without one when the path is outside
 * --script-name (404). */
static PyObject *build_scope(struct python_app *pa, struct drv_request *req,
                             bool websocket)
{
    const struct drover_request *v = &req->view;
    PyObject *scope = PyDict_New();
    if (!scope)
        return NULL;
    PyObject *path = decoded_path(v->path);
    PyObject *root = Py_NewRef(py_k.empty_str);
    if (path && pa->script_name) {
        Py_ssize_t n = PyUnicode_GET_LENGTH(pa->script_name);
        int inside = PyUnicode_Tailmatch(path, pa->script_name, 0, n, -1);
        if (inside == 1 && PyUnicode_GET_LENGTH(path) > n &&
            PyUnicode_READ_CHAR(path, n) != '/')
            inside = 0;
        if (inside != 1) {
            Py_DECREF(path);
            Py_DECREF(root);
            Py_DECREF(scope);
            return NULL;
        }
        /* The spec's path keeps the mount point (PATH_INFO is path
         * less root_path). */
        Py_SETREF(root, Py_NewRef(pa->script_name));
    }
    bool https = v->url_scheme.len == 5;
    int rc = put(scope, S_TYPE,
                 Py_NewRef(websocket ? py_k.websocket_str : py_k.http_str));
    rc |= put(scope, S_ASGI, Py_NewRef(py_k.asgi));
    rc |= put(scope, S_HTTP_VERSION,
              Py_NewRef(req->http_minor == 1 ? py_k.http11 : py_k.http10));
    if (!websocket)
        rc |= put(scope, S_METHOD, str_of(v->method));
    rc |= put(scope, S_SCHEME,
              Py_NewRef(websocket ? (https ? py_k.wss_str : py_k.ws_str)
                                  : (https ? py_k.https_str : py_k.http_str)));
    rc |= put(scope, S_PATH, path);
    rc |= put(scope, S_RAW_PATH, bytes_of(v->path));
    rc |= put(scope, S_QUERY, bytes_of(v->query));
    rc |= put(scope, S_ROOT_PATH, root);
    rc |= put(scope, S_HEADERS, header_list(v));
    rc |= put(scope, S_CLIENT, address(v->remote_addr, v->remote_port));
    rc |= put(scope, S_SERVER, server_address(v->server_addr, v->server_port));
    rc |= put(scope, S_EXTENSIONS,
              Py_NewRef(websocket ? py_k.ws_extensions : py_k.extensions));
    if (websocket)
        rc |= put(scope, S_SUBPROTOCOLS, subprotocols(v));
    /* A copy of what lifespan startup left (none when it left nothing:
     * the copy would be all a hello world does besides answering). */
    if (py_aw.state && PyDict_GET_SIZE(py_aw.state))
        rc |= put(scope, S_STATE, PyDict_Copy(py_aw.state));
    if (rc != 0)
        Py_CLEAR(scope);
    return scope;
}

/* ------------------------------------------------------------------ */
/* The connection's side (app.h: begin, drained, release)              */

static PyObject *new_ex(struct drv_conn *c)
{
    struct py_asgi_ex *ex = PyObject_New(struct py_asgi_ex, &ex_type);
    if (!ex)
        return NULL;
    ex->c = c;
    ex->recv_fut = ex->send_fut = NULL;
    ex->body_given = 0;
    ex->body_done = false;
    ex->started = ex->finished = ex->gone = false;
    ex->ws = ex->connected = ex->accepted = ex->denied = ex->closed = false;
    ex->close_code = 0;
    ex->close_reason = NULL;
    ex->inbox = NULL;
    ex->inbox_head = 0;
    return (PyObject *)ex;
}

/* Run the glue's run_app(app, scope, receive, send, done) as a Task:
 * done (ex_task_done) hears how the app ended, without a done callback's
 * round through the event loop. */
static int start_task(struct python_app *pa, PyObject *ex, PyObject *scope)
{
    PyObject *recv = PyCFunction_New(&receive_def, ex);
    PyObject *send = recv ? PyCFunction_New(&send_def, ex) : NULL;
    PyObject *done = send ? PyCFunction_New(&done_def, ex) : NULL;
    PyObject *coro = NULL;
    if (done) {
        PyObject *args[] = {pa->callable, scope, recv, send, done};
        coro = PyObject_Vectorcall(py_aw.run_app, args, 5, NULL);
    }
    Py_XDECREF(recv);
    Py_XDECREF(send);
    Py_XDECREF(done);
    PyObject *task = NULL;
    if (coro) {
        PyObject *args[] = {coro, py_aw.aloop, py_aw.task_name};
        task = PyObject_Vectorcall(py_aw.task_type, args, 1, py_aw.task_kw);
        Py_DECREF(coro);
    }
    Py_XDECREF(task);
    return task ? 0 : -1;
}

int py_asgi_begin(struct drv_app *app, struct drv_conn *c, void **handle)
{
    struct python_app *pa = (struct python_app *)app;
    struct drv_request *req = drv_conn_request(c);
    *handle = NULL;
    py_enter();
    int rc = -1;
    bool websocket = drv_conn_is_websocket(c);
    PyObject *scope = build_scope(pa, req, websocket);
    PyObject *ex = NULL;
    if (!scope) {
        if (!PyErr_Occurred()) { /* not under --script-name */
            drv_response_error(drv_conn_response(c), 404, req->is_head);
            rc = 0;
        }
        goto out;
    }
    if (!(ex = new_ex(c)))
        goto out;
    ((struct py_asgi_ex *)ex)->ws = websocket;
    if (start_task(pa, ex, scope) != 0)
        goto out;
    *handle = Py_NewRef(ex);
    rc = 0;
out:
    if (PyErr_Occurred())
        py_log_exception("Exception starting ASGI application",
                         app->spec);
    Py_XDECREF(ex);
    Py_XDECREF(scope);
    py_leave();
    return rc;
}

void py_asgi_drained(void *handle)
{
    struct py_asgi_ex *ex = handle;
    if (!ex->send_fut)
        return;
    py_enter();
    py_settle(&ex->send_fut, Py_None, NULL);
    py_leave();
}

void py_asgi_release(void *handle, bool gone)
{
    struct py_asgi_ex *ex = handle;
    py_enter();
    ex->c = NULL;
    ex->gone = gone;
    if (ex->ws && !ex->closed) {
        ex->closed = true;
        ex->close_code = 1006; /* the connection went without a close */
    }
    if (ex->recv_fut) {
        PyObject *e = ex->ws ? py_ws_disconnect_event(ex)
                             : py_event_of(py_k.http_disconnect);
        if (e)
            py_settle(&ex->recv_fut, e, NULL);
        Py_XDECREF(e);
    }
    if (ex->send_fut) {
        PyObject *err = PyObject_CallFunction(py_k.disconnected, "s",
                                              "the client has disconnected");
        if (err)
            py_settle(&ex->send_fut, NULL, err);
        Py_XDECREF(err);
    }
    PyErr_Clear();
    Py_DECREF(ex);
    py_leave();
}
