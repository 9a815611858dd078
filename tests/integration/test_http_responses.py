"""How drover frames what a native app says: streamed, written, declared
lengths, failures, and the headers it owns."""
import email.utils
import http.client
import time

import pytest

from helpers import (DATE_RE, TESTAPP, RawConn, assert_serves, pattern,
                     request, stream_body)


def client(srv):
    return http.client.HTTPConnection("127.0.0.1", srv.port, timeout=10)


def test_a_streamed_body_is_chunked_on_http11_and_decodes_to_its_content(drover):
    srv = drover(TESTAPP)
    conn = client(srv)
    conn.request("GET", "/stream?chunks=7&size=1000")
    resp = conn.getresponse()
    assert resp.status == 200
    assert resp.getheader("Transfer-Encoding") == "chunked"
    assert resp.getheader("Content-Length") is None
    assert resp.read() == stream_body(7, 1000)
    # The connection stays usable after the last chunk.
    conn.request("GET", "/status/200")
    assert conn.getresponse().read() == b"status 200\n"
    conn.close()


def test_a_streamed_body_has_one_chunk_per_source_chunk_and_a_last_chunk(drover):
    srv = drover(TESTAPP)
    with RawConn(srv.port) as c:
        c.send(request("GET", "/stream?chunks=5&size=300"))
        r = c.read_response()
    assert r.complete
    assert r.chunks == [300] * 5 + [0]
    assert r.body == stream_body(5, 300)


def test_an_empty_stream_is_just_the_last_chunk(drover):
    srv = drover(TESTAPP)
    with RawConn(srv.port) as c:
        c.send(request("GET", "/stream?chunks=0&size=10"))
        r = c.read_response()
    assert r.status == 200
    assert r.body == b"" and r.complete


def test_a_streamed_body_on_http10_is_delimited_by_the_close(drover):
    srv = drover(TESTAPP)
    with RawConn(srv.port) as c:
        c.send(request("GET", "/stream?chunks=3&size=100",
                       [("Connection", "keep-alive")], version="HTTP/1.0"))
        r = c.read_response()
    assert r.version == "HTTP/1.0"
    assert r.header("Transfer-Encoding") is None
    assert r.header("Content-Length") is None
    assert r.header("Connection") == "close"
    assert r.body == stream_body(3, 100)


def test_a_small_written_body_gets_a_content_length(drover):
    srv = drover(TESTAPP)
    with RawConn(srv.port) as c:
        c.send(request("GET", "/write?bytes=1000"))
        r = c.read_response()
    assert r.header("Content-Length") == "1000"
    assert r.header("Transfer-Encoding") is None
    assert r.body == pattern(1000)


def test_a_large_written_body_arrives_intact(drover):
    srv = drover(TESTAPP)
    conn = client(srv)
    conn.request("GET", "/write?bytes=1000000")
    resp = conn.getresponse()
    assert resp.status == 200
    body = resp.read()
    assert len(body) == 1000000
    assert body == pattern(1000000)
    conn.close()


def test_a_body_shorter_than_its_content_length_cuts_the_connection(drover):
    srv = drover(TESTAPP)
    conn = client(srv)
    conn.request("GET", "/length?declared=100&actual=50")
    resp = conn.getresponse()
    assert resp.getheader("Content-Length") == "100"
    with pytest.raises(http.client.IncompleteRead) as e:
        resp.read()
    assert e.value.partial == b"x" * 50
    conn.close()
    assert_serves(srv.port)


def test_a_body_longer_than_its_content_length_is_cut_to_it_and_closed(drover):
    srv = drover(TESTAPP)
    with RawConn(srv.port) as c:
        c.send(request("GET", "/length?declared=10&actual=50") +
               request("GET", "/status/200"))
        r = c.read_response()
        assert r.header("Content-Length") == "10"
        assert r.body == b"x" * 10
        # The surplus never reaches the wire: the connection just ends.
        assert c.closed_by_server(timeout=3)
    assert "more than its Content-Length" in srv.log


def test_a_failing_stream_truncates_the_body_for_http_client(drover):
    srv = drover(TESTAPP)
    conn = client(srv)
    conn.request("GET", "/stream-fail?chunks=3&size=100")
    resp = conn.getresponse()
    assert resp.status == 200
    with pytest.raises(http.client.IncompleteRead):
        resp.read()
    conn.close()
    assert_serves(srv.port)


