"""A plain ASGI 3 app for the ASGI suites: no framework, so what the server
puts in the scope and the events is seen as it is.

Routes (HTTP): / ("<pid> <VERSION>") /scope /fixed /stream /body
/echo-body /sleep /block /raise-before /raise-after /wait-disconnect
/after-complete /big /progress /pathsend /state /state-mutate /loop.
WebSocket: /ws/echo /ws/scope /ws/subprotocol /ws/close4001 /ws/deny
/ws/reject.

Marker files (what happened where the client cannot see it: a disconnect,
a lifespan event) are written to $ASGI_MARKERS when it is set. Lifespan
knobs: ASGI_STARTUP_DELAY (seconds), ASGI_STARTUP_FAIL ("raise" or the
message of a lifespan.startup.failed).

Also here: `instance_app` (an object with an async __call__), the ASGI 2
shapes the server must refuse (`asgi2_class`, `asgi2_double_callable`) and
`no_lifespan_app` (raises on any scope but http, as many small apps do).
"""
import asyncio
import hashlib
import json
import os
import time
from urllib.parse import parse_qs

VERSION = "v1"
MARKERS = os.environ.get("ASGI_MARKERS")
STARTED = {"startup": False}   # this worker's lifespan startup ran
PROGRESS = {}                  # /big: bytes whose send() returned, by id
CHUNK = 64 * 1024


def mark(name, data):
    """Write marker `name` (JSON) atomically, so a reader never sees half."""
    if not MARKERS:
        return
    path = os.path.join(MARKERS, name)
    with open(path + ".tmp", "w") as f:
        json.dump(data, f)
    os.replace(path + ".tmp", path)


def enc(obj):
    """The scope as JSON: bytes become {"bytes": latin-1 text}, so a test
    can tell bytes from str; what JSON cannot hold becomes its repr."""
    if isinstance(obj, bytes):
        return {"bytes": obj.decode("latin-1")}
    if isinstance(obj, dict):
        return {str(k): enc(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [enc(v) for v in obj]
    if obj is None or isinstance(obj, (str, int, float, bool)):
        return obj
    return repr(obj)


def query(scope):
    q = parse_qs(scope["query_string"].decode("latin-1"))
    return {k: v[0] for k, v in q.items()}


async def respond(send, status, body, content_type=b"text/plain",
                  headers=()):
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", content_type),
                            (b"content-length", str(len(body)).encode()),
                            *headers]})
    await send({"type": "http.response.body", "body": body})


async def respond_json(send, data, status=200):
    await respond(send, status, json.dumps(data).encode(),
                  b"application/json")


async def read_body(receive):
    """The whole request body and the (size, more_body) of each event."""
    parts, events = [], []
    while True:
        msg = await receive()
        if msg["type"] == "http.disconnect":
            raise ConnectionError("client went away mid-body")
        assert msg["type"] == "http.request", msg
        body = msg.get("body", b"")
        parts.append(body)
        events.append([len(body), msg.get("more_body", False)])
        if not msg.get("more_body", False):
            return b"".join(parts), events


# --- HTTP routes -----------------------------------------------------------

async def scope_route(scope, receive, send):
    await read_body(receive)
    await respond_json(send, {"scope": enc(scope), "pid": os.getpid()})


async def pid_route(scope, receive, send):
    await respond(send, 200, f"{os.getpid()} {VERSION}".encode())


async def fixed(scope, receive, send):
    await respond(send, 200, b"hello world")


async def stream(scope, receive, send):
    """chunks x size bytes, chunk i all 'a' + i % 26; no content-length,
    so the server frames it (chunked for HTTP/1.1)."""
    q = query(scope)
    chunks, size = int(q.get("chunks", 3)), int(q.get("size", 10))
    delay = float(q.get("delay", 0))
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"text/plain")]})
    for i in range(chunks):
        if delay and i:
            await asyncio.sleep(delay)
        await send({"type": "http.response.body",
                    "body": bytes([97 + i % 26]) * size, "more_body": True})
    await send({"type": "http.response.body", "body": b""})


async def body_route(scope, receive, send):
    body, events = await read_body(receive)
    await respond_json(send, {"size": len(body), "events": events,
                              "sha256": hashlib.sha256(body).hexdigest()})


async def echo_body(scope, receive, send):
    body, _ = await read_body(receive)
    await respond(send, 200, body, b"application/octet-stream")


async def sleep_route(scope, receive, send):
    seconds = float(query(scope).get("s", 0.5))
    await asyncio.sleep(seconds)
    await respond(send, 200, f"{os.getpid()} slept {seconds}".encode())


async def block(scope, receive, send):
    """Blocks the worker's event loop: what --timeout is for."""
    time.sleep(float(query(scope).get("s", 30)))
    await respond(send, 200, b"woke up")


async def raise_before(scope, receive, send):
    raise RuntimeError("asgi deliberate failure before start")


