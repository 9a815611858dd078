"""An app for the app-thread tests: slow calls, per-request echoes, and who
served (process and thread)."""
import os
import threading
import time
from urllib.parse import parse_qs


def app(environ, start_response):
    path = environ["PATH_INFO"]
    query = parse_qs(environ["QUERY_STRING"])
    if path == "/sleep":
        time.sleep(float(query.get("s", ["0.05"])[0]))
    elif path == "/stream":
        n = int(query.get("n", ["5"])[0])
        start_response("200 OK", [("Content-Type", "text/plain")])
        return (b"%s %d\n" % (threading.current_thread().name.encode(), i)
                for i in range(n))
    body = " ".join([
        str(os.getpid()),
        threading.current_thread().name,
        str(environ["wsgi.multithread"]),
        environ.get("HTTP_X_ECHO", "-"),
    ]).encode()
    start_response("200 OK", [("Content-Type", "text/plain"),
                              ("Content-Length", str(len(body)))])
    return [body]
