"""ASGI 3 over HTTP/1.x (pyapps/asgi_raw.py): the http scope's keys, request
bodies as http.request events, http.disconnect, response framing (chunked,
HEAD, keep-alive, pipelining, 100-continue), app failures before and after
the response starts, backpressure against a slow reader, pathsend,
concurrency inside one worker's loop, and which apps --interface accepts
(ASGI 2 apps are refused)."""
import hashlib
import os
import re
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests
from conftest import run_drover

from helpers import (APPS, RawConn, asgi, children, get, marker, request,
                     rss_kb, stream_body, wait_started)


def test_the_http_scope_carries_the_asgi_3_keys(drover, tmp_path):
    srv = asgi(drover, tmp_path)
    with RawConn(srv.port) as c:
        c.send(request("GET", "/scope/a%20b/%E2%82%AC?x=1&y=%20",
                       [("X-Order", "1"), ("X-Other", "MiXed Case"),
                        ("X-Order", "2")]))
        r = c.read_response()
        port = c.sock.getsockname()[1]
    assert r.status == 200
    scope = r.json()["scope"]
    assert scope["type"] == "http"
    assert scope["asgi"]["version"] == "3.0"
    assert re.fullmatch(r"2\.\d+", scope["asgi"]["spec_version"])
    assert scope["http_version"] == "1.1"
    assert scope["method"] == "GET"
    assert scope["scheme"] == "http"
    assert scope["path"] == "/scope/a b/\u20ac"   # decoded, then UTF-8
    assert scope["raw_path"] == {"bytes": "/scope/a%20b/%E2%82%AC"}
    assert scope["query_string"] == {"bytes": "x=1&y=%20"}
    assert scope["root_path"] == ""
    assert list(scope["client"]) == ["127.0.0.1", port]
    assert list(scope["server"]) == ["127.0.0.1", srv.port]
    headers = [[n["bytes"], v["bytes"]] for n, v in scope["headers"]]
    assert headers[0] == ["host", "test"]
    # lowercased names, values as sent, repeats kept in order
    assert [h for h in headers if h[0].startswith("x-")] == [
        ["x-order", "1"], ["x-other", "MiXed Case"], ["x-order", "2"]]


def test_http_1_0_and_the_method_are_in_the_scope(drover, tmp_path):
    srv = asgi(drover, tmp_path)
    with RawConn(srv.port) as c:
        c.send(request("DELETE", "/scope", version="HTTP/1.0"))
        r = c.read_response()
    scope = r.json()["scope"]
    assert (scope["http_version"], scope["method"]) == ("1.0", "DELETE")


def test_script_name_becomes_the_root_path(drover, tmp_path):
    srv = asgi(drover, tmp_path, "--script-name", "/api")
    scope = requests.get(srv.url + "/api/scope", timeout=5).json()["scope"]
    assert scope["root_path"] == "/api"
    # ASGI: path is the full path; PATH_INFO is path less root_path.
    assert scope["path"] == "/api/scope"
    assert scope["raw_path"] == {"bytes": "/api/scope"}


def test_a_trusted_proxy_sets_the_client_and_scheme(drover, tmp_path):
    proxied = {"X-Forwarded-For": "203.0.113.7", "X-Forwarded-Proto": "https"}
    srv = asgi(drover, tmp_path)  # default forwarded_allow_ips: loopback
    scope = requests.get(srv.url + "/scope", headers=proxied,
                         timeout=5).json()["scope"]
    assert scope["client"][0] == "203.0.113.7"
    assert scope["scheme"] == "https"
    srv = asgi(drover, tmp_path, "--forwarded-allow-ips", "10.0.0.1")
    scope = requests.get(srv.url + "/scope", headers=proxied,
                         timeout=5).json()["scope"]
    assert scope["client"][0] == "127.0.0.1"
    assert scope["scheme"] == "http"


