/*
 * python_asgi_loop: the worker's asyncio loop for an ASGI app, driven by
 * drover's own loop; lifespan; telling ASGI apps from WSGI ones.
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
 *
 * The glue below is Python (a selector, lifespan, the worker's start and
 * stop); the hot path (turn(), and everything per request in
 * python_asgi.c) is C.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <string.h>

#include "log.h"
#include "loop.h"
#include "python_int.h"
#include "python_asgi_int.h"

/* ------------------------------------------------------------------ */
/* The glue: selector, lifespan, the worker's asyncio side              */

static const char glue[] =
    "import asyncio, selectors, sys\n"
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


PyObject *py_asgi_glue;

struct py_asgi_worker py_aw;

/* ------------------------------------------------------------------ */
/* The worker's loops                                                   */

static void on_inner(struct ev_loop *loop, ev_io *io, int revents)
{
    (void)loop;
    (void)io;
    (void)revents;
    py_aw.inner_ready = true;
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
    if (!ev_is_active(&py_aw.inner) || py_aw.inner.fd != fd) {
        ev_io_stop(py_aw.loop, &py_aw.inner);
        ev_io_set(&py_aw.inner, fd, EV_READ);
        ev_io_start(py_aw.loop, &py_aw.inner);
    }
    py_aw.inner_ready = false;
    if (timeout == Py_None) {
        ev_run(py_aw.loop, EVRUN_ONCE);
    } else {
        double t = PyFloat_AsDouble(timeout);
        if (t == -1.0 && PyErr_Occurred())
            return NULL;
        if (t <= 0) {
            ev_run(py_aw.loop, EVRUN_NOWAIT);
        } else {
            ev_timer_set(&py_aw.wait, t, 0.0);
            ev_timer_start(py_aw.loop, &py_aw.wait);
            ev_run(py_aw.loop, EVRUN_ONCE);
            ev_timer_stop(py_aw.loop, &py_aw.wait);
        }
    }
    if (py_aw.flags.broken) {
        py_aw.flags.broken = false;
        PyObject *r = PyObject_CallMethod(py_aw.worker, "on_break", NULL);
        if (!r)
            return NULL;
        Py_DECREF(r);
    }
    return PyBool_FromLong(py_aw.inner_ready);
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
    py_aw.loop = loop;
    py_aw.dev = pa->dev;
    py_aw.flags.broken = false;
    ev_set_userdata(loop, &py_aw.flags);
    ev_io_init(&py_aw.inner, on_inner, -1, EV_READ);
    ev_timer_init(&py_aw.wait, on_wait, 0.0, 0.0);
    int rc = -1;
    PyObject *cls = PyDict_GetItemString(py_asgi_glue, "Worker");
    PyObject *t = PyCFunction_New(&turn_def, NULL);
    PyObject *lg = t ? PyCFunction_New(&log_def, NULL) : NULL;
    py_aw.worker = lg ? PyObject_CallFunction(cls, "OsOO", pa->callable,
                                           pa->lifespan, t, lg)
                   : NULL;
    Py_XDECREF(t);
    Py_XDECREF(lg);
    PyObject *aloop = py_aw.worker ? PyObject_GetAttrString(py_aw.worker, "loop")
                                : NULL;
    PyObject *asyncio = aloop ? PyImport_ImportModule("asyncio") : NULL;
    if (asyncio) {
        py_aw.aloop = aloop;
        aloop = NULL;
        py_aw.create_future = PyObject_GetAttrString(py_aw.aloop, "create_future");
        py_aw.task_type = PyObject_GetAttrString(asyncio, "Task");
        py_aw.run_app = Py_XNewRef(PyDict_GetItemString(py_asgi_glue, "run_app"));
        py_aw.task_kw = Py_BuildValue("(ss)", "loop", "name");
        py_aw.task_name = PyUnicode_InternFromString("drover request");
    }
    Py_XDECREF(aloop);
    Py_XDECREF(asyncio);
    if (!py_aw.create_future || !py_aw.task_type || !py_aw.run_app ||
        !py_aw.task_kw || !py_aw.task_name) {
        py_log_exception("cannot set up the asyncio loop", NULL);
        snprintf(err, errlen, "cannot set up the asyncio loop (see the "
                 "traceback above)");
        goto out;
    }
    /* From here on libev blocks without the GIL. */
    ev_set_loop_release_cb(loop, release_gil, acquire_gil);
    PyObject *failed = PyObject_CallMethod(py_aw.worker, "startup", NULL);
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
    PyObject *state = PyObject_GetAttrString(py_aw.worker, "state");
    if (state && PyDict_Check(state))
        py_aw.state = state;
    else
        Py_XDECREF(state);
    PyErr_Clear();
    if (strcmp(pa->lifespan, "off") != 0 && py_aw.state)
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
    PyObject *r = PyObject_CallMethod(py_aw.worker, "serve", NULL);
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
    if (py_aw.worker) {
        PyObject *r = PyObject_CallMethod(py_aw.worker, "shutdown", "d", grace);
        if (!r)
            py_log_exception("ASGI shutdown", NULL);
        Py_XDECREF(r);
    }
    ev_set_loop_release_cb(loop, NULL, NULL);
    ev_io_stop(loop, &py_aw.inner);
    ev_timer_stop(loop, &py_aw.wait);
    ev_set_userdata(loop, NULL);
    Py_CLEAR(py_aw.worker);
    Py_CLEAR(py_aw.aloop);
    Py_CLEAR(py_aw.create_future);
    Py_CLEAR(py_aw.task_type);
    Py_CLEAR(py_aw.run_app);
    Py_CLEAR(py_aw.task_kw);
    Py_CLEAR(py_aw.task_name);
    Py_CLEAR(py_aw.state);
    py_leave();
}

