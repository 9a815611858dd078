"""Response body shapes, right and wrong, for test_python_bodies.py.
GET /<name> calls the function <name>; /closes answers how many times a
body's close() was called since the last /closes (/closes_so_far too,
without starting the count again)."""

closes = 0


class Body:
    """An iterable with close(), yielding `items`; raises at `fail_at`."""

    def __init__(self, items, fail_at=None):
        self.items, self.fail_at = items, fail_at

    def __iter__(self):
        for i, item in enumerate(self.items):
            if i == self.fail_at:
                raise RuntimeError("deliberate failure mid-stream")
            yield item

    def close(self):
        global closes
        closes += 1


def _start(start_response, *extra):
    start_response("200 OK", [("Content-Type", "text/plain"), *extra])


def one_item(environ, start_response):
    _start(start_response)
    return [b"x" * (1024 * 1024)]


def several_items(environ, start_response):
    _start(start_response)
    return (b"abc", b"", b"defg", b"h" * 70000)


def bytes_then_str(environ, start_response):
    _start(start_response)
    return [b"x" * 100000, "a str"]


def bare_str(environ, start_response):
    _start(start_response)
    return "a str, not a list of bytes"


def bare_bytes(environ, start_response):
    _start(start_response)
    return b"bytes, not a list of bytes"


def returns_none(environ, start_response):
    _start(start_response)
    return None


def no_start_response(environ, start_response):
    return []


def generator_str_first(environ, start_response):
    _start(start_response)
    yield "a str"


def generator_str_later(environ, start_response):
    _start(start_response)
    yield b"x" * 100000
    yield "a str"


def raises_mid_stream(environ, start_response):
    _start(start_response)
    return Body([b"a" * 100000, b"b" * 100000, b"c" * 100000], fail_at=2)


def closes_after_stream(environ, start_response):
    _start(start_response)
    return Body([b"a" * 1000, b"b" * 1000])


def writes_while_iterated(environ, start_response):
    """write() from inside the returned iterable, as old apps do."""
    write = start_response("200 OK", [("Content-Type", "text/plain")])

    def body():
        write(b"w1 ")
        yield b"y1 "
        write(b"w2 ")
        yield b"y2"
    return body()


def raises_first(environ, start_response):
    _start(start_response)
    return Body([b"never"], fail_at=0)


def str_first_in_body(environ, start_response):
    _start(start_response)
    return Body(["a str"])


def empty_body(environ, start_response):
    _start(start_response)
    return Body([b"", b""])


def longer_than_its_length(environ, start_response):
    _start(start_response, ("Content-Length", "5"))
    return Body([b"abc", b"defgh", b"never pulled"])


def endless(environ, start_response):
    """More than any test reads: 640 MiB in 64 KiB chunks."""
    _start(start_response)
    return Body([b"x" * 65536] * 10240)


def sets_te_list(environ, start_response):
    _start(start_response, ("Transfer-Encoding", "chunked"))
    return [b"framed by drover"]


def sets_te_stream(environ, start_response):
    _start(start_response, ("Transfer-Encoding", "chunked"))
    return Body([b"part one, ", b"part two"])


def sets_te_gzip(environ, start_response):
    _start(start_response, ("Transfer-Encoding", "gzip, chunked"))
    return Body([b"not ", b"gzipped"])


def hello(environ, start_response):
    _start(start_response)
    return [b"hello"]


def app(environ, start_response):
    global closes
    name = environ["PATH_INFO"].strip("/")
    if name == "closes":
        n, closes = closes, 0
        _start(start_response)
        return [str(n).encode()]
    if name == "closes_so_far":
        _start(start_response)
        return [str(closes).encode()]
    return globals()[name](environ, start_response)
