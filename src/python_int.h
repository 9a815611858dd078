/*
 * python_int: what the python_*.c files share, and nothing else includes.
 *
 * The Python kind is one subsystem split by job, as bjoern splits
 * request.c / wsgi.c / filewrapper.c:
 *
 *   python_interp.c   the interpreter's life (PyConfig, sys.path, the
 *                     virtualenv), the bootstrap that loads the app spec,
 *                     the GIL's owner, fork hooks, the kind and ops tables;
 *   python_environ.c  interned keys, the environ template, the environ of
 *                     one request;
 *   python_request.c  the per-request context: start_response, write(),
 *                     wsgi.input;
 *   python_body.c     calling the app and sending what it returns: lists,
 *                     lazily pulled iterables, wsgi.file_wrapper;
 *   python_dev.c      --dev: traceback text and pages, the source files;
 *   python_asgi*.c    ASGI apps: one request, its WebSocket, the worker's
 *                     asyncio loop (python_asgi_int.h is theirs).
 *
 * Only these files include <Python.h>, and each does so first (CPython
 * wants it before any system header), then this header. Names shared
 * across them start with py_; everything else in them is static. Unless a
 * contract says otherwise, a function here is called with the GIL held
 * (py_enter) and sets a Python exception when it fails.
 */
#ifndef DRV_PYTHON_INT_H
#define DRV_PYTHON_INT_H

#ifndef Py_PYTHON_H
#error "python_int.h is for python_*.c, after #include <Python.h>"
#endif

#include <stdbool.h>
#include <stddef.h>

#include "app.h"

/* ------------------------------------------------------------------ */
/* The GIL (python_interp.c)                                           */

extern bool py_ready; /* the interpreter is initialised */

/*
 * This thread's Python state while drover runs C without the GIL. Every
 * thread that runs app code has its own: the worker's main thread, and
 * each app thread (--threads), which is a `threading.Thread` whose target
 * calls back into C (py_spawn). py_enter() takes the GIL back, py_leave()
 * releases it; they nest (a body source closed from inside the app call,
 * say), and only the outermost pair touches the GIL. Inline and
 * thread-local: every request goes through them.
 */
extern __thread PyThreadState *py_main;
extern __thread int py_depth; /* > 0: this thread holds the GIL */

static inline void py_enter(void)
{
    if (py_depth++ == 0) {
        PyEval_RestoreThread(py_main);
        py_main = NULL;
    }
}

static inline void py_leave(void)
{
    if (--py_depth == 0)
        py_main = PyEval_SaveThread();
}

/* ------------------------------------------------------------------ */
/* The app (python_interp.c)                                           */

struct python_app {
    struct drv_app base;
    PyObject *callable;
    PyObject *script_name; /* str without trailing '/', NULL = root */
    bool dev;              /* --dev: a failed call's 500 shows the traceback */
    /* ASGI apps (python_asgi.c): */
    const char *lifespan;  /* "auto", "on", "off" */
};

/* The exception the last failed load raised, traceback attached, or NULL
 * (--dev serves it and watches the files it names). Owned reference. */
extern PyObject *py_load_error;

/* ------------------------------------------------------------------ */
/* environ (python_environ.c)                                          */

struct pyreq;

/* Intern the environ keys. Once, at start-up. Returns 0 or -1. */
int py_environ_keys(void);

/* Build the environ template, whose wsgi.file_wrapper is `file_wrapper`
 * (the bootstrap's FileWrapper class, borrowed; NULL fails), and
 * remember that class as py_file_wrapper_type. Once, after
 * py_environ_keys. Returns 0 or -1. */
int py_environ_template(PyObject *file_wrapper);

/* Set wsgi.multithread in the template (whether another thread of this
 * process may run the app at the same time: --threads > 1). */
void py_environ_multithread(bool on);

/* Set wsgi.multiprocess in the template (PEP 3333: whether another
 * process may run the app at the same time). */
void py_environ_multiprocess(bool on);

/* wsgi.file_wrapper (borrowed; set by py_environ_template). */
extern PyObject *py_file_wrapper_type;

