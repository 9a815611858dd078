"""Real ASGI frameworks served unchanged: FastAPI (JSON, path and query
parameters, a 3 MB upload, StreamingResponse, an exception, background
tasks, a WebSocket), Starlette (routes, lifespan startup, a WebSocket) and
Quart (JSON, a POST), from pyapps/asgi_fastapi.py, asgi_starlette.py and
asgi_quart.py."""
import asyncio
import hashlib
import os
import time

import requests
import websockets

from helpers import asgi, marker, ws_url


def fastapi(drover, tmp_path, *args):
    return asgi(drover, tmp_path, *args, app="asgi_fastapi:app")


def test_fastapi_answers_json(drover, tmp_path):
    srv = fastapi(drover, tmp_path)
    r = requests.get(srv.url + "/hello", timeout=5)
    assert r.status_code == 200
    assert r.headers["content-type"] == "application/json"
    got = r.json()
    assert (got["message"], got["framework"]) == ("hello", "fastapi")


def test_fastapi_path_and_query_parameters(drover, tmp_path):
    srv = fastapi(drover, tmp_path)
    r = requests.get(srv.url + "/items/42?q=caf%C3%A9&limit=3", timeout=5)
    assert r.json() == {"item_id": 42, "q": "caf\u00e9", "limit": 3}
    r = requests.get(srv.url + "/items/7", timeout=5)
    assert r.json() == {"item_id": 7, "q": None, "limit": 10}
    # FastAPI's own validation still answers 422 through the server.
    r = requests.get(srv.url + "/items/not-a-number", timeout=5)
    assert r.status_code == 422
    assert r.json()["detail"][0]["loc"] == ["path", "item_id"]


def test_fastapi_reads_a_3_mb_body(drover, tmp_path):
    srv = fastapi(drover, tmp_path)
    body = os.urandom(3 << 20)
    r = requests.post(srv.url + "/upload", data=body, timeout=10)
    assert r.status_code == 200
    assert r.json() == {"length": len(body),
                        "sha256": hashlib.sha256(body).hexdigest()}


def test_fastapi_streaming_response_arrives_as_it_is_produced(drover,
                                                              tmp_path):
    srv = fastapi(drover, tmp_path)
    assert requests.get(srv.url + "/hello", timeout=5).status_code == 200
    t0 = time.monotonic()
    pieces = []
    with requests.get(srv.url + "/stream?chunks=4&delay=0.3", stream=True,
                      timeout=5) as r:
        assert r.status_code == 200
        assert r.headers["Transfer-Encoding"] == "chunked"
        for piece in r.iter_content(chunk_size=None):
            pieces.append((time.monotonic() - t0, piece))
    assert b"".join(p for _, p in pieces) == \
        b"chunk 0\nchunk 1\nchunk 2\nchunk 3\n"
    # the first chunk long before the generator is done
    first, last = pieces[0][0], pieces[-1][0]
    assert first < 0.6, f"first chunk only after {first:.2f} s"
    assert last >= 0.85, f"all four chunks after {last:.2f} s"


def test_fastapi_exception_is_a_500_and_a_traceback_in_the_log(drover,
                                                               tmp_path):
    srv = fastapi(drover, tmp_path)
    r = requests.get(srv.url + "/boom", timeout=5)
    assert r.status_code == 500
    assert "deliberate" not in r.text
    srv.wait_log(r"RuntimeError: fastapi deliberate failure")
    assert "Traceback" in srv.log
    assert requests.get(srv.url + "/hello", timeout=5).status_code == 200


def test_fastapi_background_task_runs_after_the_response(drover, tmp_path):
    srv = fastapi(drover, tmp_path)
    r = requests.post(srv.url + "/background?name=report&delay=0.5",
                      timeout=5)
    assert r.status_code == 200 and r.json() == {"queued": "report"}
    assert not (tmp_path / "background-report").exists()
    got = marker(tmp_path, "background-report")
    assert got["name"] == "report"


def test_fastapi_websocket_echo(drover, tmp_path):
    srv = fastapi(drover, tmp_path)

    async def talk():
        async with websockets.connect(ws_url(srv, "/ws")) as ws:
            replies = []
            for text in ("one", "zwei", "\u4e09"):
                await ws.send(text)
                replies.append(await asyncio.wait_for(ws.recv(), 5))
            return replies

    assert asyncio.run(talk()) == ["echo: one", "echo: zwei", "echo: \u4e09"]


def test_starlette_app_with_lifespan_and_a_websocket(drover, tmp_path):
    srv = asgi(drover, tmp_path, app="asgi_starlette:app")
    got = requests.get(srv.url + "/", timeout=5).json()
    assert got["framework"] == "starlette" and got["path"] == "/"
    assert got["ready"] is True   # its on_startup handler ran
    assert requests.get(srv.url + "/users/ada", timeout=5).text == "hello ada"
    r = requests.post(srv.url + "/json", json={"a": [1, 2]}, timeout=5)
    assert r.json() == {"received": {"a": [1, 2]}}
    assert requests.get(srv.url + "/missing", timeout=5).status_code == 404

    async def talk():
        async with websockets.connect(ws_url(srv, "/ws")) as ws:
            await ws.send("quiet please")
            reply = await asyncio.wait_for(ws.recv(), 5)
            await ws.send("bye")
            await asyncio.wait_for(ws.wait_closed(), 5)
            return reply, ws.close_code

    assert asyncio.run(talk()) == ("QUIET PLEASE", 1000)


def test_quart_app_json_and_post(drover, tmp_path):
    srv = asgi(drover, tmp_path, app="asgi_quart:app")
    r = requests.get(srv.url + "/json?x=1", timeout=5)
    assert r.status_code == 200
    got = r.json()
    assert got["framework"] == "quart" and got["args"] == {"x": "1"}
    assert got["ready"] is True   # before_serving ran
    payload = {"name": "drover", "n": [1, 2, 3]}
    r = requests.post(srv.url + "/echo", json=payload, timeout=5)
    assert r.status_code == 201
    assert r.json()["received"] == payload
    assert r.json()["length"] == int(r.request.headers["Content-Length"])
