"""WebSockets (RFC 6455) for ASGI apps (pyapps/asgi_raw.py), driven by the
`websockets` client and, where the frames themselves matter, by raw
sockets: the handshake and the websocket scope, text and binary echo, a
1 MB and a fragmented message, pings both ways (--ws-ping-interval,
--ws-ping-timeout), subprotocols, close codes from the app and from the
client, --ws-max-size (1009), a denied handshake (the app's HTTP response
through websocket.http.response, or 403) and 200 sockets at once."""
import asyncio
import base64
import hashlib
import json
import os
import re
import struct
import time

import pytest
import websockets
from websockets.exceptions import ConnectionClosed, InvalidStatusCode

from helpers import Closed, RawConn, asgi, marker, request, ws_url

GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


def open_raw(port, path, headers=()):
    """A raw WebSocket handshake; returns the RawConn, the response head
    (version, status, reason, headers, raw) and the key sent."""
    key = base64.b64encode(os.urandom(16)).decode()
    c = RawConn(port)
    c.send(request("GET", path, [("Upgrade", "websocket"),
                                 ("Connection", "Upgrade"),
                                 ("Sec-WebSocket-Key", key),
                                 ("Sec-WebSocket-Version", "13"),
                                 *headers]))
    return c, c.read_head(), key


def read_frame(c):
    """One frame from the server: (fin, opcode, payload)."""
    b0, b1 = c._take(2)
    assert not b1 & 0x80, "a server must not mask its frames"
    n = b1 & 0x7F
    if n == 126:
        (n,) = struct.unpack("!H", c._take(2))
    elif n == 127:
        (n,) = struct.unpack("!Q", c._take(8))
    return bool(b0 & 0x80), b0 & 0x0F, c._take(n)


def client_frame(opcode, payload, fin=True):
    """A masked frame as a client sends it."""
    mask = os.urandom(4)
    n = len(payload)
    head = bytes([(0x80 if fin else 0) | opcode])
    if n < 126:
        head += bytes([0x80 | n])
    elif n < 1 << 16:
        head += bytes([0x80 | 126]) + struct.pack("!H", n)
    else:
        head += bytes([0x80 | 127]) + struct.pack("!Q", n)
    return head + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload))


def run(coro):
    return asyncio.run(asyncio.wait_for(coro, 20))


def test_the_handshake_follows_rfc_6455(drover, tmp_path):
    srv = asgi(drover, tmp_path)
    c, (_, status, _, headers, _), key = open_raw(srv.port, "/ws/echo")
    with c:
        assert status == 101
        h = {n.lower(): v for n, v in headers}
        assert h["upgrade"].lower() == "websocket"
        assert "upgrade" in h["connection"].lower()
        expected = base64.b64encode(
            hashlib.sha1(key.encode() + GUID).digest()).decode()
        assert h["sec-websocket-accept"] == expected
        c.send(client_frame(0x1, "h\u00e9llo".encode()))
        assert read_frame(c) == (True, 0x1, "h\u00e9llo".encode())
        c.send(client_frame(0x8, struct.pack("!H", 1000)))
        fin, opcode, payload = read_frame(c)
        assert opcode == 0x8 and payload[:2] == struct.pack("!H", 1000)


def test_the_websocket_scope(drover, tmp_path):
    srv = asgi(drover, tmp_path)

    async def talk():
        async with websockets.connect(
                ws_url(srv, "/ws/scope?x=1&y=%20"), subprotocols=["chat.v1"],
                extra_headers={"X-Test": "Value"}) as ws:
            return json.loads(await ws.recv())

    got = run(talk())
    scope = got["scope"]
    assert scope["type"] == "websocket"
    assert scope["asgi"]["version"] == "3.0"
    assert re.fullmatch(r"2\.\d+", scope["asgi"]["spec_version"])
    assert scope["scheme"] == "ws"
    assert scope["path"] == "/ws/scope"
    assert scope["query_string"] == {"bytes": "x=1&y=%20"}
    assert scope["root_path"] == ""
    assert scope["subprotocols"] == ["chat.v1"]
    assert list(scope["server"]) == ["127.0.0.1", srv.port]
    assert scope["client"][0] == "127.0.0.1"
    headers = {n["bytes"]: v["bytes"] for n, v in scope["headers"]}
    assert headers["x-test"] == "Value"
    assert headers["sec-websocket-version"] == "13"
    assert "sec-websocket-key" in headers


