/*
 * python_asgi: ASGI 3 apps (FastAPI, Starlette, Quart) on drover's loop.
 *
 * How the two loops meet. Each worker runs one asyncio event loop for
 * the app's coroutines, and drover's libev loop keeps all the network
 * work (accept, llhttp, limits, timeouts, writing) in C. asyncio is the
 * outer loop: it is a SelectorEventLoop built on the selector of the
 * glue below, whose select(timeout) turns the libev loop once (turn()
 * here), blocking at most `timeout`. asyncio's own file descriptors (its
 * self-pipe, the app's database and HTTP client sockets) sit in a nested
 * epoll selector whose descriptor libev watches like any other, so one
 * epoll_wait covers both. Within a turn, libev's callbacks parse
 * requests and start the app on them (a Task per request), write what
 * the app sent, and resolve the futures the app awaits; asyncio then
 * runs the ready coroutines. Neither loop polls the other, and neither
 * waits while the other has work: asyncio computes the select timeout
 * from its timers and ready queue, libev's timers end the wait early.
 * The GIL is let go only while libev blocks in epoll_wait
 * (ev_set_loop_release_cb), so the app's threads (run_in_executor,
 * anyio's to_thread) run meanwhile.
 *
 * Weighed and left: registering drover's sockets with asyncio
 * (loop.add_reader) puts Python on every socket event; asyncio in a
 * thread of its own costs a cross-thread wake-up per request (what
 * dominated the app threads' profile, see pool.c); stepping asyncio from
 * libev needs BaseEventLoop._run_once, which is private. A selector is
 * asyncio's public extension point (asyncio.SelectorEventLoop(selector)).
 *
 * A request: conn.c calls begin() once the request (body included:
 * bodies past --body-buffer-size wait in a temporary file) is complete.
 * begin builds the scope, creates receive and send bound to a struct
 * asgi_ex, and schedules app(scope, receive, send) as a Task (inside the
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
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "conn.h"
#include "log.h"
#include "loop.h"
#include "python_int.h"
#include "response.h"

#define BODY_CHUNK (256 * 1024)

/* ------------------------------------------------------------------ */
/* The glue: selector, lifespan, the worker's asyncio side              */

