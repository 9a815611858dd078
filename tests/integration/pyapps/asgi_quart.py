"""A Quart app (Debian's python3-quart 0.18) for test_asgi_frameworks.py: a
JSON route and a POST; its before_serving hook (lifespan) sets READY."""
import os

from quart import Quart, request

app = Quart(__name__)


@app.before_serving
async def startup():
    app.config["READY"] = True


@app.route("/json")
async def hello():
    return {"framework": "quart", "ready": app.config.get("READY", False),
            "args": dict(request.args), "pid": os.getpid()}


@app.route("/echo", methods=["POST"])
async def echo():
    data = await request.get_json()
    raw = await request.get_data()
    return {"received": data, "length": len(raw)}, 201
