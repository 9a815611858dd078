/*
 * python_dev: what --dev (dev.c) asks of the Python kind.
 *
 * A call that fails in dev mode answers with its traceback as a plain
 * text 500 page, unless the head is already out (python_body.c decides,
 * this file formats). A load that fails keeps its exception
 * (py_load_error, python_interp.c): its traceback is the page dev.c
 * serves until a fix, and the files it names are watched along with
 * every module's __file__, since the module that failed to import is no
 * longer in sys.modules, yet fixing it must reload. The list comes from a
 * few lines of Python, run in a namespace of their own the first time
 * dev.c asks: tracebacks and sys.modules are Python's to walk.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include "python_int.h"

/* ------------------------------------------------------------------ */
/* Tracebacks                                                          */

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
 * set (normalized) for py_log_exception. */
PyObject *py_current_traceback_text(void)
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
int py_dev_error_page(struct drv_response *res, PyObject *text)
{
    Py_ssize_t n;
    const char *p = PyUnicode_AsUTF8AndSize(text, &n);
    if (!p) {
        PyErr_Clear();
        return -1;
    }
    /* A restart drops the body the app wrote before failing. */
    if (drv_response_committed(res) || res->has_source ||
        drv_response_start(res, 500, NULL, 0) != 0)
        return -1;
    drv_response_header(res, "Content-Type", 12,
                        "text/plain; charset=utf-8", 25);
    drv_response_write(res, p, (size_t)n);
    return 0;
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

char *py_load_traceback(void)
{
    if (!py_ready || !py_load_error)
        return NULL;
    py_enter();
    char *out = NULL;
    PyObject *text = traceback_text(py_load_error);
    const char *p = text ? PyUnicode_AsUTF8(text) : NULL;
    if (p)
        out = drv_xstrdup(p);
    PyErr_Clear();
    Py_XDECREF(text);
    py_leave();
    return out;
}

void py_source_files(const char *spec,
                     void (*add)(const char *path, void *arg), void *arg)
{
    (void)spec; /* what the interpreter imported says it all */
    if (!py_ready)
        return;
    py_enter();
    if (!dev_ns) {
        dev_ns = py_namespace(dev_code, "drover.dev");
        if (!dev_ns)
            py_log_exception("cannot list the app's source files", NULL);
    }
    PyObject *fn = dev_ns ? PyDict_GetItemString(dev_ns, "sources") : NULL;
    PyObject *list = fn ? PyObject_CallFunctionObjArgs(
                              fn, py_load_error ? py_load_error : Py_None, NULL)
                        : NULL;
    if (fn && !list)
        py_log_exception("cannot list the app's source files", NULL);
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