/* ------------------------------------------------------------------ */
/* Loading                                                              */

int py_asgi_setup(void)
{
    if (py_asgi_glue)
        return 0;
    if (py_asgi_types() != 0)
        return -1;
    /* Named, so that a traceback through run_app says whose it is. */
    PyObject *ns = py_namespace(glue, "drover.asgi");
    if (!ns)
        return -1;
    py_k.disconnected = PyDict_GetItemString(ns, "ClientDisconnected");
    Py_INCREF(py_k.disconnected);
    py_asgi_glue = ns;
    return 0;
}

/* Telling an ASGI app from a WSGI one needs only inspect: the glue (and
 * asyncio with it) is loaded once the app is known to be ASGI. */
static const char detect[] =
    "import inspect, sys\n"
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
    "    # asyncio's test also knows its legacy markers; importing asyncio\n"
    "    # for it alone would cost a WSGI worker some 8 MiB.\n"
    "    aio = sys.modules.get('asyncio')\n"
    "    isco = aio.iscoroutinefunction if aio else inspect.iscoroutinefunction\n"
    "    if inspect.isclass(app):\n"
    "        return 2 if (hasattr(app, '__await__') or\n"
    "                     isco(getattr(app, '__call__', None)) or\n"
    "                     positional(app) == 1) else 0\n"
    "    if isco(app) or isco(getattr(app, '__call__', None)):\n"
    "        return 3\n"
    "    return 2 if positional(app) == 1 else 0\n"
;

int py_asgi_kind(PyObject *callable)
{
    static PyObject *kind_of;
    if (!kind_of) {
        PyObject *ns = py_namespace(detect, "drover.detect");
        if (!ns)
            return -1;
        kind_of = Py_XNewRef(PyDict_GetItemString(ns, "asgi_kind"));
        Py_DECREF(ns);
        if (!kind_of)
            return -1;
    }
    PyObject *r = PyObject_CallOneArg(kind_of, callable);
    if (!r)
        return -1;
    long kind = PyLong_AsLong(r);
    Py_DECREF(r);
    return (int)kind;
}
