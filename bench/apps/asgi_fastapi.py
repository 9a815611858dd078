"""A small FastAPI app for bench/run.sh (group "asgi_fastapi"), the ASGI
counterpart of flask_app.py.

Served by every ASGI peer so that they all run the same code:

    drover --workers 2 --bind 127.0.0.1:8000 --interface asgi asgi_fastapi:app   (PYTHONPATH=bench/apps)
    uvicorn --app-dir bench/apps --workers 2 --loop uvloop --http httptools --no-access-log asgi_fastapi:app

Routes (both `async def`, so they run on the event loop, not in FastAPI's
thread pool):
    GET /        "Hello, World!\\n" as text/plain (run.sh checks it before
                 measuring)
    GET /json    the same JSON document as flask_app's /json, built from a
                 dict per request (what wrk loads): FastAPI's query parameter
                 validation (?page=, an int), jsonable_encoder and JSONResponse

No database: what is measured is the server plus FastAPI/Starlette's own
request handling (routing, parameter validation, JSON encoding).
"""

from fastapi import FastAPI
from fastapi.responses import PlainTextResponse

app = FastAPI()

ITEMS = [
    {"id": i, "name": "item-%d" % i, "price_cents": 199 * i, "tags": ["a", "b"]}
    for i in range(1, 6)
]


@app.get("/", response_class=PlainTextResponse)
async def hello():
    return "Hello, World!\n"


@app.get("/json")
async def json_route(page: int = 1):
    return {
        "message": "Hello, World!",
        "page": page,
        "count": len(ITEMS),
        "items": ITEMS,
    }
