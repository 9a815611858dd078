"""The access log: gunicorn's default line, custom atoms, stdout, and the
JSON format (one object per line, whatever bytes the client sends)."""
import re
from pathlib import Path

import pytest

from helpers import TESTAPP, RawConn, json_lines, request, wait_lines


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


# --- the JSON format ------------------------------------------------------

ISO_TIME_RE = re.compile(
    r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}[+-]\d\d:\d\d$")
JSON_KEYS = {"time": str, "remote_addr": str, "method": str, "path": str,
             "query": str, "status": int, "bytes": int, "duration": float,
             "user_agent": str, "referer": str, "request_id": str}
# Quotes, backslashes, a tab, bytes of invalid UTF-8 (a latin-1 e-acute, a
# stray continuation byte, a truncated sequence, an overlong '/') and a
# line separator: everything llhttp lets through in a header value.
HOSTILE_UA = (b'evil"agent\\ \t{"status":999} \xe9 \x80 \xe2\x82 \xc0\xaf '
              b'\xe2\x80\xa8 caf\xc3\xa9')


def test_the_json_format_logs_one_valid_object_per_request_under_mixed_traffic(
        drover, tmp_path):
    log = tmp_path / "access.json"
    srv = drover(TESTAPP, "--access-logfile", log,
                 "--access-log-format", "json")
    sent = {}  # request id -> what the log line must say
    for i in range(120):
        method = "POST" if i % 3 == 0 else "GET"
        target, status = [("/status/200", 200), ("/status/404", 404),
                          ("/fail", 500), ("/write?bytes=100", 200),
                          ("/nowhere/%ff%22x\"y\\z", 404)][i % 5]
        query = f"i={i}&q=a%20b" if i % 2 else ""
        full = target + ("&" if "?" in target else "?") + query \
            if query else target
        rid = f"mixed-{i}"
        headers = [f"X-Request-ID: {rid}".encode()]
        ua = HOSTILE_UA if i % 4 == 0 else f"pytest/{i}".encode()
        headers.append(b"User-Agent: " + ua)
        if i % 7 == 0:
            headers.append(b"Referer: http://ref.test/\xff\"q")
        body = b"x" * i if method == "POST" else b""
        raw = (f"{method} {full} HTTP/1.1\r\nHost: t\r\n".encode()
               + b"".join(h + b"\r\n" for h in headers)
               + (f"Content-Length: {len(body)}\r\n".encode() if body else b"")
               + b"\r\n" + body)
        with RawConn(srv.port) as c:
            c.send(raw)
            r = c.read_response()
        assert r.status == status, (i, r)
        assert r.header("X-Request-ID") == rid
        path, _, q = full.partition("?")
        sent[rid] = {"method": method, "path": path, "query": q,
                     "status": status, "bytes": len(r.body),
                     "user_agent": ua.decode("utf-8", "replace"),
                     "referer": "http://ref.test/\ufffd\"q" if i % 7 == 0
                     else ""}
    entries = json_lines(log, 120)
    assert len(entries) == 120
    for e in entries:
        assert set(e) == set(JSON_KEYS), e
        for key, kind in JSON_KEYS.items():
            assert type(e[key]) is kind, (key, e)
        assert ISO_TIME_RE.match(e["time"]), e["time"]
        assert e["remote_addr"] == "127.0.0.1"
        assert 0 <= e["duration"] < 10
        want = sent.pop(e["request_id"])
        assert {k: e[k] for k in want} == want
    assert not sent


def test_json_lines_survive_requests_drover_refuses(drover, tmp_path):
    """Bytes llhttp refuses (control bytes in a header, raw non-ASCII in
    the path) end in a 400 that is logged as valid JSON too."""
    log = tmp_path / "refused.json"
    srv = drover(TESTAPP, "--access-logfile", log,
                 "--access-log-format", "json")
    for raw in (b"GET /status/200 HTTP/1.1\r\nHost: t\r\n"
                b"User-Agent: a\x01b\x1b[31m\x7f\"\\\r\n\r\n",
                b"GET /\xff\xc3(\"x HTTP/1.1\r\nHost: t\r\n\r\n",
                b"GET / HTTP/1.1\r\n\r\n"):
        with RawConn(srv.port) as c:
            c.send(raw)
            r = c.read_response()
        assert r.status == 400
        assert re.fullmatch(r"[0-9a-f]{32}", r.header("X-Request-ID"))
    entries = json_lines(log, 3)
    for e in entries:
        assert set(e) == set(JSON_KEYS)
        assert e["status"] == 400
        assert re.fullmatch(r"[0-9a-f]{32}", e["request_id"])
    # a head that parsed, refused for what it lacks, is logged with it
    assert [e["method"] for e in entries] == ["", "", "GET"]
    assert entries[2]["path"] == "/"


def test_the_request_id_atom_and_gunicorns_header_spelling_log_the_id(
        drover, tmp_path):
    log = tmp_path / "ids.log"
    srv = drover(TESTAPP, "--access-logfile", log, "--access-logformat",
                 "%(R)s %({X-Request-ID}i)s %(s)s")
    with RawConn(srv.port) as c:
        c.send(request("GET", "/status/200", [("X-Request-ID", "given-1")]))
        assert c.read_response().status == 200
        c.send(request("GET", "/status/200", [("X-Request-ID", "bad id")]))
        made = c.read_response().header("X-Request-ID")
    lines = wait_lines(log.read_text, 2)
    assert lines[0] == "given-1 given-1 200"
    assert re.fullmatch(r"[0-9a-f]{32}", made)
    assert lines[1] == f"{made} {made} 200"
