/*
 * python_request: the per-request context a WSGI app holds, as C objects.
 *
 * start_response is a struct pyreq bound to one request, the same object
 * for every call; its write() is a bound method made once per request.
 * wsgi.input is a struct pyinput that reads the request body through the
 * context. Both are cheap to create (no dict, no GC tracking) and outlive
 * the request safely: once python_body.c ends the request, req and res
 * are NULL, start_response and write() raise, and wsgi.input reads as
 * empty, so an app that keeps them around cannot touch freed memory.
 *
 * Status and headers are checked as PEP 3333 asks (str, latin-1, a
 * three-digit status) and go straight into the drv_response; a bad header
 * leaves no response started, so the app may start again or get a 500.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <errno.h>
#include <string.h>

#include "python_int.h"

/* ------------------------------------------------------------------ */
/* start_response and write()                                          */

static int set_error_if_over(struct pyreq *ctx)
{
    if (ctx->req)
        return 0;
    PyErr_SetString(PyExc_RuntimeError,
                    "the WSGI request this object belongs to has ended");
    return -1;
}

/* A latin-1 view of a str, as PEP 3333 demands of status and headers. */
static int latin1(PyObject *s, const char *what, const char **p, size_t *n)
{
    if (!PyUnicode_Check(s)) {
        PyErr_Format(PyExc_TypeError, "%s must be str, not %.100s", what,
                     Py_TYPE(s)->tp_name);
        return -1;
    }
    if (PyUnicode_KIND(s) != PyUnicode_1BYTE_KIND) {
        PyErr_Format(PyExc_ValueError, "%s must be latin-1: %R", what, s);
        return -1;
    }
    *p = (const char *)PyUnicode_1BYTE_DATA(s);
    *n = (size_t)PyUnicode_GET_LENGTH(s);
    return 0;
}

static int parse_status(PyObject *status, int *code, const char **reason,
                        size_t *rlen)
{
    const char *p;
    size_t n;
    if (latin1(status, "status", &p, &n) != 0)
        return -1;
    if (n < 3 || p[0] < '1' || p[0] > '9' || p[1] < '0' || p[1] > '9' ||
        p[2] < '0' || p[2] > '9' || (n > 3 && p[3] != ' ')) {
        PyErr_Format(PyExc_ValueError,
                     "status must be like '200 OK', got %R", status);
        return -1;
    }
    *code = (p[0] - '0') * 100 + (p[1] - '0') * 10 + (p[2] - '0');
    *reason = n > 4 ? p + 4 : NULL;
    *rlen = n > 4 ? n - 4 : 0;
    return 0;
}

static int add_headers(struct pyreq *ctx, PyObject *headers)
{
    if (!PyList_Check(headers)) {
        PyErr_Format(PyExc_TypeError,
                     "response headers must be a list, not %.100s",
                     Py_TYPE(headers)->tp_name);
        return -1;
    }
    for (Py_ssize_t i = 0; i < PyList_GET_SIZE(headers); i++) {
        PyObject *h = PyList_GET_ITEM(headers, i);
        if (!PyTuple_Check(h) || PyTuple_GET_SIZE(h) != 2) {
            PyErr_Format(PyExc_TypeError,
                         "each header must be a (name, value) tuple, got %R",
                         h);
            return -1;
        }
        const char *name, *value;
        size_t nlen, vlen;
        if (latin1(PyTuple_GET_ITEM(h, 0), "header name", &name, &nlen) ||
            latin1(PyTuple_GET_ITEM(h, 1), "header value", &value, &vlen))
            return -1;
        if (drv_response_header(ctx->res, name, nlen, value, vlen) != 0) {
            PyErr_Format(PyExc_ValueError,
                         "invalid header (name must be a token; no CR, LF "
                         "or NUL in the value): %R",
                         h);
            return -1;
        }
    }
    return 0;
}

