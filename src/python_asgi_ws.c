/*
 * python_asgi_ws: the WebSocket events of an ASGI request that asked for
 * an upgrade (the framing and the socket are conn_ws.c's).
 *
 * receive() gives websocket.connect first, then the messages conn_ws.c
 * delivers (ws_message) in order, then websocket.disconnect with the
 * close code and reason. Messages the app has not taken wait in an inbox;
 * past INBOX_PAUSE of them the connection stops reading, so a slow app
 * holds the client back instead of growing the worker. send() takes
 * websocket.accept, .send, .close, and the denial extension's
 * websocket.http.response.* before accepting (a close before accepting
 * is a 403).
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <string.h>

#include "conn.h"
#include "log.h"
#include "python_int.h"
#include "python_asgi_int.h"
#include "response.h"

/* ------------------------------------------------------------------ */
/* WebSockets (the C side: conn_ws.c)                                   */

#define INBOX_PAUSE 32 /* messages waiting before the socket is not read */

PyObject *py_ws_disconnect_event(struct py_asgi_ex *ex)
{
    PyObject *e = py_event_of(py_k.ws_disconnect);
    PyObject *code = e ? PyLong_FromLong(ex->close_code) : NULL;
    PyObject *reason = ex->close_reason ? ex->close_reason : py_k.empty_str;
    if (!code || PyDict_SetItem(e, py_k.code, code) != 0 ||
        PyDict_SetItem(e, py_k.reason, reason) != 0)
        Py_CLEAR(e);
    Py_XDECREF(code);
    return e;
}

static Py_ssize_t inbox_len(const struct py_asgi_ex *ex)
{
    return ex->inbox ? PyList_GET_SIZE(ex->inbox) - ex->inbox_head : 0;
}

PyObject *py_ws_receive(struct py_asgi_ex *ex)
{
    if (!ex->connected) {
        ex->connected = true;
        return py_ready_with(py_event_of(py_k.ws_connect));
    }
    if (inbox_len(ex) > 0) {
        PyObject *e = Py_NewRef(PyList_GET_ITEM(ex->inbox, ex->inbox_head));
        ex->inbox_head++;
        if (inbox_len(ex) == 0) {
            Py_CLEAR(ex->inbox);
            ex->inbox_head = 0;
        }
        if (ex->c && inbox_len(ex) < INBOX_PAUSE / 2)
            drv_conn_ws_pause(ex->c, false);
        return py_ready_with(e);
    }
    if (ex->closed)
        return py_ready_with(py_ws_disconnect_event(ex));
    if (!ex->recv_fut && !(ex->recv_fut = py_new_future()))
        return NULL;
    return Py_NewRef(ex->recv_fut);
}

/* An event for the app: to a receive() waiting, else to the inbox. */
static void deliver(struct py_asgi_ex *ex, PyObject *e)
{
    if (ex->recv_fut && inbox_len(ex) == 0) {
        py_settle(&ex->recv_fut, e, NULL);
        return;
    }
    if (!ex->inbox && !(ex->inbox = PyList_New(0)))
        return;
    if (PyList_Append(ex->inbox, e) == 0 && ex->c &&
        inbox_len(ex) >= INBOX_PAUSE)
        drv_conn_ws_pause(ex->c, true);
}

void py_asgi_ws_message(void *handle, bool text, const void *data, size_t len)
{
    struct py_asgi_ex *ex = handle;
    py_enter();
    PyObject *payload = text ? PyUnicode_DecodeUTF8(data, (Py_ssize_t)len,
                                                    NULL)
                             : PyBytes_FromStringAndSize(data,
                                                         (Py_ssize_t)len);
    if (!payload && text && ex->c) {
        /* RFC 6455 8.1: text that is not UTF-8 fails the connection. */
        PyErr_Clear();
        static const char why[] = "invalid UTF-8 in a text message";
        drv_conn_ws_close(ex->c, 1007, why, sizeof(why) - 1);
    }
    PyObject *e = payload ? py_event_of(py_k.ws_receive) : NULL;
    if (e && PyDict_SetItem(e, text ? py_k.text : py_k.bytes, payload) == 0)
        deliver(ex, e);
    Py_XDECREF(e);
    Py_XDECREF(payload);
    if (PyErr_Occurred())
        PyErr_WriteUnraisable(NULL);
    py_leave();
}

