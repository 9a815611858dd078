"""Request bodies: held in memory up to --body-buffer-size, spooled to an
unlinked temporary file past it, identical either way."""
import functools
import os
import random

import pytest

from helpers import ECHO, TESTAPP, RawConn, assert_serves, fnv1a64, request

SIZE = 5 * 1024 * 1024


@functools.lru_cache(maxsize=1)
def big_body():
    rnd = random.Random(1234)
    body = rnd.randbytes(SIZE)
    return body, fnv1a64(body)


def post_sha(port, body, chunk=256 * 1024):
    with RawConn(port, timeout=20) as c:
        c.send(request("POST", "/body-sha",
                       [("Content-Length", str(len(body)))]))
        for i in range(0, len(body), chunk):
            c.send(body[i:i + chunk])
        r = c.read_response()
    assert r.status == 200, r
    return dict(kv.split("=") for kv in r.body.decode().split())


@pytest.mark.parametrize("buffer,in_memory", [("1024", "0"), ("16m", "1")],
                         ids=["spooled", "in-memory"])
def test_a_5mb_body_reaches_the_app_byte_for_byte(drover, tmp_path, buffer,
                                                  in_memory):
    spool = tmp_path / "spool"
    spool.mkdir()
    srv = drover(TESTAPP, "--body-buffer-size", buffer,
                 env={"TMPDIR": str(spool)})
    body, digest = big_body()
    got = post_sha(srv.port, body)
    assert got["length"] == str(SIZE)
    assert got["body_length"] == str(SIZE)
    assert got["fnv"] == "%016x" % digest
    assert got["memory"] == in_memory
    # A spooled body lives in an unlinked file: nothing is left behind.
    assert os.listdir(spool) == []


def test_a_chunked_body_past_the_buffer_is_spooled_and_intact(drover):
    srv = drover(TESTAPP, "--body-buffer-size", "1024")
    body = bytes(range(256)) * 400
    chunks = b"".join(b"%x\r\n%s\r\n" % (len(body[i:i + 5000]),
                                         body[i:i + 5000])
                      for i in range(0, len(body), 5000))
    with RawConn(srv.port) as c:
        c.send(request("POST", "/body-sha",
                       [("Transfer-Encoding", "chunked")]) + chunks +
               b"0\r\n\r\n")
        r = c.read_response()
    got = dict(kv.split("=") for kv in r.body.decode().split())
    assert got == {"length": str(len(body)), "fnv": "%016x" % fnv1a64(body),
                   "memory": "0", "body_length": str(len(body))}


def test_spooled_bodies_on_one_connection_do_not_mix(drover):
    srv = drover(TESTAPP, "--body-buffer-size", "100")
    bodies = [b"a" * 5000, b"b" * 50, b"c" * 300]
    with RawConn(srv.port) as c:
        c.send(b"".join(request("POST", "/body-sha", body=b) for b in bodies))
        answers = [c.read_response() for _ in bodies]
    for b, r in zip(bodies, answers):
        got = dict(kv.split("=") for kv in r.body.decode().split())
        assert got["length"] == str(len(b))
        assert got["fnv"] == "%016x" % fnv1a64(b)


def test_a_body_of_exactly_max_body_size_is_accepted(drover):
    srv = drover(TESTAPP, "--max-body-size", "1000")
    with RawConn(srv.port) as c:
        c.send(request("POST", "/body-sha", body=b"z" * 1000))
        r = c.read_response()
    assert r.status == 200
    assert r.body.startswith(b"length=1000 ")


def test_a_body_that_cannot_be_spooled_gets_500_and_the_server_serves_on(
        drover, tmp_path):
    srv = drover(TESTAPP, "--body-buffer-size", "10",
                 env={"TMPDIR": str(tmp_path / "does-not-exist")})
    with RawConn(srv.port) as c:
        c.send(request("POST", "/body-sha", body=b"q" * 100))
        r = c.read_response()
        assert r.status == 500
        assert r.header("Connection") == "close"
    assert_serves(srv.port)


def test_the_echo_app_sees_a_small_body_in_memory(drover):
    srv = drover(ECHO)
    with RawConn(srv.port) as c:
        c.send(request("PUT", "/x", body=b"small body"))
        r = c.read_response()
    assert r.body.endswith(b"\n\nsmall body")
    assert b"body_length: 10\n" in r.body
