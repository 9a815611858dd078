"""An app for the prefork master's tests: who serves, slow calls, crashes,
any status (/status/404)."""
import ctypes
import os
import time
from urllib.parse import parse_qs

VERSION = "v1"
HELD = []


def app(environ, start_response):
    path = environ["PATH_INFO"]
    query = parse_qs(environ["QUERY_STRING"])
    status = "200 OK"
    if path.startswith("/status/"):
        status = path[len("/status/"):] + " Status"
    elif path == "/sleep":
        seconds = float(query.get("s", ["1"])[0])
        time.sleep(seconds)
    elif path == "/exit":
        os._exit(1)
    elif path == "/segv":
        ctypes.string_at(0)
    elif path == "/grow":   # a leak: memory the worker keeps
        HELD.append(b"x" * (int(query["mb"][0]) << 20))
    body = f"{os.getpid()} {VERSION}".encode()
    start_response(status, [("Content-Type", "text/plain"),
                             ("Content-Length", str(len(body)))])
    return [body]
