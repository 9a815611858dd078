"""Reports where it was loaded from, for the loading tests."""
import os
import sys


def app(environ, start_response):
    import json
    body = json.dumps({
        "cwd": os.getcwd(),
        "path": sys.path[:6],
        "env": os.environ.get("DROVER_TEST_VALUE"),
        "script_name": environ["SCRIPT_NAME"],
        "path_info": environ["PATH_INFO"],
        "argv": sys.argv,
        "asyncio": "asyncio" in sys.modules,
    }).encode()
    start_response("200 OK", [("Content-Type", "application/json")])
    return [body]


def dump(environ, start_response):
    """The whole environ as JSON: str values as they are, the rest as
    their repr (test_python_environ.py)."""
    import json
    data = {k: v if isinstance(v, str) else repr(v)
            for k, v in environ.items()}
    data["wsgi.version"] = list(environ["wsgi.version"])
    for k in ("wsgi.multithread", "wsgi.multiprocess", "wsgi.run_once",
              "wsgi.input_terminated"):
        data[k] = environ.get(k)
    data["wsgi.input.read"] = environ["wsgi.input"].read().decode("latin-1")
    data["wsgi.errors.write"] = callable(
        getattr(environ["wsgi.errors"], "write", None))
    data["wsgi.file_wrapper.callable"] = callable(
        environ.get("wsgi.file_wrapper"))
    body = json.dumps(data).encode()
    start_response("200 OK", [("Content-Type", "application/json"),
                              ("Content-Length", str(len(body)))])
    return [body]
