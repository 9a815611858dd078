"""A test app behind wsgiref.validate.validator, for
test_python_validate.py.

Every WSGIWarning is an error, and every complaint the validator makes
(an exception from the validated app or its iterable, an unraisable one
from IteratorWrapper.__del__ when drover forgets close()) is recorded;
GET /problems (outside the validator) returns them as JSON and clears
them. An exception of type Deliberate is the test's own and not a
problem.

Routes (inside the validator):
  /hello            a one-item list
  /echo             POST: the body, read with read(n)
  /lines            POST: the body's lines, via readline, readlines, iter
  /stream           a generator of 5 chunks, start_response on first next
  /write            start_response's write(), then an empty list
  /file?PATH        wsgi.file_wrapper(open(PATH, 'rb'))
  /empty            204 with no body
  /raise            raises before start_response
  /exc-info         starts 200, fails, restarts as 500 with exc_info
  /not-bytes        yields a str: the validator must complain (self-test)
"""
import json
import sys
import traceback
import warnings
from urllib.parse import unquote
from wsgiref.validate import WSGIWarning, validator

warnings.simplefilter("error", WSGIWarning)

problems = []


class Deliberate(Exception):
    pass


def _record(what):
    problems.append(what)
    sys.stderr.write("VALIDATOR PROBLEM: " + what + "\n")


def _unraisable(u):
    _record("unraisable: " + "".join(
        traceback.format_exception(u.exc_type, u.exc_value,
                                   u.exc_traceback)))


sys.unraisablehook = _unraisable


def _text(start_response, body, status="200 OK"):
    start_response(status, [("Content-Type", "text/plain"),
                            ("Content-Length", str(len(body)))])
    return [body]


def inner(environ, start_response):
    route = environ["PATH_INFO"]
    inp = environ["wsgi.input"]
    if route == "/hello":
        return _text(start_response, b"hello")
    if route == "/echo":
        n = int(environ.get("CONTENT_LENGTH") or 0)
        return _text(start_response, inp.read(n))
    if route == "/lines":
        first = inp.readline()
        second = inp.readline(3)
        some = inp.readlines(1)
        rest = list(inp)
        body = json.dumps([x.decode() for x in [first, second] + some + rest])
        return _text(start_response, body.encode())
    if route == "/stream":
        def gen():
            start_response("200 OK", [("Content-Type", "text/plain")])
            for i in range(5):
                yield b"chunk%d\n" % i
        return gen()
    if route == "/write":
        write = start_response("200 OK", [("Content-Type", "text/plain")])
        write(b"written ")
        write(b"by write()")
        return []
    if route == "/file":
        f = open(unquote(environ["QUERY_STRING"]), "rb")
        start_response("200 OK", [("Content-Type", "application/octet-stream")])
        return environ["wsgi.file_wrapper"](f, 8192)
    if route == "/empty":
        start_response("204 No Content", [])
        return []
    if route == "/raise":
        raise Deliberate("raised before start_response")
    if route == "/exc-info":
        start_response("200 OK", [("Content-Type", "text/plain")])
        try:
            raise Deliberate("failed after start_response")
        except Deliberate:
            environ["wsgi.errors"].write("handled a deliberate failure\n")
            start_response("500 Internal Server Error",
                           [("Content-Type", "text/plain")], sys.exc_info())
        return [b"recovered"]
    if route == "/not-bytes":
        start_response("200 OK", [("Content-Type", "text/plain")])
        return ["text"]
    start_response("404 Not Found", [("Content-Type", "text/plain")])
    return [b"no route"]


checked = validator(inner)


class Recorder:
    """What drover iterates: records the validator's complaints from
    next() and close(), and passes everything else through."""

    def __init__(self, it):
        self.it = it
        self.iter = None

    def __iter__(self):
        return self

    def __next__(self):
        if self.iter is None:
            self.iter = iter(self.it)
        try:
            return next(self.iter)
        except (StopIteration, Deliberate):
            raise
        except BaseException as e:
            _record("while iterating: " + "".join(
                traceback.format_exception(e)))
            raise

    def close(self):
        try:
            self.it.close()
        except BaseException as e:
            _record("in close(): " + "".join(traceback.format_exception(e)))
            raise


def app(environ, start_response):
    if environ["PATH_INFO"] == "/problems":
        body = json.dumps(problems).encode()
        problems.clear()
        start_response("200 OK", [("Content-Type", "application/json")])
        return [body]
    try:
        return Recorder(checked(environ, start_response))
    except Deliberate:
        raise
    except BaseException as e:
        _record("calling the app: " + "".join(traceback.format_exception(e)))
        raise
