"""Python WSGI apps through embedded CPython: environ, input, response
iterables, errors, and a real Flask app, over real sockets."""
import http.client
import json
from pathlib import Path

import requests

from conftest import raw_request, run_drover, status_of
from helpers import APPS, rss_kb


def start(drover, spec, *args):
    return drover(spec, *args, cwd=APPS)


def test_environ_carries_the_pep_3333_keys(drover):
    srv = start(drover, "wsgi_basic:environ_app")
    r = requests.get(srv.url + "/a%20b/%E2%82%AC?x=1&y=%20", timeout=5,
                     headers={"X-Twice": "1"})
    env = r.json()
    assert env["REQUEST_METHOD"] == "GET"
    assert env["SCRIPT_NAME"] == ""
    # percent-decoded bytes, as a latin-1 str
    assert env["PATH_INFO"] == "/a b/" + "\u20ac".encode().decode("latin-1")
    assert env["QUERY_STRING"] == "x=1&y=%20"
    assert env["RAW_URI"] == "/a%20b/%E2%82%AC?x=1&y=%20"
    assert env["SERVER_PROTOCOL"] == "HTTP/1.1"
    assert env["SERVER_PORT"] == str(srv.port)
    assert env["REMOTE_ADDR"] == "127.0.0.1"
    assert env["HTTP_X_TWICE"] == "1"
    assert env["wsgi.url_scheme"] == "http"
    assert env["wsgi.version"] == [1, 0]
    assert env["wsgi.multiprocess"] is False  # one worker
    assert env["wsgi.run_once"] is False
    assert env["wsgi.input_terminated"] is True


def test_repeated_headers_join_and_underscore_names_are_dropped(drover):
    srv = start(drover, "wsgi_basic:environ_app")
    resp = raw_request(srv.port, b"GET / HTTP/1.1\r\nHost: h:81\r\n"
                       b"X-A: 1\r\nX-A: 2\r\nX_A: spoof\r\n"
                       b"Content-Type: text/x\r\nConnection: close\r\n\r\n")
    env = json.loads(resp.split(b"\r\n\r\n", 1)[1])
    assert env["HTTP_X_A"] == "1, 2"
    assert env["CONTENT_TYPE"] == "text/x"
    assert "HTTP_CONTENT_TYPE" not in env
    assert env["SERVER_NAME"] == "h" and env["SERVER_PORT"] == "81"


def test_wsgi_input_reads_lines_and_never_past_the_body(drover):
    srv = start(drover, "wsgi_basic:input_app")
    r = requests.post(srv.url, data=b"line one\nXYline two\nlast", timeout=5)
    assert r.json() == {"first": "line one\n", "two": "XY",
                        "rest": ["line two\n", "last"], "tail": ""}


def test_wsgi_input_works_for_a_spooled_chunked_body(drover):
    srv = start(drover, "wsgi_basic:input_app", "--body-buffer-size", "16")
    def chunks():
        yield b"first line\n"
        yield b"ZZ" + b"x" * 5000 + b"\n"
        yield b"end"
    r = requests.post(srv.url, data=chunks(), timeout=5)
    got = r.json()
    assert got["first"] == "first line\n" and got["two"] == "ZZ"
    assert got["rest"] == ["x" * 5000 + "\n", "end"]


def test_an_app_that_raises_gets_500_and_a_traceback_in_the_log(drover):
    srv = start(drover, "wsgi_basic:raises")
    r = requests.get(srv.url, timeout=5)
    assert r.status_code == 500
    assert "deliberate failure" not in r.text
    srv.wait_log(r"ValueError: deliberate failure for the test")
    assert "Traceback" in srv.log
    assert requests.get(srv.url, timeout=5).status_code == 500  # still serving


def test_str_instead_of_bytes_is_a_500_not_a_crash(drover):
    srv = start(drover, "wsgi_basic:returns_str")
    assert requests.get(srv.url, timeout=5).status_code == 500
    srv.wait_log(r"TypeError: response body items must be bytes")


def test_header_injection_is_refused_with_500(drover):
    srv = start(drover, "wsgi_basic:bad_header")
    resp = raw_request(srv.port, b"GET / HTTP/1.1\r\nHost: x\r\n"
                       b"Connection: close\r\n\r\n")
    assert status_of(resp) == 500
    assert b"pwned" not in resp


def test_an_interim_status_is_refused_and_the_next_answer_not_shifted(drover):
    """Bug: "100 Continue" from start_response went out as the final
    response, so the client took the next request's answer for it."""
    srv = start(drover, "wsgi_basic:router")
    resp = raw_request(srv.port, b"GET /interim_status HTTP/1.1\r\nHost: x"
                       b"\r\n\r\nGET /close_count HTTP/1.1\r\nHost: x\r\n"
                       b"Connection: close\r\n\r\n")
    assert status_of(resp) == 500, resp
    assert b"100 Continue" not in resp
    assert resp.count(b"HTTP/1.1 ") == 2
    srv.wait_log(r"ValueError: invalid status '100 Continue'")


