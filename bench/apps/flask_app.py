"""A small Flask app for bench/run.sh (group "flask") and bench/memory.sh.

Served by every Python peer so that they all run the same code:

    drover --workers 2 --bind 127.0.0.1:8000 flask_app:app   (PYTHONPATH=bench/apps)
    gunicorn --workers 2 --chdir bench/apps flask_app:app

Routes:
    GET /        "Hello, World!\\n" as text/plain (a template-free string route;
                 run.sh checks it before measuring)
    GET /json    a JSON document built from a dict per request (what wrk loads)

No templates, no database: what is measured is the server plus Flask's own
request handling (routing, request/response objects, JSON encoding).
"""

from flask import Flask, jsonify, request

app = Flask(__name__)

ITEMS = [
    {"id": i, "name": "item-%d" % i, "price_cents": 199 * i, "tags": ["a", "b"]}
    for i in range(1, 6)
]


@app.get("/")
def hello():
    return "Hello, World!\n", 200, {"Content-Type": "text/plain"}


@app.get("/json")
def json_route():
    return jsonify(
        message="Hello, World!",
        page=request.args.get("page", 1, type=int),
        count=len(ITEMS),
        items=ITEMS,
    )


# uWSGI and mod_wsgi look for "application" by default.
application = app
