"""Persistent connections: reuse, HTTP/1.0 opt-in, Connection: close, and
the idle timeout between requests."""
import http.client

import pytest

from helpers import (ECHO, TESTAPP, RawConn, echoed, request,
                     time_until_closed)


def test_several_requests_on_one_http_client_connection_reuse_its_socket(drover):
    srv = drover(ECHO)
    conn = http.client.HTTPConnection("127.0.0.1", srv.port, timeout=5)
    ports = []
    for i in range(3):
        conn.request("GET", f"/n/{i}")
        resp = conn.getresponse()
        body = resp.read()
        assert resp.status == 200
        assert resp.getheader("Connection") is None
        assert echoed(body, "path") == f"/n/{i}"
        ports.append((conn.sock.getsockname()[1], echoed(body, "remote_port")))
        if i == 0:
            first_sock = conn.sock
        assert conn.sock is first_sock, "http.client had to reconnect"
    # drover saw every request come from the same client port.
    assert len(set(ports)) == 1
    assert int(ports[0][1]) == ports[0][0]
    conn.close()


def test_http10_request_with_keep_alive_header_keeps_the_connection(drover):
    srv = drover(TESTAPP)
    with RawConn(srv.port) as c:
        for _ in range(2):
            c.send(request("GET", "/status/200", [("Connection", "keep-alive")],
                           version="HTTP/1.0"))
            r = c.read_response()
            assert r.version == "HTTP/1.0"
            assert r.status == 200 and r.body == b"status 200\n"
            assert r.header("Connection") == "keep-alive"
            assert r.header("Content-Length") == "11"
        assert not c.closed_by_server(timeout=0.3)


def test_http10_request_without_keep_alive_is_closed_after_the_response(drover):
    srv = drover(TESTAPP)
    with RawConn(srv.port) as c:
        c.send(request("GET", "/status/200", version="HTTP/1.0"))
        r = c.read_response()
        assert r.status == 200 and r.body == b"status 200\n"
        assert r.header("Connection") == "close"
        assert c.closed_by_server(timeout=2)


def test_http11_request_with_connection_close_is_closed_after_the_response(drover):
    srv = drover(TESTAPP)
    with RawConn(srv.port) as c:
        c.send(request("GET", "/status/200", [("Connection", "close")]))
        r = c.read_response()
        assert r.status == 200
        assert r.header("Connection") == "close"
        assert c.closed_by_server(timeout=2)


def test_three_pipelined_requests_are_answered_in_order(drover):
    srv = drover(ECHO)
    with RawConn(srv.port) as c:
        c.send(request("GET", "/first?a=1") +
               request("POST", "/second", body=b"payload-two") +
               request("GET", "/third", [("Connection", "close")]))
        answers = [c.read_response() for _ in range(3)]
        assert [echoed(r.body, "path") for r in answers] == \
            ["/first", "/second", "/third"]
        assert echoed(answers[0].body, "query") == "a=1"
        assert answers[1].body.endswith(b"\n\npayload-two")
        assert echoed(answers[1].body, "method") == "POST"
        assert [r.status for r in answers] == [200, 200, 200]
        assert c.closed_by_server(timeout=2)


def test_pipelined_requests_split_at_odd_places_are_all_answered(drover):
    srv = drover(ECHO)
    data = b"".join(request("GET", f"/p{i}") for i in range(5))
    with RawConn(srv.port) as c:
        for i in range(0, len(data), 7):
            c.send(data[i:i + 7])
        paths = [echoed(c.read_response().body, "path") for _ in range(5)]
    assert paths == [f"/p{i}" for i in range(5)]


def test_pipelined_responses_go_out_together_and_none_waits_for_a_partial_next(
        drover):
    # The responses to pipelined requests wait for one another to leave in
    # one write; the last complete one's must not wait for a request still
    # being sent (the client may want it first).
    srv = drover(ECHO)
    with RawConn(srv.port) as c:
        c.send(request("GET", "/a") + request("GET", "/b") + b"GET /c HT")
        assert echoed(c.read_response().body, "path") == "/a"
        assert echoed(c.read_response().body, "path") == "/b"
        c.send(b"TP/1.1\r\nHost: test\r\n\r\n")
        assert echoed(c.read_response().body, "path") == "/c"


def test_a_pipelined_expect_100_continue_follows_the_held_response(drover):
    # Request 2 waits for its 100 Continue: it must go out, after
    # response 1, before the body comes.
    srv = drover(ECHO)
    with RawConn(srv.port) as c:
        c.send(request("GET", "/one") +
               b"POST /two HTTP/1.1\r\nHost: test\r\nContent-Length: 4\r\n"
               b"Expect: 100-continue\r\n\r\n")
        assert echoed(c.read_response().body, "path") == "/one"
        while b"\r\n\r\n" not in c.buf:
            c._fill()
        assert c.buf.startswith(b"HTTP/1.1 100 Continue\r\n\r\n")
        c.buf = c.buf[len(b"HTTP/1.1 100 Continue\r\n\r\n"):]
        c.send(b"body")
        r = c.read_response()
        assert echoed(r.body, "path") == "/two"
        assert r.body.endswith(b"\n\nbody")


def test_an_idle_keep_alive_connection_is_closed_after_the_keep_alive_timeout(drover):
    srv = drover(TESTAPP, "--keep-alive", "1")
    with RawConn(srv.port) as c:
        c.send(request("GET", "/status/200"))
        r = c.read_response()
        assert r.status == 200 and r.header("Connection") is None
        elapsed, data = time_until_closed(c.sock, 4)
    assert data == b""
    assert elapsed is not None, "idle connection was never closed"
    assert 0.7 <= elapsed <= 2.5, elapsed


def test_keep_alive_zero_closes_every_connection_after_one_response(drover):
    srv = drover(TESTAPP, "--keep-alive", "0")
    with RawConn(srv.port) as c:
        c.send(request("GET", "/status/200"))
        r = c.read_response()
        assert r.status == 200
        assert r.header("Connection") == "close"
        assert c.closed_by_server(timeout=2)


def test_a_500_to_an_http10_keep_alive_request_confirms_keep_alive(drover):
    srv = drover(TESTAPP)
    with RawConn(srv.port) as c:
        c.send(request("GET", "/fail", [("Connection", "keep-alive")],
                       version="HTTP/1.0"))
        r = c.read_response()
        assert r.status == 500
        c.send(request("GET", "/status/200", [("Connection", "keep-alive")],
                       version="HTTP/1.0"))
        assert c.read_response().status == 200  # drover kept it open...
        assert r.header("Connection") == "keep-alive"  # ...without saying so
