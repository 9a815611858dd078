"""Bugs found trying drover as a new user would (issue 13), one test each,
named after the bug, driven through the real binary over raw sockets."""
import json

from helpers import APPS, RawConn, get, request


def test_an_upgrade_header_does_not_break_the_next_request(drover):
    # A WebSocket offer, then the h2c offer `curl --http2` makes over plain
    # HTTP: to a WSGI app both are ordinary requests, and the keep-alive
    # connection goes on.
    srv = drover("envinfo:dump", cwd=APPS)
    with RawConn(srv.port) as c:
        c.send(request("GET", "/ws", {"Connection": "Upgrade",
                                      "Upgrade": "websocket",
                                      "Sec-WebSocket-Version": "13",
                                      "Sec-WebSocket-Key":
                                          "dGhlIHNhbXBsZSBub25jZQ=="}))
        r = c.read_response()
        assert r.status == 200
        assert json.loads(r.body)["HTTP_UPGRADE"] == "websocket"
        c.send(request("GET", "/h2c", {"Connection": "Upgrade, HTTP2-Settings",
                                       "Upgrade": "h2c",
                                       "HTTP2-Settings": "AAMAAABkAARAAAAA"}))
        r = c.read_response()
        assert r.status == 200 and json.loads(r.body)["PATH_INFO"] == "/h2c"
        r = get(srv.port, "/next", conn=c)
        assert r.status == 200 and json.loads(r.body)["PATH_INFO"] == "/next"


def test_head_on_a_streamed_response_claims_no_content_length(drover):
    # Werkzeug answers HEAD on a streamed response with an empty body and
    # no length; "Content-Length: 0" would say the resource is empty.
    srv = drover("flask_app:app", cwd=APPS)
    with RawConn(srv.port) as c:
        c.send(request("HEAD", "/stream"))
        r = c.read_response(head_request=True)
        assert r.status == 200
        assert r.header("Content-Length") is None
        assert r.header("Transfer-Encoding") is None
        # The connection goes on: HEAD has no body to delimit.
        assert get(srv.port, "/", conn=c).body == b"hello from flask"


def test_userinfo_never_reaches_http_host(drover):
    srv = drover("envinfo:dump", cwd=APPS)
    r = get(srv.port, "http://user:pass@example.com:8080/foo")
    env = json.loads(r.body)
    assert env["HTTP_HOST"] == "example.com:8080"
    assert env["SERVER_NAME"] == "example.com"
    assert env["SERVER_PORT"] == "8080" and env["PATH_INFO"] == "/foo"
    # Only RAW_URI keeps the target as sent.
    assert [k for k, v in env.items() if "user" in str(v)] == ["RAW_URI"]


def test_a_bare_lf_after_the_request_line_is_refused(drover):
    srv = drover("envinfo:dump", cwd=APPS)
    with RawConn(srv.port) as c:
        c.send(b"GET / HTTP/1.1\nHost: a\r\n\r\n")
        assert c.read_response().status == 400
    assert get(srv.port, "/").status == 200  # the worker serves on


FAULTY_FRAMING = {
    "http10_with_transfer_encoding":
        b"POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
    "content_length_in_a_trailer":
        b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"1\r\nx\r\n0\r\nContent-Length: 99\r\n\r\n",
    "host_in_a_trailer":
        b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"1\r\nx\r\n0\r\nHost: evil\r\n\r\n",
    "asterisk_for_get": b"GET * HTTP/1.1\r\nHost: a\r\n\r\n",
    "connect": b"CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n",
    "disagreeing_content_types":
        b"POST / HTTP/1.1\r\nHost: a\r\nContent-Type: text/plain\r\n"
        b"Content-Type: application/json\r\nContent-Length: 2\r\n\r\n{}",
    "duplicate_host": b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
    "differing_content_lengths":
        b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\n"
        b"Content-Length: 2\r\n\r\nxx",
    "space_in_transfer_encoding_name":
        b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding : chunked\r\n\r\n"
        b"0\r\n\r\n",
    "chunk_size_overflow":
        b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"fffffffffffffffffff\r\n",
    "bare_cr": b"GET / HTTP/1.1\r\nHost: a\r\nX: a\rb\r\n\r\n",
    "nul_in_a_value": b"GET / HTTP/1.1\r\nHost: a\r\nX: a\x00b\r\n\r\n",
}


def test_faulty_framing_is_refused_and_the_worker_serves_on(drover):
    srv = drover("envinfo:dump", cwd=APPS)
    for name, raw in FAULTY_FRAMING.items():
        with RawConn(srv.port) as c:
            c.send(raw)
            r = c.read_response()
            assert 400 <= r.status < 600, name
            assert r.header("Connection") == "close", name
            # Nothing of the refused request reached the app.
            assert b"PATH_INFO" not in r.body, name
    assert get(srv.port, "/").status == 200