void py_asgi_ws_closed(void *handle, int code, const char *reason,
                       size_t rlen)
{
    struct py_asgi_ex *ex = handle;
    py_enter();
    if (!ex->closed) {
        ex->closed = true;
        ex->close_code = code;
        if (rlen) /* RFC 6455 says UTF-8; a peer that lies gets U+FFFD */
            ex->close_reason = PyUnicode_DecodeUTF8(reason, (Py_ssize_t)rlen,
                                                    "replace");
        if (ex->recv_fut && inbox_len(ex) == 0) {
            PyObject *e = py_ws_disconnect_event(ex);
            if (e)
                py_settle(&ex->recv_fut, e, NULL);
            Py_XDECREF(e);
        }
    }
    PyErr_Clear();
    py_leave();
}

static PyObject *ws_accept(struct py_asgi_ex *ex, PyObject *msg)
{
    if (ex->accepted || ex->denied)
        return PyErr_Format(PyExc_RuntimeError,
                            "websocket.accept after the handshake was "
                            "answered");
    PyObject *sub = py_field(msg, py_k.subprotocol, Py_None);
    PyObject *headers = sub ? py_field(msg, py_k.headers, Py_None) : NULL;
    PyObject *fast = NULL;
    struct drover_header *hs = NULL;
    PyObject *r = NULL;
    if (!headers)
        goto out;
    const char *sp = NULL;
    Py_ssize_t splen = 0;
    if (sub != Py_None && !(sp = PyUnicode_AsUTF8AndSize(sub, &splen)))
        goto out;
    Py_ssize_t n = 0;
    if (headers != Py_None) {
        if (!(fast = PySequence_Fast(headers, "headers must be a list")))
            goto out;
        n = PySequence_Fast_GET_SIZE(fast);
        hs = PyMem_Calloc((size_t)n + 1, sizeof(*hs));
        if (!hs) {
            PyErr_NoMemory();
            goto out;
        }
        for (Py_ssize_t i = 0; i < n; i++) {
            PyObject *pair = PySequence_Fast_GET_ITEM(fast, i);
            PyObject *name, *value;
            char *a, *b;
            Py_ssize_t al, bl;
            if (!PySequence_Check(pair) || PySequence_Size(pair) != 2 ||
                !(name = PySequence_GetItem(pair, 0)))
                goto bad_header;
            value = PySequence_GetItem(pair, 1);
            /* The tuple or list holds them: borrowed views stay valid. */
            Py_DECREF(name);
            Py_XDECREF(value);
            if (!value || PyBytes_AsStringAndSize(name, &a, &al) != 0 ||
                PyBytes_AsStringAndSize(value, &b, &bl) != 0)
                goto bad_header;
            hs[i] = (struct drover_header){{a, (size_t)al}, {b, (size_t)bl}};
        }
    }
    if (drv_conn_ws_accept(ex->c, sp, (size_t)splen, hs, (size_t)n) != 0) {
        PyErr_SetString(PyExc_ValueError, "invalid websocket.accept "
                                          "subprotocol or headers");
        goto out;
    }
    ex->accepted = true;
    r = Py_NewRef(py_ready_none);
    goto out;
bad_header:
    PyErr_Clear();
    PyErr_SetString(PyExc_TypeError,
                    "headers must be [name, value] pairs of bytes");
out:
    PyMem_Free(hs);
    Py_XDECREF(fast);
    Py_XDECREF(headers);
    Py_XDECREF(sub);
    return r;
}