static const char glue[] =
    "import asyncio, inspect, selectors, sys\n"
    "class ClientDisconnected(OSError):\n"
    "    'The client went away: a send() cannot reach it.'\n"
    "async def run_app(app, scope, receive, send, done):\n"
    "    'One request: done(None) or done(exception) when the app ends.'\n"
    "    try:\n"
    "        await app(scope, receive, send)\n"
    "    except BaseException as e:\n"
    "        done(e)\n"
    "        if not isinstance(e, Exception):\n"
    "            raise\n"
    "    else:\n"
    "        done(None)\n"
    "def positional(f):\n"
    "    'How many positional arguments f takes, None when unknown.'\n"
    "    try:\n"
    "        sig = inspect.signature(f)\n"
    "    except (TypeError, ValueError):\n"
    "        return None\n"
    "    n = 0\n"
    "    for p in sig.parameters.values():\n"
    "        if p.kind == p.VAR_POSITIONAL:\n"
    "            return None\n"
    "        if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD):\n"
    "            n += 1\n"
    "    return n\n"
    "def asgi_kind(app):\n"
    "    # 3: an ASGI 3 app, 2: an ASGI 2 (double-callable) one, 0: neither.\n"
    "    # A callable of one argument (the scope) is ASGI 2: WSGI takes two.\n"
    "    isco = asyncio.iscoroutinefunction\n"
    "    if inspect.isclass(app):\n"
    "        return 2 if (hasattr(app, '__await__') or\n"
    "                     isco(getattr(app, '__call__', None)) or\n"
    "                     positional(app) == 1) else 0\n"
    "    if isco(app) or isco(getattr(app, '__call__', None)):\n"
    "        return 3\n"
    "    return 2 if positional(app) == 1 else 0\n"
    "class Selector(selectors.BaseSelector):\n"
    "    'asyncio selector whose select() turns drover\\'s loop once.'\n"
    "    def __init__(self, turn):\n"
    "        self._inner = selectors.DefaultSelector()\n"
    "        self._turn = turn\n"
    "    def register(self, fileobj, events, data=None):\n"
    "        return self._inner.register(fileobj, events, data)\n"
    "    def unregister(self, fileobj):\n"
    "        return self._inner.unregister(fileobj)\n"
    "    def modify(self, fileobj, events, data=None):\n"
    "        return self._inner.modify(fileobj, events, data)\n"
    "    def select(self, timeout=None):\n"
    "        if self._turn(self._inner.fileno(), timeout):\n"
    "            return self._inner.select(0)\n"
    "        return []\n"
    "    def close(self):\n"
    "        self._inner.close()\n"
    "    def get_key(self, fileobj):\n"
    "        return self._inner.get_key(fileobj)\n"
    "    def get_map(self):\n"
    "        return self._inner.get_map()\n"
    "class Lifespan:\n"
    "    def __init__(self, app, mode, log):\n"
    "        self.app, self.mode, self.log = app, mode, log\n"
    "        self.state = {}\n"
    "        self.supported = True\n"
    "        self.failed = None\n"
    "        self.queue = asyncio.Queue()\n"
    "        self.started = asyncio.Event()\n"
    "        self.finished = asyncio.Event()\n"
    "        self.task = None\n"
    "    async def receive(self):\n"
    "        return await self.queue.get()\n"
    "    async def send(self, message):\n"
    "        kind = message.get('type')\n"
    "        if kind in ('lifespan.startup.complete', 'lifespan.startup.failed'):\n"
    "            if kind.endswith('failed'):\n"
    "                self.failed = message.get('message') or 'startup failed'\n"
    "            self.started.set()\n"
    "        elif kind in ('lifespan.shutdown.complete', 'lifespan.shutdown.failed'):\n"
    "            if kind.endswith('failed'):\n"
    "                self.log(40, 'ASGI lifespan shutdown failed: %s' %\n"
    "                         (message.get('message') or ''))\n"
    "            self.finished.set()\n"
    "        else:\n"
    "            raise RuntimeError(f'unexpected ASGI lifespan message {kind!r}')\n"
    "    async def main(self):\n"
    "        scope = {'type': 'lifespan', 'state': self.state,\n"
    "                 'asgi': {'version': '3.0', 'spec_version': '2.0'}}\n"
    "        try:\n"
    "            await self.app(scope, self.receive, self.send)\n"
    "        except BaseException as e:\n"
    "            if self.started.is_set() and self.failed is None:\n"
    "                import traceback\n"
    "                self.log(40, 'ASGI lifespan: exception after startup:\\n' +\n"
    "                         ''.join(traceback.format_exception(e)))\n"
    "            elif self.mode == 'auto':\n"
    "                self.supported = False\n"
    "                self.log(20, 'ASGI lifespan unsupported by the app (%s: '\n"
    "                         '%s): going on without it' % (type(e).__name__, e))\n"
    "            else:\n"
    "                import traceback\n"
    "                self.failed = 'exception in lifespan startup:\\n' + ''.join(\n"
    "                    traceback.format_exception(e)).rstrip()\n"
    "        finally:\n"
    "            self.started.set()\n"
    "            self.finished.set()\n"
    "    async def startup(self):\n"
    "        self.task = asyncio.get_running_loop().create_task(self.main())\n"
    "        await self.queue.put({'type': 'lifespan.startup'})\n"
    "        await self.started.wait()\n"
    "        return self.failed\n"
    "    async def shutdown(self):\n"
    "        if self.finished.is_set():\n"
    "            return\n"
    "        await self.queue.put({'type': 'lifespan.shutdown'})\n"
    "        await self.finished.wait()\n"
    "class Worker:\n"
    "    def __init__(self, app, lifespan, turn, log):\n"
    "        self.app = app\n"
    "        self.log = log\n"
    "        self.loop = asyncio.SelectorEventLoop(Selector(turn))\n"
    "        asyncio.set_event_loop(self.loop)\n"
    "        self.stopped = self.loop.create_future()\n"
    "        self.lifespan = Lifespan(app, lifespan, log) if lifespan != 'off' else None\n"
    "        self.state = None\n"
    "    def on_break(self):\n"
    "        if not self.stopped.done():\n"
    "            self.stopped.set_result(None)\n"
    "    def startup(self):\n"
    "        if not self.lifespan:\n"
    "            return None\n"
    "        failed = self.loop.run_until_complete(self.lifespan.startup())\n"
    "        if self.lifespan.supported and not failed:\n"
    "            self.state = self.lifespan.state\n"
    "        return failed\n"
    "    def serve(self):\n"
    "        self.loop.run_until_complete(self.stopped)\n"
    "    async def _finish(self, timeout):\n"
    "        me = asyncio.current_task()\n"
    "        lifespan = self.lifespan.task if self.lifespan else None\n"
    "        left = [t for t in asyncio.all_tasks() if t not in (me, lifespan)]\n"
    "        if left:\n"
    "            done, left = await asyncio.wait(left, timeout=timeout)\n"
    "            for t in left:\n"
    "                t.cancel()\n"
    "            if left:\n"
    "                self.log(30, '%d ASGI task(s) still running after %.0f s: '\n"
    "                         'cancelled' % (len(left), timeout))\n"
    "                await asyncio.wait(left, timeout=1)\n"
    "        if self.lifespan and self.lifespan.supported:\n"
    "            try:\n"
    "                await asyncio.wait_for(self.lifespan.shutdown(), timeout)\n"
    "            except asyncio.TimeoutError:\n"
    "                self.log(30, 'ASGI lifespan shutdown did not finish in '\n"
    "                         '%.0f s' % timeout)\n"
    "    def shutdown(self, timeout):\n"
    "        try:\n"
    "            self.loop.run_until_complete(self._finish(timeout))\n"
    "            self.loop.run_until_complete(self.loop.shutdown_asyncgens())\n"
    "        finally:\n"
    "            asyncio.set_event_loop(None)\n"
    "            self.loop.close()\n";

