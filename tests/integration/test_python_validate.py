"""wsgiref.validate between drover and an app: across GET, POST with a
body, a chunked upload, a streamed response, write(), file_wrapper, HEAD,
204 and errors, the validator finds nothing wrong with what drover gives
the app or does with what the app returns (its warnings are errors; see
pyapps/validated.py)."""
import json

import pytest
import requests

from helpers import APPS, RawConn, request


@pytest.fixture
def srv(drover):
    server = drover("validated:app", cwd=APPS)
    yield server
    problems = requests.get(server.url + "/problems", timeout=5).json()
    assert problems == [], "\n".join(problems)
    assert "VALIDATOR PROBLEM" not in server.log, server.log
    assert "AssertionError" not in server.log, server.log
    assert "WSGIWarning" not in server.log, server.log


def raw(srv, *reqs, head=False):
    """Send requests on one connection; return their responses."""
    with RawConn(srv.port) as c:
        out = []
        for r in reqs:
            c.send(r)
            out.append(c.read_response(head_request=head))
        return out


def test_the_harness_sees_what_the_validator_complains_about(drover):
    srv = drover("validated:app", cwd=APPS)
    assert requests.get(srv.url + "/not-bytes", timeout=5).status_code == 500
    problems = requests.get(srv.url + "/problems", timeout=5).json()
    assert len(problems) == 1 and "non-bytestring" in problems[0]


def test_get_passes_the_validator(srv):
    r = requests.get(srv.url + "/hello?a=1&b=%20", timeout=5)
    assert r.status_code == 200 and r.content == b"hello"


def test_an_http_10_request_passes_the_validator(srv):
    (r,) = raw(srv, request("GET", "/hello", version="HTTP/1.0"))
    assert r.status == 200 and r.body == b"hello"


def test_post_with_a_body_passes_the_validator(srv):
    r = requests.post(srv.url + "/echo", data=b"x" * 100000, timeout=5)
    assert r.content == b"x" * 100000


def test_post_without_a_body_passes_the_validator(srv):
    r = requests.post(srv.url + "/echo", timeout=5)
    assert r.status_code == 200 and r.content == b""


def test_reading_lines_passes_the_validator(srv):
    r = requests.post(srv.url + "/lines", data=b"one\ntwo\nthree\nfour\n",
                      timeout=5)
    assert r.json() == ["one\n", "two", "\n", "three\n", "four\n"]


def test_a_chunked_upload_passes_the_validator(srv):
    body = b"5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n"
    (r,) = raw(srv, request("POST", "/echo",
                            [("Transfer-Encoding", "chunked")], body))
    assert r.status == 200 and r.body == b"hello world"


def test_a_spooled_chunked_upload_passes_the_validator(drover):
    srv = drover("validated:app", "--body-buffer-size", "16", cwd=APPS)
    data = b"abcdefghij" * 1000
    r = requests.post(srv.url + "/echo", data=iter([data[:5000],
                                                    data[5000:]]),
                      timeout=5)
    assert r.content == data
    assert requests.get(srv.url + "/problems", timeout=5).json() == []


def test_a_streamed_response_passes_the_validator(srv):
    r = requests.get(srv.url + "/stream", timeout=5)
    assert r.text == "".join(f"chunk{i}\n" for i in range(5))


def test_write_passes_the_validator(srv):
    r = requests.get(srv.url + "/write", timeout=5)
    assert r.content == b"written by write()"


def test_file_wrapper_passes_the_validator(srv, tmp_path):
    path = tmp_path / "data.bin"
    path.write_bytes(bytes(range(256)) * 400)
    r = requests.get(srv.url + "/file?" + str(path), timeout=5)
    assert r.content == path.read_bytes()


def test_head_passes_the_validator(srv):
    reqs = [request("HEAD", p) for p in ("/hello", "/stream", "/write")]
    for r in raw(srv, *reqs, head=True):
        assert r.status == 200 and r.body == b""


def test_a_204_passes_the_validator(srv):
    (r,) = raw(srv, request("GET", "/empty"))
    assert r.status == 204 and r.body == b""


def test_an_app_raising_before_start_response_is_a_500(srv):
    r = requests.get(srv.url + "/raise", timeout=5)
    assert r.status_code == 500
    assert "Deliberate" not in r.text
    srv.wait_log("Deliberate: raised before start_response")
    assert requests.get(srv.url + "/hello", timeout=5).status_code == 200


def test_exc_info_replaces_the_response_and_passes_the_validator(srv):
    r = requests.get(srv.url + "/exc-info", timeout=5)
    assert r.status_code == 500 and r.content == b"recovered"
    srv.wait_log("handled a deliberate failure")


def test_many_kinds_on_one_connection_pass_the_validator(srv):
    reqs = [request("GET", "/hello"),
            request("POST", "/echo", body=b"abc"),
            request("GET", "/stream"),
            request("GET", "/write"),
            request("GET", "/empty"),
            request("GET", "/nowhere")]
    got = raw(srv, *reqs)
    assert [r.status for r in got] == [200, 200, 200, 200, 204, 404]
    assert got[1].body == b"abc"