async def raise_after(scope, receive, send):
    """Starts a response (with content-length 20 if ?cl=1, else none),
    sends 5 bytes of it, then fails."""
    headers = [(b"content-type", b"text/plain")]
    if query(scope).get("cl") == "1":
        headers.append((b"content-length", b"20"))
    await send({"type": "http.response.start", "status": 200,
                "headers": headers})
    await send({"type": "http.response.body", "body": b"part1",
                "more_body": True})
    await asyncio.sleep(0.05)
    raise RuntimeError("asgi deliberate failure after start")


async def wait_disconnect(scope, receive, send):
    """Marks started-<id>, then waits for the event that follows the body
    (http.disconnect when the client goes away) and marks disconnect-<id>."""
    ident = query(scope)["id"]
    await read_body(receive)
    mark(f"started-{ident}", {"pid": os.getpid()})
    t0 = time.monotonic()
    try:
        msg = await asyncio.wait_for(receive(), 10)
        got = msg["type"]
    except asyncio.TimeoutError:
        got = "timeout"
    mark(f"disconnect-{ident}", {"type": got,
                                 "elapsed": time.monotonic() - t0})
    if got != "http.disconnect":
        await respond(send, 500, got.encode())


async def after_complete(scope, receive, send):
    """Answers, then reports what receive() gives once the response is
    complete (the client keeps the connection open)."""
    ident = query(scope)["id"]
    await read_body(receive)
    await respond(send, 200, b"done")
    t0 = time.monotonic()
    try:
        msg = await asyncio.wait_for(receive(), 5)
        got = msg["type"]
    except asyncio.TimeoutError:
        got = "timeout"
    mark(f"after-{ident}", {"type": got, "elapsed": time.monotonic() - t0})


def big_chunk(i):
    return bytes([97 + i % 26]) * CHUNK


async def big(scope, receive, send):
    """?mb=N MiB with content-length, 64 KiB per send; PROGRESS[id] counts
    the bytes whose send() has returned (what backpressure holds back)."""
    q = query(scope)
    total = int(q.get("mb", 64)) << 20
    ident = q.get("id", "")
    PROGRESS[ident] = 0
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"application/octet-stream"),
                            (b"content-length", str(total).encode())]})
    for i in range(total // CHUNK):
        await send({"type": "http.response.body", "body": big_chunk(i),
                    "more_body": True})
        PROGRESS[ident] += CHUNK
    await send({"type": "http.response.body", "body": b""})


async def progress(scope, receive, send):
    await respond_json(send, {"sent": PROGRESS.get(query(scope)["id"])})


async def pathsend(scope, receive, send):
    path = query(scope)["path"]
    if "http.response.pathsend" not in scope.get("extensions", {}):
        await respond(send, 501, b"no http.response.pathsend extension")
        return
    size = os.stat(path).st_size
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"application/octet-stream"),
                            (b"content-length", str(size).encode())]})
    await send({"type": "http.response.pathsend", "path": path})


async def state_route(scope, receive, send):
    await respond_json(send, {"pid": os.getpid(),
                              "state": enc(scope.get("state")),
                              "startup": STARTED["startup"]})


async def state_mutate(scope, receive, send):
    scope["state"]["mutated"] = True
    await respond(send, 200, b"mutated")


async def loop_route(scope, receive, send):
    loop = type(asyncio.get_running_loop())
    name = f"{loop.__module__}.{loop.__qualname__}"
    await respond_json(send, {"loop": name})


HTTP_ROUTES = {
    "/": pid_route, "/scope": scope_route, "/fixed": fixed,
    "/stream": stream, "/body": body_route, "/echo-body": echo_body,
    "/sleep": sleep_route, "/block": block, "/raise-before": raise_before,
    "/raise-after": raise_after, "/wait-disconnect": wait_disconnect,
    "/after-complete": after_complete, "/big": big, "/progress": progress,
    "/pathsend": pathsend, "/state": state_route,
    "/state-mutate": state_mutate, "/loop": loop_route,
}


async def http(scope, receive, send):
    # Routed on the path below root_path (--script-name), so that the
    # routes work whether the server's path includes root_path or not.
    path, root = scope["path"], scope.get("root_path", "")
    if root and path.startswith(root):
        path = path[len(root):]
    route = HTTP_ROUTES.get(path)
    if route is None and path.startswith("/scope/"):
        route = scope_route
    if route is None:
        await respond(send, 404, b"not found")
    else:
        await route(scope, receive, send)


# --- WebSocket routes ------------------------------------------------------

async def ws_accept(receive, send, subprotocol=None):
    msg = await receive()
    assert msg["type"] == "websocket.connect", msg
    await send({"type": "websocket.accept", "subprotocol": subprotocol})


async def ws_echo(scope, receive, send):
    """Echoes text as text and bytes as bytes; with ?id=X marks the close
    code the app is told (ws-disconnect-X)."""
    ident = query(scope).get("id")
    await ws_accept(receive, send)
    while True:
        msg = await receive()
        if msg["type"] == "websocket.disconnect":
            if ident:
                mark(f"ws-disconnect-{ident}", {"code": msg.get("code"),
                                                "reason": msg.get("reason")})
            return
        if msg.get("text") is not None:
            await send({"type": "websocket.send", "text": msg["text"]})
        else:
            await send({"type": "websocket.send", "bytes": msg["bytes"]})


