"""Listening addresses: IPv6 loopback and unix sockets."""
import os
import socket

import pytest

from helpers import ECHO, TESTAPP, RawConn, request


def has_ipv6_loopback():
    if not socket.has_ipv6:
        return False
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as s:
            s.bind(("::1", 0))
        return True
    except OSError:
        return False


@pytest.mark.skipif(not has_ipv6_loopback(), reason="no IPv6 loopback")
def test_binding_the_ipv6_loopback_serves_requests(drover):
    srv = drover(ECHO, "--bind", "[::1]:0")
    assert srv.urls[0].startswith("http://[::1]:")
    with RawConn(srv.port, host="::1") as c:
        c.send(request("GET", "/v6"))
        r = c.read_response()
    assert r.status == 200
    assert b"\nremote_addr: ::1\n" in r.body
    assert b"\nserver_addr: ::1\n" in r.body


def test_binding_a_unix_socket_serves_requests(drover, tmp_path):
    path = tmp_path / "drover.sock"
    srv = drover(ECHO, "--bind", f"unix:{path}")
    assert srv.urls == [f"unix:{path}"]
    with RawConn(unix=path) as c:
        c.send(request("GET", "/over-unix") + request("GET", "/again"))
        r1, r2 = c.read_response(), c.read_response()
    assert r1.status == r2.status == 200
    assert b"\npath: /over-unix\n" in r1.body
    assert b"\nremote_addr: \n" in r1.body
    assert b"\npath: /again\n" in r2.body
    assert srv.stop() == 0
    assert not path.exists(), "socket file left behind at exit"


def test_a_stale_unix_socket_file_is_replaced(drover, tmp_path):
    path = tmp_path / "stale.sock"
    old = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    old.bind(str(path))
    old.close()  # the file stays, nobody listens: stale
    assert path.exists()
    srv = drover(TESTAPP, "--bind", f"unix:{path}")
    with RawConn(unix=path) as c:
        c.send(request("GET", "/status/200"))
        assert c.read_response().status == 200
    srv.stop()


def test_a_live_unix_socket_is_not_stolen(drover, tmp_path):
    path = tmp_path / "live.sock"
    live = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    live.bind(str(path))
    live.listen(1)
    try:
        srv = drover(TESTAPP, "--bind", f"unix:{path}", ready=False)
        assert srv.proc.wait(10) != 0
        assert "unix:" in srv.log and str(path) in srv.log
        # The other server still owns its socket.
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.connect(str(path))
    finally:
        live.close()
        if os.path.exists(path):
            os.unlink(path)
