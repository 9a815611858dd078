"""Expect: 100-continue: the interim response comes before the body is
sent, and a body that would be refused is refused without it."""
import subprocess

import pytest

from helpers import TESTAPP, RawConn, assert_serves, fnv1a64, request

HEAD = request("POST", "/body-sha",
               [("Expect", "100-continue"), ("Content-Length", "11")])


def test_100_continue_arrives_before_the_body_is_sent(drover):
    srv = drover(TESTAPP)
    with RawConn(srv.port, timeout=3) as c:
        c.send(HEAD)
        interim = c.read_response()
        assert (interim.status, interim.reason) == (100, "Continue")
        assert interim.raw_head == b"HTTP/1.1 100 Continue\r\n\r\n"
        assert c.buf == b"", "the final response came before the body"
        c.send(b"hello world")
        r = c.read_response()
    assert r.status == 200
    assert r.body.startswith(b"length=11 fnv=%016x " % fnv1a64(b"hello world"))


def test_a_client_sending_the_body_without_waiting_gets_100_then_200(drover):
    srv = drover(TESTAPP)
    with RawConn(srv.port) as c:
        c.send(HEAD + b"hello world")
        first = c.read_response()
        second = c.read_response()
    assert first.status in (100, 200)
    final = second if first.status == 100 else first
    assert final.status == 200
    assert final.body.startswith(b"length=11 ")


def test_curl_posting_a_large_body_with_expect_gets_it_through(drover, tmp_path):
    srv = drover(TESTAPP)
    data = bytes(range(256)) * 8192  # 2 MiB
    path = tmp_path / "upload.bin"
    path.write_bytes(data)
    out = subprocess.run(
        ["curl", "-sS", "-v", "--max-time", "10", "-H", "Expect: 100-continue",
         "--data-binary", f"@{path}", f"{srv.url}/body-sha"],
        capture_output=True, timeout=20)
    assert out.returncode == 0, out.stderr
    assert b"HTTP/1.1 100 Continue" in out.stderr
    assert out.stdout.startswith(
        b"length=%d fnv=%016x " % (len(data), fnv1a64(data)))


def test_a_body_over_max_body_size_with_expect_gets_413_without_100(drover):
    srv = drover(TESTAPP, "--max-body-size", "1000")
    with RawConn(srv.port, timeout=3) as c:
        c.send(request("POST", "/body-sha",
                       [("Expect", "100-continue"), ("Content-Length", "5000")]))
        r = c.read_response()
        assert r.status == 413
        assert r.header("Connection") == "close"
        assert c.closed_by_server(timeout=3)
    assert_serves(srv.port)


def test_an_http10_request_with_expect_gets_no_100(drover):
    srv = drover(TESTAPP)
    with RawConn(srv.port, timeout=3) as c:
        c.send(request("POST", "/body-sha",
                       [("Expect", "100-continue"), ("Content-Length", "3")],
                       version="HTTP/1.0") + b"abc")
        r = c.read_response()
    assert r.status == 200
    assert r.body.startswith(b"length=3 ")


@pytest.mark.parametrize("value", ["something-else", "100-continue-please"])
def test_an_unknown_expectation_gets_417(drover, value):
    srv = drover(TESTAPP)
    with RawConn(srv.port, timeout=3) as c:
        c.send(request("POST", "/body-sha",
                       [("Expect", value), ("Content-Length", "3")]))
        r = c.read_response()
        assert r.status == 417
        assert r.header("Connection") == "close"
    assert_serves(srv.port)
