"""The WSGI environ for raw requests, compared with what PEP 3333 (and
the CGI rules it builds on, RFC 3875) requires. Requests are written
byte for byte over a socket so nothing normalises them on the way; the
app (pyapps/envinfo.py:dump) answers with its environ as JSON."""
import json

import pytest

from helpers import APPS, RawConn, get


@pytest.fixture
def srv(drover):
    return drover("envinfo:dump", cwd=APPS)


def env_of(srv, raw):
    """Send one raw request (bytes or str; str is latin-1) and return the
    app's environ."""
    if isinstance(raw, str):
        raw = raw.encode("latin-1")
    with RawConn(srv.port) as c:
        c.send(raw)
        r = c.read_response()
    assert r.status == 200, r
    return json.loads(r.body)


def get_env(srv, target, *headers, version="HTTP/1.1", host="example.com"):
    """GET `target` with raw header lines; return the app's environ."""
    r = get(srv.port, target, headers, version=version, host=host)
    assert r.status == 200, r
    return r.json()


# --- PATH_INFO and QUERY_STRING -------------------------------------------

@pytest.mark.parametrize("target, path", [
    ("/", "/"),
    ("/plain/path", "/plain/path"),
    ("/a%20b", "/a b"),
    ("/a+b", "/a+b"),                       # '+' is not a space in a path
    ("/a%2Fb", "/a/b"),                     # decoded like every escape
    ("/%41%42%43", "/ABC"),
    ("/%e2%82%ac", "/\u00e2\u0082\u00ac"),  # UTF-8 bytes, latin-1 str
    ("/%E2%82%AC/x", "/\u00e2\u0082\u00ac/x"),
    ("/%ff", "/\u00ff"),
    ("/%zz/%4", "/%zz/%4"),                 # not escapes: kept as they are
    ("/100%", "/100%"),
    ("/a%25b", "/a%b"),                     # decoded once, not twice
    ("/a%2525b", "/a%25b"),
])
def test_path_info_is_percent_decoded_bytes_as_latin1(srv, target, path):
    e = get_env(srv, target)
    assert e["PATH_INFO"] == path
    assert e["RAW_URI"] == target
    assert e["SCRIPT_NAME"] == ""


@pytest.mark.parametrize("target, query", [
    ("/p", ""),
    ("/p?", ""),
    ("/p?a=1&b=2", "a=1&b=2"),
    ("/p?a=%20+b&c=%2F", "a=%20+b&c=%2F"),  # raw: never decoded
    ("/p?x=?y", "x=?y"),
    ("/p%3Fq?r", "r"),                       # an escaped '?' is path
])
def test_query_string_is_the_raw_query(srv, target, query):
    assert get_env(srv, target)["QUERY_STRING"] == query


def test_path_info_of_an_escaped_question_mark_is_in_the_path(srv):
    assert get_env(srv, "/p%3Fq?r")["PATH_INFO"] == "/p?q"


def test_raw_utf8_bytes_in_the_target_are_latin1_or_refused(srv):
    raw = b"GET /caf\xc3\xa9?q=\xc3\xa9 HTTP/1.1\r\nHost: x\r\n\r\n"
    with RawConn(srv.port) as c:
        c.send(raw)
        r = c.read_response()
    assert r.status in (200, 400)
    if r.status == 200:
        e = json.loads(r.body)
        assert e["PATH_INFO"] == "/caf\u00c3\u00a9"
        assert e["QUERY_STRING"] == "q=\u00c3\u00a9"


# --- absolute-form targets (RFC 9112 3.2.2) --------------------------------

def test_absolute_form_target_splits_into_path_and_query(srv):
    e = get_env(srv, "http://example.com/x?y", host="example.com")
    assert e["PATH_INFO"] == "/x"
    assert e["QUERY_STRING"] == "y"
    assert e["RAW_URI"] == "http://example.com/x?y"
    assert e["SERVER_NAME"] == "example.com"
    assert e["SERVER_PORT"] == "80"


def test_absolute_form_without_a_path_is_the_root(srv):
    e = get_env(srv, "http://example.com", host="example.com")
    assert e["PATH_INFO"] == "/"
    assert e["QUERY_STRING"] == ""


