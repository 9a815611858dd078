/*
 * python_asgi_int: what the three files of the ASGI kind share, and
 * nothing else includes (each includes <Python.h>, python_int.h, then
 * this):
 *
 *   python_asgi.c       one request: the scope, receive() and send() of
 *                       HTTP, and the connection's side (begin, drained,
 *                       release);
 *   python_asgi_ws.c    the WebSocket events of a request that asked for
 *                       an upgrade;
 *   python_asgi_loop.c  the worker's asyncio loop driven by drover's
 *                       libev loop (the design is at its top), lifespan,
 *                       and telling an ASGI app from a WSGI one.
 *
 * Shared names start with py_ (python_int.h's rule); the GIL is held in
 * every function here.
 */
#ifndef DRV_PYTHON_ASGI_INT_H
#define DRV_PYTHON_ASGI_INT_H

#include <ev.h>
#include <stdbool.h>
#include <stdint.h>

#include "loop.h"

struct drv_conn;

/* The worker's asyncio side (python_asgi_loop.c fills it). */
struct py_asgi_worker {
    struct ev_loop *loop;
    struct drv_loop_flags flags;
    ev_io inner;          /* asyncio's own epoll descriptor */
    ev_timer wait;        /* select()'s timeout */
    bool inner_ready;
    PyObject *worker;     /* the glue's Worker */
    PyObject *aloop;      /* the asyncio loop */
    PyObject *create_future; /* the asyncio loop's, bound */
    PyObject *task_type;  /* asyncio.Task */
    PyObject *run_app;    /* the glue's run_app */
    PyObject *task_kw;    /* ("loop", "name") */
    PyObject *task_name;  /* every request's Task's: Python 3.11 formats
                             "Task-N" per Task otherwise */
    PyObject *state;      /* lifespan state (dict), or NULL */
    bool dev;             /* --dev: a failure's 500 shows the traceback */
};

extern struct py_asgi_worker py_aw;

/* Interned strs and other constants (python_asgi.c makes them). */
struct py_asgi_names {
    PyObject *type, *body, *more_body, *status, *headers, *path, *text,
        *bytes, *code, *reason, *subprotocol;
    PyObject *http_request, *http_disconnect;
    PyObject *ws_connect, *ws_receive, *ws_disconnect;
    PyObject *set_result, *set_exception, *done;
    PyObject *empty_bytes;
    PyObject *scope_keys[16];
    PyObject *http10, *http11, *http_str, *https_str, *ws_str, *wss_str,
        *websocket_str, *empty_str;
    PyObject *asgi;       /* {"version": "3.0", "spec_version": "2.4"} */
    PyObject *extensions; /* http */
    PyObject *ws_extensions;
    PyObject *disconnected; /* ClientDisconnected */
};

extern struct py_asgi_names py_k;

/* One request or WebSocket: what receive, send and the connection share. */
struct py_asgi_ex {
    PyObject_HEAD
    struct drv_conn *c;   /* NULL once the connection released us */
    PyObject *recv_fut;   /* a receive() waiting, or NULL */
    PyObject *send_fut;   /* a send() waiting for the client, or NULL */
    uint64_t body_given;  /* body bytes handed to the app */
    bool body_done;       /* the last http.request event went out */
    bool started, finished;
    bool gone;            /* the client went away */
    /* A WebSocket (scope type "websocket"): */
    bool ws;
    bool connected;       /* websocket.connect was given to the app */
    bool accepted;        /* the 101 went out */
    bool denied;          /* answered with HTTP instead */
    bool closed;          /* closed: receive() gives websocket.disconnect */
    int close_code;
    PyObject *close_reason; /* str, or NULL: "" */
    PyObject *inbox;      /* messages received, not yet taken (list) */
    Py_ssize_t inbox_head;
};

/* ---- python_asgi.c ---- */

/* Ready the constants and types (once). Returns 0 or -1. */
int py_asgi_types(void);
/* An awaitable that completes at once: with `value` (stolen; NULL in,
 * NULL out), or, py_ready_none, with None. */
PyObject *py_ready_with(PyObject *value);
extern PyObject *py_ready_none;
/* Resolve *fut (if it still waits) with `value`, or with the exception
 * `exc` when value is NULL; then forget it. */
void py_settle(PyObject **fut, PyObject *value, PyObject *exc);
/* A new event dict {"type": type}. */
PyObject *py_event_of(PyObject *type);
/* A new future of the worker's loop. */
PyObject *py_new_future(void);
/* Raise ClientDisconnected; returns NULL. */
PyObject *py_gone_error(void);
/* A message's item: required (def NULL: KeyError when missing) or
 * optional (def, borrowed, when missing). New reference. */
PyObject *py_field(PyObject *msg, PyObject *key, PyObject *def);
/* After a write: a future while the client is behind, else ready. */
PyObject *py_maybe_wait(struct py_asgi_ex *ex);
/* http.response.start and .body (also a WebSocket's denial). */
PyObject *py_response_start(struct py_asgi_ex *ex, PyObject *msg);
PyObject *py_response_body(struct py_asgi_ex *ex, PyObject *msg);

/* ---- python_asgi_ws.c ---- */

PyObject *py_ws_receive(struct py_asgi_ex *ex);
/* A websocket.* message; `type` is what follows "websocket.". */
PyObject *py_ws_send(struct py_asgi_ex *ex, PyObject *msg, const char *type);
/* The app returned (failed: raised) with the WebSocket in any state. */
void py_ws_app_done(struct py_asgi_ex *ex, bool failed);
PyObject *py_ws_disconnect_event(struct py_asgi_ex *ex);

/* ---- python_asgi_loop.c ---- */

/* The glue's namespace (run_app, Worker, ...). */
extern PyObject *py_asgi_glue;

#endif
