"""The Flask app of bench/apps called directly, with no server: microseconds
per request of the Python side alone. bench/pylink/run.sh runs it under
/usr/bin/python3 and under CPython embedded with each kind of linking."""
import io
import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                "..", "apps"))
import flask_app  # noqa: E402

app = flask_app.app
environ = {
    "REQUEST_METHOD": "GET", "PATH_INFO": "/json", "QUERY_STRING": "",
    "SERVER_NAME": "localhost", "SERVER_PORT": "80",
    "SERVER_PROTOCOL": "HTTP/1.1", "HTTP_HOST": "localhost",
    "wsgi.url_scheme": "http", "wsgi.input": io.BytesIO(),
    "wsgi.errors": sys.stderr, "wsgi.multithread": False,
    "wsgi.multiprocess": True, "wsgi.run_once": False,
}


def start_response(status, headers, exc_info=None):
    pass


def run(n):
    for _ in range(n):
        body = app(dict(environ), start_response)
        for _ in body:
            pass
        body.close()


run(2000)
best = min(
    (lambda t: (run(5000), time.perf_counter() - t)[1])(time.perf_counter())
    for _ in range(7))
print(f"{best / 5000 * 1e6:.1f}")
