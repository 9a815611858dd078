/*
 * python: Python WSGI apps on an embedded CPython. The only module that
 * includes Python.h.
 *
 * Start-up: the interpreter is configured with PyConfig (no deprecated
 * Py_Set* calls): Python's own signal handlers off (drover owns signals),
 * unbuffered stdio, sys.argv = ["drover", APP]. The working directory goes
 * first on sys.path, as with gunicorn. The app spec is resolved by a small
 * bootstrap written in Python (import, attribute path, factory call with
 * literal arguments), because that code runs once and Python's own error
 * messages and tracebacks are the best ones to show.
 *
 * Per request (the hot path, all C):
 *   - environ starts as a copy of a prebuilt dict of the constant keys;
 *     every key is an interned str created once; common header names map
 *     to prebuilt HTTP_* keys without allocating;
 *   - start_response and wsgi.input are small C objects bound to the
 *     request; they turn inert when the request ends, so an app that keeps
 *     them around cannot touch freed memory;
 *   - a list or tuple result is written at once (Content-Length known);
 *     any other iterable is pulled lazily as the socket drains, through a
 *     drover_body_source whose close() calls the iterable's close();
 *   - wsgi.file_wrapper over a regular file becomes a file body the
 *     connection sends with sendfile(2).
 *
 * The GIL: once the interpreter is up and the app loaded, the main thread
 * releases it, so the app's own threads (schedulers, Dash callbacks) run
 * while the worker waits in epoll. Every entry from drover into Python
 * (the app call, the body source's next/close, fork hooks, finalize) goes
 * through py_enter()/py_leave().
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "app.h"
#include "log.h"

/* ------------------------------------------------------------------ */
/* Interned keys and constants                                         */

enum key {
    K_REQUEST_METHOD, K_SCRIPT_NAME, K_PATH_INFO, K_QUERY_STRING,
    K_CONTENT_TYPE, K_CONTENT_LENGTH, K_SERVER_NAME, K_SERVER_PORT,
    K_SERVER_PROTOCOL, K_REMOTE_ADDR, K_REMOTE_PORT, K_RAW_URI,
    K_URL_SCHEME, K_INPUT,
    K_COUNT
};

static const char *const key_names[K_COUNT] = {
    "REQUEST_METHOD", "SCRIPT_NAME", "PATH_INFO", "QUERY_STRING",
    "CONTENT_TYPE", "CONTENT_LENGTH", "SERVER_NAME", "SERVER_PORT",
    "SERVER_PROTOCOL", "REMOTE_ADDR", "REMOTE_PORT", "RAW_URI",
    "wsgi.url_scheme", "wsgi.input",
};

/* Header names common enough to deserve a prebuilt HTTP_* key. */
static const char *const common_headers[] = {
    "host", "user-agent", "accept", "accept-encoding", "accept-language",
    "connection", "cookie", "referer", "cache-control", "origin",
    "x-forwarded-for", "x-forwarded-proto", "x-forwarded-host",
    "x-real-ip", "x-requested-with", "authorization", "if-none-match",
    "if-modified-since", "upgrade-insecure-requests", "pragma", "dnt",
    "sec-fetch-site", "sec-fetch-mode", "sec-fetch-dest", "sec-fetch-user",
    "sec-ch-ua", "sec-ch-ua-mobile", "sec-ch-ua-platform", "range",
    "keep-alive", "te", "expect", "forwarded",
};
#define NCOMMON (sizeof(common_headers) / sizeof(common_headers[0]))

static bool py_ready; /* the interpreter is initialised */

/*
 * The main thread's Python state while drover runs C without the GIL.
 * py_enter() takes the GIL back, py_leave() releases it; they nest (a
 * body source closed from inside python_call, say), and only the
 * outermost pair touches the GIL. Main thread only.
 */
static PyThreadState *py_main;
static int py_depth; /* > 0: this thread holds the GIL */

static void py_enter(void)
{
    if (py_depth++ == 0) {
        PyEval_RestoreThread(py_main);
        py_main = NULL;
    }
}

static void py_leave(void)
{
    if (--py_depth == 0)
        py_main = PyEval_SaveThread();
}
static PyObject *keys[K_COUNT];
static PyObject *common_keys[NCOMMON];
static size_t common_lens[NCOMMON]; /* strlen(common_headers[i]) */
static PyObject *environ_template; /* constant keys, copied per request */
static PyObject *str_empty, *str_http10, *str_http11;
static PyObject *file_wrapper_type; /* wsgi.file_wrapper, the bootstrap's */

/* ------------------------------------------------------------------ */
/* The per-request context: start_response and wsgi.input              */

struct pyreq {
    PyObject_HEAD
    struct drv_request *req;  /* NULL once the request is over */
    struct drv_response *res;
    bool started;
    PyObject *write;          /* bound write() callable, cached */
};

static PyTypeObject pyreq_type;
static PyTypeObject input_type;

struct input {
    PyObject_HEAD
    struct pyreq *ctx; /* owned reference */
};

static int set_error_if_over(struct pyreq *ctx)
{
    if (ctx->req)
        return 0;
    PyErr_SetString(PyExc_RuntimeError,
                    "the WSGI request this object belongs to has ended");
    return -1;
}