def test_streamed_iterable_is_sent_and_closed_exactly_once(drover):
    srv = start(drover, "wsgi_basic:router")
    for _ in range(3):
        r = requests.get(srv.url + "/streams", timeout=5)
        assert r.text == "a" * 10 + "b" * 10 + "c" * 10
    assert requests.get(srv.url + "/close_count", timeout=5).text == "3"


def test_failure_mid_stream_cuts_the_response_and_still_closes(drover):
    srv = start(drover, "wsgi_basic:router")
    conn = http.client.HTTPConnection("127.0.0.1", srv.port, timeout=5)
    conn.request("GET", "/fails_mid_stream")
    resp = conn.getresponse()
    assert resp.status == 200
    try:
        resp.read()
        complete = True
    except http.client.IncompleteRead:
        complete = False
    assert not complete, "a failure mid-stream must not look like success"
    srv.wait_log(r"RuntimeError: failure mid-stream")
    assert requests.get(srv.url + "/close_count", timeout=5).text == "1"


def test_generator_may_call_start_response_on_first_next(drover):
    srv = start(drover, "wsgi_basic:generator_starts_late")
    r = requests.get(srv.url, timeout=5)
    assert r.status_code == 201 and r.headers["X-Late"] == "yes"
    assert r.text == "late start"


def test_app_set_transfer_encoding_is_handled_by_drover(drover):
    srv = start(drover, "wsgi_basic:sets_transfer_encoding")
    resp = raw_request(srv.port, b"GET / HTTP/1.1\r\nHost: x\r\n"
                       b"Connection: close\r\n\r\n")
    head, body = resp.split(b"\r\n\r\n", 1)
    assert head.lower().count(b"transfer-encoding") == 0
    assert b"content-length: 16" in head.lower()
    assert body == b"framed by drover"


def test_factory_spec_calls_the_factory_with_literal_args(drover):
    srv = start(drover, "wsgi_basic:factory('howdy')")
    assert requests.get(srv.url, timeout=5).text == "howdy"


def test_import_errors_stop_the_start_with_one_summary_line():
    for spec, expect in [("no_such_module:app", "ModuleNotFoundError"),
                         ("wsgi_basic:nothing_here", "LookupError"),
                         ("wsgi_basic:not_callable", "not callable")]:
        r = run_drover("--bind", "127.0.0.1:0", spec, cwd=APPS)
        assert r.returncode == 2, (spec, r.stderr)
        last = r.stderr.strip().splitlines()[-1]
        assert last.startswith("drover: cannot load app") and expect in last, last


def test_flask_app_runs_unchanged(drover):
    srv = start(drover, "flask_app:app")
    s = requests.Session()
    assert s.get(srv.url + "/", timeout=5).text == "hello from flask"
    r = s.post(srv.url + "/json", json={"a": [1, 2]}, timeout=5)
    assert r.json() == {"received": {"a": [1, 2]},
                        "length": len(json.dumps({"a": [1, 2]}))}
    assert s.post(srv.url + "/form", data={"k": "v"}, timeout=5).json() == {"k": "v"}
    up = s.post(srv.url + "/upload", files={"file": ("f.txt", b"12345678" * 1000)},
                timeout=5).json()
    assert up == {"name": "f.txt", "size": 8000, "head": "12345678"}
    r = s.get(srv.url + "/go", allow_redirects=False, timeout=5)
    assert r.status_code == 302 and r.headers["Location"].endswith("/")
    assert [s.get(srv.url + "/count", timeout=5).text for _ in range(3)] == ["1", "2", "3"]
    r = s.get(srv.url + "/stream", timeout=5)
    assert r.text == "".join(f"line {i}\n" for i in range(100))
    r = s.get(srv.url + "/file", timeout=5)
    assert r.content == b"x" * 100000
    r = s.get(srv.url + "/missing", timeout=5)
    assert r.status_code == 404 and r.json() == {"error": "not here"}
    r = s.get(srv.url + "/boom", timeout=5)
    assert r.status_code == 500
    srv.wait_log(r"RuntimeError: flask view failed")


def pipelined(port, n, batch=100):
    """n keep-alive GETs, `batch` pipelined at a time, on one connection."""
    import socket
    req = b"GET /x HTTP/1.1\r\nHost: t\r\n\r\n"
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        for _ in range(n // batch):
            s.sendall(req * batch)
            seen = 0
            data = b""
            while seen < batch:
                data += s.recv(1 << 20)
                seen = data.count(b"HTTP/1.1 200")
            assert seen == batch


def test_requests_do_not_leak_the_start_response_cycle(drover):
    """Bug: start_response's bound write() referenced its own context
    object, a cycle on a type without GC: ~130 bytes leaked per request."""
    srv = start(drover, "wsgi_basic:environ_app")
    if "libasan" in Path(f"/proc/{srv.pid}/maps").read_text():
        import pytest
        pytest.skip("ASan's quarantine keeps freed memory: RSS says nothing")
    pipelined(srv.port, 5000)           # warm up allocator and caches
    before = rss_kb(srv.pid)
    pipelined(srv.port, 30000)
    grown = rss_kb(srv.pid) - before
    assert grown < 1500, f"RSS grew {grown} kB over 30000 requests"
