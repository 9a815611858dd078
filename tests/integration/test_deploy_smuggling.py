"""Request smuggling probes: through real nginx (conf/nginx.conf: HTTP/1.1
to drover over kept-alive upstream connections, `proxy_set_header
Connection ""`, `keepalive 32`) and straight to drover.

Each probe is a POST (or GET) /probe?id=NAME whose framing two parsers
could read two ways: CL.TE, TE.CL, TE.TE with an obfuscated
Transfer-Encoding (xchunked, a space before the colon, a tab or a
vertical tab before the value, duplicated, "chunked, identity"),
duplicated Content-Length (differing, equal, as a list), obs-folded
framing headers, chunked bodies with bare LFs. In each, the bytes that
one reading would take for a second request are GET /smuggled?id=NAME;
read per RFC 9112 (reject; or take the body by its one valid length;
or, with both Content-Length and Transfer-Encoding, answer by the latter
and close) they never are a request.

The app (pyapps/smuggle_app.py) logs every request it sees and answers
with its own method, target and body length. Checked:
  - no /smuggled request ever reaches the app;
  - every answer a client gets is the answer to the request it sent
    (its own target, in order);
  - every request the app saw was seen once, and through nginx is one
    that nginx logged as forwarded (nothing reached drover that nginx
    did not know it sent);
  - after each probe, ordinary requests on the same nginx (so over the
    same kept upstream connections) each get their own correct answer:
    no upstream connection was left poisoned.
"""
import json
import re
import socket

import pytest

from helpers import APPS, NGINX, Nginx, RawConn, request

APP = "smuggle_app:app"


def smuggled(name):
    return f"GET /smuggled?id={name} HTTP/1.1\r\nHost: x\r\n\r\n".encode()


def probe(name, headers, body, method="POST", version="HTTP/1.1"):
    """The probe's bytes: `headers` are raw lines (bytes), sent as they
    are after Host."""
    head = f"{method} /probe?id={name} {version}\r\nHost: x\r\n".encode()
    return head + b"".join(h + b"\r\n" for h in headers) + b"\r\n" + body


def cl(n):
    return b"Content-Length: %d" % n


def te_probe(name, te_lines):
    """Content-Length covers "0" CRLF CRLF and the smuggled request; an
    obfuscated Transfer-Encoding beside it. Read by the length, the
    smuggled request is body; read as chunked, it is a second request,
    which RFC 9112 forbids serving (close after the response)."""
    body = b"0\r\n\r\n" + smuggled(name)
    return probe(name, [cl(len(body)), *te_lines], body)