static PyObject *start_response(PyObject *self, PyObject *args)
{
    struct pyreq *ctx = (struct pyreq *)self;
    PyObject *status, *headers, *exc_info = Py_None;
    if (!PyArg_ParseTuple(args, "OO|O:start_response", &status, &headers,
                          &exc_info))
        return NULL;
    if (set_error_if_over(ctx))
        return NULL;
    if (exc_info != Py_None) {
        if (drv_response_committed(ctx->res)) {
            /* Too late to change the response: re-raise (PEP 3333). */
            PyObject *t, *v, *tb;
            if (!PyArg_ParseTuple(exc_info, "OOO", &t, &v, &tb))
                return NULL;
            if (!PyExceptionInstance_Check(v)) {
                PyErr_SetString(PyExc_TypeError,
                                "start_response: exc_info must come from "
                                "sys.exc_info() inside an except block");
                return NULL;
            }
            if (tb != Py_None)
                PyException_SetTraceback(v, tb);
            PyErr_SetObject((PyObject *)Py_TYPE(v), v);
            return NULL;
        }
    } else if (ctx->started) {
        PyErr_SetString(PyExc_RuntimeError,
                        "start_response called twice without exc_info");
        return NULL;
    }
    int code;
    const char *reason;
    size_t rlen;
    if (parse_status(status, &code, &reason, &rlen) != 0)
        return NULL;
    if (drv_response_start(ctx->res, code, reason, rlen) != 0) {
        PyErr_Format(PyExc_ValueError, "invalid status %R", status);
        return NULL;
    }
    if (add_headers(ctx, headers) != 0) {
        /* No response is started now, the first one included: the app
         * must start one again, or it gets a 500. */
        drv_response_cancel(ctx->res);
        ctx->started = false;
        return NULL;
    }
    ctx->started = true;
    Py_XINCREF(ctx->write);
    return ctx->write;
}

static PyObject *write_body(PyObject *self, PyObject *data)
{
    struct pyreq *ctx = (struct pyreq *)self;
    if (set_error_if_over(ctx))
        return NULL;
    if (!py_is_body_bytes(data, "write() argument"))
        return NULL;
    if (!ctx->started) {
        PyErr_SetString(PyExc_RuntimeError, "write() before start_response");
        return NULL;
    }
    if (drv_response_write(ctx->res, PyBytes_AS_STRING(data),
                           (size_t)PyBytes_GET_SIZE(data)) != 0) {
        /* Only another thread can get here: the app has returned its
         * body, and drover has not started sending it. */
        PyErr_SetString(PyExc_RuntimeError,
                        "write() after the app returned its body");
        return NULL;
    }
    Py_RETURN_NONE;
}

PyMethodDef py_write_def = {"write", write_body, METH_O,
                            "Write body bytes (PEP 3333 write())."};

static PyObject *pyreq_call(PyObject *self, PyObject *args, PyObject *kw)
{
    if (kw && PyDict_GET_SIZE(kw)) {
        PyErr_SetString(PyExc_TypeError,
                        "start_response takes no keyword arguments");
        return NULL;
    }
    return start_response(self, args);
}

static void pyreq_dealloc(PyObject *self)
{
    struct pyreq *ctx = (struct pyreq *)self;
    Py_XDECREF(ctx->write);
    Py_TYPE(self)->tp_free(self);
}

PyTypeObject py_req_type = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "drover.start_response",
    .tp_basicsize = sizeof(struct pyreq),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_call = pyreq_call,
    .tp_dealloc = pyreq_dealloc,
    .tp_doc = "start_response(status, headers, exc_info=None)",
};

/* wsgi.input ------------------------------------------------------- */

static struct drv_body *body_of(struct pyinput *in)
{
    return in->ctx->req ? &in->ctx->req->body : NULL;
}

static PyObject *read_bytes(struct drv_body *b, Py_ssize_t want)
{
    uint64_t left = b->len - b->read_pos;
    if (want < 0 || (uint64_t)want > left)
        want = (Py_ssize_t)left;
    PyObject *out = PyBytes_FromStringAndSize(NULL, want);
    if (!out)
        return NULL;
    char *p = PyBytes_AS_STRING(out);
    Py_ssize_t got = 0;
    while (got < want) {
        ssize_t n = drv_body_read(b, p + got, (size_t)(want - got));
        if (n < 0) {
            Py_DECREF(out);
            errno = (int)-n;
            return PyErr_SetFromErrno(PyExc_OSError);
        }
        if (n == 0)
            break;
        got += n;
    }
    if (got != want && _PyBytes_Resize(&out, got) != 0)
        return NULL;
    return out;
}

static int size_arg(PyObject *const *args, Py_ssize_t nargs, Py_ssize_t *size)
{
    *size = -1;
    if (nargs > 1) {
        PyErr_SetString(PyExc_TypeError, "expected at most one argument");
        return -1;
    }
    if (nargs == 1 && args[0] != Py_None) {
        *size = PyLong_AsSsize_t(args[0]);
        if (*size == -1 && PyErr_Occurred())
            return -1;
    }
    return 0;
}