def test_text_and_binary_messages_keep_their_type(drover, tmp_path):
    srv = asgi(drover, tmp_path)

    async def talk():
        async with websockets.connect(ws_url(srv, "/ws/echo")) as ws:
            out = []
            for msg in ("text \u20ac", bytes(range(256)), "", b""):
                await ws.send(msg)
                out.append(await ws.recv())
            return out

    assert run(talk()) == ["text \u20ac", bytes(range(256)), "", b""]


def test_a_1_mb_message_and_a_fragmented_one_arrive_whole(drover, tmp_path):
    srv = asgi(drover, tmp_path)
    big = os.urandom(1 << 20)
    text = "x" * (1 << 20)
    parts = [b"first|", os.urandom(70_000), b"|last"]

    async def talk():
        async with websockets.connect(ws_url(srv, "/ws/echo"),
                                      max_size=None) as ws:
            await ws.send(big)
            got_big = await ws.recv()
            await ws.send(text)
            got_text = await ws.recv()
            await ws.send(iter(parts))   # one message in three frames
            got_parts = await ws.recv()
            return got_big, got_text, got_parts

    got_big, got_text, got_parts = run(talk())
    assert got_big == big
    assert got_text == text
    assert got_parts == b"".join(parts)


def test_the_server_answers_a_ping_with_a_pong(drover, tmp_path):
    srv = asgi(drover, tmp_path)
    c, (_, status, _, _, _), _ = open_raw(srv.port, "/ws/echo")
    with c:
        assert status == 101
        c.send(client_frame(0x9, b"are you there"))
        assert read_frame(c) == (True, 0xA, b"are you there")

    async def talk():
        async with websockets.connect(ws_url(srv, "/ws/echo")) as ws:
            await asyncio.wait_for(await ws.ping(b"lib ping"), 2)
            await ws.send("still open")
            return await ws.recv()

    assert run(talk()) == "still open"


def test_the_server_pings_every_ping_interval(drover, tmp_path):
    srv = asgi(drover, tmp_path, "--ws-ping-interval", "1",
               "--ws-ping-timeout", "5")
    c, (_, status, _, _, _), _ = open_raw(srv.port, "/ws/echo")
    with c:
        assert status == 101
        c.sock.settimeout(3)
        t0 = time.monotonic()
        fin, opcode, payload = read_frame(c)
        assert opcode == 0x9, (opcode, payload)
        assert time.monotonic() - t0 < 2.5
        c.send(client_frame(0xA, payload))
        # answered: the socket stays open and keeps echoing
        time.sleep(0.3)
        c.send(client_frame(0x1, b"after the pong"))
        while True:
            fin, opcode, payload = read_frame(c)
            if opcode != 0x9:
                break
            c.send(client_frame(0xA, payload))
        assert (opcode, payload) == (0x1, b"after the pong")


def test_a_client_that_never_answers_pings_is_dropped(drover, tmp_path):
    srv = asgi(drover, tmp_path, "--ws-ping-interval", "1",
               "--ws-ping-timeout", "1")
    c, (_, status, _, _, _), _ = open_raw(srv.port, "/ws/echo")
    with c:
        assert status == 101
        c.sock.settimeout(6)
        t0 = time.monotonic()
        pings = 0
        try:
            while True:
                _, opcode, _ = read_frame(c)   # never answered
                if opcode == 0x8:
                    break
                assert opcode == 0x9, opcode
                pings += 1
        except Closed:
            pass
        elapsed = time.monotonic() - t0
    assert pings >= 1
    assert 1.5 <= elapsed < 5, f"dropped after {elapsed:.2f} s"


def test_subprotocols_are_offered_and_one_is_chosen(drover, tmp_path):
    srv = asgi(drover, tmp_path)

    async def talk(offer):
        async with websockets.connect(ws_url(srv, "/ws/subprotocol"),
                                      subprotocols=offer) as ws:
            return ws.subprotocol, json.loads(await ws.recv())

    chosen, got = run(talk(["chat.v2", "chat.v1"]))
    assert chosen == "chat.v1"
    assert got == {"offered": ["chat.v2", "chat.v1"], "chosen": "chat.v1"}
    chosen, got = run(talk(None))
    assert chosen is None and got == {"offered": [], "chosen": None}