def test_absolute_form_without_a_path_keeps_its_query(srv):
    e = get_env(srv, "http://example.com?a=1", host="example.com")
    assert e["PATH_INFO"] == "/"
    assert e["QUERY_STRING"] == "a=1"


def test_absolute_form_decodes_the_path(srv):
    e = get_env(srv, "http://example.com/a%20b%2Fc?q=%20",
                host="example.com")
    assert e["PATH_INFO"] == "/a b/c"
    assert e["QUERY_STRING"] == "q=%20"


def test_absolute_form_authority_wins_over_the_host_header(srv):
    """RFC 9112 3.2.2: the server MUST ignore Host and use the target's
    authority; HTTP_HOST follows, since apps build URLs from it."""
    e = get_env(srv, "http://real.example:8080/x", host="other.example")
    assert e["SERVER_NAME"] == "real.example"
    assert e["SERVER_PORT"] == "8080"
    assert e["HTTP_HOST"] == "real.example:8080"
    assert e["PATH_INFO"] == "/x"


# --- headers ----------------------------------------------------------------

def test_headers_become_http_keys_with_dashes_as_underscores(srv):
    e = get_env(srv, "/", "X-Custom-Thing: one", "user-agent: raw/1.0",
                "ACCEPT: */*")
    assert e["HTTP_X_CUSTOM_THING"] == "one"
    assert e["HTTP_USER_AGENT"] == "raw/1.0"
    assert e["HTTP_ACCEPT"] == "*/*"
    assert e["HTTP_HOST"] == "example.com"


def test_repeated_headers_are_joined_with_comma_space(srv):
    e = get_env(srv, "/", "X-Multi: a", "Accept: text/html", "x-multi: b",
                "X-MULTI: c", "Accept: */*")
    assert e["HTTP_X_MULTI"] == "a, b, c"
    assert e["HTTP_ACCEPT"] == "text/html, */*"


def test_header_names_with_underscores_are_dropped(srv):
    e = get_env(srv, "/", "X_Forwarded_For: 6.6.6.6",
                "X-Forwarded-For: 1.2.3.4", "Weird_Name: x")
    assert e["HTTP_X_FORWARDED_FOR"] == "1.2.3.4"
    assert not any(k.startswith("HTTP_WEIRD") for k in e)


def test_header_values_keep_inner_spaces_and_lose_outer_ones(srv):
    e = get_env(srv, "/", "X-Spaces:   a  b   ", "X-Empty:")
    assert e["HTTP_X_SPACES"] == "a  b"
    assert e["HTTP_X_EMPTY"] == ""


def test_latin1_header_values_are_latin1_str(srv):
    raw = (b"GET / HTTP/1.1\r\nHost: x\r\nX-Bytes: caf\xe9 \xc3\xa9\r\n\r\n")
    assert env_of(srv, raw)["HTTP_X_BYTES"] == "caf\u00e9 \u00c3\u00a9"


def test_content_type_and_length_have_no_http_prefix(srv):
    raw = ("POST /p HTTP/1.1\r\nHost: x\r\nContent-Type: text/plain\r\n"
           "Content-Length: 5\r\n\r\nhello")
    e = env_of(srv, raw)
    assert e["CONTENT_TYPE"] == "text/plain"
    assert e["CONTENT_LENGTH"] == "5"
    assert "HTTP_CONTENT_TYPE" not in e and "HTTP_CONTENT_LENGTH" not in e
    assert e["wsgi.input.read"] == "hello"
    assert e["REQUEST_METHOD"] == "POST"


def test_a_chunked_body_gets_a_content_length(srv):
    raw = ("POST /p HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n"
           "\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n")
    e = env_of(srv, raw)
    assert e["CONTENT_LENGTH"] == "5"
    assert e["wsgi.input.read"] == "abcde"
    assert e["HTTP_TRANSFER_ENCODING"] == "chunked"


def test_a_request_without_a_body_has_no_content_keys(srv):
    e = get_env(srv, "/")
    assert e.get("CONTENT_LENGTH", "") in ("", "0")
    assert e.get("CONTENT_TYPE", "") == ""
    assert e["wsgi.input.read"] == ""


# --- server, client and protocol --------------------------------------------