/* One line, at most `limit` bytes (< 0: no limit). */
static PyObject *readline_body(struct drv_body *b, Py_ssize_t limit)
{
    uint64_t left = b->len - b->read_pos;
    if (limit < 0 || (uint64_t)limit > left)
        limit = (Py_ssize_t)left;
    if (limit == 0)
        return PyBytes_FromStringAndSize("", 0);
    if (b->fd < 0) {
        const char *start = drv_buf_data(&b->mem) + b->read_pos;
        const char *nl = memchr(start, '\n', (size_t)limit);
        Py_ssize_t n = nl ? (Py_ssize_t)(nl - start) + 1 : limit;
        b->read_pos += (uint64_t)n;
        return PyBytes_FromStringAndSize(start, n);
    }
    /* Spooled: read in blocks, give back what follows the newline. */
    PyObject *out = PyBytes_FromStringAndSize(NULL, 0);
    char block[8192];
    while (out && limit > 0) {
        size_t want = (size_t)limit < sizeof(block) ? (size_t)limit
                                                    : sizeof(block);
        uint64_t at = b->read_pos;
        ssize_t n = drv_body_read(b, block, want);
        if (n <= 0)
            break;
        const char *nl = memchr(block, '\n', (size_t)n);
        size_t take = nl ? (size_t)(nl - block) + 1 : (size_t)n;
        b->read_pos = at + take;
        PyObject *part = PyBytes_FromStringAndSize(block, (Py_ssize_t)take);
        PyBytes_ConcatAndDel(&out, part);
        limit -= (Py_ssize_t)take;
        if (nl)
            break;
    }
    return out;
}

/* read(size) and readline(size) share argument handling and the
 * ended-request case. */
static PyObject *input_sized(PyObject *self, PyObject *const *args,
                             Py_ssize_t nargs,
                             PyObject *(*reader)(struct drv_body *, Py_ssize_t))
{
    Py_ssize_t size;
    struct drv_body *b = body_of((struct pyinput *)self);
    if (size_arg(args, nargs, &size) != 0)
        return NULL;
    if (!b)
        return PyBytes_FromStringAndSize("", 0);
    return reader(b, size);
}

static PyObject *input_read(PyObject *self, PyObject *const *args,
                            Py_ssize_t nargs)
{
    return input_sized(self, args, nargs, read_bytes);
}

static PyObject *input_readline(PyObject *self, PyObject *const *args,
                                Py_ssize_t nargs)
{
    return input_sized(self, args, nargs, readline_body);
}

static PyObject *input_readlines(PyObject *self, PyObject *const *args,
                                 Py_ssize_t nargs)
{
    Py_ssize_t hint;
    struct drv_body *b = body_of((struct pyinput *)self);
    if (size_arg(args, nargs, &hint) != 0)
        return NULL;
    PyObject *lines = PyList_New(0);
    Py_ssize_t total = 0;
    while (lines && b && b->read_pos < b->len) {
        PyObject *line = readline_body(b, -1);
        if (!line || PyList_Append(lines, line) != 0) {
            Py_XDECREF(line);
            Py_CLEAR(lines);
            break;
        }
        total += PyBytes_GET_SIZE(line);
        Py_DECREF(line);
        if (hint > 0 && total >= hint)
            break;
    }
    return lines;
}

static PyObject *input_iternext(PyObject *self)
{
    struct drv_body *b = body_of((struct pyinput *)self);
    if (!b || b->read_pos >= b->len)
        return NULL; /* StopIteration */
    return readline_body(b, -1);
}

static void input_dealloc(PyObject *self)
{
    Py_XDECREF(((struct pyinput *)self)->ctx);
    Py_TYPE(self)->tp_free(self);
}

static PyMethodDef input_methods[] = {
    {"read", (PyCFunction)(void (*)(void))input_read, METH_FASTCALL,
     "read(size=-1) -> bytes"},
    {"readline", (PyCFunction)(void (*)(void))input_readline, METH_FASTCALL,
     "readline(size=-1) -> bytes"},
    {"readlines", (PyCFunction)(void (*)(void))input_readlines, METH_FASTCALL,
     "readlines(hint=-1) -> list of bytes"},
    {NULL, NULL, 0, NULL},
};

PyTypeObject py_input_type = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "drover.Input",
    .tp_basicsize = sizeof(struct pyinput),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_dealloc = input_dealloc,
    .tp_iter = PyObject_SelfIter,
    .tp_iternext = input_iternext,
    .tp_methods = input_methods,
    .tp_doc = "wsgi.input: the request body",
};

int py_request_types(void)
{
    return PyType_Ready(&py_req_type) < 0 || PyType_Ready(&py_input_type) < 0
               ? -1
               : 0;
}
