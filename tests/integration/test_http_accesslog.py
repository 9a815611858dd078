"""The access log: gunicorn's default line, custom atoms, and stdout."""
import re
import time
from pathlib import Path

import pytest

from helpers import TESTAPP, RawConn, request


def wait_lines(read, n, timeout=5):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        lines = read().splitlines()
        if len(lines) >= n:
            return lines
        time.sleep(0.02)
    raise AssertionError(f"wanted {n} lines, got: {read()!r}")


DEFAULT_RE = re.compile(
    r'^127\.0\.0\.1 - (?P<user>\S+) \[\d\d/\w{3}/\d{4}:\d\d:\d\d:\d\d [+-]\d{4}\] '
    r'"(?P<request>[^"]*)" (?P<status>\d{3}) (?P<size>\S+) '
    r'"(?P<referer>[^"]*)" "(?P<agent>[^"]*)"$')


def test_the_default_format_logs_one_gunicorn_style_line_per_request(
        drover, tmp_path):
    log = tmp_path / "access.log"
    srv = drover(TESTAPP, "--access-logfile", log)
    with RawConn(srv.port) as c:
        c.send(request("GET", "/status/200?x=1",
                       [("User-Agent", "pytest-agent/1.0"),
                        ("Referer", "http://example.test/")]))
        assert c.read_response().status == 200
        c.send(request("POST", "/status/404", body=b"abc"))
        assert c.read_response().status == 404
        c.send(request("GET", "/status/204",
                       [("Authorization", "Basic YWxpY2U6c2VjcmV0")]))
        assert c.read_response().status == 204
    lines = wait_lines(log.read_text, 3)
    assert len(lines) == 3
    m = [DEFAULT_RE.match(line) for line in lines]
    assert all(m), lines
    assert m[0]["request"] == "GET /status/200?x=1 HTTP/1.1"
    assert (m[0]["status"], m[0]["size"]) == ("200", "11")
    assert m[0]["referer"] == "http://example.test/"
    assert m[0]["agent"] == "pytest-agent/1.0"
    assert m[0]["user"] == "-"
    assert m[1]["request"] == "POST /status/404 HTTP/1.1"
    assert (m[1]["status"], m[1]["size"], m[1]["agent"]) == ("404", "11", "-")
    assert (m[2]["status"], m[2]["size"], m[2]["user"]) == ("204", "-", "alice")


def test_a_custom_format_renders_each_atom(drover, tmp_path):
    log = tmp_path / "custom.log"
    fmt = ("%(m)s %(U)s %(q)s %(s)s %(B)s %({X-Test}i)s %({Content-Type}o)s "
           "%(H)s %(p)s %%")
    srv = drover(TESTAPP, "--access-logfile", log, "--access-logformat", fmt)
    with RawConn(srv.port) as c:
        c.send(request("GET", "/status/201?a=1&b=2", [("X-Test", "hello")]))
        assert c.read_response().status == 201
        c.send(request("GET", "/stream?chunks=2&size=5"))
        assert c.read_response().status == 200
    lines = wait_lines(log.read_text, 2)
    # %(p)s is the pid of the worker that served the request.
    worker = re.search(r"<(\d+)>", lines[0])[1]
    assert worker != str(srv.pid)
    assert worker in Path(f"/proc/{srv.pid}/task/{srv.pid}/children").read_text().split()
    assert lines[0] == (f"GET /status/201 a=1&b=2 201 11 hello text/plain "
                        f"HTTP/1.1 <{worker}> %")
    assert lines[1] == (f"GET /stream chunks=2&size=5 200 10 - "
                        f"application/octet-stream HTTP/1.1 <{worker}> %")


def test_request_controlled_text_is_escaped_in_the_log(drover, tmp_path):
    log = tmp_path / "esc.log"
    srv = drover(TESTAPP, "--access-logfile", log, "--access-logformat",
                 "%({X-Test}i)s|%(a)s")
    with RawConn(srv.port) as c:
        c.send(request("GET", "/status/200",
                       [("X-Test", 'a"b\\c'), ("User-Agent", "ua\xe9")]))
        assert c.read_response().status == 200
    assert wait_lines(log.read_text, 1) == ["a\\x22b\\x5cc|ua\\xe9"]


def test_an_access_logfile_of_dash_writes_to_stdout(drover):
    srv = drover(TESTAPP, "--access-logfile", "-", "--access-logformat",
                 "ACCESS %(m)s %(U)s %(s)s")
    with RawConn(srv.port) as c:
        c.send(request("DELETE", "/status/202"))
        assert c.read_response().status == 202
    assert wait_lines(lambda: srv.stdout, 1) == ["ACCESS DELETE /status/202 202"]
    assert "ACCESS" not in srv.log


def test_a_refused_request_is_logged_with_its_status(drover, tmp_path):
    log = tmp_path / "err.log"
    srv = drover(TESTAPP, "--access-logfile", log, "--access-logformat",
                 "%(s)s %(r)s")
    with RawConn(srv.port) as c:
        c.send(b"GET / HTTP/1.1\r\n\r\n")  # no Host
        assert c.read_response().status == 400
    assert wait_lines(log.read_text, 1)[0].startswith("400 ")
    assert Path(log).read_text().count("\n") == 1


def test_a_drover_generated_500_is_logged_with_its_body_size(drover, tmp_path):
    log = tmp_path / "size.log"
    srv = drover(TESTAPP, "--access-logfile", log, "--access-logformat",
                 "%(s)s %(B)s")
    with RawConn(srv.port) as c:
        c.send(request("GET", "/fail"))
        r = c.read_response()
        assert r.status == 500
    assert wait_lines(log.read_text, 1) == [f"500 {len(r.body)}"]