def test_server_name_and_port_come_from_the_host_header(srv):
    e = get_env(srv, "/", host="example.com:8080")
    assert (e["SERVER_NAME"], e["SERVER_PORT"]) == ("example.com", "8080")
    e = get_env(srv, "/", host="example.com")
    assert (e["SERVER_NAME"], e["SERVER_PORT"]) == ("example.com", "80")
    e = get_env(srv, "/", host="[::1]:9000")
    assert (e["SERVER_NAME"], e["SERVER_PORT"]) == ("[::1]", "9000")
    e = get_env(srv, "/", host="[::1]")
    assert (e["SERVER_NAME"], e["SERVER_PORT"]) == ("[::1]", "80")


def test_an_empty_port_in_host_is_the_default_port(srv):
    e = get_env(srv, "/", host="example.com:")
    assert (e["SERVER_NAME"], e["SERVER_PORT"]) == ("example.com", "80")


def test_without_host_the_listener_address_is_the_server(srv):
    e = get_env(srv, "/", version="HTTP/1.0", host=None)
    assert e["SERVER_NAME"] == "127.0.0.1"
    assert e["SERVER_PORT"] == str(srv.port)
    assert e["SERVER_PROTOCOL"] == "HTTP/1.0"
    assert "HTTP_HOST" not in e


def test_protocol_client_and_method_are_as_sent(srv):
    e = env_of(srv, "DELETE /thing HTTP/1.1\r\nHost: x\r\n\r\n")
    assert e["REQUEST_METHOD"] == "DELETE"
    assert e["SERVER_PROTOCOL"] == "HTTP/1.1"
    assert e["REMOTE_ADDR"] == "127.0.0.1"
    assert int(e["REMOTE_PORT"]) > 0
    assert e["SERVER_SOFTWARE"].startswith("drover/")


def test_wsgi_multiprocess_is_true_with_several_workers(drover):
    srv = drover("-w", "2", "envinfo:dump", cwd=APPS)
    assert get_env(srv, "/")["wsgi.multiprocess"] is True


def test_wsgi_keys_have_the_pep_3333_values(srv):
    e = get_env(srv, "/")
    assert e["wsgi.version"] == [1, 0]
    assert e["wsgi.url_scheme"] == "http"
    assert e["wsgi.multithread"] is False
    assert e["wsgi.multiprocess"] is False  # one worker
    assert e["wsgi.run_once"] is False
    assert e["wsgi.input_terminated"] is True
    assert e["wsgi.errors.write"] is True
    assert e["wsgi.file_wrapper.callable"] is True
    # Every CGI-style key is a str (PEP 3333 "native strings").
    for k, v in e.items():
        if "." not in k:
            assert isinstance(v, str), (k, v)


def test_header_keys_never_shadow_cgi_keys(srv):
    e = get_env(srv, "/x", "Script-Name: /evil", "Path-Info: /evil",
                "Remote-Addr: 6.6.6.6")
    assert e["SCRIPT_NAME"] == ""
    assert e["PATH_INFO"] == "/x"
    assert e["REMOTE_ADDR"] == "127.0.0.1"
    assert e["HTTP_SCRIPT_NAME"] == "/evil"


# --- SCRIPT_NAME mount --------------------------------------------------------

@pytest.fixture
def mounted(drover):
    return drover("--script-name", "/app", "envinfo:dump", cwd=APPS)


@pytest.mark.parametrize("target, path", [
    ("/app", ""),
    ("/app/", "/"),
    ("/app/x/y", "/x/y"),
    ("/app/a%20b", "/a b"),
    ("/app%2Fx", "/x"),   # decoded first, then split at the mount point
    ("http://h/app/x?q", "/x"),
])
def test_script_name_mount_splits_the_decoded_path(mounted, target, path):
    e = get_env(mounted, target)
    assert e["SCRIPT_NAME"] == "/app"
    assert e["PATH_INFO"] == path


@pytest.mark.parametrize("target", ["/", "/application", "/ap", "/other/app"])
def test_paths_outside_the_mount_are_404(mounted, target):
    with RawConn(mounted.port) as c:
        c.send(f"GET {target} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
        assert c.read_response().status == 404
