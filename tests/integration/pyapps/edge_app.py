"""WSGI apps at the edges of PEP 3333, one per path (see test_python_edges)."""
import itertools
import sys


def endless(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    return (b"x" for _ in itertools.count())


def endless_with_length(environ, start_response):
    start_response("200 OK", [("Content-Length", "5")])
    return (b"abc" for _ in itertools.count())


def restart_after_write(environ, start_response):
    write = start_response("200 OK", [("Content-Type", "text/plain")])
    write(b"PARTIAL-SECRET-")
    try:
        raise RuntimeError("failed half way")
    except RuntimeError:
        start_response("500 Internal Server Error",
                       [("Content-Type", "text/plain")], sys.exc_info())
    return [b"error page"]


def bad_restart(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    try:
        raise RuntimeError("failed")
    except RuntimeError:
        try:
            start_response("500 Internal Server Error",
                           [("X-Bad", "a\nb")], sys.exc_info())
        except ValueError:
            pass
    return [b"body without a valid response"]


def raises_big(environ, start_response):
    big = bytearray(1 << 20)  # noqa: F841 (held by the frame)
    raise RuntimeError("fails holding a megabyte")


def last_exception(environ, start_response):
    body = repr(getattr(sys, "last_value", None)).encode()
    start_response("200 OK", [("Content-Length", str(len(body)))])
    return [body]


def readline_empty(environ, start_response):
    line = environ["wsgi.input"].readline()
    body = repr(line).encode()
    start_response("200 OK", [("Content-Length", str(len(body)))])
    return [body]


def control_char_header(environ, start_response):
    start_response("200 OK", [("X-Ctl", "a\x01b")])
    return [b"never sent"]


def no_exception_info(environ, start_response):
    write = start_response("200 OK", [("Content-Type", "text/plain")])
    write(b"x" * (1 << 20))  # past what drover holds back: the head is out
    start_response("500 Internal Server Error", [], (None, None, None))
    return [b"unreachable"]


def app(environ, start_response):
    name = environ["PATH_INFO"].strip("/")
    return globals()[name](environ, start_response)
