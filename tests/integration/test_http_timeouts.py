"""Timeouts while reading a request: a silent connection is dropped, a
half-sent head or body gets 408."""
import socket
import time

from helpers import TESTAPP, RawConn, assert_serves, time_until_closed


def test_a_connection_that_sends_nothing_is_closed_after_the_header_timeout(
        drover):
    srv = drover(TESTAPP, "--header-timeout", "1")
    with socket.create_connection(("127.0.0.1", srv.port)) as s:
        elapsed, data = time_until_closed(s, 5)
    assert elapsed is not None, "silent connection never closed"
    # The kernel holds a silent connection up to 1 s before a worker sees
    # it (TCP_DEFER_ACCEPT); then the header timeout runs.
    assert 0.7 <= elapsed <= 4, elapsed
    assert data == b""
    assert_serves(srv.port)


def test_a_half_sent_head_gets_408_then_close(drover):
    srv = drover(TESTAPP, "--header-timeout", "1")
    with RawConn(srv.port, timeout=5) as c:
        c.send(b"GET /status/200 HTTP/1.1\r\nHost: t\r\n")
        start = time.monotonic()
        r = c.read_response()
        elapsed = time.monotonic() - start
        assert r.status == 408
        assert r.header("Connection") == "close"
        assert r.header("Content-Length") == str(len(r.body))
        assert c.closed_by_server(timeout=3)
    assert 0.7 <= elapsed <= 3, elapsed
    assert_serves(srv.port)


def test_the_header_timeout_runs_from_the_first_byte_not_per_byte(drover):
    """A client dribbling its head one byte at a time is still cut off."""
    srv = drover(TESTAPP, "--header-timeout", "1")
    head = b"GET /status/200 HTTP/1.1\r\nHost: t\r\nX-Slow: " + b"s" * 100
    with RawConn(srv.port, timeout=5) as c:
        start = time.monotonic()
        got = b""
        for byte in head:
            try:
                c.send(bytes([byte]))
            except (BrokenPipeError, ConnectionResetError):
                break
            if time.monotonic() - start > 4:
                break
            c.sock.settimeout(0.05)
            try:
                got += c.sock.recv(4096)
            except socket.timeout:
                pass
            if got:
                break
        elapsed = time.monotonic() - start
    assert got.startswith(b"HTTP/1.1 408 "), got
    assert elapsed <= 3, elapsed


def test_a_stalled_body_gets_408_after_the_io_timeout(drover):
    srv = drover(TESTAPP, "--io-timeout", "1")
    with RawConn(srv.port, timeout=5) as c:
        c.send(b"POST /body-sha HTTP/1.1\r\nHost: t\r\nContent-Length: 10\r\n"
               b"\r\nabc")
        start = time.monotonic()
        r = c.read_response()
        elapsed = time.monotonic() - start
        assert r.status == 408
        assert c.closed_by_server(timeout=3)
    assert 0.7 <= elapsed <= 3, elapsed
    assert_serves(srv.port)


def test_a_client_that_stops_reading_is_dropped_after_the_io_timeout(drover):
    srv = drover(TESTAPP, "--io-timeout", "1")
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 16 * 1024)
    s.connect(("127.0.0.1", srv.port))
    with s:
        s.sendall(b"GET /stream?chunks=2000&size=65536 HTTP/1.1\r\nHost: t\r\n\r\n")
        time.sleep(2.5)  # never read: drover's writes stall
        s.settimeout(3)
        total = 0
        try:
            while True:
                d = s.recv(1 << 20)
                if not d:
                    break
                total += len(d)
        except ConnectionResetError:
            pass
    assert total < 10 * 1024 * 1024, "drover kept writing to a stalled client"
    assert_serves(srv.port)
