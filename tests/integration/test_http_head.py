"""HEAD: the headers a GET would get, never a body."""
from helpers import HELLO, TESTAPP, RawConn, request


def test_head_on_the_hello_app_has_content_length_and_no_body(drover):
    srv = drover(HELLO)
    with RawConn(srv.port) as c:
        c.send(request("HEAD", "/") + request("GET", "/"))
        head = c.read_response(head_request=True)
        get = c.read_response()
    assert head.status == 200
    assert head.header("Content-Length") == "14"
    assert head.header("Transfer-Encoding") is None
    # Had a body followed the HEAD head, it would be read as the GET's head.
    assert get.status == 200
    assert get.body == b"Hello, World!\n"


def test_head_on_a_written_body_announces_its_length(drover):
    srv = drover(TESTAPP)
    with RawConn(srv.port) as c:
        c.send(request("HEAD", "/write?bytes=1000") + request("GET", "/status/201"))
        head = c.read_response(head_request=True)
        nxt = c.read_response()
    assert head.status == 200
    assert head.header("Content-Length") == "1000"
    assert nxt.status == 201 and nxt.body == b"status 201\n"


def test_head_on_a_streamed_body_sends_no_body_and_keeps_the_connection(drover):
    srv = drover(TESTAPP)
    with RawConn(srv.port) as c:
        c.send(request("HEAD", "/stream?chunks=4&size=100") +
               request("GET", "/status/202"))
        head = c.read_response(head_request=True)
        nxt = c.read_response()
    assert head.status == 200
    assert head.header("Connection") is None
    assert nxt.status == 202 and nxt.body == b"status 202\n"


def test_head_on_an_app_failure_gets_a_bodyless_500(drover):
    srv = drover(TESTAPP)
    with RawConn(srv.port) as c:
        c.send(request("HEAD", "/fail") + request("GET", "/status/200"))
        head = c.read_response(head_request=True)
        nxt = c.read_response()
    assert head.status == 500
    assert nxt.status == 200 and nxt.body == b"status 200\n"
