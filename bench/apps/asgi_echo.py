"""WebSocket echo ASGI 3 app for bench/run.sh (group "asgi_ws"), raw, with
no framework, so that what is measured is the server's WebSocket handling.

    drover --workers 2 --bind 127.0.0.1:8000 --interface asgi asgi_echo:app   (PYTHONPATH=bench/apps)
    uvicorn --app-dir bench/apps --workers 2 --loop uvloop --http httptools --ws websockets --no-access-log asgi_echo:app
    bench/ws_load -c 50 -d 10s ws://127.0.0.1:8000/ws

A WebSocket connection on any path is accepted and every text (or binary)
message is sent back unchanged, as the same type, until the client goes
away. Plain HTTP requests on any path get hello_wsgi's answer (200,
text/plain, "Hello, World!\\n"), which run.sh checks before measuring.
"""

BODY = b"Hello, World!\n"
HEADERS = [
    (b"content-type", b"text/plain"),
    (b"content-length", str(len(BODY)).encode()),
]


async def echo(receive, send):
    message = await receive()
    if message["type"] != "websocket.connect":
        return
    await send({"type": "websocket.accept"})
    while True:
        message = await receive()
        if message["type"] == "websocket.receive":
            # Servers set the key that is not used to None, or leave it out.
            text = message.get("text")
            if text is not None:
                await send({"type": "websocket.send", "text": text})
            else:
                await send({"type": "websocket.send", "bytes": message.get("bytes") or b""})
        elif message["type"] == "websocket.disconnect":
            return


async def app(scope, receive, send):
    if scope["type"] == "websocket":
        await echo(receive, send)
    elif scope["type"] == "http":
        await send({"type": "http.response.start", "status": 200, "headers": HEADERS})
        await send({"type": "http.response.body", "body": BODY})
    elif scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return
