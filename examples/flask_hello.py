"""The app `make run` serves: a small Flask app, run by drover the way
you would run yours.

    drover examples/flask_hello.py:app
    curl http://127.0.0.1:5000/          # Hello from drover!
    curl http://127.0.0.1:5000/json      # a JSON document about the request

drover imports this file under its own module name (the path has no
package), finds `app`, and serves it with its master and workers;
nothing here is drover-specific.
"""
import os

from flask import Flask, jsonify, request

app = Flask(__name__)


@app.get("/")
def hello():
    return "Hello from drover!\n"


@app.get("/json")
def about():
    # X-Request-ID is always there: the client's when it sent a sane one,
    # else the id drover made (it is in the access log and the response).
    return jsonify(
        message="Hello from drover!",
        path=request.path,
        args=request.args,
        request_id=request.headers.get("X-Request-ID"),
        worker_pid=os.getpid(),
        server=request.environ.get("SERVER_SOFTWARE"),
    )
