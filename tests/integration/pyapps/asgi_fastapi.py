"""A FastAPI app (Debian's python3-fastapi 0.92) for test_asgi_frameworks.py:
JSON, path and query parameters, a large upload, a StreamingResponse, an
endpoint that raises, a background task and a WebSocket. The background
task writes its marker file to $ASGI_MARKERS."""
import asyncio
import hashlib
import json
import os
import time
from typing import Optional

from fastapi import BackgroundTasks, FastAPI, Request, WebSocket, \
    WebSocketDisconnect
from fastapi.responses import StreamingResponse

app = FastAPI()


@app.get("/hello")
async def hello():
    return {"message": "hello", "framework": "fastapi", "pid": os.getpid()}


@app.get("/items/{item_id}")
async def item(item_id: int, q: Optional[str] = None, limit: int = 10):
    return {"item_id": item_id, "q": q, "limit": limit}


@app.post("/upload")
async def upload(request: Request):
    body = await request.body()
    return {"length": len(body), "sha256": hashlib.sha256(body).hexdigest()}


@app.get("/stream")
async def stream(chunks: int = 4, delay: float = 0.2):
    async def lines():
        for i in range(chunks):
            if i:
                await asyncio.sleep(delay)
            yield f"chunk {i}\n".encode()
    return StreamingResponse(lines(), media_type="text/plain")


@app.get("/boom")
async def boom():
    raise RuntimeError("fastapi deliberate failure")


def write_marker(name: str, delay: float):
    """Runs after the response (in Starlette's thread pool: a plain def)."""
    time.sleep(delay)
    path = os.path.join(os.environ["ASGI_MARKERS"], f"background-{name}")
    with open(path + ".tmp", "w") as f:
        json.dump({"name": name, "pid": os.getpid()}, f)
    os.replace(path + ".tmp", path)


@app.post("/background")
async def background(name: str, tasks: BackgroundTasks, delay: float = 0.5):
    tasks.add_task(write_marker, name, delay)
    return {"queued": name}


@app.websocket("/ws")
async def ws_echo(websocket: WebSocket):
    await websocket.accept()
    try:
        while True:
            text = await websocket.receive_text()
            await websocket.send_text(f"echo: {text}")
    except WebSocketDisconnect:
        pass