static PyObject *glue_ns;

/* ------------------------------------------------------------------ */
/* Per-worker state                                                     */

struct asgi_worker {
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
    PyObject *loop_kw;    /* ("loop",) */
    PyObject *state;      /* lifespan state (dict), or NULL */
    bool dev;             /* --dev: a failure's 500 shows the traceback */
};

static struct asgi_worker aw;

/* Interned strs and other constants, made once. */
static struct {
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
} k;

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
#define I(field, text) if (!(k.field = intern(text))) return -1
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
        if (!(k.scope_keys[i] = intern(scope_names[i])))
            return -1;
    k.empty_bytes = PyBytes_FromStringAndSize("", 0);
    k.asgi = Py_BuildValue("{s:s,s:s}", "version", "3.0", "spec_version",
                           "2.4");
    k.extensions = Py_BuildValue("{s:{}}", "http.response.pathsend");
    k.ws_extensions = Py_BuildValue("{s:{}}", "websocket.http.response");
    if (!k.empty_bytes || !k.asgi || !k.extensions || !k.ws_extensions)
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

static PyObject *ready_none; /* shared: it holds no value */

/* A ready awaitable of `value` (stolen). */
static PyObject *ready_with(PyObject *value)
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

struct asgi_ex {
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

static void ex_dealloc(struct asgi_ex *ex)
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
    .tp_basicsize = sizeof(struct asgi_ex),
    .tp_dealloc = (destructor)ex_dealloc,
    .tp_flags = Py_TPFLAGS_DEFAULT,
};

/* Resolve *fut (if it waits) with `value`, or with the exception `exc`
 * when value is NULL; then forget it. */
static void settle(PyObject **fut, PyObject *value, PyObject *exc)
{
    PyObject *f = *fut;
    if (!f)
        return;
    *fut = NULL;
    PyObject *done = PyObject_CallMethodNoArgs(f, k.done);
    if (done == Py_False) {
        PyObject *r = value ? PyObject_CallMethodOneArg(f, k.set_result, value)
                            : PyObject_CallMethodOneArg(f, k.set_exception,
                                                        exc);
        Py_XDECREF(r);
    }
    Py_XDECREF(done);
    if (PyErr_Occurred())
        PyErr_WriteUnraisable(f);
    Py_DECREF(f);
}

static PyObject *event_of(PyObject *type)
{
    PyObject *e = PyDict_New();
    if (e && PyDict_SetItem(e, k.type, type) != 0)
        Py_CLEAR(e);
    return e;
}

static PyObject *new_future(void)
{
    return PyObject_CallNoArgs(aw.create_future);
}

/* ---- receive() ---- */