def test_a_small_body_arrives_whole_and_ends_with_more_body_false(
        drover, tmp_path):
    srv = asgi(drover, tmp_path)
    got = requests.post(srv.url + "/body", data=b"hello body",
                        timeout=5).json()
    assert got["size"] == 10
    assert got["sha256"] == hashlib.sha256(b"hello body").hexdigest()
    assert [more for _, more in got["events"]] == \
        [True] * (len(got["events"]) - 1) + [False]
    # No body at all: one http.request, empty, more_body False.
    got = requests.get(srv.url + "/body", timeout=5).json()
    assert got["events"] == [[0, False]]


def test_a_large_body_arrives_in_several_http_request_events(drover,
                                                             tmp_path):
    srv = asgi(drover, tmp_path)
    body = os.urandom(4 << 20)
    got = requests.post(srv.url + "/body", data=body, timeout=10).json()
    assert got["size"] == len(body)
    assert got["sha256"] == hashlib.sha256(body).hexdigest()
    events = got["events"]
    assert len(events) >= 2, events
    assert sum(size for size, _ in events) == len(body)
    assert [more for _, more in events] == [True] * (len(events) - 1) + [False]


def test_a_chunked_request_body_reaches_the_app_dechunked(drover, tmp_path):
    srv = asgi(drover, tmp_path)
    parts = [b"first,", os.urandom(100_000), b",last"]
    got = requests.post(srv.url + "/body", data=iter(parts), timeout=5).json()
    assert got["size"] == sum(map(len, parts))
    assert got["sha256"] == hashlib.sha256(b"".join(parts)).hexdigest()


def test_drovers_request_limits_hold_for_asgi_apps(drover, tmp_path):
    srv = asgi(drover, tmp_path, "--max-body-size", "1000")
    r = requests.post(srv.url + "/body", data=b"x" * 1000, timeout=5)
    assert r.json()["size"] == 1000
    r = requests.post(srv.url + "/body", data=b"x" * 1001, timeout=5)
    assert r.status_code == 413


def test_expect_100_continue_is_answered_before_the_body(drover, tmp_path):
    srv = asgi(drover, tmp_path)
    with RawConn(srv.port) as c:
        c.send(request("POST", "/echo-body", [("Content-Length", "5"),
                                               ("Expect", "100-continue")]))
        _, status, _, _, _ = c.read_head()
        assert status == 100
        c.send(b"12345")
        r = c.read_response()
    assert (r.status, r.body) == (200, b"12345")


def test_keep_alive_and_pipelined_requests_are_answered_in_order(drover,
                                                                 tmp_path):
    srv = asgi(drover, tmp_path)
    with RawConn(srv.port) as c:
        c.send(request("GET", "/scope?n=1") + request("GET", "/scope?n=2"))
        first, second = c.read_response(), c.read_response()
        c.send(request("GET", "/scope?n=3"))
        third = c.read_response()
        port = c.sock.getsockname()[1]
    queries = [r.json()["scope"]["query_string"]["bytes"]
               for r in (first, second, third)]
    assert queries == ["n=1", "n=2", "n=3"]
    # one connection: the same client port each time
    assert {r.json()["scope"]["client"][1] for r in (first, second, third)} \
        == {port}


def test_a_response_without_content_length_is_chunked(drover, tmp_path):
    srv = asgi(drover, tmp_path)
    with RawConn(srv.port) as c:
        r = get(srv.port, "/stream?chunks=5&size=1000", conn=c)
        assert r.header("Transfer-Encoding") == "chunked"
        assert r.header("Content-Length") is None
        assert r.body == stream_body(5, 1000)
        assert get(srv.port, "/fixed", conn=c).body == b"hello world"
    # HTTP/1.0 has no chunked encoding: the end of the body is the close.
    with RawConn(srv.port) as c:
        c.send(request("GET", "/stream?chunks=3&size=7", version="HTTP/1.0"))
        r = c.read_response()
        assert r.header("Transfer-Encoding") is None
        assert r.body == stream_body(3, 7)