/* Body data must be bytes (PEP 3333). Raises TypeError naming `what`. */
static bool is_body_bytes(PyObject *o, const char *what)
{
    if (PyBytes_Check(o))
        return true;
    PyErr_Format(PyExc_TypeError, "%s must be bytes, not %.100s", what,
                 Py_TYPE(o)->tp_name);
    return false;
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
        if (ctx->res->state >= DRV_RESPONSE_COMMITTED) {
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
        ctx->res->state = DRV_RESPONSE_NEW;
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
    if (!is_body_bytes(data, "write() argument"))
        return NULL;
    if (!ctx->started) {
        PyErr_SetString(PyExc_RuntimeError, "write() before start_response");
        return NULL;
    }
    drv_response_write(ctx->res, PyBytes_AS_STRING(data),
                       (size_t)PyBytes_GET_SIZE(data));
    Py_RETURN_NONE;
}

static PyMethodDef write_def = {"write", write_body, METH_O,
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

static PyTypeObject pyreq_type = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "drover.start_response",
    .tp_basicsize = sizeof(struct pyreq),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_call = pyreq_call,
    .tp_dealloc = pyreq_dealloc,
    .tp_doc = "start_response(status, headers, exc_info=None)",
};

/* wsgi.input ------------------------------------------------------- */

static struct drv_body *body_of(struct input *in)
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
    struct drv_body *b = body_of((struct input *)self);
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
    struct drv_body *b = body_of((struct input *)self);
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
    struct drv_body *b = body_of((struct input *)self);
    if (!b || b->read_pos >= b->len)
        return NULL; /* StopIteration */
    return readline_body(b, -1);
}

static void input_dealloc(PyObject *self)
{
    Py_XDECREF(((struct input *)self)->ctx);
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

static PyTypeObject input_type = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "drover.Input",
    .tp_basicsize = sizeof(struct input),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_dealloc = input_dealloc,
    .tp_iter = PyObject_SelfIter,
    .tp_iternext = input_iternext,
    .tp_methods = input_methods,
    .tp_doc = "wsgi.input: the request body",
};

/* ------------------------------------------------------------------ */
/* environ                                                             */

static int set_item(PyObject *env, PyObject *key, PyObject *value)
{
    if (!value)
        return -1;
    int rc = PyDict_SetItem(env, key, value);
    Py_DECREF(value);
    return rc;
}

static PyObject *str_of(struct drover_str s)
{
    return PyUnicode_DecodeLatin1(s.ptr, (Py_ssize_t)s.len, NULL);
}

static int hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* Length of %XX escape at p[i], 3, or 0 if there is none. */
static size_t escape_at(struct drover_str p, size_t i)
{
    return p.ptr[i] == '%' && i + 2 < p.len && hexval(p.ptr[i + 1]) >= 0 &&
                   hexval(p.ptr[i + 2]) >= 0
               ? 3
               : 0;
}

/* PATH_INFO: percent-decoded bytes as a latin-1 str (PEP 3333). Two
 * passes (count, then fill) so the str is built in place. */
static PyObject *decoded_path(struct drover_str path)
{
    size_t n = 0;
    int top = 0;
    for (size_t i = 0, step; i < path.len; n++, i += step) {
        step = escape_at(path, i) ? 3 : 1;
        top |= step == 3 ? hexval(path.ptr[i + 1]) * 16 + hexval(path.ptr[i + 2])
                         : (unsigned char)path.ptr[i];
    }
    /* CPython wants ASCII-only text flagged as such: ask for maxchar 127
     * unless a byte is above it. */
    PyObject *s = PyUnicode_New((Py_ssize_t)n, top & 0x80 ? 255 : 127);
    if (!s)
        return NULL;
    Py_UCS1 *out = PyUnicode_1BYTE_DATA(s);
    for (size_t i = 0; i < path.len;) {
        if (escape_at(path, i)) {
            *out++ = (Py_UCS1)(hexval(path.ptr[i + 1]) * 16 +
                               hexval(path.ptr[i + 2]));
            i += 3;
        } else {
            *out++ = (Py_UCS1)path.ptr[i++];
        }
    }
    return s;
}

/* The environ key for a header, or NULL (with no error) to drop it. */
static PyObject *header_key(struct drover_str name)
{
    for (size_t i = 0; i < NCOMMON; i++)
        if (name.len == common_lens[i] &&
            strncasecmp(name.ptr, common_headers[i], name.len) == 0) {
            Py_INCREF(common_keys[i]);
            return common_keys[i];
        }
    char key[5 + 256];
    if (name.len > 256)
        return NULL;
    memcpy(key, "HTTP_", 5);
    for (size_t i = 0; i < name.len; i++) {
        char c = name.ptr[i];
        /* A '_' would alias a '-' header: drop such names (as gunicorn). */
        if (c == '_')
            return NULL;
        key[5 + i] = c == '-' ? '_' : (c >= 'a' && c <= 'z') ? (char)(c - 32) : c;
    }
    return PyUnicode_DecodeLatin1(key, (Py_ssize_t)(5 + name.len), NULL);
}