/* The next http.request event: up to BODY_CHUNK bytes of the body. */
static PyObject *body_event(struct asgi_ex *ex)
{
    struct drv_request *req = drv_conn_request(ex->c);
    uint64_t total = req->view.body_length;
    uint64_t left = total - ex->body_given;
    size_t n = left < BODY_CHUNK ? (size_t)left : BODY_CHUNK;
    PyObject *chunk;
    if (n == 0) {
        chunk = Py_NewRef(k.empty_bytes);
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
    PyObject *e = event_of(k.http_request);
    if (!e || PyDict_SetItem(e, k.body, chunk) != 0 ||
        PyDict_SetItem(e, k.more_body, ex->body_done ? Py_False : Py_True))
        Py_CLEAR(e);
    Py_DECREF(chunk);
    return e;
}

static PyObject *ws_receive(struct asgi_ex *ex);

static PyObject *ex_receive(PyObject *self, PyObject *unused)
{
    (void)unused;
    struct asgi_ex *ex = (struct asgi_ex *)self;
    if (ex->ws)
        return ws_receive(ex);
    if (ex->c && !ex->body_done)
        return ready_with(body_event(ex));
    if (!ex->c)
        return ready_with(event_of(k.http_disconnect));
    /* Nothing until the client goes away or the response is complete. */
    if (!ex->recv_fut && !(ex->recv_fut = new_future()))
        return NULL;
    return Py_NewRef(ex->recv_fut);
}

/* ---- send() ---- */

static PyObject *gone_error(void)
{
    PyErr_SetString(k.disconnected, "the client has disconnected");
    return NULL;
}

/* An item of a message: required (NULL with KeyError) or optional
 * (def, borrowed, when missing). New reference. */
static PyObject *field(PyObject *msg, PyObject *key, PyObject *def)
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

static PyObject *response_start(struct asgi_ex *ex, PyObject *msg)
{
    if (ex->started)
        return PyErr_Format(PyExc_RuntimeError,
                            "http.response.start sent twice");
    PyObject *status = field(msg, k.status, NULL);
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
    PyObject *headers = field(msg, k.headers, Py_None);
    if (!headers)
        return NULL;
    int rc = headers == Py_None ? 0 : put_headers(res, headers);
    Py_DECREF(headers);
    if (rc != 0) {
        drv_response_cancel(res);
        return NULL;
    }
    ex->started = true;
    return Py_NewRef(ready_none);
}

/* After a write: wait while the client is behind. */
static PyObject *maybe_wait(struct asgi_ex *ex)
{
    if (!ex->c || drv_conn_unsent(ex->c) <= DRV_CONN_HIGH_WATER)
        return Py_NewRef(ready_none);
    if (!ex->send_fut && !(ex->send_fut = new_future()))
        return NULL;
    return Py_NewRef(ex->send_fut);
}

static PyObject *response_body(struct asgi_ex *ex, PyObject *msg)
{
    if (!ex->started)
        return PyErr_Format(PyExc_RuntimeError,
                            "http.response.body sent before "
                            "http.response.start");
    if (ex->finished)
        return PyErr_Format(PyExc_RuntimeError,
                            "http.response.body sent after the response "
                            "was complete");
    PyObject *body = field(msg, k.body, k.empty_bytes);
    if (!body)
        return NULL;
    PyObject *more = field(msg, k.more_body, Py_False);
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
    return maybe_wait(ex);
}

/* A pathsend body's source: its state is the file descriptor. */
static void close_fd_source(void *state)
{
    close((int)(intptr_t)state);
}

static PyObject *response_pathsend(struct asgi_ex *ex, PyObject *msg)
{
    if (!ex->started || ex->finished)
        return PyErr_Format(PyExc_RuntimeError,
                            "http.response.pathsend sent %s",
                            ex->finished ? "after the response was complete"
                                         : "before http.response.start");
    PyObject *path = field(msg, k.path, NULL);
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
    return Py_NewRef(ready_none);
}

static PyObject *ws_send(struct asgi_ex *ex, PyObject *msg, const char *type);

static PyObject *ex_send(PyObject *self, PyObject *msg)
{
    struct asgi_ex *ex = (struct asgi_ex *)self;
    PyObject *type = field(msg, k.type, NULL);
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
        r = ws_send(ex, msg, t + 10);
    } else if (strncmp(t, "http.response.", 14) != 0 || ex->ws) {
        r = PyErr_Format(PyExc_RuntimeError, "unexpected ASGI message %R",
                         type);
    } else if (!ex->c) {
        r = ex->gone ? gone_error()
                     : PyErr_Format(PyExc_RuntimeError,
                                    "%s sent after the response was "
                                    "complete", t);
    } else if (strcmp(t + 14, "start") == 0) {
        r = response_start(ex, msg);
    } else if (strcmp(t + 14, "body") == 0) {
        r = response_body(ex, msg);
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

static void ws_app_done(struct asgi_ex *ex, bool failed);

/* done(exception or None), from the glue's run_app: the app returned or
 * raised (a CancelledError included: the worker is stopping). */
static PyObject *ex_task_done(PyObject *self, PyObject *exc)
{
    struct asgi_ex *ex = (struct asgi_ex *)self;
    bool failed = exc != Py_None;
    if (failed && PyErr_GivenExceptionMatches(exc, PyExc_Exception) &&
        !PyErr_GivenExceptionMatches(exc, k.disconnected)) {
        PyErr_Restore(Py_NewRef((PyObject *)Py_TYPE(exc)), Py_NewRef(exc),
                      PyException_GetTraceback(exc));
        /* --dev: the traceback in the browser, as for WSGI apps. */
        PyObject *text = aw.dev && ex->c && !ex->ws && !ex->finished
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
        ws_app_done(ex, failed);
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
        return Py_NewRef(k.empty_str);
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
        if (h->name.len != 22 ||
            strncasecmp(h->name.ptr, "sec-websocket-protocol", 22) != 0)
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
    int rc = PyDict_SetItem(scope, k.scope_keys[key], value);
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
    PyObject *root = Py_NewRef(k.empty_str);
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
                 Py_NewRef(websocket ? k.websocket_str : k.http_str));
    rc |= put(scope, S_ASGI, Py_NewRef(k.asgi));
    rc |= put(scope, S_HTTP_VERSION,
              Py_NewRef(req->http_minor == 1 ? k.http11 : k.http10));
    if (!websocket)
        rc |= put(scope, S_METHOD, str_of(v->method));
    rc |= put(scope, S_SCHEME,
              Py_NewRef(websocket ? (https ? k.wss_str : k.ws_str)
                                  : (https ? k.https_str : k.http_str)));
    rc |= put(scope, S_PATH, path);
    rc |= put(scope, S_RAW_PATH, bytes_of(v->path));
    rc |= put(scope, S_QUERY, bytes_of(v->query));
    rc |= put(scope, S_ROOT_PATH, root);
    rc |= put(scope, S_HEADERS, header_list(v));
    rc |= put(scope, S_CLIENT, address(v->remote_addr, v->remote_port));
    rc |= put(scope, S_SERVER, server_address(v->server_addr, v->server_port));
    rc |= put(scope, S_EXTENSIONS,
              Py_NewRef(websocket ? k.ws_extensions : k.extensions));
    if (websocket)
        rc |= put(scope, S_SUBPROTOCOLS, subprotocols(v));
    /* A copy of what lifespan startup left (none when it left nothing:
     * the copy would be all a hello world does besides answering). */
    if (aw.state && PyDict_GET_SIZE(aw.state))
        rc |= put(scope, S_STATE, PyDict_Copy(aw.state));
    if (rc != 0)
        Py_CLEAR(scope);
    return scope;
}


/* ------------------------------------------------------------------ */
/* WebSockets (the C side: conn_ws.c)                                   */

#define INBOX_PAUSE 32 /* messages waiting before the socket is not read */

static PyObject *ws_disconnect_event(struct asgi_ex *ex)
{
    PyObject *e = event_of(k.ws_disconnect);
    PyObject *code = e ? PyLong_FromLong(ex->close_code) : NULL;
    PyObject *reason = ex->close_reason ? ex->close_reason : k.empty_str;
    if (!code || PyDict_SetItem(e, k.code, code) != 0 ||
        PyDict_SetItem(e, k.reason, reason) != 0)
        Py_CLEAR(e);
    Py_XDECREF(code);
    return e;
}

static Py_ssize_t inbox_len(const struct asgi_ex *ex)
{
    return ex->inbox ? PyList_GET_SIZE(ex->inbox) - ex->inbox_head : 0;
}

static PyObject *ws_receive(struct asgi_ex *ex)
{
    if (!ex->connected) {
        ex->connected = true;
        return ready_with(event_of(k.ws_connect));
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
        return ready_with(e);
    }
    if (ex->closed)
        return ready_with(ws_disconnect_event(ex));
    if (!ex->recv_fut && !(ex->recv_fut = new_future()))
        return NULL;
    return Py_NewRef(ex->recv_fut);
}

/* An event for the app: to a receive() waiting, else to the inbox. */
static void deliver(struct asgi_ex *ex, PyObject *e)
{
    if (ex->recv_fut && inbox_len(ex) == 0) {
        settle(&ex->recv_fut, e, NULL);
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
    struct asgi_ex *ex = handle;
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
    PyObject *e = payload ? event_of(k.ws_receive) : NULL;
    if (e && PyDict_SetItem(e, text ? k.text : k.bytes, payload) == 0)
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
    struct asgi_ex *ex = handle;
    py_enter();
    if (!ex->closed) {
        ex->closed = true;
        ex->close_code = code;
        if (rlen) /* RFC 6455 says UTF-8; a peer that lies gets U+FFFD */
            ex->close_reason = PyUnicode_DecodeUTF8(reason, (Py_ssize_t)rlen,
                                                    "replace");
        if (ex->recv_fut && inbox_len(ex) == 0) {
            PyObject *e = ws_disconnect_event(ex);
            if (e)
                settle(&ex->recv_fut, e, NULL);
            Py_XDECREF(e);
        }
    }
    PyErr_Clear();
    py_leave();
}

static PyObject *ws_accept(struct asgi_ex *ex, PyObject *msg)
{
    if (ex->accepted || ex->denied)
        return PyErr_Format(PyExc_RuntimeError,
                            "websocket.accept after the handshake was "
                            "answered");
    PyObject *sub = field(msg, k.subprotocol, Py_None);
    PyObject *headers = sub ? field(msg, k.headers, Py_None) : NULL;
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
    r = Py_NewRef(ready_none);
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

static PyObject *ws_message_out(struct asgi_ex *ex, PyObject *msg)
{
    if (!ex->accepted)
        return PyErr_Format(PyExc_RuntimeError,
                            "websocket.send before websocket.accept");
    if (ex->closed || !ex->c)
        return gone_error();
    PyObject *text = field(msg, k.text, Py_None);
    PyObject *bytes = text ? field(msg, k.bytes, Py_None) : NULL;
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
    r = rc == 0 ? maybe_wait(ex) : gone_error();
out:
    Py_XDECREF(text);
    Py_XDECREF(bytes);
    return r;
}

static PyObject *ws_close(struct asgi_ex *ex, PyObject *msg)
{
    if (!ex->c)
        return Py_NewRef(ready_none); /* closed already */
    if (!ex->accepted) {
        if (ex->denied)
            return PyErr_Format(PyExc_RuntimeError,
                                "websocket.close after an HTTP answer");
        /* Closed before accepting: the handshake is refused (403). */
        ex->denied = true;
        struct drv_response *res = drv_conn_response(ex->c);
        drv_response_error(res, 403, false);
        drv_conn_progress(ex->c);
        return Py_NewRef(ready_none);
    }
    PyObject *code = field(msg, k.code, NULL);
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
    PyObject *reason = field(msg, k.reason, Py_None);
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
    return Py_NewRef(ready_none);
}

static PyObject *ws_send(struct asgi_ex *ex, PyObject *msg, const char *type)
{
    if (strcmp(type, "accept") == 0)
        return ex->c ? ws_accept(ex, msg) : gone_error();
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
            return gone_error();
        ex->denied = true;
        if (strcmp(type + 14, "start") == 0)
            return response_start(ex, msg);
        if (strcmp(type + 14, "body") == 0)
            return response_body(ex, msg);
    }
    return PyErr_Format(PyExc_RuntimeError,
                        "unexpected ASGI message 'websocket.%s'", type);
}

static void ws_app_done(struct asgi_ex *ex, bool failed)
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

/* ------------------------------------------------------------------ */
/* The connection's side (app.h: begin, drained, release)              */

static PyObject *new_ex(struct drv_conn *c)
{
    struct asgi_ex *ex = PyObject_New(struct asgi_ex, &ex_type);
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
        coro = PyObject_Vectorcall(aw.run_app, args, 5, NULL);
    }
    Py_XDECREF(recv);
    Py_XDECREF(send);
    Py_XDECREF(done);
    PyObject *task = NULL;
    if (coro) {
        PyObject *args[] = {coro, aw.aloop};
        task = PyObject_Vectorcall(aw.task_type, args, 1, aw.loop_kw);
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
    ((struct asgi_ex *)ex)->ws = websocket;
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
    struct asgi_ex *ex = handle;
    if (!ex->send_fut)
        return;
    py_enter();
    settle(&ex->send_fut, Py_None, NULL);
    py_leave();
}

void py_asgi_release(void *handle, bool gone)
{
    struct asgi_ex *ex = handle;
    py_enter();
    ex->c = NULL;
    ex->gone = gone;
    if (ex->ws && !ex->closed) {
        ex->closed = true;
        ex->close_code = 1006; /* the connection went without a close */
    }
    if (ex->recv_fut) {
        PyObject *e = ex->ws ? ws_disconnect_event(ex)
                             : event_of(k.http_disconnect);
        if (e)
            settle(&ex->recv_fut, e, NULL);
        Py_XDECREF(e);
    }
    if (ex->send_fut) {
        PyObject *err = PyObject_CallFunction(k.disconnected, "s",
                                              "the client has disconnected");
        if (err)
            settle(&ex->send_fut, NULL, err);
        Py_XDECREF(err);
    }
    PyErr_Clear();
    Py_DECREF(ex);
    py_leave();
}

/* ------------------------------------------------------------------ */
/* The worker's loops                                                   */

static void on_inner(struct ev_loop *loop, ev_io *io, int revents)
{
    (void)loop;
    (void)io;
    (void)revents;
    aw.inner_ready = true;
}

static void on_wait(struct ev_loop *loop, ev_timer *t, int revents)
{
    (void)loop;
    (void)t;
    (void)revents;
}

/* libev lets go of the GIL only while it blocks in the kernel. */
static void release_gil(struct ev_loop *loop)
{
    (void)loop;
    py_leave();
}

static void acquire_gil(struct ev_loop *loop)
{
    (void)loop;
    py_enter();
}

/* turn(fd, timeout): the selector's select(). One iteration of drover's
 * loop, blocking at most `timeout` seconds (None: until something
 * happens); True when asyncio's own selector `fd` has events. */
static PyObject *turn(PyObject *self, PyObject *args)
{
    (void)self;
    int fd;
    PyObject *timeout;
    if (!PyArg_ParseTuple(args, "iO", &fd, &timeout))
        return NULL;
    if (!ev_is_active(&aw.inner) || aw.inner.fd != fd) {
        ev_io_stop(aw.loop, &aw.inner);
        ev_io_set(&aw.inner, fd, EV_READ);
        ev_io_start(aw.loop, &aw.inner);
    }
    aw.inner_ready = false;
    if (timeout == Py_None) {
        ev_run(aw.loop, EVRUN_ONCE);
    } else {
        double t = PyFloat_AsDouble(timeout);
        if (t == -1.0 && PyErr_Occurred())
            return NULL;
        if (t <= 0) {
            ev_run(aw.loop, EVRUN_NOWAIT);
        } else {
            ev_timer_set(&aw.wait, t, 0.0);
            ev_timer_start(aw.loop, &aw.wait);
            ev_run(aw.loop, EVRUN_ONCE);
            ev_timer_stop(aw.loop, &aw.wait);
        }
    }
    if (aw.flags.broken) {
        aw.flags.broken = false;
        PyObject *r = PyObject_CallMethod(aw.worker, "on_break", NULL);
        if (!r)
            return NULL;
        Py_DECREF(r);
    }
    return PyBool_FromLong(aw.inner_ready);
}

static PyMethodDef turn_def = {"turn", turn, METH_VARARGS, NULL};

/* log(level, text): drover's error log, for the glue. */
static PyObject *glue_log(PyObject *self, PyObject *args)
{
    (void)self;
    int level;
    const char *text;
    if (!PyArg_ParseTuple(args, "is", &level, &text))
        return NULL;
    if (level >= 40)
        drv_error("%s", text);
    else if (level >= 30)
        drv_warn("%s", text);
    else
        drv_info("%s", text);
    Py_RETURN_NONE;
}

static PyMethodDef log_def = {"log", glue_log, METH_VARARGS, NULL};

int py_asgi_loop_start(struct drv_app *app, struct ev_loop *loop, char *err,
                       size_t errlen)
{
    struct python_app *pa = (struct python_app *)app;
    py_enter();
    aw.loop = loop;
    aw.dev = pa->dev;
    aw.flags.broken = false;
    ev_set_userdata(loop, &aw.flags);
    ev_io_init(&aw.inner, on_inner, -1, EV_READ);
    ev_timer_init(&aw.wait, on_wait, 0.0, 0.0);
    int rc = -1;
    PyObject *cls = PyDict_GetItemString(glue_ns, "Worker");
    PyObject *t = PyCFunction_New(&turn_def, NULL);
    PyObject *lg = t ? PyCFunction_New(&log_def, NULL) : NULL;
    aw.worker = lg ? PyObject_CallFunction(cls, "OsOO", pa->callable,
                                           pa->lifespan, t, lg)
                   : NULL;
    Py_XDECREF(t);
    Py_XDECREF(lg);
    PyObject *aloop = aw.worker ? PyObject_GetAttrString(aw.worker, "loop")
                                : NULL;
    PyObject *asyncio = aloop ? PyImport_ImportModule("asyncio") : NULL;
    if (asyncio) {
        aw.aloop = aloop;
        aloop = NULL;
        aw.create_future = PyObject_GetAttrString(aw.aloop, "create_future");
        aw.task_type = PyObject_GetAttrString(asyncio, "Task");
        aw.run_app = Py_XNewRef(PyDict_GetItemString(glue_ns, "run_app"));
        aw.loop_kw = Py_BuildValue("(s)", "loop");
    }
    Py_XDECREF(aloop);
    Py_XDECREF(asyncio);
    if (!aw.create_future || !aw.task_type || !aw.run_app || !aw.loop_kw) {
        py_log_exception("cannot set up the asyncio loop", NULL);
        snprintf(err, errlen, "cannot set up the asyncio loop (see the "
                 "traceback above)");
        goto out;
    }
    /* From here on libev blocks without the GIL. */
    ev_set_loop_release_cb(loop, release_gil, acquire_gil);
    PyObject *failed = PyObject_CallMethod(aw.worker, "startup", NULL);
    if (!failed) {
        py_log_exception("ASGI lifespan startup", app->spec);
        snprintf(err, errlen, "ASGI lifespan startup raised (see above)");
        goto out;
    }
    if (failed != Py_None) {
        snprintf(err, errlen, "ASGI lifespan startup failed: %s",
                 PyUnicode_Check(failed) ? PyUnicode_AsUTF8(failed) : "?");
        PyErr_Clear();
        Py_DECREF(failed);
        goto out;
    }
    Py_DECREF(failed);
    PyObject *state = PyObject_GetAttrString(aw.worker, "state");
    if (state && PyDict_Check(state))
        aw.state = state;
    else
        Py_XDECREF(state);
    PyErr_Clear();
    if (strcmp(pa->lifespan, "off") != 0 && aw.state)
        drv_info("ASGI lifespan startup complete");
    rc = 0;
out:
    py_leave();
    return rc;
}

void py_asgi_loop_run(struct drv_app *app, struct ev_loop *loop)
{
    (void)app;
    (void)loop;
    py_enter();
    PyObject *r = PyObject_CallMethod(aw.worker, "serve", NULL);
    if (!r)
        py_log_exception("the asyncio loop failed", NULL);
    Py_XDECREF(r);
    py_leave();
}

void py_asgi_loop_stop(struct drv_app *app, struct ev_loop *loop,
                       double grace)
{
    (void)app;
    py_enter();
    if (aw.worker) {
        PyObject *r = PyObject_CallMethod(aw.worker, "shutdown", "d", grace);
        if (!r)
            py_log_exception("ASGI shutdown", NULL);
        Py_XDECREF(r);
    }
    ev_set_loop_release_cb(loop, NULL, NULL);
    ev_io_stop(loop, &aw.inner);
    ev_timer_stop(loop, &aw.wait);
    ev_set_userdata(loop, NULL);
    Py_CLEAR(aw.worker);
    Py_CLEAR(aw.aloop);
    Py_CLEAR(aw.create_future);
    Py_CLEAR(aw.task_type);
    Py_CLEAR(aw.run_app);
    Py_CLEAR(aw.loop_kw);
    Py_CLEAR(aw.state);
    py_leave();
}

/* ------------------------------------------------------------------ */
/* Loading                                                              */

int py_asgi_setup(void)
{
    if (glue_ns)
        return 0;
    if (make_constants() != 0 || PyType_Ready(&ready_type) != 0 ||
        PyType_Ready(&ex_type) != 0)
        return -1;
    if (!ready_none)
        ready_none = (PyObject *)PyObject_New(struct ready, &ready_type);
    if (!ready_none)
        return -1;
    ((struct ready *)ready_none)->value = NULL;
    PyObject *ns = PyDict_New();
    PyObject *name = PyUnicode_FromString("drover.asgi");
    if (!ns || !name ||
        PyDict_SetItemString(ns, "__builtins__", PyEval_GetBuiltins()) != 0 ||
        PyDict_SetItemString(ns, "__name__", name) != 0) {
        Py_XDECREF(name);
        Py_XDECREF(ns);
        return -1;
    }
    Py_DECREF(name);
    /* Named, so that a traceback through run_app says whose it is. */
    PyObject *code = Py_CompileString(glue, "<drover asgi>", Py_file_input);
    PyObject *r = code ? PyEval_EvalCode(code, ns, ns) : NULL;
    Py_XDECREF(code);
    if (!r) {
        Py_DECREF(ns);
        return -1;
    }
    Py_DECREF(r);
    k.disconnected = PyDict_GetItemString(ns, "ClientDisconnected");
    Py_INCREF(k.disconnected);
    glue_ns = ns;
    return 0;
}

int py_asgi_kind(PyObject *callable)
{
    if (py_asgi_setup() != 0)
        return -1;
    PyObject *f = PyDict_GetItemString(glue_ns, "asgi_kind");
    PyObject *r = PyObject_CallOneArg(f, callable);
    if (!r)
        return -1;
    long kind = PyLong_AsLong(r);
    Py_DECREF(r);
    return (int)kind;
}