def probes():
    s = smuggled
    found = {}

    def add(name, data):
        found[name] = data

    # CL.TE: a front end going by the length, a back end by chunked.
    body = b"0\r\n\r\n" + s("cl_te")
    add("cl_te", probe("cl_te", [cl(len(body)), b"Transfer-Encoding: chunked"],
                       body))
    # TE.CL: a front end going by chunked, a back end by the length (4
    # bytes: the chunk-size line), leaving the chunk's data as a request.
    chunk = s("te_cl")
    body = b"%x\r\n" % len(chunk) + chunk + b"\r\n0\r\n\r\n"
    assert body.index(b"GET") == 4
    add("te_cl", probe("te_cl", [cl(4), b"Transfer-Encoding: chunked"],
                       body))
    # TE.TE: one side sees chunked, the other does not.
    for name, lines in [
            ("te_xchunked", [b"Transfer-Encoding: xchunked"]),
            ("te_space_before_colon", [b"Transfer-Encoding : chunked"]),
            ("te_tab_before_value", [b"Transfer-Encoding:\tchunked"]),
            ("te_vtab_before_value", [b"Transfer-Encoding:\x0bchunked"]),
            ("te_twice", [b"Transfer-Encoding: chunked",
                          b"Transfer-Encoding: identity"]),
            ("te_chunked_identity", [b"Transfer-Encoding: chunked, identity"]),
            ("te_identity_chunked", [b"Transfer-Encoding: identity, chunked"]),
            ("te_upper", [b"Transfer-Encoding: CHUNKED"]),
            ("te_quoted", [b'Transfer-Encoding: "chunked"']),
            ("te_leading_space_line", [b" Transfer-Encoding: chunked"]),
            ("te_folded_value", [b"Transfer-Encoding:", b" chunked"]),
            ("te_folded_into_other", [b"X-Pad: a", b" Transfer-Encoding: chunked"]),
    ]:
        add(name, te_probe(name, lines))
    # The same obfuscations with no Content-Length: read as chunked, the
    # body ends at "0"; read as anything else the framing is unknown and
    # the request must be refused (and the connection closed).
    body = b"0\r\n\r\n" + s("te_only_xchunked")
    add("te_only_xchunked", probe("te_only_xchunked",
                                  [b"Transfer-Encoding: xchunked"], body))
    body = b"0\r\n\r\n" + s("te_only_chunked_identity")
    add("te_only_chunked_identity", probe(
        "te_only_chunked_identity",
        [b"Transfer-Encoding: chunked, identity"], body))
    # Content-Length twice: differing (refuse), equal and as a list (one
    # value: the smuggled bytes are the body either way).
    chunk = s("cl_differ")
    add("cl_differ", probe("cl_differ", [cl(0), cl(len(chunk))], chunk))
    chunk = s("cl_differ_rev")
    add("cl_differ_rev", probe("cl_differ_rev", [cl(len(chunk)), cl(0)],
                               chunk))
    chunk = s("cl_same_twice")
    add("cl_same_twice", probe("cl_same_twice", [cl(len(chunk))] * 2, chunk))
    chunk = s("cl_list")
    add("cl_list", probe("cl_list", [b"Content-Length: %d, %d" % (
        len(chunk), len(chunk))], chunk))
    chunk = s("cl_list_differ")
    add("cl_list_differ", probe("cl_list_differ", [
        b"Content-Length: 0, %d" % len(chunk)], chunk))
    chunk = s("cl_plus")
    add("cl_plus", probe("cl_plus", [b"Content-Length: +%d" % len(chunk)],
                         chunk))
    # obs-fold in Content-Length: "0" folded with the real length.
    chunk = s("cl_folded")
    add("cl_folded", probe("cl_folded", [cl(0), b" %d" % len(chunk)], chunk))
    chunk = s("cl_folded_value")
    add("cl_folded_value", probe("cl_folded_value", [
        b"Content-Length:", b" %d" % len(chunk)], chunk))
    # Both, consistent: still both.
    body = b"5\r\nhello\r\n0\r\n\r\n"
    add("cl_and_te_consistent", probe("cl_and_te_consistent", [
        cl(len(body)), b"Transfer-Encoding: chunked"], body))
    # Chunked with bare LFs: a lenient parser's chunk data is the
    # smuggled request, a strict one refuses.
    chunk = s("chunked_bare_lf")
    add("chunked_bare_lf", probe("chunked_bare_lf", [
        b"Transfer-Encoding: chunked"],
        b"%x\n" % len(chunk) + chunk + b"\n0\n\n"))
    # A chunk size that overflows 64 bits, then the smuggled request.
    add("chunk_size_overflow", probe("chunk_size_overflow", [
        b"Transfer-Encoding: chunked"],
        b"1" + b"0" * 16 + b"\r\n" + s("chunk_size_overflow") + b"\r\n0\r\n\r\n"))
    # A GET with a body: the body is the smuggled request.
    chunk = s("get_with_body")
    add("get_with_body", probe("get_with_body", [cl(len(chunk))], chunk,
                               method="GET"))
    # HTTP/1.0 with chunked beside a length (framing to be distrusted).
    body = b"0\r\n\r\n" + s("http10_te")
    add("http10_te", probe("http10_te", [cl(len(body)),
                                         b"Transfer-Encoding: chunked"],
                           body, version="HTTP/1.0"))
    return found


PROBES = probes()


def answers(port, data):
    """Send `data` on a new connection; read responses until the server
    closes or falls silent. Returns (responses, closed)."""
    conn = RawConn(port, timeout=0.5)
    out = []
    try:
        conn.send(data)
        while True:
            r = conn.read_response()
            out.append(r)
            if not r.complete:
                return out, True
    except socket.timeout:
        return out, False
    except Exception:  # noqa: BLE001 (Closed, or a reset: the end)
        return out, True
    finally:
        conn.close()


