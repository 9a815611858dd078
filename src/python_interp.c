/*
 * python_interp: Python WSGI apps on an embedded CPython, the interpreter's
 * side. The Python kind is split by job across python_*.c (python_int.h
 * lists them); only those files include Python.h.
 *
 * Start-up: the interpreter is configured with PyConfig (no deprecated
 * Py_Set* calls): Python's own signal handlers off (drover owns signals),
 * unbuffered stdio, sys.argv = ["drover", APP]. The working directory goes
 * first on sys.path, as with gunicorn, then --pythonpath and the
 * --virtualenv's site-packages. The app spec is resolved by a small
 * bootstrap written in Python (import, attribute path, factory call with
 * literal arguments), because that code runs once and Python's own error
 * messages and tracebacks are the best ones to show. A failed load keeps
 * its exception for --dev (python_dev.c).
 *
 * APP may name a file, "path/to/script.py:app": its folder goes first on
 * sys.path (as under `python script.py`) and it is executed as a module
 * named after the file when that is an unused identifier that shadows no
 * standard module, else "__drover_app__"; never "__main__", so the
 * script's `if __name__ == "__main__":` block (which often starts a
 * development server) does not run. An object that is not callable but
 * has a callable .server (a Dash app) is served through that, with one
 * log line.
 *
 * The GIL: once the interpreter is up and the app loaded, the main thread
 * releases it, so the app's own threads (schedulers, Dash callbacks) run
 * while the worker waits in epoll. Every entry from drover into Python
 * (the app call, the body source's next/close, fork hooks, finalize, the
 * --dev hooks) goes through py_enter()/py_leave() (python_int.h); this
 * file owns their state.
 *
 * With preload, the master holds the GIL across fork() and freezes what
 * it imported out of the collector's reach, so that the workers share
 * those pages; each worker then arms faulthandler.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "log.h"
#include "python_int.h"

/* The interpreter's and the GIL's state, documented in python_int.h. */
bool py_ready;
__thread PyThreadState *py_main;
__thread int py_depth;

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

/* A fresh module namespace `name` with `source` run in it; tracebacks
 * through it say "<name>". Returns a new reference, or NULL with the
 * exception set. */