async def ws_scope(scope, receive, send):
    await ws_accept(receive, send)
    await send({"type": "websocket.send",
                "text": json.dumps({"scope": enc(scope), "pid": os.getpid()})})
    await send({"type": "websocket.close", "code": 1000})


async def ws_subprotocol(scope, receive, send):
    """Accepts chat.v1 if offered (whatever the client's order)."""
    offered = list(scope.get("subprotocols", []))
    chosen = "chat.v1" if "chat.v1" in offered else None
    await ws_accept(receive, send, chosen)
    await send({"type": "websocket.send",
                "text": json.dumps({"offered": offered, "chosen": chosen})})
    await send({"type": "websocket.close", "code": 1000})


async def ws_close4001(scope, receive, send):
    await ws_accept(receive, send)
    await send({"type": "websocket.send", "text": "closing with 4001"})
    await send({"type": "websocket.close", "code": 4001,
                "reason": "app says bye"})


async def ws_deny(scope, receive, send):
    """Refuses the handshake with its own HTTP response (the
    websocket.http.response extension), or a plain close without it."""
    msg = await receive()
    assert msg["type"] == "websocket.connect", msg
    if "websocket.http.response" not in scope.get("extensions", {}):
        await send({"type": "websocket.close"})
        return
    body = b"denied by the app"
    await send({"type": "websocket.http.response.start", "status": 401,
                "headers": [(b"content-type", b"text/plain"),
                            (b"content-length", str(len(body)).encode()),
                            (b"x-denied", b"yes")]})
    await send({"type": "websocket.http.response.body", "body": body})


async def ws_reject(scope, receive, send):
    msg = await receive()
    assert msg["type"] == "websocket.connect", msg
    await send({"type": "websocket.close", "code": 1000})


WS_ROUTES = {"/ws/echo": ws_echo, "/ws/scope": ws_scope,
             "/ws/subprotocol": ws_subprotocol,
             "/ws/close4001": ws_close4001, "/ws/deny": ws_deny,
             "/ws/reject": ws_reject}


async def websocket(scope, receive, send):
    await WS_ROUTES.get(scope["path"], ws_reject)(scope, receive, send)


# --- lifespan --------------------------------------------------------------

async def lifespan(scope, receive, send):
    """Marks startup-<pid> and shutdown-<pid>; puts this worker's pid in
    the lifespan state, which every request's scope gets a copy of."""
    while True:
        msg = await receive()
        if msg["type"] == "lifespan.startup":
            delay = float(os.environ.get("ASGI_STARTUP_DELAY", 0))
            if delay:
                await asyncio.sleep(delay)
            fail = os.environ.get("ASGI_STARTUP_FAIL")
            if fail == "raise":
                raise RuntimeError("lifespan startup raised for the test")
            if fail:
                await send({"type": "lifespan.startup.failed",
                            "message": fail})
                return
            if "state" in scope:
                scope["state"].update({"worker_pid": os.getpid(),
                                       "answer": 42})
            STARTED["startup"] = True
            mark(f"startup-{os.getpid()}", {"pid": os.getpid(),
                                            "ppid": os.getppid()})
            await send({"type": "lifespan.startup.complete"})
        elif msg["type"] == "lifespan.shutdown":
            mark(f"shutdown-{os.getpid()}", {"pid": os.getpid()})
            await send({"type": "lifespan.shutdown.complete"})
            return


async def app(scope, receive, send):
    kind = scope["type"]
    if kind == "http":
        await http(scope, receive, send)
    elif kind == "websocket":
        await websocket(scope, receive, send)
    elif kind == "lifespan":
        await lifespan(scope, receive, send)
    else:
        raise RuntimeError(f"unknown scope type {kind}")


class InstanceApp:
    """ASGI 3 as an object with an async __call__."""

    async def __call__(self, scope, receive, send):
        if scope["type"] == "http" and scope["path"] == "/kind":
            await respond(send, 200, b"instance")
        else:
            await app(scope, receive, send)


instance_app = InstanceApp()


async def no_lifespan_app(scope, receive, send):
    """Knows only HTTP and says so on a lifespan scope."""
    if scope["type"] != "http":
        raise RuntimeError(f"unsupported scope type {scope['type']!r}")
    await http(scope, receive, send)


class asgi2_class:  # noqa: N801 (named for what it is)
    """ASGI 2, class style: instantiated with the scope, then awaited."""

    def __init__(self, scope):
        self.scope = scope

    async def __call__(self, receive, send):
        await respond(send, 200, b"asgi2")


def asgi2_double_callable(scope):
    """ASGI 2, double-callable function style."""
    async def instance(receive, send):
        await respond(send, 200, b"asgi2")
    return instance