def seen_by_app(srv):
    """The requests the app saw, in order: [record]."""
    return [json.loads(m) for m in
            re.findall(r"smuggle_app: seen (\{.*\})", srv.log)]


def check_answers(name, responses):
    """Every 200 is the answer to this probe's own request."""
    for r in responses:
        if r.status == 200:
            got = r.json()
            assert got["target"] == f"/probe?id={name}", (name, got)


def check_normal_requests(port, name, conns=4):
    """Ordinary requests, kept alive, each answered with its own target
    and body length."""
    for k in range(conns):
        with RawConn(port, timeout=10) as c:
            for j, (method, body) in enumerate([("GET", b""),
                                                ("POST", b"x" * (k + 1))]):
                target = f"/normal?id={name}-{k}-{j}"
                c.send(request(method, target, body=body))
                r = c.read_response()
                assert r.status == 200 and r.complete, (name, r)
                got = r.json()
                assert (got["target"], got["body_length"]) == \
                    (target, len(body)), (name, got)


def check_seen_once(records):
    targets = [r["target"] for r in records]
    assert not [t for t in targets if "smuggled" in t], records
    dup = {t for t in targets if targets.count(t) > 1}
    assert not dup, f"requests the app saw twice: {dup}"


def nginx_forwarded(access_log):
    """(method, target) of each request nginx sent to an upstream."""
    found = []
    for line in access_log.splitlines():
        m = re.search(r'"(\S+) (\S+) [^"]*" \d+ \[([^\]]*)\]', line)
        if m and m[3] not in ("", "-"):
            found.append((m[1], m[2]))
    return found


@pytest.mark.skipif(NGINX is None,
                    reason="nginx missing (Debian package nginx-light; "
                           "tools/install-deps.sh test)")
def test_smuggling_probes_through_nginx_reach_drover_as_nginx_read_them(
        drover, tmp_path):
    srv = drover("-w", "2", APP, cwd=APPS)
    nginx = Nginx(tmp_path, [f"127.0.0.1:{srv.port}"]).wait_ready()
    try:
        outcome = {}
        for name, data in PROBES.items():
            responses, _ = answers(nginx.port, data)
            check_answers(name, responses)
            outcome[name] = [r.status for r in responses]
            check_normal_requests(nginx.port, name)
        records = seen_by_app(srv)
        check_seen_once(records)
        # Each request the app saw is one nginx knows it forwarded, and
        # nginx forwarded nothing the app did not see (at most once).
        forwarded = nginx_forwarded(nginx.access_log)
        assert sorted((r["method"], r["target"]) for r in records) == \
            sorted(forwarded), (outcome, nginx.access_log)
        # An upstream error would mean drover cut a connection nginx was
        # using, or answered out of turn: none. (The client errors nginx
        # logs, "client sent invalid chunked body" and the like, are the
        # probes refused.)
        upstream_errors = [line for line in nginx.error_log.splitlines()
                           if "[error]" in line and "upstream" in line]
        assert not upstream_errors, (upstream_errors, outcome)
    finally:
        nginx.stop()


def test_smuggling_probes_sent_straight_to_drover_never_reach_the_app(drover):
    srv = drover(APP, cwd=APPS)
    outcome = {}
    for name, data in PROBES.items():
        responses, closed = answers(srv.port, data)
        check_answers(name, responses)
        outcome[name] = ([r.status for r in responses], closed)
        check_normal_requests(srv.port, name, conns=1)
    records = seen_by_app(srv)
    check_seen_once(records)
    # Each probe the app saw it saw with the body its one valid reading
    # gives: the smuggled bytes inside it, when there are any.
    for r in records:
        if r["target"].startswith("/probe"):
            name = r["target"].split("=", 1)[1]
            assert r["body_length"] in (0, 5, len(smuggled(name)),
                                        len(b"0\r\n\r\n" + smuggled(name))), \
                (r, outcome[name])