PyObject *py_namespace(const char *source, const char *name)
{
    char filename[64];
    snprintf(filename, sizeof(filename), "<%s>", name);
    PyObject *ns = PyDict_New();
    PyObject *code = NULL, *r = NULL, *n = PyUnicode_FromString(name);
    if (ns && n &&
        PyDict_SetItemString(ns, "__builtins__", PyEval_GetBuiltins()) == 0 &&
        PyDict_SetItemString(ns, "__name__", n) == 0 &&
        (code = Py_CompileString(source, filename, Py_file_input)))
        r = PyEval_EvalCode(code, ns, ns);
    Py_XDECREF(n);
    Py_XDECREF(code);
    if (!r) {
        Py_XDECREF(ns);
        return NULL;
    }
    Py_DECREF(r);
    return ns;
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

/* ---- app threads (--threads) ----
 * Each is a daemon threading.Thread named drover-app-N, so the app sees a
 * real thread (threading.current_thread(), thread-locals, request
 * contexts). Its target is a C function that lets go of the GIL and runs
 * the pool's thread body, which takes the GIL only inside the app (through
 * py_enter, on this thread's own state). Daemon: a thread stuck in the
 * app when the worker has to exit must not hold up finalization. */

/* The capsule carries `arg`, its context the body: nothing to allocate,
 * so nothing leaks when a daemon thread is still unwinding at exit. */
static PyObject *thread_target(PyObject *self, PyObject *unused)
{
    (void)unused;
    void *arg = PyCapsule_GetPointer(self, "drover.thread");
    void (*body)(void *) = (void (*)(void *))PyCapsule_GetContext(self);
    if (!arg || !body)
        return NULL;
    py_depth = 1; /* Python called us: this thread holds the GIL */
    py_leave();
    body(arg);
    py_enter();
    py_depth = 0;
    Py_RETURN_NONE;
}

static PyMethodDef thread_target_def = {"drover_app_thread", thread_target,
                                        METH_NOARGS, NULL};

static int start_thread(void (*body)(void *), void *arg, size_t index)
{
    PyObject *capsule = PyCapsule_New(arg, "drover.thread", NULL);
    if (!capsule || PyCapsule_SetContext(capsule, (void *)body) != 0) {
        Py_XDECREF(capsule);
        return -1;
    }
    PyObject *target = PyCFunction_New(&thread_target_def, capsule);
    Py_DECREF(capsule);
    PyObject *threading = target ? PyImport_ImportModule("threading") : NULL;
    PyObject *cls = threading ? PyObject_GetAttrString(threading, "Thread")
                              : NULL;
    PyObject *kw = cls ? Py_BuildValue("{s:O,s:N,s:O}", "target", target,
                                       "name",
                                       PyUnicode_FromFormat("drover-app-%zu",
                                                            index + 1),
                                       "daemon", Py_True)
                       : NULL;
    PyObject *empty = kw ? PyTuple_New(0) : NULL;
    PyObject *thread = empty ? PyObject_Call(cls, empty, kw) : NULL;
    PyObject *r = thread ? PyObject_CallMethod(thread, "start", NULL) : NULL;
    Py_XDECREF(r);
    Py_XDECREF(thread);
    Py_XDECREF(empty);
    Py_XDECREF(kw);
    Py_XDECREF(cls);
    Py_XDECREF(threading);
    Py_XDECREF(target);
    return r ? 0 : -1;
}

static int python_spawn(struct drv_app *app, void (*body)(void *), void *arg,
                        size_t index, char *err, size_t errlen)
{
    (void)app;
    py_enter();
    int rc = start_thread(body, arg, index);
    if (rc != 0) {
        snprintf(err, errlen, "cannot start app thread %zu (see the "
                 "traceback above)", index + 1);
        py_log_exception("starting an app thread", NULL);
    }
    py_leave();
    return rc;
}

static const struct drv_app_ops python_ops = {
    .spawn = python_spawn,
    .kind = "python",
    .call = py_call,
    .before_fork = python_before_fork,
    .after_fork_parent = python_after_fork_parent,
    .post_fork = python_post_fork,
    .preloaded = python_preloaded,
    .free = python_free,
};

static void summarise_exception(const char *spec, char *err, size_t errlen);

/* An ASGI app is not called and returned from: conn.c begins each
 * request (python_asgi.c). This only answers a caller that forgot. */
static int asgi_call(struct drv_app *app, struct drv_request *req,
                     struct drv_response *res)
{
    (void)app;
    (void)req;
    (void)res;
    drv_error("an ASGI app cannot be called as a WSGI one");
    return -1;
}

static const struct drv_app_ops asgi_ops = {
    .kind = "ASGI",
    .call = asgi_call,
    .before_fork = python_before_fork,
    .after_fork_parent = python_after_fork_parent,
    .post_fork = python_post_fork,
    .preloaded = python_preloaded,
    .free = python_free,
    .begin = py_asgi_begin,
    .drained = py_asgi_drained,
    .release = py_asgi_release,
    .ws_message = py_asgi_ws_message,
    .ws_closed = py_asgi_ws_closed,
    .loop_start = py_asgi_loop_start,
    .loop_run = py_asgi_loop_run,
    .loop_stop = py_asgi_loop_stop,
};

/* Whether to serve `callable` as ASGI (--interface; auto recognises an
 * ASGI 3 app). Returns 1 (ASGI), 0 (WSGI), or -1 with err filled. */
static int pick_interface(PyObject *callable, const char *spec,
                          const struct drv_settings *s, char *err,
                          size_t errlen)
{
    const char *want = s->interface ? s->interface : "auto";
    if (strcmp(want, "wsgi") == 0)
        return 0;
    int kind = py_asgi_kind(callable);
    if (kind < 0) {
        summarise_exception(spec, err, errlen);
        return -1;
    }
    if (kind == 2) {
        snprintf(err, errlen,
                 "%s is an ASGI 2 (double-callable) app; drover serves ASGI "
                 "3: wrap it with asgiref.compatibility."
                 "guarantee_single_callable()", spec);
        return -1;
    }
    if (kind != 3 && strcmp(want, "asgi") != 0)
        return 0;
    if (py_asgi_setup() != 0) {
        summarise_exception(spec, err, errlen);
        return -1;
    }
    return 1;
}

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
    "def split_spec(spec):\n"
    "    at = spec.find('.py:')\n"
    "    if at >= 0:\n"
    "        return spec[:at + 3], spec[at + 4:]\n"
    "    if spec.endswith('.py'):\n"
    "        return spec, ''\n"
    "    module, _, obj = spec.partition(':')\n"
    "    return module, obj\n"
    "def import_file(path):\n"
    "    import importlib.util, keyword, os\n"
    "    path = os.path.abspath(path)\n"
    "    if not os.path.isfile(path):\n"
    "        raise FileNotFoundError(f'no such file: {path}')\n"
    "    folder = os.path.dirname(path)\n"
    "    if folder not in sys.path:\n"
    "        sys.path.insert(0, folder)\n"
    "    name = os.path.basename(path)[:-3]\n"
    "    if (not name.isidentifier() or keyword.iskeyword(name) or\n"
    "            name in sys.modules or name in sys.stdlib_module_names):\n"
    "        name = '__drover_app__'\n"
    "    spec = importlib.util.spec_from_file_location(name, path)\n"
    "    module = importlib.util.module_from_spec(spec)\n"
    "    sys.modules[name] = module\n"
    "    try:\n"
    "        spec.loader.exec_module(module)\n"
    "    except BaseException:\n"
    "        del sys.modules[name]\n"
    "        raise\n"
    "    return module\n"
    "def load(spec):\n"
    "    module, obj = split_spec(spec)\n"
    "    obj = obj or 'application'\n"
    "    call = None\n"
    "    if obj.endswith(')'):\n"
    "        node = ast.parse(obj, mode='eval').body\n"
    "        if not isinstance(node, ast.Call):\n"
    "            raise ValueError(f'cannot parse app spec {spec!r}')\n"
    "        call = ([ast.literal_eval(a) for a in node.args],\n"
    "                {k.arg: ast.literal_eval(k.value) for k in node.keywords})\n"
    "        obj = obj[:obj.index('(')]\n"
    "    if module.endswith('.py'):\n"
    "        target = import_file(module)\n"
    "    else:\n"
    "        target = importlib.import_module(module)\n"
    "    for part in obj.split('.'):\n"
    "        try:\n"
    "            target = getattr(target, part)\n"
    "        except AttributeError:\n"
    "            raise LookupError(f'no attribute {obj!r} in module {module!r}') from None\n"
    "    if call is not None:\n"
    "        target = target(*call[0], **call[1])\n"
    "    note = None\n"
    "    server = getattr(target, 'server', None)\n"
    "    if not callable(target) and callable(server):\n"
    "        note = (f'{spec} is a {type(target).__name__} object, not a WSGI '\n"
    "                f'callable: serving its .server ({spec}.server)')\n"
    "        target = server\n"
    "    if not callable(target):\n"
    "        raise TypeError(f'{spec}: {type(target).__name__} object is not callable')\n"
    "    return target, note\n";

static PyObject *bootstrap_ns;

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
    if (py_request_types() != 0 || py_environ_keys() != 0) {
        snprintf(err, errlen, "cannot initialise the WSGI types");
        return -1;
    }
    bootstrap_ns = py_namespace(bootstrap, "drover");
    if (!bootstrap_ns || py_environ_template(PyDict_GetItemString(
                             bootstrap_ns, "FileWrapper")) != 0) {
        PyErr_PrintEx(0);
        snprintf(err, errlen, "cannot run drover's Python bootstrap");
        return -1;
    }
    py_ready = true;
    return 0;
}