def test_head_gets_the_headers_and_no_body(drover, tmp_path):
    srv = asgi(drover, tmp_path)
    with RawConn(srv.port) as c:
        c.send(request("HEAD", "/fixed"))
        r = c.read_response(head_request=True)
        assert r.status == 200 and r.header("Content-Length") == "11"
        # no stray body: the next response on the connection is intact
        r = get(srv.port, "/fixed", conn=c)
        assert (r.status, r.body) == (200, b"hello world")


def test_an_exception_before_the_response_is_a_500_and_a_traceback(
        drover, tmp_path):
    srv = asgi(drover, tmp_path)
    r = requests.get(srv.url + "/raise-before", timeout=5)
    assert r.status_code == 500
    assert "deliberate" not in r.text
    srv.wait_log(r"RuntimeError: asgi deliberate failure before start")
    assert "Traceback" in srv.log
    assert requests.get(srv.url + "/fixed", timeout=5).text == "hello world"


@pytest.mark.parametrize("content_length", ["1", "0"])
def test_an_exception_after_the_start_cuts_the_response(drover, tmp_path,
                                                        content_length):
    srv = asgi(drover, tmp_path)
    with RawConn(srv.port) as c:
        c.send(request("GET", f"/raise-after?cl={content_length}"))
        r = c.read_response()
    assert r.status == 200
    assert not r.complete, "a failure mid-response must not look complete"
    assert r.body == b"part1"
    srv.wait_log(r"RuntimeError: asgi deliberate failure after start")
    assert requests.get(srv.url + "/fixed", timeout=5).text == "hello world"


def test_40_sleeping_requests_run_at_once_on_2_workers(drover, tmp_path):
    srv = asgi(drover, tmp_path, "--workers", "2")
    wait_started(srv, tmp_path, 2)
    with ThreadPoolExecutor(40) as pool:
        t0 = time.monotonic()
        results = list(pool.map(lambda _: get(srv.port, "/sleep?s=0.5"),
                                range(40)))
        elapsed = time.monotonic() - t0
    assert [r.status for r in results] == [200] * 40
    assert all(r.text.endswith("slept 0.5") for r in results)
    assert elapsed < 1.5, f"40 x 0.5 s took {elapsed:.2f} s"


def test_a_client_gone_mid_request_is_an_http_disconnect(drover, tmp_path):
    srv = asgi(drover, tmp_path)
    c = RawConn(srv.port)
    c.send(request("POST", "/wait-disconnect?id=gone", body=b"payload"))
    marker(tmp_path, "started-gone")
    t0 = time.monotonic()
    c.close()
    got = marker(tmp_path, "disconnect-gone")
    assert got["type"] == "http.disconnect"
    assert time.monotonic() - t0 < 2


def test_receive_after_the_response_is_complete_is_an_http_disconnect(
        drover, tmp_path):
    srv = asgi(drover, tmp_path)
    with RawConn(srv.port) as c:   # the connection stays open meanwhile
        r = get(srv.port, "/after-complete?id=done", conn=c)
        assert r.body == b"done"
        got = marker(tmp_path, "after-done")
        assert got["type"] == "http.disconnect"
        assert got["elapsed"] < 1.0
        assert get(srv.port, "/fixed", conn=c).body == b"hello world"