/* The environ of `req` (a new reference), with wsgi.input reading through
 * `ctx` (which it references) and the path split at `script_name` (NULL:
 * the root). Returns NULL with an exception set, or NULL with *outside
 * set to true when the path is not under script_name (the caller sets it
 * false first). Per request. */
PyObject *py_build_environ(struct drv_request *req, struct pyreq *ctx,
                           PyObject *script_name, bool *outside);

/* ------------------------------------------------------------------ */
/* The per-request context (python_request.c)                          */

/* start_response, bound to one request. It outlives the request if the
 * app keeps it: then req and res are NULL, and calling it or its write()
 * raises. */
struct pyreq {
    PyObject_HEAD
    struct drv_request *req;  /* NULL once the request is over */
    struct drv_response *res;
    bool started;             /* start_response succeeded */
    PyObject *write;          /* bound write() callable, cached */
};

/* wsgi.input: reads ctx->req's body; empty once the request is over. */
struct pyinput {
    PyObject_HEAD
    struct pyreq *ctx; /* owned reference */
};

extern PyTypeObject py_req_type;   /* struct pyreq */
extern PyTypeObject py_input_type; /* struct pyinput */
extern PyMethodDef py_write_def;   /* write(), to bind to a struct pyreq */

/* Ready the types above. Once, at start-up. Returns 0 or -1. */
int py_request_types(void);

/* Body data must be bytes (PEP 3333). Raises TypeError naming `what`.
 * Inline: called for each chunk of every response. */
static inline bool py_is_body_bytes(PyObject *o, const char *what)
{
    if (PyBytes_Check(o))
        return true;
    PyErr_Format(PyExc_TypeError, "%s must be bytes, not %.100s", what,
                 Py_TYPE(o)->tp_name);
    return false;
}

/* ------------------------------------------------------------------ */
/* Calling the app (python_body.c)                                     */

/* The ops' call (app.h): takes and releases the GIL itself. */
int py_call(struct drv_app *app, struct drv_request *req,
            struct drv_response *res);

/* Log `what` (and the app spec, when not NULL), then the traceback of the
 * exception set, which this clears. */
void py_log_exception(const char *what, const char *spec);
/* A fresh module namespace `name` with `source` run in it; tracebacks
 * through it say "<name>". New reference, or NULL with the exception set. */
PyObject *py_namespace(const char *source, const char *name);

/* ------------------------------------------------------------------ */
/* ASGI apps (python_asgi*.c; their shared parts: python_asgi_int.h)  */

/* Ready the ASGI glue (once). Returns 0 or -1. */
int py_asgi_setup(void);
/* 3: `callable` is an ASGI 3 app, 2: an ASGI 2 (double-callable) one, 0:
 * neither (WSGI); -1 on error. */
int py_asgi_kind(PyObject *callable);
/* The ops of app.h for event-driven apps; called without the GIL. */
int py_asgi_begin(struct drv_app *app, struct drv_conn *c, void **handle);
void py_asgi_drained(void *handle);
void py_asgi_release(void *handle, bool gone);
void py_asgi_ws_message(void *handle, bool text, const void *data,
                        size_t len);
void py_asgi_ws_closed(void *handle, int code, const char *reason,
                       size_t rlen);
int py_asgi_loop_start(struct drv_app *app, struct ev_loop *loop, char *err,
                       size_t errlen);
void py_asgi_loop_run(struct drv_app *app, struct ev_loop *loop);
void py_asgi_loop_stop(struct drv_app *app, struct ev_loop *loop,
                       double grace);

/* ------------------------------------------------------------------ */
/* --dev (python_dev.c)                                                */

/* The current exception's traceback as a str, or NULL (no new error)
 * when it cannot be formatted; the exception stays set (normalized). */
PyObject *py_current_traceback_text(void);

/* Replace whatever the app started with a 500 whose body is `text` (a
 * str, borrowed). Returns 0, or -1 when it is too late: the head is out,
 * or a body source is set. */
int py_dev_error_page(struct drv_response *res, PyObject *text);

/* The kind's load_traceback and source_files (app.h). Called without the
 * GIL: they take it. Nothing (NULL) when Python was never started. */
char *py_load_traceback(void);
void py_source_files(const char *spec,
                     void (*add)(const char *path, void *arg), void *arg);

#endif