/* The exception the last failed load raised, traceback attached (--dev
 * serves it and watches the files it names). */
PyObject *py_load_error;

/* "ModuleNotFoundError: No module named 'x'" for the one-line summary. */
static void summarise_exception(const char *spec, char *err, size_t errlen)
{
    PyObject *type, *value, *tb;
    PyErr_Fetch(&type, &value, &tb);
    PyErr_NormalizeException(&type, &value, &tb);
    if (value && tb)
        PyException_SetTraceback(value, tb);
    Py_XINCREF(value);
    Py_XSETREF(py_load_error, value);
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
    PyObject *loaded = PyObject_CallFunction(load, "s", spec), *callable,
             *note;
    if (!loaded || !PyArg_ParseTuple(loaded, "OO", &callable, &note)) {
        Py_XDECREF(loaded);
        summarise_exception(spec, err, errlen);
        Py_XDECREF(script_name);
        goto out;
    }
    Py_INCREF(callable);
    if (note != Py_None)
        drv_info("%s", PyUnicode_AsUTF8(note));
    Py_DECREF(loaded);
    int asgi = pick_interface(callable, spec, s, err, errlen);
    if (asgi < 0) {
        Py_DECREF(callable);
        Py_XDECREF(script_name);
        goto out;
    }
    if (asgi && s->threads > 1 && !s->dev)
        drv_warn("--threads %d does not apply to an ASGI app: its requests "
                 "run concurrently on each worker's event loop", s->threads);
    pa = drv_xcalloc(1, sizeof(*pa));
    pa->base.ops = asgi ? &asgi_ops : &python_ops;
    pa->lifespan = s->lifespan ? s->lifespan : "auto";
    pa->base.spec = drv_xstrdup(spec);
    pa->callable = callable;
    pa->script_name = script_name;
    pa->dev = s->dev;
    /* PEP 3333: whether another process may run the app at the same time
     * (gunicorn: workers > 1). */
    py_environ_multiprocess(s->workers > 1 && !s->dev);
    py_environ_multithread(s->threads > 1 && !s->dev);
out:
    /* From here on the app's threads run whenever drover is in C. */
    py_leave();
    return pa ? &pa->base : NULL;
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
    .source_files = py_source_files,
    .load_traceback = py_load_traceback,
    .rescan = true,
    .module_suffix = ".py",
    .dev_env = dev_env,
};