def test_a_failing_stream_never_sends_the_last_chunk(drover):
    srv = drover(TESTAPP)
    with RawConn(srv.port) as c:
        c.send(request("GET", "/stream-fail?chunks=3&size=100"))
        r = c.read_response()
    assert not r.complete
    assert r.chunks == [100] * 3
    assert r.body == stream_body(3, 100)


def test_an_app_failure_before_starting_gets_500_and_the_connection_serves_on(
        drover):
    srv = drover(TESTAPP)
    with RawConn(srv.port) as c:
        c.send(request("GET", "/fail"))
        r = c.read_response()
        assert r.status == 500
        assert r.header("Content-Length") == str(len(r.body))
        c.send(request("GET", "/status/200"))
        r2 = c.read_response()
        assert r2.status == 200 and r2.body == b"status 200\n"


def test_a_header_value_with_crlf_is_refused_and_the_response_not_split(drover):
    srv = drover(TESTAPP)
    with RawConn(srv.port) as c:
        c.send(request("GET", "/bad-header") + request("GET", "/status/200"))
        r = c.read_response()
        assert r.status == 500
        assert r.all("X-Injected") == [] and r.all("X-Split") == []
        assert b"X-Injected" not in r.raw_head
        assert b"header accepted" not in r.body
        nxt = c.read_response()
        assert nxt.status == 200 and nxt.body == b"status 200\n"


def test_hop_by_hop_headers_from_the_app_are_dropped_and_the_body_framed(drover):
    srv = drover(TESTAPP)
    with RawConn(srv.port) as c:
        c.send(request("GET", "/hop") + request("GET", "/status/200"))
        r = c.read_response()
        assert r.status == 200
        assert r.all("Keep-Alive") == []
        assert len(r.all("Transfer-Encoding")) <= 1
        assert r.header("Content-Length") == "3"
        assert r.all("Transfer-Encoding") == []
        assert r.all("Connection") == []
        assert r.header("X-Ok") == "1"
        assert r.body == b"hop"
        nxt = c.read_response()
        assert nxt.status == 200 and nxt.body == b"status 200\n"


@pytest.mark.parametrize("status,reason", [
    (200, "OK"), (201, "Created"), (404, "Not Found"),
    (418, "Unknown"), (503, "Service Unavailable"), (599, "Unknown")])
def test_an_app_status_is_sent_with_its_reason_and_body(drover, status, reason):
    srv = drover(TESTAPP)
    with RawConn(srv.port) as c:
        c.send(request("GET", f"/status/{status}"))
        r = c.read_response()
    assert (r.status, r.reason) == (status, reason)
    assert r.body == b"status %d\n" % status
    assert r.header("Content-Length") == str(len(r.body))


@pytest.mark.parametrize("status", [100, 101, 103, 199])
def test_an_interim_status_from_the_app_gets_500_and_no_answer_is_shifted(
        drover, status):
    """Bug (found by fuzz_response): an app's 1xx went out as its final
    response; the client read it as interim and took the next request's
    answer for this one's."""
    srv = drover(TESTAPP)
    with RawConn(srv.port) as c:
        c.send(request("GET", f"/status/{status}") +
               request("GET", "/status/200"))
        r = c.read_response()
        assert r.status == 500, r
        nxt = c.read_response()
        assert nxt.status == 200 and nxt.body == b"status 200\n"


@pytest.mark.parametrize("status", [204, 304])
def test_a_bodyless_status_has_no_content_length_and_keeps_the_connection(
        drover, status):
    srv = drover(TESTAPP)
    with RawConn(srv.port) as c:
        c.send(request("GET", f"/status/{status}") + request("GET", "/status/200"))
        r = c.read_response()
        assert r.status == status
        assert r.header("Content-Length") is None
        assert r.header("Transfer-Encoding") is None
        nxt = c.read_response()
        assert nxt.status == 200 and nxt.body == b"status 200\n"


def test_every_response_has_a_current_well_formed_date_and_server_drover(drover):
    srv = drover(TESTAPP)
    for target in ("/status/200", "/stream?chunks=1&size=1", "/fail",
                   "/status/204"):
        with RawConn(srv.port) as c:
            c.send(request("GET", target))
            r = c.read_response()
        assert r.header("Server") == "drover", target
        date = r.header("Date")
        assert DATE_RE.match(date), date
        when = email.utils.parsedate_to_datetime(date)
        assert abs(when.timestamp() - time.time()) < 5, date


def test_an_unknown_path_gets_the_apps_404(drover):
    srv = drover(TESTAPP)
    with RawConn(srv.port) as c:
        c.send(request("GET", "/nowhere"))
        r = c.read_response()
    assert r.status == 404 and r.body == b"not found\n"
