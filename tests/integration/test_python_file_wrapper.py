"""wsgi.file_wrapper: a regular file goes out with sendfile(2) (no read()
through Python, memory flat), anything else through read(blocksize);
close() is called exactly once either way."""
import hashlib
import os

import requests

from helpers import APPS, RawConn, request


def start(drover):
    return drover("filewrap:app", cwd=APPS)


def counts(session, srv):
    return session.get(srv.url + "/counts", timeout=5).json()


def test_a_20_mb_file_is_sent_intact_with_sendfile_and_flat_memory(
        drover, tmp_path):
    data = os.urandom(20 * 1024 * 1024)
    path = tmp_path / "big.bin"
    path.write_bytes(data)
    srv = start(drover)
    s = requests.Session()  # one connection: one worker answers all
    before = s.get(srv.url + "/memory", timeout=5).json()
    r = s.get(srv.url + "/file?" + str(path), timeout=30, stream=True)
    assert r.headers["Content-Length"] == str(len(data))
    digest = hashlib.sha256()
    for chunk in r.iter_content(256 * 1024):
        digest.update(chunk)
    assert digest.hexdigest() == hashlib.sha256(data).hexdigest()
    after = s.get(srv.url + "/memory", timeout=5).json()
    assert after["pid"] == before["pid"]
    grown = after["VmHWM"] - before["VmHWM"]
    assert grown < 4096, f"peak RSS grew {grown} kB sending a 20 MB file"
    # sendfile: Python's read() was never called; close() once.
    assert counts(s, srv) == {"closed": 1, "reads": 0}


def test_the_file_is_sent_from_its_current_position(drover, tmp_path):
    path = tmp_path / "f.txt"
    path.write_bytes(bytes(range(256)) * 40)
    srv = start(drover)
    s = requests.Session()
    r = s.get(srv.url + "/file-skip10?" + str(path), timeout=5)
    assert r.content == path.read_bytes()[10:]
    assert r.headers["Content-Length"] == str(256 * 40 - 10)
    assert counts(s, srv) == {"closed": 1, "reads": 0}


def test_the_apps_content_length_bounds_the_file(drover, tmp_path):
    path = tmp_path / "f.txt"
    path.write_bytes(b"x" * 5000)
    srv = start(drover)
    s = requests.Session()
    r = s.get(srv.url + "/file-length?" + str(path), timeout=5)
    assert r.content == b"x" * 100
    # The connection is still good for the next request.
    assert counts(s, srv) == {"closed": 1, "reads": 0}


def test_a_file_shorter_than_its_content_length_cuts_the_connection(
        drover, tmp_path):
    path = tmp_path / "short.txt"
    path.write_bytes(b"y" * 50)
    srv = start(drover)
    with RawConn(srv.port) as c:
        c.send(request("GET", "/file-length?" + str(path)))
        resp = c.read_response()
        assert c.closed_by_server()
    assert resp.status == 200
    assert not resp.complete
    assert requests.get(srv.url + "/counts", timeout=5).json()["closed"] == 1


def test_head_sends_the_length_but_no_body(drover, tmp_path):
    path = tmp_path / "f.txt"
    path.write_bytes(b"z" * 12345)
    srv = start(drover)
    with RawConn(srv.port) as c:
        c.send(request("HEAD", "/file?" + str(path)))
        resp = c.read_response(head_request=True)
        assert resp.header("Content-Length") == "12345"
        # Keep-alive holds and no body bytes came: the next response
        # starts right after the head.
        c.send(request("GET", "/counts"))
        nxt = c.read_response()
    assert nxt.status == 200
    assert b'"closed": 1' in nxt.body


def test_a_bytesio_goes_through_read_blocksize(drover):
    srv = start(drover)
    s = requests.Session()
    r = s.get(srv.url + "/bytesio", timeout=5)
    assert r.content == b"0123456789" * 5000
    c = counts(s, srv)
    assert c["closed"] == 1
    assert c["reads"] >= 50000 // 4096


def test_an_empty_file_is_an_empty_body(drover, tmp_path):
    path = tmp_path / "empty"
    path.write_bytes(b"")
    srv = start(drover)
    s = requests.Session()
    r = s.get(srv.url + "/file?" + str(path), timeout=5)
    assert r.status_code == 200 and r.content == b""
    assert r.headers["Content-Length"] == "0"
    assert counts(s, srv) == {"closed": 1, "reads": 0}
