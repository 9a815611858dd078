"""Every refusal of malformed or over-limit bytes: the right status, a
Content-Length, Connection: close, the connection closed, and the same
server still serving the next client."""
import email.utils
import time

import pytest

from helpers import DATE_RE, TESTAPP, RawConn, assert_serves

LIMITS = ["--limit-request-line", "200", "--limit-request-fields", "10",
          "--limit-request-field-size", "300", "--max-body-size", "1000"]

OK = b"GET / HTTP/1.1\r\nHost: t\r\n"

CASES = {
    "garbage request line": (b"GARBAGE\r\n\r\n", 400),
    "binary noise": (b"\x00\x01\x02\x03 / HTTP/1.1\r\n\r\n", 400),
    "request line over --limit-request-line":
        (b"GET /" + b"a" * 300 + b" HTTP/1.1\r\nHost: t\r\n\r\n", 400),
    "bare LF line endings": (b"GET / HTTP/1.1\nHost: t\n\n", 400),
    "HTTP/1.1 without Host": (b"GET / HTTP/1.1\r\nAccept: */*\r\n\r\n", 400),
    "two Host headers": (OK + b"Host: u\r\n\r\n", 400),
    "Content-Length with Transfer-Encoding":
        (b"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\n"
         b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400),
    "non-numeric Content-Length":
        (b"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: abc\r\n\r\n", 400),
    "negative Content-Length":
        (b"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: -1\r\n\r\n", 400),
    "two different Content-Lengths":
        (b"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 1\r\n"
         b"Content-Length: 2\r\n\r\nab", 400),
    "whitespace before the colon": (OK + b"X-Bad : 1\r\n\r\n", 400),
    "malformed chunk size":
        (b"POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n"
         b"zz\r\nhello\r\n0\r\n\r\n", 400),
    "Content-Length over --max-body-size":
        (b"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 5000\r\n\r\n", 413),
    "chunked body growing past --max-body-size":
        (b"POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n"
         b"300\r\n" + b"x" * 0x300 + b"\r\n300\r\n" + b"y" * 0x300 +
         b"\r\n0\r\n\r\n", 413),
    "Expect other than 100-continue":
        (OK + b"Expect: something-else\r\nContent-Length: 1\r\n\r\nx", 417),
    "more headers than --limit-request-fields":
        (OK + b"".join(b"X-H%d: v\r\n" % i for i in range(12)) + b"\r\n", 431),
    "one header over --limit-request-field-size":
        (OK + b"X-Big: " + b"v" * 400 + b"\r\n\r\n", 431),
    "Transfer-Encoding gzip":
        (b"POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: gzip\r\n\r\n", 501),
    "Transfer-Encoding gzip, chunked":
        (b"POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: gzip, chunked"
         b"\r\n\r\n0\r\n\r\n", 501),
    "HTTP/2.0 request line": (b"GET / HTTP/2.0\r\nHost: t\r\n\r\n", 505),
    "HTTP/1.2 request line": (b"GET / HTTP/1.2\r\nHost: t\r\n\r\n", 505),
    "HTTP/3.0 request line": (b"GET / HTTP/3.0\r\nHost: t\r\n\r\n", 505),
}


@pytest.mark.parametrize("case", list(CASES), ids=list(CASES))
def test_malformed_request_gets_its_error_status_and_the_worker_keeps_serving(
        drover, case):
    data, status = CASES[case]
    srv = drover(TESTAPP, *LIMITS)
    with RawConn(srv.port, timeout=3) as c:
        c.send(data)
        r = c.read_response()
        assert r.status == status, r
        assert r.version == "HTTP/1.1"
        assert r.complete
        assert r.header("Content-Length") == str(len(r.body))
        assert r.header("Connection") == "close"
        assert r.header("Server") == "drover"
        assert DATE_RE.match(r.header("Date"))
        assert r.header("Transfer-Encoding") is None
        assert c.closed_by_server(timeout=3), "error response left it open"
    assert_serves(srv.port)


def test_an_error_after_a_good_pipelined_request_answers_the_good_one_first(
        drover):
    srv = drover(TESTAPP, *LIMITS)
    with RawConn(srv.port, timeout=3) as c:
        c.send(b"GET /status/201 HTTP/1.1\r\nHost: t\r\n\r\nGARBAGE\r\n\r\n")
        good, bad = c.read_response(), c.read_response()
        assert good.status == 201 and good.body == b"status 201\n"
        assert bad.status == 400
        assert c.closed_by_server(timeout=3)


def test_a_request_line_just_under_the_limit_is_served(drover):
    srv = drover(TESTAPP, *LIMITS)
    # "GET " + target + " HTTP/1.1" is exactly 200 bytes.
    target = b"/status/200?" + b"p" * (200 - 4 - 9 - 12)
    with RawConn(srv.port, timeout=3) as c:
        c.send(b"GET " + target + b" HTTP/1.1\r\nHost: t\r\n\r\n")
        r = c.read_response()
    assert r.status == 200


def test_exactly_limit_request_fields_headers_are_accepted(drover):
    srv = drover(TESTAPP, *LIMITS)
    headers = b"".join(b"X-H%d: v\r\n" % i for i in range(9))  # + Host = 10
    with RawConn(srv.port, timeout=3) as c:
        c.send(b"GET /status/200 HTTP/1.1\r\nHost: t\r\n" + headers + b"\r\n")
        r = c.read_response()
    assert r.status == 200


def test_the_error_date_header_is_current(drover):
    srv = drover(TESTAPP)
    with RawConn(srv.port, timeout=3) as c:
        c.send(b"GARBAGE\r\n\r\n")
        r = c.read_response()
    when = email.utils.parsedate_to_datetime(r.header("Date"))
    assert abs(when.timestamp() - time.time()) < 5


def test_limit_request_field_size_0_lifts_the_field_limit_but_caps_the_head(
        drover):
    # 0 means "no limit on one field" (gunicorn's meaning); the whole head
    # stays bounded by the field count times the default field size, so a
    # client cannot make a worker buffer an endless header.
    srv = drover(TESTAPP, "--limit-request-field-size", "0",
                 "--limit-request-fields", "10")
    with RawConn(srv.port, timeout=3) as c:
        c.send(b"GET /status/200 HTTP/1.1\r\nHost: t\r\nX-Big: " +
               b"v" * 20000 + b"\r\n\r\n")
        assert c.read_response().status == 200
    with RawConn(srv.port, timeout=3) as c:
        c.send(OK + b"X-Big: " + b"v" * 200000 + b"\r\n\r\n")
        r = c.read_response()
        assert r.status == 431
        assert c.closed_by_server(timeout=3)
    assert_serves(srv.port)
