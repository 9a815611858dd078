"""Hello-world ASGI 3 app for bench/run.sh (group "asgi_hello"): the ASGI
twin of hello_wsgi.py, a raw app with no framework.

Served by every ASGI peer so that they all run the same code:

    drover --workers 2 --bind 127.0.0.1:8000 --interface asgi asgi_hello:app   (PYTHONPATH=bench/apps)
    uvicorn --app-dir bench/apps --workers 2 --loop uvloop --http httptools --no-access-log asgi_hello:app
    hypercorn --workers 2 -k uvloop asgi_hello:app                              (PYTHONPATH=bench/apps)

Same body and headers as hello_wsgi: 200, Content-Type: text/plain,
Content-Length: 14, "Hello, World!\\n", on every path. It does not read the
request body (wrk sends GETs). The lifespan protocol is answered so that no
server logs a lifespan error or falls back.
"""

BODY = b"Hello, World!\n"
HEADERS = [
    (b"content-type", b"text/plain"),
    (b"content-length", str(len(BODY)).encode()),
]


async def app(scope, receive, send):
    if scope["type"] == "http":
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
