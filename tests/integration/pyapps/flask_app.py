"""A real Flask app: the kind drover exists for."""
import io

from flask import (Flask, Response, jsonify, redirect, request, send_file,
                   session, stream_with_context, url_for)

app = Flask(__name__)
app.secret_key = "test-secret"


@app.route("/")
def index():
    return "hello from flask"


@app.route("/json", methods=["POST"])
def echo_json():
    return jsonify(received=request.get_json(), length=request.content_length)


@app.route("/form", methods=["POST"])
def form():
    return jsonify(dict(request.form))


@app.route("/upload", methods=["POST"])
def upload():
    f = request.files["file"]
    data = f.read()
    return jsonify(name=f.filename, size=len(data), head=data[:8].decode("latin-1"))


@app.route("/go")
def go():
    return redirect(url_for("index"))


@app.route("/count")
def count():
    session["n"] = session.get("n", 0) + 1
    return str(session["n"])


@app.route("/stream")
def stream():
    def gen():
        for i in range(100):
            yield f"line {i}\n"
    return Response(stream_with_context(gen()), mimetype="text/plain")


@app.route("/file")
def file():
    return send_file(io.BytesIO(b"x" * 100000), mimetype="application/octet-stream",
                     download_name="x.bin")


@app.route("/boom")
def boom():
    raise RuntimeError("flask view failed")


@app.errorhandler(404)
def missing(e):
    return jsonify(error="not here"), 404