def test_the_apps_close_code_4001_reaches_the_client(drover, tmp_path):
    srv = asgi(drover, tmp_path)

    async def talk():
        async with websockets.connect(ws_url(srv, "/ws/close4001")) as ws:
            first = await ws.recv()
            with pytest.raises(ConnectionClosed):
                await ws.recv()
            return first, ws.close_code, ws.close_reason

    assert run(talk()) == ("closing with 4001", 4001, "app says bye")


def test_the_clients_close_code_reaches_the_app(drover, tmp_path):
    srv = asgi(drover, tmp_path)

    async def talk():
        ws = await websockets.connect(ws_url(srv, "/ws/echo?id=client"))
        await ws.send("hi")
        assert await ws.recv() == "hi"
        await ws.close(code=4002, reason="client says bye")
        return ws.close_code

    assert run(talk()) == 4002   # the server echoed the close
    assert marker(tmp_path, "ws-disconnect-client") == {
        "code": 4002, "reason": "client says bye"}


def test_a_message_over_ws_max_size_closes_with_1009(drover, tmp_path):
    srv = asgi(drover, tmp_path, "--ws-max-size", "1024")

    async def talk():
        async with websockets.connect(ws_url(srv, "/ws/echo")) as ws:
            await ws.send(b"y" * 1024)   # at the limit: fine
            at_limit = await ws.recv()
            await ws.send(b"y" * 1025)
            with pytest.raises(ConnectionClosed):
                await ws.recv()
            return at_limit, ws.close_code

    at_limit, code = run(talk())
    assert at_limit == b"y" * 1024
    assert code == 1009


def test_a_denied_handshake_gets_the_apps_http_response(drover, tmp_path):
    srv = asgi(drover, tmp_path)
    c, (_, status, _, headers, _), _ = open_raw(srv.port, "/ws/deny")
    with c:
        assert status == 401
        h = {n.lower(): v for n, v in headers}
        assert h["x-denied"] == "yes"
        assert "sec-websocket-accept" not in h
        assert c._take(int(h["content-length"])) == b"denied by the app"

    async def talk():
        async with websockets.connect(ws_url(srv, "/ws/deny")):
            pass

    with pytest.raises(InvalidStatusCode) as info:
        run(talk())
    assert info.value.status_code == 401


def test_a_close_before_accept_is_a_403(drover, tmp_path):
    srv = asgi(drover, tmp_path)
    c, (_, status, _, headers, _), _ = open_raw(srv.port, "/ws/reject")
    with c:
        assert status == 403
        assert "sec-websocket-accept" not in {n.lower() for n, _ in headers}


def test_200_sockets_at_once(drover, tmp_path):
    srv = asgi(drover, tmp_path, "--workers", "2")
    n = 200

    async def talk():
        socks = await asyncio.gather(*[
            websockets.connect(ws_url(srv, "/ws/echo")) for _ in range(n)])
        try:
            await asyncio.gather(*[ws.send(f"socket {i}")
                                   for i, ws in enumerate(socks)])
            replies = await asyncio.gather(*[ws.recv() for ws in socks])
        finally:
            await asyncio.gather(*[ws.close() for ws in socks])
        return replies, [ws.close_code for ws in socks]

    replies, codes = run(talk())
    assert replies == [f"socket {i}" for i in range(n)]
    assert codes == [1000] * n


def test_an_accepted_handshake_is_logged_with_status_101(drover, tmp_path):
    log = tmp_path / "access.log"
    srv = asgi(drover, tmp_path, "--access-logfile", log)

    async def talk():
        async with websockets.connect(ws_url(srv, "/ws/echo")) as ws:
            await ws.send("x")
            return await ws.recv()

    assert run(talk()) == "x"
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and '"GET /ws/echo' not in (
            log.read_text() if log.exists() else ""):
        time.sleep(0.05)
    line = [x for x in log.read_text().splitlines() if "/ws/echo" in x][0]
    assert re.search(r'"GET /ws/echo HTTP/1.1" 101 ', line), line
