"""Plain WSGI apps used by test_python_wsgi.py."""
import json


def environ_app(environ, start_response):
    """Answers with the CGI-style environ keys and the wsgi.* flags."""
    data = {k: v for k, v in environ.items() if isinstance(v, str)}
    for k in ("wsgi.multithread", "wsgi.multiprocess", "wsgi.run_once",
              "wsgi.input_terminated"):
        data[k] = environ[k]
    data["wsgi.version"] = list(environ["wsgi.version"])
    body = json.dumps(data).encode()
    start_response("200 OK", [("Content-Type", "application/json"),
                              ("Content-Length", str(len(body)))])
    return [body]


def input_app(environ, start_response):
    """Exercises wsgi.input's read, readline and iteration."""
    inp = environ["wsgi.input"]
    first = inp.readline()
    two = inp.read(2)
    rest = list(inp)
    tail = inp.read()
    body = json.dumps({"first": first.decode("latin-1"),
                       "two": two.decode("latin-1"),
                       "rest": [r.decode("latin-1") for r in rest],
                       "tail": tail.decode("latin-1")}).encode()
    start_response("200 OK", [("Content-Type", "application/json")])
    return [body]


def raises(environ, start_response):
    raise ValueError("deliberate failure for the test")


def returns_str(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    return ["not bytes"]


def bad_header(environ, start_response):
    start_response("200 OK", [("X-Evil", "a\r\nSet-Cookie: pwned=1")])
    return [b"never"]


class Closing:
    closed = 0

    def __init__(self, chunks, fail_at=None):
        self.chunks, self.fail_at = chunks, fail_at

    def __iter__(self):
        for i, c in enumerate(self.chunks):
            if i == self.fail_at:
                raise RuntimeError("failure mid-stream")
            yield c

    def close(self):
        Closing.closed += 1


def close_count(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [str(Closing.closed).encode()]


def streams(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    return Closing([b"a" * 10, b"b" * 10, b"c" * 10])


def fails_mid_stream(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    return Closing([b"a" * 10, b"b" * 10, b"c" * 10], fail_at=2)


def generator_starts_late(environ, start_response):
    """start_response is only called on the first next()."""
    start_response("201 Created", [("X-Late", "yes")])
    yield b"late "
    yield b"start"


def interim_status(environ, start_response):
    start_response("100 Continue", [])
    return [b""]


def sets_transfer_encoding(environ, start_response):
    start_response("200 OK", [("Transfer-Encoding", "chunked"),
                              ("Connection", "keep-alive")])
    return [b"framed by drover"]


def factory(greeting="hi"):
    def app(environ, start_response):
        start_response("200 OK", [])
        return [greeting.encode()]
    return app


not_callable = 42


def router(environ, start_response):
    """/<name>/... calls the app function <name> (one process, many apps)."""
    name = environ["PATH_INFO"].strip("/").split("/")[0]
    return globals()[name](environ, start_response)