static int add_header(PyObject *env, const struct drover_header *h)
{
    struct drv_str n = {h->name.ptr, h->name.len};
    PyObject *key;
    if (drv_str_eq_lower(n, "content-type"))
        key = keys[K_CONTENT_TYPE], Py_INCREF(key);
    else if (drv_str_eq_lower(n, "content-length"))
        key = keys[K_CONTENT_LENGTH], Py_INCREF(key);
    else
        key = header_key(h->name);
    if (!key)
        return PyErr_Occurred() ? -1 : 0;
    PyObject *value = str_of(h->value);
    PyObject *old = value ? PyDict_GetItemWithError(env, key) : NULL;
    if (old) {
        /* Repeated header: join with ", " (RFC 9110 5.3). */
        PyObject *joined = PyUnicode_FromFormat("%U, %U", old, value);
        Py_DECREF(value);
        value = joined;
    }
    int rc = value ? PyDict_SetItem(env, key, value) : -1;
    Py_XDECREF(value);
    Py_DECREF(key);
    return rc;
}

/* The authority of an absolute-form target ("http://h:8080/x?y" gives
 * "h:8080"); false for origin-form or an empty authority. */
static bool target_authority(struct drover_str t, struct drover_str *out)
{
    size_t skip = t.len > 7 && strncasecmp(t.ptr, "http://", 7) == 0 ? 7
                  : t.len > 8 && strncasecmp(t.ptr, "https://", 8) == 0 ? 8
                                                                       : 0;
    if (!skip)
        return false;
    size_t n = skip;
    while (n < t.len && t.ptr[n] != '/' && t.ptr[n] != '?' && t.ptr[n] != '#')
        n++;
    *out = (struct drover_str){t.ptr + skip, n - skip};
    return out->len > 0;
}

/* SERVER_NAME and SERVER_PORT from the request's host, else the listener.
 * RFC 9112 3.2.2: an absolute-form target's authority wins over the Host
 * header, so HTTP_HOST follows it too (apps build URLs from HTTP_HOST).
 * Runs after the headers are in the environ. */
static int host_and_port(PyObject *env, const struct drv_request *req)
{
    const struct drover_request *v = &req->view;
    struct drover_str host = {"", 0};
    if (target_authority(v->target, &host)) {
        PyObject *key = header_key((struct drover_str){"host", 4});
        if (!key || set_item(env, key, str_of(host)) != 0) {
            Py_XDECREF(key);
            return -1;
        }
        Py_DECREF(key);
    } else {
        const struct drover_header *h = drv_http_header(req, "host");
        if (h)
            host = h->value;
    }
    struct drover_str name = v->server_addr;
    char port[16];
    snprintf(port, sizeof(port), "%d", v->server_port);
    struct drover_str portv = {port, strlen(port)};
    if (host.len) {
        const char *p = host.ptr, *end = p + host.len;
        const char *colon = NULL;
        if (*p == '[') { /* [v6]:port */
            const char *close = memchr(p, ']', host.len);
            colon = close && close + 1 < end && close[1] == ':' ? close + 1
                                                                 : NULL;
        } else {
            colon = memchr(p, ':', host.len);
        }
        name = (struct drover_str){p, colon ? (size_t)(colon - p) : host.len};
        if (colon && colon + 1 < end)
            portv = (struct drover_str){colon + 1, (size_t)(end - colon - 1)};
        else if (drv_str_eq_lower((struct drv_str){v->url_scheme.ptr,
                                                   v->url_scheme.len},
                                  "https"))
            portv = (struct drover_str){"443", 3};
        else
            portv = (struct drover_str){"80", 2};
    }
    if (set_item(env, keys[K_SERVER_NAME], str_of(name)) ||
        set_item(env, keys[K_SERVER_PORT], str_of(portv)))
        return -1;
    return 0;
}

/* Split the decoded path at the mount point. Returns 0 and sets
 * PATH_INFO (and SCRIPT_NAME), 1 when the path is outside the mount
 * point, -1 on error. */
static int mount_path(PyObject *env, PyObject *script_name, PyObject *path)
{
    if (!script_name)
        return set_item(env, keys[K_PATH_INFO], path);
    Py_ssize_t n = PyUnicode_GET_LENGTH(script_name);
    int inside = PyUnicode_Tailmatch(path, script_name, 0, n, -1);
    if (inside == 1 && PyUnicode_GET_LENGTH(path) > n &&
        PyUnicode_READ_CHAR(path, n) != '/')
        inside = 0;
    if (inside != 1) {
        Py_DECREF(path);
        return inside < 0 ? -1 : 1;
    }
    PyObject *rest = PyUnicode_Substring(path, n, PyUnicode_GET_LENGTH(path));
    Py_DECREF(path);
    if (PyDict_SetItem(env, keys[K_SCRIPT_NAME], script_name) != 0)
        return -1;
    return set_item(env, keys[K_PATH_INFO], rest);
}

