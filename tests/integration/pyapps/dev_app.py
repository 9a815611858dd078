"""The Flask app test_dev.py copies into a temporary directory and edits
while drover --dev serves it."""
import time

from flask import Flask, request

import dev_helper

app = Flask(__name__)


@app.route("/")
def index():
    return "version 1"


@app.route("/helper")
def helper():
    return dev_helper.GREETING


@app.route("/boom")
def boom():
    raise RuntimeError("dev view failed on purpose")


@app.route("/slow")
def slow():
    time.sleep(float(request.args.get("s", "0.5")))
    return "slow done"
