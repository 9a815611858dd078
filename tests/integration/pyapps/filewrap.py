"""wsgi.file_wrapper apps for test_python_file_wrapper.py.

/file?PATH          a regular file through wsgi.file_wrapper
/file-skip10?PATH   the same after reading its first 10 bytes
/file-length?PATH   the same with the app's Content-Length: 100
/bytesio            a BytesIO through wsgi.file_wrapper
/counts             {"closed": N, "reads": N} since the last /counts
/memory             this process's VmRSS and VmHWM in kB
"""
import io
import json
import os
from urllib.parse import unquote

counts = {"closed": 0, "reads": 0}


class Counting:
    """A file-like over a real file that counts close() and read() calls
    (no __del__, so only an explicit close() counts)."""

    def __init__(self, f):
        self.f = f

    def fileno(self):
        return self.f.fileno()

    def tell(self):
        return self.f.tell()

    def read(self, n=-1):
        counts["reads"] += 1
        return self.f.read(n)

    def close(self):
        counts["closed"] += 1
        self.f.close()


def memory():
    out = {}
    with open("/proc/self/status") as f:
        for line in f:
            key, _, value = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                out[key] = int(value.split()[0])
    out["pid"] = os.getpid()
    return out


def json_reply(start_response, data):
    body = json.dumps(data).encode()
    start_response("200 OK", [("Content-Type", "application/json")])
    return [body]


def app(environ, start_response):
    route = environ["PATH_INFO"]
    wrapper = environ["wsgi.file_wrapper"]
    path = unquote(environ["QUERY_STRING"])
    if route == "/counts":
        data = dict(counts)
        counts.update(closed=0, reads=0)
        return json_reply(start_response, data)
    if route == "/memory":
        return json_reply(start_response, memory())
    if route == "/bytesio":
        start_response("200 OK", [("Content-Type", "text/plain")])
        # BytesIO.fileno() raises: drover must fall back to read(4096).
        return wrapper(Counting(io.BytesIO(b"0123456789" * 5000)), 4096)
    f = Counting(open(path, "rb"))
    headers = [("Content-Type", "application/octet-stream")]
    if route == "/file-skip10":
        f.f.read(10)
    if route == "/file-length":
        headers.append(("Content-Length", "100"))
    start_response("200 OK", headers)
    return wrapper(f)
