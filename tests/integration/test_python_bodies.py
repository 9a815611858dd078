"""What drover does with each shape of WSGI response body, right or
wrong: list and tuple bodies go out at once with a Content-Length; str
where bytes belong is a 500 before the head, a cut connection after it;
an exception mid-stream cuts the response; a Transfer-Encoding set by the
app is ignored (drover frames the body). After each, the worker keeps
serving, on the same connection when the response was complete."""
import pytest
import requests

from helpers import APPS, RawConn, request, wait_for


@pytest.fixture
def srv(drover):
    return drover("bodies:app", cwd=APPS)


def one(srv, target, method="GET", version="HTTP/1.1"):
    """One request; then a second on the same connection must work when
    the first was complete (the worker and the connection survive)."""
    with RawConn(srv.port) as c:
        c.send(request(method, target, version=version))
        r = c.read_response(head_request=method == "HEAD")
        if r.complete and r.header("Connection") != "close":
            c.send(request("GET", "/hello"))
            nxt = c.read_response()
            assert (nxt.status, nxt.body) == (200, b"hello"), nxt
    # and on a new connection, always
    assert requests.get(srv.url + "/hello", timeout=5).text == "hello"
    return r


def closes(srv):
    return int(requests.get(srv.url + "/closes", timeout=5).text)


def test_a_one_item_list_is_sent_with_its_content_length(srv):
    r = one(srv, "/one_item")
    assert r.status == 200
    assert r.header("Content-Length") == str(1024 * 1024)
    assert r.header("Transfer-Encoding") is None
    assert r.body == b"x" * (1024 * 1024)


def test_head_of_a_one_item_list_has_the_length_and_no_body(srv):
    r = one(srv, "/one_item", method="HEAD")
    assert r.header("Content-Length") == str(1024 * 1024)


def test_a_tuple_of_several_items_is_sent_with_the_total_length(srv):
    r = one(srv, "/several_items")
    assert r.header("Content-Length") == str(3 + 4 + 70000)
    assert r.body == b"abcdefg" + b"h" * 70000


def test_a_str_in_a_list_is_a_500_with_nothing_half_sent(srv):
    r = one(srv, "/bytes_then_str")
    assert r.status == 500 and r.complete
    srv.wait_log(r"TypeError: response body items must be bytes, not str")


@pytest.mark.parametrize("name, error", [
    ("bare_str", "must be bytes, not str"),
    ("bare_bytes", "must be bytes, not int"),
    ("returns_none", "'NoneType' object is not iterable"),
    ("no_start_response", "without calling start_response"),
    ("generator_str_first", "must be bytes, not str"),
])
def test_a_wrong_body_before_the_head_is_a_500(srv, name, error):
    r = one(srv, "/" + name)
    assert r.status == 500 and r.complete
    assert b"Traceback" not in r.body
    srv.wait_log(error)


def test_a_str_after_the_head_cuts_the_response(srv):
    r = one(srv, "/generator_str_later")
    assert r.status == 200 and not r.complete
    srv.wait_log(r"must be bytes, not str")


def test_an_exception_mid_stream_cuts_the_response_and_closes_once(srv):
    r = one(srv, "/raises_mid_stream")
    assert r.status == 200 and not r.complete
    assert r.body.startswith(b"a" * 100000)
    srv.wait_log(r"RuntimeError: deliberate failure mid-stream")
    assert closes(srv) == 1
    one(srv, "/closes_after_stream")
    assert closes(srv) == 1


@pytest.mark.parametrize("name,status,complete", [
    ("raises_first", 500, True),           # fails before the head
    ("str_first_in_body", 500, True),      # a str before the head
    ("empty_body", 200, True),             # nothing to stream
    ("closes_after_stream", 200, True),    # streamed to its end
    ("raises_mid_stream", 200, False),     # fails after the head
])
def test_the_iterables_close_runs_exactly_once_whatever_its_stream_became(
        srv, name, status, complete):
    """PEP 3333: close() once, on every path a returned iterable can take
    (the response refusing the body closed it twice before)."""
    r = one(srv, "/" + name)
    assert (r.status, r.complete) == (status, complete), r
    assert closes(srv) == 1
    # HEAD: nothing is pulled, the iterable is closed all the same.
    r = one(srv, "/" + name, method="HEAD")
    assert r.status == status
    assert closes(srv) == 1


def test_a_stream_past_its_content_length_is_cut_and_closed_once(srv):
    with RawConn(srv.port) as c:
        c.send(request("GET", "/longer_than_its_length"))
        r = c.read_response()
        assert (r.status, r.body) == (200, b"abcde")
        assert c.closed_by_server()  # the surplus failed the response
    assert closes(srv) == 1


def test_a_client_gone_mid_stream_has_the_iterable_closed_once(srv):
    with RawConn(srv.port, rcvbuf=16384) as c:
        c.send(request("GET", "/endless"))
        assert c.read_head()[1] == 200
        c._take(100000)
    # Closed with unread data: a reset, so drover's next write fails.
    def so_far():
        r = requests.get(srv.url + "/closes_so_far", timeout=5)
        return int(r.text)
    wait_for(so_far, what="the iterable's close()")
    assert closes(srv) == 1


def test_write_called_from_inside_the_iterable_goes_out_in_order(srv):
    r = one(srv, "/writes_while_iterated")
    assert r.status == 200 and r.complete
    assert r.body == b"w1 y1 w2 y2"


@pytest.mark.parametrize("name", ["sets_te_list", "sets_te_stream",
                                  "sets_te_gzip"])
def test_transfer_encoding_from_the_app_is_replaced_by_drovers_framing(
        srv, name):
    r = one(srv, "/" + name)
    assert r.status == 200 and r.complete
    te = r.all("Transfer-Encoding")
    assert te in ([], ["chunked"])          # drover's own, once at most
    assert (r.header("Content-Length") is None) == (te == ["chunked"])
    assert r.body in (b"framed by drover", b"part one, part two",
                      b"not gzipped")


def test_transfer_encoding_from_the_app_is_never_sent_to_http_10(srv):
    r = one(srv, "/sets_te_stream", version="HTTP/1.0")
    assert r.status == 200
    assert r.all("Transfer-Encoding") == []
    assert r.body == b"part one, part two"
