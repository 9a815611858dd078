"""Request ids: a sane X-Request-ID is kept, anything else is replaced by
an id drover makes (32 hex digits), and the one id reaches the app (native
view, WSGI environ), the response and the access log."""
import re

import pytest

from helpers import (APPS, TESTAPP, RawConn, get, json_lines, request,
                     wait_lines)

HEX32 = re.compile(r"[0-9a-f]{32}")


def rid(port, headers=(), target="/request-id", conn=None):
    """(the id the native app saw, the response's X-Request-ID header)."""
    r = get(port, target, list(headers), conn=conn)
    assert r.status == 200, r
    return r.body.decode("latin-1"), r.header("X-Request-ID")


def test_a_sane_request_id_is_echoed_and_seen_by_the_app(drover):
    srv = drover(TESTAPP)
    for given in ("abc", "3f2c9a1e-7b1d-4c1e-9d0e-6a5b4c3d2e1f",
                  "x" * 128, "!#$%&'*+-.^_`|~:/=?@[]{}<>\"\\"):
        seen, echoed = rid(srv.port, [("X-Request-ID", given)])
        assert seen == given and echoed == given


def test_without_one_drover_makes_a_32_hex_digit_id_unique_across_workers(
        drover):
    srv = drover(TESTAPP, "--workers", "2")
    ids = set()
    for i in range(20):
        with RawConn(srv.port) as c:
            for _ in range(10):
                seen, echoed = rid(srv.port, conn=c)
                assert HEX32.fullmatch(seen) and echoed == seen
                ids.add(seen)
    assert len(ids) == 200


@pytest.mark.parametrize("insane", [
    "x" * 129,          # too long
    "a\tb",             # a control byte (the only one llhttp lets through)
    "two words",        # a space
    "caf\xe9",          # a byte above 0x7E
    "",                 # empty
], ids=["too-long", "tab", "space", "non-ascii", "empty"])
def test_an_insane_request_id_is_replaced(drover, insane):
    srv = drover(TESTAPP)
    seen, echoed = rid(srv.port, [f"X-Request-ID: {insane}"])
    assert HEX32.fullmatch(seen), seen
    assert echoed == seen


def test_only_the_first_x_request_id_counts(drover):
    srv = drover(TESTAPP)
    seen, echoed = rid(srv.port, [("X-Request-ID", "first"),
                                  ("X-Request-ID", "second")])
    assert seen == echoed == "first"


def test_an_app_that_sets_x_request_id_keeps_its_own(drover, tmp_path):
    log = tmp_path / "access.log"
    srv = drover(TESTAPP, "--access-logfile", log, "--access-logformat",
                 "%(R)s %({X-Request-ID}o)s")
    r = get(srv.port, "/request-id?own=1", [("X-Request-ID", "client-7")])
    assert r.all("X-Request-ID") == ["app-chosen"]
    assert r.body == b"client-7"
    r = get(srv.port, "/request-id", [("X-Request-ID", "client-8")])
    assert r.all("X-Request-ID") == ["client-8"]
    # %(R)s is the request's id; {X-Request-ID}o what the response carried
    assert wait_lines(log.read_text, 2) == ["client-7 app-chosen",
                                           "client-8 client-8"]


def test_drovers_own_error_responses_carry_the_id(drover):
    srv = drover(TESTAPP, "--max-body-size", "10")
    with RawConn(srv.port) as c:
        c.send(request("POST", "/status/200", [("X-Request-ID", "big-1")],
                       body=b"x" * 11))
        r = c.read_response()
    assert r.status == 413 and r.header("X-Request-ID") == "big-1"
    r = get(srv.port, "/fail", [("X-Request-ID", "fail-1")])
    assert r.status == 500 and r.header("X-Request-ID") == "fail-1"
    with RawConn(srv.port) as c:
        c.send(b"GET / HTTP/1.1\r\nX-Request-ID: nohost-1\r\n\r\n")
        r = c.read_response()
    assert r.status == 400 and r.header("X-Request-ID") == "nohost-1"


def test_the_log_line_the_response_and_the_app_agree(drover, tmp_path):
    log = tmp_path / "access.json"
    srv = drover(TESTAPP, "--access-logfile", log,
                 "--access-log-format", "json")
    pairs = []
    with RawConn(srv.port) as c:
        for given in ("kept-1", None, "bad id", "kept-2"):
            headers = [("X-Request-ID", given)] if given is not None else []
            seen, echoed = rid(srv.port, headers, conn=c)
            assert seen == echoed
            pairs.append(seen)
    assert pairs[0] == "kept-1" and pairs[3] == "kept-2"
    assert HEX32.fullmatch(pairs[1]) and HEX32.fullmatch(pairs[2])
    assert [e["request_id"] for e in json_lines(log, 4)] == pairs


# --- Python apps -----------------------------------------------------------

@pytest.fixture
def pysrv(drover):
    return drover("envinfo:dump", cwd=APPS)


def environ_id(srv, *headers):
    r = get(srv.port, "/", list(headers))
    assert r.status == 200, r
    return r.json().get("HTTP_X_REQUEST_ID"), r.header("X-Request-ID")


def test_a_python_app_sees_the_id_as_http_x_request_id(pysrv):
    assert environ_id(pysrv, "X-Request-ID: py-1") == ("py-1", "py-1")
    made, echoed = environ_id(pysrv)
    assert HEX32.fullmatch(made) and echoed == made


def test_a_python_app_sees_the_replacement_of_an_insane_id(pysrv):
    made, echoed = environ_id(pysrv, "X-Request-ID: " + "y" * 200)
    assert HEX32.fullmatch(made) and echoed == made
    made, echoed = environ_id(pysrv, "X-Request-ID: a b",
                              "X-Request-ID: c")
    assert HEX32.fullmatch(made) and echoed == made