static PyObject *build_environ(struct drv_request *req, struct pyreq *ctx,
                               PyObject *script_name, bool *outside)
{
    const struct drover_request *v = &req->view;
    PyObject *env = PyDict_Copy(environ_template);
    if (!env)
        return NULL;
    PyObject *path = decoded_path(v->path);
    int mounted = path ? mount_path(env, script_name, path) : -1;
    if (mounted != 0) {
        *outside = mounted == 1;
        Py_DECREF(env);
        return NULL;
    }
    char port[16];
    snprintf(port, sizeof(port), "%d", v->remote_port);
    struct input *in = PyObject_New(struct input, &input_type);
    if (in) {
        in->ctx = ctx;
        Py_INCREF(ctx);
    }
    if (set_item(env, keys[K_REQUEST_METHOD], str_of(v->method)) ||
        set_item(env, keys[K_QUERY_STRING], str_of(v->query)) ||
        set_item(env, keys[K_RAW_URI], str_of(v->target)) ||
        PyDict_SetItem(env, keys[K_SERVER_PROTOCOL],
                       req->http_minor ? str_http11 : str_http10) ||
        set_item(env, keys[K_REMOTE_ADDR], str_of(v->remote_addr)) ||
        set_item(env, keys[K_REMOTE_PORT], PyUnicode_FromString(port)) ||
        set_item(env, keys[K_URL_SCHEME], str_of(v->url_scheme)) ||
        set_item(env, keys[K_INPUT], (PyObject *)in))
        goto fail;
    for (size_t i = 0; i < v->nheaders; i++)
        if (add_header(env, &v->headers[i]) != 0)
            goto fail;
    if (host_and_port(env, req) != 0)
        goto fail;
    /* A de-chunked body has a length now; tell the app (PEP 3333 lets
     * it rely on CONTENT_LENGTH, and wsgi.input_terminated is True). */
    if (req->content_length < 0 && v->body_length &&
        set_item(env, keys[K_CONTENT_LENGTH],
                 PyUnicode_FromFormat("%llu",
                                      (unsigned long long)v->body_length)))
        goto fail;
    return env;
fail:
    Py_DECREF(env);
    return NULL;
}

/* ------------------------------------------------------------------ */
/* Calling the app and pulling its iterable                            */

struct python_app {
    struct drv_app base;
    PyObject *callable;
    PyObject *script_name; /* str without trailing '/', NULL = root */
    bool dev;              /* --dev: a failed call's 500 shows the traceback */
};

/* State of a lazily pulled response iterable. */
struct pybody {
    PyObject *iterable; /* what the app returned (has .close maybe) */
    PyObject *iter;
    PyObject *current;  /* the chunk handed out last */
    struct pyreq *ctx;
};

/* Log `what` (and the app spec, when known), then the traceback. */
static void log_exception(const char *what, const char *spec)
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

/* --dev: the traceback of exception `value` as one str, or NULL (no
 * error set) when it cannot be formatted. */
static PyObject *traceback_text(PyObject *value)
{
    PyObject *mod = PyImport_ImportModule("traceback");
    PyObject *tb = PyException_GetTraceback(value);
    PyObject *lines = mod ? PyObject_CallMethod(
                                mod, "format_exception", "OOO", Py_TYPE(value),
                                value, tb ? tb : Py_None)
                          : NULL;
    PyObject *empty = PyUnicode_FromString("");
    PyObject *text = lines && empty ? PyUnicode_Join(empty, lines) : NULL;
    if (!text)
        PyErr_Clear();
    Py_XDECREF(empty);
    Py_XDECREF(lines);
    Py_XDECREF(tb);
    Py_XDECREF(mod);
    return text;
}

/* --dev: the current exception's traceback as text; the exception stays
 * set (normalized) for log_exception. */
static PyObject *current_traceback_text(void)
{
    PyObject *type, *value, *tb;
    PyErr_Fetch(&type, &value, &tb);
    PyErr_NormalizeException(&type, &value, &tb);
    if (value && tb)
        PyException_SetTraceback(value, tb);
    PyObject *text = value ? traceback_text(value) : NULL;
    PyErr_Restore(type, value, tb);
    return text;
}

/* --dev: replace whatever the app started with a 500 whose body is the
 * traceback. Returns 0, or -1 when the head is already out. */
static int dev_error_page(struct drv_response *res, PyObject *text)
{
    Py_ssize_t n;
    const char *p = PyUnicode_AsUTF8AndSize(text, &n);
    if (!p) {
        PyErr_Clear();
        return -1;
    }
    if (res->state >= DRV_RESPONSE_COMMITTED || res->has_source ||
        drv_response_start(res, 500, NULL, 0) != 0)
        return -1;
    drv_buf_reset(&res->pending); /* body the app wrote before failing */
    drv_response_header(res, "Content-Type", 12,
                        "text/plain; charset=utf-8", 25);
    drv_response_write(res, p, (size_t)n);
    return 0;
}

/* A call failed with an exception set: log it. Returns -1 (drover answers
 * 500), or 0 when --dev wrote its traceback page instead. */
static int call_failed(struct python_app *pa, struct drv_response *res)
{
    PyObject *text = pa->dev && res->state < DRV_RESPONSE_COMMITTED
                         ? current_traceback_text()
                         : NULL;
    log_exception("exception", pa->base.spec);
    int rc = text ? dev_error_page(res, text) : -1;
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
    log_exception("exception in close()", NULL);
}

