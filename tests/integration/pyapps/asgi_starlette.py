"""A Starlette app (Debian's python3-starlette) for test_asgi_frameworks.py:
two HTTP routes, a JSON POST and a WebSocket route; its startup handler
(lifespan) sets app.state.ready."""
import os

from starlette.applications import Starlette
from starlette.responses import JSONResponse, PlainTextResponse
from starlette.routing import Route, WebSocketRoute


async def startup():
    app.state.ready = True


async def homepage(request):
    return JSONResponse({"framework": "starlette", "path": request.url.path,
                         "ready": getattr(request.app.state, "ready", False),
                         "pid": os.getpid()})


async def user(request):
    return PlainTextResponse(f"hello {request.path_params['name']}")


async def echo_json(request):
    return JSONResponse({"received": await request.json()})


async def shout(websocket):
    """Answers each text message in upper case, until the client says bye."""
    await websocket.accept()
    while True:
        text = await websocket.receive_text()
        if text == "bye":
            await websocket.close(code=1000)
            return
        await websocket.send_text(text.upper())


app = Starlette(routes=[Route("/", homepage),
                        Route("/users/{name}", user),
                        Route("/json", echo_json, methods=["POST"]),
                        WebSocketRoute("/ws", shout)],
                on_startup=[startup])
