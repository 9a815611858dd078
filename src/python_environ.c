/*
 * python_environ: the WSGI environ of each request.
 *
 * The environ is the hot path's biggest cost, so everything that can be
 * made once is: every key is an interned str created at start-up; the
 * constant keys (wsgi.version, wsgi.errors, SERVER_SOFTWARE, ...) sit in
 * a prebuilt template that each request starts from with one
 * PyDict_Copy; common header names map to prebuilt HTTP_* keys without
 * allocating, the others are spelled into a stack buffer. Values are
 * latin-1 strs (PEP 3333), PATH_INFO percent-decoded and cut at the
 * --script-name mount point.
 *
 * SERVER_NAME and SERVER_PORT come from the request's authority (an
 * absolute-form target, else Host), else from the listener.
 * HTTP_X_REQUEST_ID is always the request's id (reqid.h): the header as
 * sent when it was sane, else the id drover made in its place.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "python_int.h"

/* ------------------------------------------------------------------ */
/* Interned keys and constants                                         */

enum key {
    K_REQUEST_METHOD, K_SCRIPT_NAME, K_PATH_INFO, K_QUERY_STRING,
    K_CONTENT_TYPE, K_CONTENT_LENGTH, K_SERVER_NAME, K_SERVER_PORT,
    K_SERVER_PROTOCOL, K_REMOTE_ADDR, K_REMOTE_PORT, K_RAW_URI,
    K_URL_SCHEME, K_INPUT, K_REQUEST_ID,
    K_COUNT
};

static const char *const key_names[K_COUNT] = {
    "REQUEST_METHOD", "SCRIPT_NAME", "PATH_INFO", "QUERY_STRING",
    "CONTENT_TYPE", "CONTENT_LENGTH", "SERVER_NAME", "SERVER_PORT",
    "SERVER_PROTOCOL", "REMOTE_ADDR", "REMOTE_PORT", "RAW_URI",
    "wsgi.url_scheme", "wsgi.input", "HTTP_X_REQUEST_ID",
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
    "keep-alive", "te", "expect", "forwarded", "x-request-id",
};
#define NCOMMON (sizeof(common_headers) / sizeof(common_headers[0]))

static PyObject *keys[K_COUNT];
static PyObject *common_keys[NCOMMON];
static size_t common_lens[NCOMMON]; /* strlen(common_headers[i]) */
static PyObject *environ_template; /* constant keys, copied per request */
static PyObject *str_empty, *str_http10, *str_http11;
PyObject *py_file_wrapper_type; /* wsgi.file_wrapper, the bootstrap's */

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

/* Length of %XX escape at p[i], 3, or 0 if there is none. */
static size_t escape_at(struct drover_str p, size_t i)
{
    return p.ptr[i] == '%' && i + 2 < p.len && drv_hex_digit(p.ptr[i + 1]) >= 0 &&
                   drv_hex_digit(p.ptr[i + 2]) >= 0
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
        top |= step == 3 ? drv_hex_digit(path.ptr[i + 1]) * 16 + drv_hex_digit(path.ptr[i + 2])
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
            *out++ = (Py_UCS1)(drv_hex_digit(path.ptr[i + 1]) * 16 +
                               drv_hex_digit(path.ptr[i + 2]));
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

/* SERVER_NAME and SERVER_PORT from the request's host (http.c found it:
 * an absolute-form target's authority, else the Host header), else the
 * listener. RFC 9112 3.2.2: the target's authority wins over the Host
 * header, so HTTP_HOST follows it too (apps build URLs from HTTP_HOST).
 * Runs after the headers are in the environ. */
static int host_and_port(PyObject *env, const struct drv_request *req)
{
    const struct drover_request *v = &req->view;
    if (req->authority_from_target) {
        PyObject *key = header_key((struct drover_str){"host", 4});
        if (!key || set_item(env, key, str_of(v->authority)) != 0) {
            Py_XDECREF(key);
            return -1;
        }
        Py_DECREF(key);
    }
    struct drover_str name = v->server_addr;
    char port[16];
    snprintf(port, sizeof(port), "%d", v->server_port);
    struct drover_str portv = {port, strlen(port)};
    if (v->authority.len) {
        name = v->host;
        if (v->port.len)
            portv = v->port;
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

PyObject *py_build_environ(struct drv_request *req, struct pyreq *ctx,
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
    struct pyinput *in = PyObject_New(struct pyinput, &py_input_type);
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
    /* After the headers: it replaces an X-Request-ID that was not sane. */
    if (v->request_id.len &&
        set_item(env, keys[K_REQUEST_ID], str_of(v->request_id)))
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
/* Start-up                                                            */

int py_environ_keys(void)
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

int py_environ_template(PyObject *wrapper)
{
    PyObject *sys_stderr = PySys_GetObject("stderr"); /* borrowed */
    environ_template = PyDict_New();
    if (!environ_template || !sys_stderr || !wrapper)
        return -1;
    py_file_wrapper_type = wrapper;
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

void py_environ_multithread(bool on)
{
    PyDict_SetItemString(environ_template, "wsgi.multithread",
                         on ? Py_True : Py_False);
}

void py_environ_multiprocess(bool on)
{
    PyDict_SetItemString(environ_template, "wsgi.multiprocess",
                         on ? Py_True : Py_False);
}
