"""drover.serve(): a drop-in for waitress.serve() that runs drover.

A script that ends in

    from waitress import serve
    ...
    if __name__ == "__main__":
        serve(app.server, host="0.0.0.0", port=8050, threads=4)

changes its import to `from drover import serve` and is then served by
drover, a prefork server written in C, instead of waitress. serve() does
not serve in this process. It

1. turns waitress's keywords into drover's command line (_waitress.py:
   host/port/listen/unix_socket -> --bind, threads -> --threads,
   connection_limit -> --worker-connections, channel_timeout ->
   --keep-alive and --io-timeout, ...); a waitress keyword drover has no
   use for is reported on one line of stderr and ignored, an unknown one
   raises ValueError as in waitress. Two keywords are drover's own:
   workers= (default 1: waitress is one process, and apps written for it
   may keep state in globals) and timeout= (default 0: waitress never
   kills a slow request);
2. names the app for drover (_locate.py): "module:attr", or
   "/abs/path/script.py:attr" for a script run as `python script.py`,
   which drover imports under another module name, so the script's
   `if __name__ == "__main__":` block does not run a second time; the
   rest of the script does run again, in drover, so configure the app at
   the top level of the module, not in that block;
3. replaces this process with drover (os.execv of $DROVER_BINARY, else
   `drover` on PATH), with --pythonpath for the directories this process
   imports from and the working directory unchanged.

Without a drover binary (Windows, or none installed) it says so on one
line and calls waitress.serve() with the same keywords when waitress is
installed; otherwise it exits with one line saying how to get drover.

Called inside drover, which happens when a script calls serve() at its
top level rather than in its `__main__` block and drover imports it,
serve() says so on one line and returns: drover is already serving.
"""

import os
import shutil
import sys

from ._locate import app_spec, import_path
from ._waitress import DROVER_ONLY, command_line

__all__ = ["serve"]


def serve(app, **kw):
    """Serve the WSGI app `app` with drover, configured by waitress's
    keywords (and drover's workers= and timeout=). Does not return when
    drover runs."""
    if app is None:
        raise ValueError('The "app" passed to serve() was None.')
    if sys.argv[:1] == ["drover"]:   # drover's interpreter: python_interp.c
        print("drover.serve: called while drover imports the app (not "
              "under `if __name__ == \"__main__\":`); returning",
              file=sys.stderr, flush=True)
        return None
    binary = find_binary()
    if binary is None:
        return serve_with_waitress(app, kw)
    flags, notes = command_line(kw)
    spec = app_spec(app, sys._getframe(1).f_globals)
    for path in import_path():
        flags += ["--pythonpath", path]
    if sys.prefix != sys.base_prefix:
        flags += ["--virtualenv", sys.prefix]
    for note in notes:
        print(note, file=sys.stderr)
    sys.stdout.flush()
    sys.stderr.flush()
    try:
        os.execv(binary, [binary, *flags, spec])
    except OSError as e:
        raise SystemExit(f"drover.serve: cannot run {binary}: "
                         f"{e.strerror}") from None


def find_binary():
    """$DROVER_BINARY, else drover on PATH; None on Windows or when there
    is none."""
    if os.name == "nt":
        return None
    return os.environ.get("DROVER_BINARY") or shutil.which("drover")


def serve_with_waitress(app, kw):
    try:
        import waitress
    except ImportError:
        raise SystemExit(
            "drover.serve: no drover binary (set DROVER_BINARY or put drover "
            "on PATH) and waitress is not installed: build drover, or on "
            "Windows run it under WSL2 or Docker (drover's "
            "docs/deployment.md)") from None
    why = ("drover does not run on Windows" if os.name == "nt" else
           "no drover binary (DROVER_BINARY unset, none on PATH)")
    print(f"drover.serve: {why}; serving with waitress instead",
          file=sys.stderr, flush=True)
    kw = {k: v for k, v in kw.items() if k not in DROVER_ONLY}
    return waitress.serve(app, **kw)