def test_a_slow_reader_holds_the_app_back_instead_of_growing_the_worker(
        drover, tmp_path):
    srv = asgi(drover, tmp_path, "--workers", "1")
    (worker,) = wait_started(srv, tmp_path, 1)
    for _ in range(3):
        assert get(srv.port, "/fixed").status == 200
    before = rss_kb(worker)
    mib = 64
    with RawConn(srv.port, rcvbuf=64 * 1024, timeout=10) as c:
        c.send(request("GET", f"/big?mb={mib}&id=slow"))
        assert c.read_head()[1] == 200
        time.sleep(1.0)   # the client reads nothing more
        sent = requests.get(srv.url + "/progress?id=slow", timeout=5).json()
        grown = rss_kb(worker) - before
        time.sleep(0.5)
        again = requests.get(srv.url + "/progress?id=slow", timeout=5).json()
        # send() waits for the client: the app is held at a few MiB
        assert sent["sent"] is not None and sent["sent"] < 16 << 20, sent
        assert again == sent, "the app kept sending to a stalled client"
        assert grown < 24 * 1024, f"worker grew {grown} KiB, reader stalled"
        assert rss_kb(worker) - before < 24 * 1024
        # and the whole body still arrives once the client reads again
        total = mib << 20
        data = bytearray(c.buf)
        while len(data) < total:
            chunk = c.sock.recv(1 << 20)
            assert chunk, f"closed after {len(data)} of {total} bytes"
            data += chunk
    assert data == stream_body(mib * 16, 64 * 1024)


def test_pathsend_sends_the_file(drover, tmp_path):
    srv = asgi(drover, tmp_path)
    path = tmp_path / "payload.bin"
    content = os.urandom(300_000)
    path.write_bytes(content)
    scope = requests.get(srv.url + "/scope", timeout=5).json()["scope"]
    assert "http.response.pathsend" in scope.get("extensions", {})
    with RawConn(srv.port) as c:
        r = get(srv.port, f"/pathsend?path={path}", conn=c)
        assert r.status == 200
        assert r.header("Content-Length") == str(len(content))
        assert r.body == content
        assert get(srv.port, "/fixed", conn=c).body == b"hello world"


@pytest.mark.parametrize("loop", ["auto", "asyncio"])
def test_the_app_runs_on_asyncio(drover, tmp_path, loop):
    srv = asgi(drover, tmp_path, "--loop", loop)
    got = requests.get(srv.url + "/loop", timeout=5).json()
    assert got["loop"].startswith("asyncio."), got


def test_loop_uvloop_is_refused_with_its_reason():
    # drover drives asyncio from its C loop through a selector; uvloop's
    # loop takes none, so it is refused at start like any bad setting.
    r = run_drover("--loop", "uvloop", "asgi_raw:app", cwd=APPS)
    assert r.returncode == 2
    assert r.stderr.count("\n") == 1, r.stderr
    assert "--loop" in r.stderr and "uvloop" in r.stderr


@pytest.mark.parametrize("spec, path, body", [
    ("asgi_raw:app", "/fixed", b"hello world"),          # coroutine function
    ("asgi_raw:instance_app", "/kind", b"instance"),    # async __call__
    ("master_app:app", "/", None),                      # WSGI still WSGI
])
def test_interface_auto_tells_asgi_3_from_wsgi(drover, spec, path, body):
    srv = drover(spec, cwd=APPS)
    r = get(srv.port, path)
    assert r.status == 200
    if body is None:
        assert r.text.split()[1] == "v1"
        assert int(r.text.split()[0]) in children(srv.pid)
    else:
        assert r.body == body


def test_interface_asgi_serves_an_asgi_3_app(drover, tmp_path):
    srv = asgi(drover, tmp_path, "--interface", "asgi")
    assert get(srv.port, "/fixed").body == b"hello world"


@pytest.mark.parametrize("spec", ["asgi_raw:asgi2_class",
                                  "asgi_raw:asgi2_double_callable"])
@pytest.mark.parametrize("interface", [[], ["--interface", "asgi"]])
def test_an_asgi_2_app_is_refused_at_start(drover, spec, interface):
    srv = drover(*interface, spec, cwd=APPS, ready=False)
    try:
        status = srv.proc.wait(10)
    except subprocess.TimeoutExpired:
        pytest.fail(f"drover served an ASGI 2 app:\n{srv.log}")
    assert status != 0
    # one line that says why ("asgi2_class" in the spec does not count)
    lines = [line for line in srv.log.splitlines()
             if re.search(r"\bASGI[ -]?2\b", line, re.I)]
    assert len(lines) == 1, srv.log
    assert "Traceback" not in srv.log
