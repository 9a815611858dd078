"""Chunked request bodies are de-chunked before the app sees them."""
import pytest

from helpers import (ECHO, RawConn, assert_serves, request,
                     start_unchecked)


def chunked(*pieces, ext="", trailers=b""):
    out = b""
    for p in pieces:
        out += b"%x%s\r\n%s\r\n" % (len(p), ext.encode(), p)
    return out + b"0\r\n" + trailers + b"\r\n"


def post_chunked(body, extra_headers=()):
    return request("POST", "/upload",
                   [("Transfer-Encoding", "chunked"), *extra_headers]) + body


def split_echo(body):
    head, _, payload = body.partition(b"\n\n")
    fields = dict(line.split(": ", 1) for line in head.decode().splitlines()
                  if not line.startswith("header: "))
    return fields, payload


def test_a_chunked_body_reaches_the_app_de_chunked_with_its_length(drover):
    srv = drover(ECHO)
    with RawConn(srv.port) as c:
        c.send(post_chunked(chunked(b"hello ", b"chunked ", b"world")))
        r = c.read_response()
    assert r.status == 200
    fields, payload = split_echo(r.body)
    assert payload == b"hello chunked world"
    assert fields["body_length"] == "19"


def test_chunk_extensions_are_ignored(drover):
    srv = drover(ECHO)
    with RawConn(srv.port) as c:
        c.send(post_chunked(chunked(b"abc", b"defg", ext=";name=value")))
        r = c.read_response()
    assert r.status == 200
    fields, payload = split_echo(r.body)
    assert payload == b"abcdefg"
    assert fields["body_length"] == "7"


def test_chunked_trailers_are_consumed_and_the_next_request_still_parses(drover):
    srv = drover(ECHO)
    with RawConn(srv.port) as c:
        c.send(post_chunked(chunked(b"with trailer",
                                    trailers=b"X-Checksum: 1234\r\n")) +
               request("GET", "/after"))
        first, second = c.read_response(), c.read_response()
    assert first.status == 200
    assert split_echo(first.body)[1] == b"with trailer"
    assert second.status == 200
    assert split_echo(second.body)[0]["path"] == "/after"


def test_a_chunked_body_sent_in_tiny_pieces_is_reassembled(drover):
    srv = drover(ECHO)
    data = post_chunked(chunked(*[bytes([65 + i]) * (i + 1) for i in range(20)]))
    with RawConn(srv.port) as c:
        for i in range(0, len(data), 3):
            c.send(data[i:i + 3])
        r = c.read_response()
    fields, payload = split_echo(r.body)
    expected = b"".join(bytes([65 + i]) * (i + 1) for i in range(20))
    assert payload == expected
    assert fields["body_length"] == str(len(expected))


def test_a_chunked_body_that_grows_past_max_body_size_gets_413(drover):
    srv = drover(ECHO, "--max-body-size", "1000")
    with RawConn(srv.port) as c:
        c.send(post_chunked(chunked(b"x" * 600, b"y" * 600)))
        r = c.read_response()
        assert r.status == 413
        assert r.header("Connection") == "close"
        assert c.closed_by_server(timeout=3)
    assert_serves(srv.port)


def test_large_chunked_trailers_leave_the_request_line_and_headers_intact(
        tmp_path):
    srv = start_unchecked(tmp_path, ECHO)
    try:
        trailers = b"".join(b"X-T%d: %s\r\n" % (i, b"v" * 4000)
                            for i in range(8))
        with RawConn(srv.port) as c:
            c.send(post_chunked(chunked(b"hello", trailers=trailers),
                                [("X-Before", "kept")]))
            r = c.read_response()
        fields, payload = split_echo(r.body)
        assert r.status == 200
        assert fields["method"] == "POST"
        assert fields["path"] == "/upload"
        assert b"header: X-Before: kept\n" in r.body
        assert payload == b"hello"
    finally:
        srv.stop()
    srv.check_sanitizers()