static int body_next_locked(struct pybody *b, const void **data, size_t *len)
{
    Py_CLEAR(b->current);
    for (;;) {
        PyObject *item = PyIter_Next(b->iter);
        if (!item) {
            if (!PyErr_Occurred())
                return 0;
            log_exception("exception while streaming the response", NULL);
            return -1;
        }
        if (!is_body_bytes(item, "response body items")) {
            Py_DECREF(item);
            log_exception("response cut", NULL);
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
        if (!is_body_bytes(items[i], "response body items"))
            return -1;
        total += (uint64_t)PyBytes_GET_SIZE(items[i]);
    }
    drv_response_commit_sized(ctx->res, total); /* or already committed */
    for (Py_ssize_t i = 0; i < n; i++)
        drv_response_write(ctx->res, PyBytes_AS_STRING(items[i]),
                           (size_t)PyBytes_GET_SIZE(items[i]));
    return 0;
}

/* Pull until the first non-empty chunk (a generator may call
 * start_response there), then hand the rest to drover as a body source. */
static int stream_iterable(struct pyreq *ctx, PyObject *result)
{
    PyObject *iter = PyObject_GetIter(result);
    if (!iter)
        return -1;
    PyObject *first = NULL;
    for (;;) {
        first = PyIter_Next(iter);
        if (!first)
            break;
        if (!is_body_bytes(first, "response body items"))
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
    return drv_response_stream(ctx->res, &src) == 0 ? 1 : -1;
fail:
    Py_XDECREF(first);
    Py_DECREF(iter);
    return -1;
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
 * head already committed by write()), -1 on error (raised). */
static int stream_file(struct pyreq *ctx, PyObject *result)
{
    if (!Py_IS_TYPE(result, (PyTypeObject *)file_wrapper_type) ||
        ctx->res->state != DRV_RESPONSE_STARTED)
        return 0;
    PyObject *filelike = PyObject_GetAttrString(result, "filelike");
    if (!filelike)
        return -1;
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
    return drv_response_stream_file(ctx->res, &src, fd, pos, left) == 0 ? 1
                                                                        : -1;
}

static int python_call_locked(struct drv_app *app, struct drv_request *req,
                              struct drv_response *res)
{
    struct python_app *pa = (struct python_app *)app;
    int rc = -1, streaming = 0;
    struct pyreq *ctx = PyObject_New(struct pyreq, &pyreq_type);
    if (!ctx) {
        log_exception("out of memory", app->spec);
        return -1;
    }
    ctx->req = req;
    ctx->res = res;
    ctx->started = false;
    ctx->write = PyCFunction_New(&write_def, (PyObject *)ctx);
    bool outside = false;
    PyObject *env = ctx->write ? build_environ(req, ctx, pa->script_name,
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
        if (streaming < 0)
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
    if (rc != 0 && res->state == DRV_RESPONSE_STARTED)
        res->state = DRV_RESPONSE_NEW;
    Py_DECREF(ctx);
    return rc;
}

static int python_call(struct drv_app *app, struct drv_request *req,
                       struct drv_response *res)
{
    py_enter();
    int rc = python_call_locked(app, req, res);
    py_leave();
    return rc;
}

static PyObject *bootstrap_ns; /* defined with the start-up code below */

/* ---- fork ----
 * With preload the master holds the GIL across fork() (PyOS_BeforeFork
 * also takes the import lock), so the child starts from a consistent
 * interpreter and finishes the fork in python_post_fork. */
static bool forking; /* set across fork(); the child inherits it set */

static void python_before_fork(struct drv_app *app)
{
    (void)app;
    py_enter();
    PyOS_BeforeFork();
    forking = true;
}

static void python_after_fork_parent(struct drv_app *app)
{
    (void)app;
    forking = false;
    PyOS_AfterFork_Parent();
    py_leave();
}

/* Run Python statements (GIL held); failures go to the error log. */
static int run_statements(const char *code)
{
    PyObject *r = PyRun_String(code, Py_file_input, bootstrap_ns,
                               bootstrap_ns);
    if (!r) {
        PyErr_PrintEx(0);
        return -1;
    }
    Py_DECREF(r);
    return 0;
}

/* With preload, what the master imported is moved out of the garbage
 * collector's reach, so that no collection in a worker writes to (and so
 * copies) the pages the workers share. */
static void python_preloaded(struct drv_app *app)
{
    (void)app;
    py_enter();
    run_statements("import gc\ngc.collect()\ngc.freeze()\n");
    py_leave();
}

/* In the worker: finish the fork for Python (its at-fork hooks reseed
 * random), and arm faulthandler, so that the master's SIGABRT for a timed
 * out worker, or a crash in an extension, leaves every thread's Python
 * stack in the error log. */
static int python_post_fork(struct drv_app *app, char *err, size_t errlen)
{
    (void)app;
    if (forking) {
        forking = false;
        PyOS_AfterFork_Child(); /* the GIL came with the fork */
    } else {
        py_enter();
    }
    int rc = run_statements("import faulthandler, sys\n"
                            "faulthandler.enable(file=sys.stderr, "
                            "all_threads=True)\n");
    py_leave();
    if (rc != 0)
        snprintf(err, errlen, "cannot enable faulthandler");
    return rc;
}

static void python_free(struct drv_app *app)
{
    struct python_app *pa = (struct python_app *)app;
    py_enter();
    Py_XDECREF(pa->callable);
    Py_XDECREF(pa->script_name);
    free(app->spec);
    free(pa);
    /* A clean stop finalizes, so the app's atexit handlers run and its
     * buffered files are flushed. Finalizing needs the GIL and consumes
     * this thread's state: there is nothing left to release. */
    if (py_ready && Py_FinalizeEx() != 0)
        drv_error("Python finalization reported an error");
    py_ready = false;
    py_depth = 0;
    py_main = NULL;
}

static const struct drv_app_ops python_ops = {
    .kind = "python",
    .call = python_call,
    .before_fork = python_before_fork,
    .after_fork_parent = python_after_fork_parent,
    .post_fork = python_post_fork,
    .preloaded = python_preloaded,
    .free = python_free,
};

/* ------------------------------------------------------------------ */
/* Start-up                                                            */

/* Runs once in __main__-like namespace `_drover`. */
static const char bootstrap[] =
    "import ast, importlib, sys\n"
    "class FileWrapper:\n"
    "    def __init__(self, filelike, blksize=8192):\n"
    "        self.filelike = filelike\n"
    "        self.blksize = blksize\n"
    "        if hasattr(filelike, 'close'):\n"
    "            self.close = filelike.close\n"
    "    def __iter__(self):\n"
    "        return self\n"
    "    def __next__(self):\n"
    "        data = self.filelike.read(self.blksize)\n"
    "        if data:\n"
    "            return data\n"
    "        raise StopIteration\n"
    "def setup_paths(pythonpath, venv):\n"
    "    import os, site\n"
    "    front = [os.path.abspath(p) for item in pythonpath\n"
    "             for p in item.split(',') if p]\n"
    "    sys.path[:0] = front\n"
    "    if venv:\n"
    "        v = sys.version_info\n"
    "        sp = os.path.join(os.path.abspath(venv), 'lib',\n"
    "                          f'python{v[0]}.{v[1]}', 'site-packages')\n"
    "        if not os.path.isdir(sp):\n"
    "            raise FileNotFoundError(f'virtualenv {venv!r} has no {sp} '\n"
    "                                    f'(drover embeds Python {v[0]}.{v[1]})')\n"
    "        before = list(sys.path)\n"
    "        site.addsitedir(sp)\n"
    "        added = [p for p in sys.path if p not in before]\n"
    "        n = len(front) + 1\n"
    "        sys.path[:] = before[:n] + added + before[n:]\n"
    "def load(spec):\n"
    "    module, _, obj = spec.partition(':')\n"
    "    obj = obj or 'application'\n"
    "    call = None\n"
    "    if obj.endswith(')'):\n"
    "        node = ast.parse(obj, mode='eval').body\n"
    "        if not isinstance(node, ast.Call):\n"
    "            raise ValueError(f'cannot parse app spec {spec!r}')\n"
    "        call = ([ast.literal_eval(a) for a in node.args],\n"
    "                {k.arg: ast.literal_eval(k.value) for k in node.keywords})\n"
    "        obj = obj[:obj.index('(')]\n"
    "    target = importlib.import_module(module)\n"
    "    for part in obj.split('.'):\n"
    "        try:\n"
    "            target = getattr(target, part)\n"
    "        except AttributeError:\n"
    "            raise LookupError(f'no attribute {obj!r} in module {module!r}') from None\n"
    "    if call is not None:\n"
    "        target = target(*call[0], **call[1])\n"
    "    if not callable(target):\n"
    "        raise TypeError(f'{spec}: {type(target).__name__} object is not callable')\n"
    "    return target\n";

static PyObject *bootstrap_ns;

static int make_keys(void)
{
    for (int i = 0; i < K_COUNT; i++)
        if (!(keys[i] = PyUnicode_InternFromString(key_names[i])))
            return -1;
    for (size_t i = 0; i < NCOMMON; i++) {
        char key[64] = "HTTP_";
        size_t n = 5;
        common_lens[i] = strlen(common_headers[i]);
        for (const char *c = common_headers[i]; *c && n < sizeof(key) - 1; c++)
            key[n++] = *c == '-' ? '_' : (char)(*c >= 'a' && *c <= 'z' ? *c - 32 : *c);
        key[n] = '\0';
        if (!(common_keys[i] = PyUnicode_InternFromString(key)))
            return -1;
    }
    str_empty = PyUnicode_InternFromString("");
    str_http10 = PyUnicode_InternFromString("HTTP/1.0");
    str_http11 = PyUnicode_InternFromString("HTTP/1.1");
    return str_empty && str_http10 && str_http11 ? 0 : -1;
}

static int make_template(void)
{
    PyObject *sys_stderr = PySys_GetObject("stderr"); /* borrowed */
    PyObject *wrapper = PyDict_GetItemString(bootstrap_ns, "FileWrapper");
    environ_template = PyDict_New();
    if (!environ_template || !sys_stderr || !wrapper)
        return -1;
    file_wrapper_type = wrapper;
    PyObject *d = environ_template;
    int rc = 0;
    rc |= set_item(d, PyUnicode_InternFromString("wsgi.version"),
                   Py_BuildValue("(ii)", 1, 0)) ;
    /* set_item steals the value only; keys are interned and immortal
     * enough for the process lifetime. */
    rc |= PyDict_SetItemString(d, "wsgi.errors", sys_stderr);
    rc |= PyDict_SetItemString(d, "wsgi.multithread", Py_False);
    rc |= PyDict_SetItemString(d, "wsgi.multiprocess", Py_True);
    rc |= PyDict_SetItemString(d, "wsgi.run_once", Py_False);
    rc |= PyDict_SetItemString(d, "wsgi.input_terminated", Py_True);
    rc |= PyDict_SetItemString(d, "wsgi.file_wrapper", wrapper);
    rc |= PyDict_SetItem(d, keys[K_SCRIPT_NAME], str_empty);
    PyObject *sw = PyUnicode_FromString("drover/" DROVER_VERSION);
    rc |= sw ? PyDict_SetItemString(d, "SERVER_SOFTWARE", sw) : -1;
    Py_XDECREF(sw);
    return rc ? -1 : 0;
}

static int init_interpreter(const char *spec, char *err, size_t errlen)
{
    if (py_ready)
        return 0;
    PyConfig config;
    PyConfig_InitPythonConfig(&config);
    config.install_signal_handlers = 0;
    config.buffered_stdio = 0;
    config.parse_argv = 0;
    char prog[] = "drover", *app = drv_xstrdup(spec);
    char *argv[] = {prog, app};
    PyStatus st = PyConfig_SetBytesArgv(&config, 2, argv);
    free(app);
    if (!PyStatus_Exception(st))
        st = Py_InitializeFromConfig(&config);
    PyConfig_Clear(&config);
    if (PyStatus_Exception(st)) {
        snprintf(err, errlen, "cannot start Python: %s",
                 st.err_msg ? st.err_msg : "unknown error");
        return -1;
    }
    py_depth = 1; /* initialising leaves this thread holding the GIL */
    /* gunicorn puts the working directory first on sys.path. */
    PyObject *path = PySys_GetObject("path"), *cwd = NULL;
    char dir[4096];
    if (getcwd(dir, sizeof(dir)))
        cwd = PyUnicode_DecodeFSDefault(dir);
    if (!path || !cwd || PyList_Insert(path, 0, cwd) != 0) {
        Py_XDECREF(cwd);
        snprintf(err, errlen, "cannot set up sys.path");
        return -1;
    }
    Py_DECREF(cwd);
    if (PyType_Ready(&pyreq_type) < 0 || PyType_Ready(&input_type) < 0 ||
        make_keys() != 0) {
        snprintf(err, errlen, "cannot initialise the WSGI types");
        return -1;
    }
    bootstrap_ns = PyDict_New();
    PyObject *builtins = PyEval_GetBuiltins();
    if (!bootstrap_ns ||
        PyDict_SetItemString(bootstrap_ns, "__builtins__", builtins) != 0) {
        snprintf(err, errlen, "cannot create the bootstrap namespace");
        return -1;
    }
    PyObject *r = PyRun_String(bootstrap, Py_file_input, bootstrap_ns,
                               bootstrap_ns);
    if (!r || make_template() != 0) {
        Py_XDECREF(r);
        PyErr_PrintEx(0);
        snprintf(err, errlen, "cannot run drover's Python bootstrap");
        return -1;
    }
    Py_DECREF(r);
    py_ready = true;
    return 0;
}

/* The exception the last failed load raised, traceback attached (--dev
 * serves it and watches the files it names). */
static PyObject *load_error;

/* "ModuleNotFoundError: No module named 'x'" for the one-line summary. */
static void summarise_exception(const char *spec, char *err, size_t errlen)
{
    PyObject *type, *value, *tb;
    PyErr_Fetch(&type, &value, &tb);
    PyErr_NormalizeException(&type, &value, &tb);
    if (value && tb)
        PyException_SetTraceback(value, tb);
    Py_XINCREF(value);
    Py_XSETREF(load_error, value);
    PyObject *text = value ? PyObject_Str(value) : NULL;
    const char *msg = text ? PyUnicode_AsUTF8(text) : NULL;
    snprintf(err, errlen, "cannot load app '%s': %s: %s", spec,
             type ? ((PyTypeObject *)type)->tp_name : "error",
             msg ? msg : "");
    PyErr_Clear();
    Py_XDECREF(text);
    PyErr_Restore(type, value, tb);
    drv_error("cannot load app '%s':", spec);
    PyErr_PrintEx(0);
}

/* sys.path: --pythonpath first, then the venv's site-packages. */
static int setup_paths(const struct drv_settings *s, char *err, size_t errlen)
{
    PyObject *pp = PyList_New(0);
    for (size_t i = 0; pp && i < s->pythonpath.n; i++) {
        PyObject *item = PyUnicode_DecodeFSDefault(s->pythonpath.v[i]);
        if (!item || PyList_Append(pp, item) != 0)
            Py_CLEAR(pp);
        Py_XDECREF(item);
    }
    PyObject *fn = PyDict_GetItemString(bootstrap_ns, "setup_paths");
    PyObject *r = pp ? PyObject_CallFunction(fn, "Oz", pp, s->virtualenv)
                     : NULL;
    Py_XDECREF(pp);
    if (r) {
        Py_DECREF(r);
        return 0;
    }
    PyObject *type, *value, *tb;
    PyErr_Fetch(&type, &value, &tb);
    PyObject *text = value ? PyObject_Str(value) : NULL;
    snprintf(err, errlen, "%s: %s",
             s->virtualenv ? "--virtualenv" : "--pythonpath",
             text ? PyUnicode_AsUTF8(text) : "cannot set up sys.path");
    PyErr_Clear();
    Py_XDECREF(text);
    Py_XDECREF(type);
    Py_XDECREF(value);
    Py_XDECREF(tb);
    return -1;
}

static PyObject *mount_point(const char *script_name, char *err,
                             size_t errlen)
{
    size_t n = strlen(script_name);
    while (n && script_name[n - 1] == '/')
        n--;
    if (n == 0)
        return NULL;
    if (script_name[0] != '/') {
        snprintf(err, errlen, "--script-name '%s': must start with '/'",
                 script_name);
        return NULL;
    }
    return PyUnicode_DecodeLatin1(script_name, (Py_ssize_t)n, NULL);
}

static struct drv_app *python_load(const char *spec,
                                   const struct drv_settings *s, char *err,
                                   size_t errlen)
{
    err[0] = '\0';
    PyObject *script_name = NULL;
    struct python_app *pa = NULL;
    if (py_ready)
        py_enter();
    else if (init_interpreter(spec, err, errlen) != 0)
        return NULL; /* drover exits; the GIL does not matter any more */
    if (setup_paths(s, err, errlen) != 0)
        goto out;
    if (s->script_name) {
        script_name = mount_point(s->script_name, err, errlen);
        if (err[0])
            goto out;
    }
    PyObject *load = PyDict_GetItemString(bootstrap_ns, "load");
    PyObject *callable = PyObject_CallFunction(load, "s", spec);
    if (!callable) {
        summarise_exception(spec, err, errlen);
        Py_XDECREF(script_name);
        goto out;
    }
    pa = drv_xcalloc(1, sizeof(*pa));
    pa->base.ops = &python_ops;
    pa->base.spec = drv_xstrdup(spec);
    pa->callable = callable;
    pa->script_name = script_name;
    pa->dev = s->dev;
    /* PEP 3333: whether another process may run the app at the same time
     * (gunicorn: workers > 1). */
    PyDict_SetItemString(environ_template, "wsgi.multiprocess",
                         s->workers > 1 && !s->dev ? Py_True : Py_False);
out:
    /* From here on the app's threads run whenever drover is in C. */
    py_leave();
    return pa ? &pa->base : NULL;
}

/* ------------------------------------------------------------------ */
/* The kind's --dev hooks (dev.c)                                      */

/* What --dev watches: every module's file, and the files the traceback
 * of a failed load names (the module that failed to import is no longer
 * in sys.modules, but fixing it must reload). */
static const char dev_code[] =
    "import os, sys, traceback\n"
    "def file_of(m):\n"
    "    try:\n"
    "        return m.__file__\n"
    "    except Exception:\n"
    "        return None\n"
    "def sources(err):\n"
    "    files = [file_of(m) for m in list(sys.modules.values())]\n"
    "    seen = set()\n"
    "    while err is not None and id(err) not in seen:\n"
    "        seen.add(id(err))\n"
    "        files += [f.filename for f in traceback.extract_tb(err.__traceback__)]\n"
    "        if isinstance(err, SyntaxError):\n"
    "            files.append(err.filename)\n"
    "        err = err.__cause__ or err.__context__\n"
    "    return [os.path.abspath(f) for f in set(files)\n"
    "            if isinstance(f, str) and f and not f.startswith('<')]\n";

static PyObject *dev_ns;

static char *load_traceback(void)
{
    if (!py_ready || !load_error)
        return NULL;
    py_enter();
    char *out = NULL;
    PyObject *text = traceback_text(load_error);
    const char *p = text ? PyUnicode_AsUTF8(text) : NULL;
    if (p)
        out = drv_xstrdup(p);
    PyErr_Clear();
    Py_XDECREF(text);
    py_leave();
    return out;
}

static void source_files(const char *spec,
                         void (*add)(const char *path, void *arg), void *arg)
{
    (void)spec; /* what the interpreter imported says it all */
    if (!py_ready)
        return;
    py_enter();
    if (!dev_ns) {
        dev_ns = PyDict_New();
        PyObject *r = NULL;
        if (dev_ns && PyDict_SetItemString(dev_ns, "__builtins__",
                                           PyEval_GetBuiltins()) == 0)
            r = PyRun_String(dev_code, Py_file_input, dev_ns, dev_ns);
        if (!r) {
            log_exception("cannot list the app's source files", NULL);
            Py_CLEAR(dev_ns);
        }
        Py_XDECREF(r);
    }
    PyObject *fn = dev_ns ? PyDict_GetItemString(dev_ns, "sources") : NULL;
    PyObject *list = fn ? PyObject_CallFunctionObjArgs(
                              fn, load_error ? load_error : Py_None, NULL)
                        : NULL;
    if (fn && !list)
        log_exception("cannot list the app's source files", NULL);
    for (Py_ssize_t i = 0; list && i < PyList_GET_SIZE(list); i++) {
        PyObject *b = PyUnicode_EncodeFSDefault(PyList_GET_ITEM(list, i));
        if (b)
            add(PyBytes_AS_STRING(b), arg);
        else
            PyErr_Clear();
        Py_XDECREF(b);
    }
    Py_XDECREF(list);
    py_leave();
}

/* ------------------------------------------------------------------ */
/* The kind                                                            */

/* Bytecode is not written in dev mode (PYTHONDONTWRITEBYTECODE): a .pyc
 * is checked against its source's size and mtime in whole seconds, so an
 * edit within the second that keeps the size could otherwise load stale
 * code. FLASK_DEBUG=1 is set unless the environment sets it, as `flask
 * run --debug` does, so that a Flask view's exception reaches drover's
 * traceback page instead of Flask's generic 500. */
static const struct drv_app_env dev_env[] = {
    {"PYTHONDONTWRITEBYTECODE", "1", true},
    {"FLASK_DEBUG", "1", false},
    {NULL, NULL, false},
};

const struct drv_app_kind drv_python_kind = {
    .name = "python",
    .load = python_load,
    .source_files = source_files,
    .load_traceback = load_traceback,
    .rescan = true,
    .module_suffix = ".py",
    .dev_env = dev_env,
};