static PyObject *ws_message_out(struct py_asgi_ex *ex, PyObject *msg)
{
    if (!ex->accepted)
        return PyErr_Format(PyExc_RuntimeError,
                            "websocket.send before websocket.accept");
    if (ex->closed || !ex->c)
        return py_gone_error();
    PyObject *text = py_field(msg, py_k.text, Py_None);
    PyObject *bytes = text ? py_field(msg, py_k.bytes, Py_None) : NULL;
    PyObject *r = NULL;
    if (!bytes)
        goto out;
    int rc;
    if (bytes != Py_None) {
        Py_buffer view;
        if (PyObject_GetBuffer(bytes, &view, PyBUF_SIMPLE) != 0)
            goto out;
        rc = drv_conn_ws_send(ex->c, false, view.buf, (size_t)view.len);
        PyBuffer_Release(&view);
    } else if (text != Py_None) {
        Py_ssize_t len;
        const char *t = PyUnicode_AsUTF8AndSize(text, &len);
        if (!t)
            goto out;
        rc = drv_conn_ws_send(ex->c, true, t, (size_t)len);
    } else {
        PyErr_SetString(PyExc_ValueError,
                        "websocket.send needs bytes or text");
        goto out;
    }
    r = rc == 0 ? py_maybe_wait(ex) : py_gone_error();
out:
    Py_XDECREF(text);
    Py_XDECREF(bytes);
    return r;
}

static PyObject *ws_close(struct py_asgi_ex *ex, PyObject *msg)
{
    if (!ex->c)
        return Py_NewRef(py_ready_none); /* closed already */
    if (!ex->accepted) {
        if (ex->denied)
            return PyErr_Format(PyExc_RuntimeError,
                                "websocket.close after an HTTP answer");
        /* Closed before accepting: the handshake is refused (403). */
        ex->denied = true;
        struct drv_response *res = drv_conn_response(ex->c);
        drv_response_error(res, 403, false);
        drv_conn_progress(ex->c);
        return Py_NewRef(py_ready_none);
    }
    PyObject *code = py_field(msg, py_k.code, NULL);
    long c = 1000;
    if (!code) {
        if (!PyErr_ExceptionMatches(PyExc_KeyError))
            return NULL;
        PyErr_Clear();
    } else {
        c = PyLong_AsLong(code);
        Py_DECREF(code);
        if (c == -1 && PyErr_Occurred())
            return NULL;
    }
    PyObject *reason = py_field(msg, py_k.reason, Py_None);
    if (!reason)
        return NULL;
    const char *why = NULL;
    Py_ssize_t wlen = 0;
    if (reason != Py_None && !(why = PyUnicode_AsUTF8AndSize(reason, &wlen))) {
        Py_DECREF(reason);
        return NULL;
    }
    if (c < 1000 || c > 4999) {
        Py_DECREF(reason);
        return PyErr_Format(PyExc_ValueError, "invalid close code %ld", c);
    }
    drv_conn_ws_close(ex->c, (int)c, why, (size_t)wlen);
    Py_DECREF(reason);
    return Py_NewRef(py_ready_none);
}

PyObject *py_ws_send(struct py_asgi_ex *ex, PyObject *msg, const char *type)
{
    if (strcmp(type, "accept") == 0)
        return ex->c ? ws_accept(ex, msg) : py_gone_error();
    if (strcmp(type, "send") == 0)
        return ws_message_out(ex, msg);
    if (strcmp(type, "close") == 0)
        return ws_close(ex, msg);
    if (strncmp(type, "http.response.", 14) == 0) {
        /* The denial extension: an HTTP response instead of the 101. */
        if (ex->accepted)
            return PyErr_Format(PyExc_RuntimeError,
                                "websocket.%s after websocket.accept", type);
        if (!ex->c)
            return py_gone_error();
        ex->denied = true;
        if (strcmp(type + 14, "start") == 0)
            return py_response_start(ex, msg);
        if (strcmp(type + 14, "body") == 0)
            return py_response_body(ex, msg);
    }
    return PyErr_Format(PyExc_RuntimeError,
                        "unexpected ASGI message 'websocket.%s'", type);
}

void py_ws_app_done(struct py_asgi_ex *ex, bool failed)
{
    if (!ex->c)
        return;
    if (ex->accepted) {
        /* Returned (1000) or failed (1011) with the socket open. */
        drv_conn_ws_close(ex->c, failed ? 1011 : 1000, NULL, 0);
    } else if (!ex->finished) {
        if (!failed && !ex->denied)
            drv_error("ASGI app returned without accepting or refusing "
                      "the WebSocket");
        drv_conn_fail(ex->c);
    }
}
