"""Where drover, a new process, will find the app serve() was given.

drover loads an app from a spec, "module:attr.attr" or
"/path/to/script.py:attr", so serve() has to name the object it holds.
app_spec() looks for a module-level name bound to it: first in the globals
of the code that called serve(), then in every imported module; a name
whose object (not a module) holds the app as an attribute counts too
(Dash: "app.server"). A script run as `python script.py` is named by its
absolute path: drover imports it under a module name of its own choosing,
so its `if __name__ == "__main__":` block, which called serve(), does not
run again.

import_path() lists the directories drover's interpreter needs besides its
own: the script's folder, PYTHONPATH, whatever the script added to
sys.path.
"""

import os
import sys
import sysconfig
import types


def app_spec(app, caller_globals):
    """The spec of `app`, or LookupError with a one-line message."""
    namespaces = [caller_globals]
    for module in list(sys.modules.values()):
        try:
            namespaces.append(vars(module))
        except TypeError:   # not a module: some packages put objects there
            pass
    for ns in namespaces:
        path = isinstance(ns.get("__name__"), str) and path_in(ns, app)
        if path:
            return f"{module_ref(ns, app)}:{path}"
    raise LookupError(
        f"drover.serve: cannot find {app!r} under a module-level name; "
        "assign it to one at the top level of your script or module "
        "(app = Flask(__name__)) and pass that")


def path_in(ns, app):
    """"name" or "name.attr" for `app` in the namespace ns, else None."""
    items = [(k, v) for k, v in list(ns.items()) if not k.startswith("__")]
    for name, value in items:
        if value is app:
            return name
    for name, value in items:
        if isinstance(value, types.ModuleType):
            continue   # found in its own globals, under its own name
        try:
            attrs = list(vars(value).items())
        except Exception:   # no __dict__, or a proxy that raises
            continue
        for attr, inner in attrs:
            if inner is app:
                return f"{name}.{attr}"
    return None


def module_ref(ns, app):
    """The part of the spec before ':' for the module whose globals are
    ns: its name, or for a script its absolute path."""
    name = ns.get("__name__")
    if name != "__main__":
        return name
    spec = ns.get("__spec__")
    if spec is not None:   # python -m package.module
        return spec.name
    path = ns.get("__file__")
    if not path or not path.endswith(".py"):
        raise LookupError(
            f"drover.serve: {app!r} is defined in {path or 'a session'} "
            "and drover loads apps only from .py files; move it into one")
    return os.path.abspath(path)


def import_path():
    """sys.path entries, absolute, that are not this interpreter's own,
    in order."""
    out = []
    for entry in sys.path:
        path = os.path.abspath(entry or os.curdir)
        if path not in out and os.path.isdir(path) and not interpreters(path):
            out.append(path)
    return out


def interpreters(path):
    """Is path the standard library (or in it) or a site-packages?"""
    if os.path.basename(path) in ("site-packages", "dist-packages"):
        return True
    stdlib = {sysconfig.get_path("stdlib"), sysconfig.get_path("platstdlib")}
    return any(os.path.commonpath([path, d]) == d for d in stdlib)
