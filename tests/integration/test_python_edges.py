"""PEP 3333 at its edges: endless bodies that cannot be sent, restarts with
exc_info, and what an exception leaves behind. Each case ends with the
worker still serving on the same connection or a new one."""
from helpers import APPS, RawConn, request


def serve(drover, *args):
    return drover("-w", "1", "--timeout", "0", *args, "edge_app:app",
                  cwd=APPS)


def still_serves(srv):
    with RawConn(srv.port, timeout=5) as c:
        c.send(request("GET", "/last_exception"))
        return c.read_response().status == 200


def test_head_of_an_endless_stream_ends_without_iterating_it(drover):
    srv = serve(drover)
    with RawConn(srv.port, timeout=5) as c:
        c.send(request("HEAD", "/endless"))
        r = c.read_response(head_request=True)
        assert r.status == 200
        c.send(request("GET", "/last_exception"))
        assert c.read_response().status == 200  # same connection, not stuck


def test_a_stream_past_its_content_length_stops_at_the_length(drover):
    srv = serve(drover)
    with RawConn(srv.port, timeout=5) as c:
        c.send(request("GET", "/endless_with_length"))
        r = c.read_response()
        assert r.status == 200 and r.body == b"abcab"
    assert still_serves(srv)


def test_a_restart_with_exc_info_drops_what_the_app_wrote(drover):
    srv = serve(drover)
    with RawConn(srv.port, timeout=5) as c:
        c.send(request("GET", "/restart_after_write"))
        r = c.read_response()
    assert r.status == 500
    assert r.body == b"error page"


def test_a_failed_restart_gets_a_500_not_a_hang(drover):
    srv = serve(drover)
    with RawConn(srv.port, timeout=5) as c:
        c.send(request("GET", "/bad_restart"))
        assert c.read_response().status == 500
    assert still_serves(srv)


def test_an_exception_does_not_stay_alive_in_sys_last_value(drover):
    srv = serve(drover)
    with RawConn(srv.port, timeout=5) as c:
        c.send(request("GET", "/raises_big"))
        assert c.read_response().status == 500
        c.send(request("GET", "/last_exception"))
        assert c.read_response().body == b"None"
    srv.wait_log(r"RuntimeError: fails holding a megabyte")


def test_readline_on_an_empty_body_is_empty_bytes(drover):
    srv = serve(drover)
    with RawConn(srv.port, timeout=5) as c:
        c.send(request("GET", "/readline_empty"))
        assert c.read_response().body == b"b''"


def test_a_control_character_in_a_header_value_is_a_500(drover):
    srv = serve(drover)
    with RawConn(srv.port, timeout=5) as c:
        c.send(request("GET", "/control_char_header"))
        r = c.read_response()
    assert r.status == 500 and b"never sent" not in r.body
    assert still_serves(srv)


def test_exc_info_that_is_not_an_exception_is_a_type_error(drover):
    srv = serve(drover)
    with RawConn(srv.port, timeout=5) as c:
        c.send(request("GET", "/no_exception_info"))
        try:
            c.read_response()  # committed, then cut short
        except (AssertionError, ConnectionError, OSError):
            pass
    srv.wait_log(r"TypeError: start_response: exc_info must come from "
                 r"sys.exc_info\(\)")
    assert still_serves(srv)
