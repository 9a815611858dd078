"""drover.serve() (python/drover): a waitress script whose import is
changed to `from drover import serve`, run as `python script.py`, becomes
drover serving the same app; without a drover binary it falls back to
waitress. The keyword mapping itself is unit-tested in tests/python."""
import os
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from conftest import BIN, ROOT, Server
from helpers import RawConn, free_port, get, wait_for

# Debian's interpreter: the one drover embeds, with Flask and waitress.
PYTHON = "/usr/bin/python3"

FLASK_SCRIPT = '''
import os, time
from flask import Flask, request
from drover import serve

app = Flask(__name__)

@app.route("/")
def index():
    return {"multithread": request.environ["wsgi.multithread"],
            "script_name": request.environ["SCRIPT_NAME"]}

@app.route("/sleep")
def sleep():
    time.sleep(float(request.args["s"]))
    return "slept"

if __name__ == "__main__":
    with open(os.environ["MAIN_MARK"], "a") as f:
        f.write("main block ran\\n")
    serve(app, host="127.0.0.1", port=int(os.environ["PORT_FOR_TEST"]),
          {kw})
'''

DASHISH_SCRIPT = '''
import os
from flask import Flask
from drover import serve

class Dashish:
    """Like dash.Dash: not callable, its Flask app is .server."""
    def __init__(self):
        self.server = Flask(__name__)

app = Dashish()

@app.server.route("/")
def index():
    return "看板 OK"

if __name__ == "__main__":
    with open(os.environ["MAIN_MARK"], "a") as f:
        f.write("main block ran\\n")
    serve(app.server, host="127.0.0.1", port=int(os.environ["PORT_FOR_TEST"]),
          threads=4, channel_timeout=60, connection_limit=100)
'''


@pytest.fixture
def script(tmp_path):
    """Factory: script(text, name=, env=, cwd=, program=) writes the
    script into tmp_path, runs it with `program` (PYTHON) and returns
    (Server, port, main_mark).
    Every process is sent SIGTERM at teardown (the script process has
    become drover by then, or is serving with waitress)."""
    started = []

    def run(text, name="app.py", env=None, cwd=None, program=PYTHON):
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        port = free_port()
        mark = tmp_path / "main.mark"
        full_env = {k: v for k, v in os.environ.items()
                    if not k.startswith("DROVER_") and k not in
                    ("PORT", "WEB_CONCURRENCY", "PYTHONPATH", "VIRTUAL_ENV")}
        full_env.update({"PYTHONPATH": str(ROOT / "python"),
                         "DROVER_BINARY": str(BIN),
                         "PORT_FOR_TEST": str(port),
                         "MAIN_MARK": str(mark)})
        full_env.update(env or {})
        n = len(started)
        srv = Server([str(path)], cwd or tmp_path, full_env,
                     tmp_path / f"script-{n}.err",
                     tmp_path / f"script-{n}.out", program=program)
        started.append(srv)
        return srv, port, mark

    yield run
    for srv in started:
        srv.stop()
        srv.check_sanitizers()


def serving(port, path="/"):
    """Wait until 127.0.0.1:port answers `path`; return the response."""
    def answer():   # in a list: a 404 Response is false
        try:
            return [requests.get(f"http://127.0.0.1:{port}{path}", timeout=5)]
        except requests.ConnectionError:
            return None
    return wait_for(answer, 15, f"an answer on port {port}")[0]


def flask_script(kw):
    return FLASK_SCRIPT.replace("{kw}", kw)


def is_drover(pid):
    return os.readlink(f"/proc/{pid}/exe") == str(BIN)


def test_a_flask_script_calling_serve_becomes_drover_with_four_threads(
        script):
    srv, port, mark = script(flask_script("threads=4"))
    srv.wait_ready(15)
    assert srv.port == port
    r = serving(port)
    assert r.status_code == 200
    assert r.json()["multithread"] is True
    assert r.headers["Server"] == "drover"
    assert is_drover(srv.pid)   # the same process, exec'd
    assert f"Serving python app {srv.args[0]}:app" in srv.log

    def slow(_):
        return requests.get(f"http://127.0.0.1:{port}/sleep?s=1", timeout=10)

    t0 = time.monotonic()
    with ThreadPoolExecutor(4) as ex:
        assert [r.text for r in ex.map(slow, range(4))] == ["slept"] * 4
    assert time.monotonic() - t0 < 1.9   # in parallel, not 4 s
    assert mark.read_text() == "main block ran\n"
    assert "drover.serve" not in srv.log   # no keyword was ignored


def test_waitress_keywords_map_and_a_meaningless_one_warns_on_one_line(
        script):
    srv, port, _ = script(flask_script(
        "threads='2', channel_timeout=60, connection_limit=100, "
        "url_prefix='/board/', asyncore_use_poll=True"))
    srv.wait_ready(15)
    assert serving(port, "/board/").json()["script_name"] == "/board"
    assert serving(port, "/").status_code == 404
    warned = [ln for ln in srv.log.splitlines() if "asyncore_use_poll" in ln]
    assert warned == ["drover.serve: ignoring waitress's "
                      "asyncore_use_poll=True (drover has no such setting)"]
    # channel_timeout=60: an idle connection outlives drover's default 2 s
    with RawConn(port, timeout=5) as c:
        assert get(port, "/board/", conn=c).status == 200
        time.sleep(3)
        assert get(port, "/board/", conn=c).status == 200


def test_an_unknown_keyword_fails_as_in_waitress(tmp_path):
    path = tmp_path / "app.py"
    path.write_text(flask_script("thread=4"))
    env = {**os.environ, "PYTHONPATH": str(ROOT / "python"),
           "DROVER_BINARY": str(BIN), "PORT_FOR_TEST": str(free_port()),
           "MAIN_MARK": str(tmp_path / "mark")}
    r = subprocess.run([PYTHON, str(path)], env=env, capture_output=True,
                       text=True, timeout=30)
    assert r.returncode == 1
    assert r.stderr.splitlines()[-1] == \
        "ValueError: Unknown adjustment 'thread'"


def test_a_dash_shaped_object_in_a_non_ascii_file_is_served_through_server(
        script, tmp_path):
    srv, port, mark = script(DASHISH_SCRIPT, name="看板/智能门店看板_Dash版.py")
    srv.wait_ready(15)
    r = serving(port)
    assert (r.status_code, r.text) == (200, "看板 OK")
    path = tmp_path / "看板" / "智能门店看板_Dash版.py"
    assert f"Serving python app {path}:app.server" in srv.log
    assert mark.read_text() == "main block ran\n"
    assert "drover.serve" not in srv.log


def test_an_app_in_a_package_is_named_by_module_and_found_from_another_cwd(
        script, tmp_path):
    pkg = tmp_path / "proj" / "shop"
    pkg.mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "web.py").write_text(
        "from flask import Flask\n"
        "app = Flask(__name__)\n"
        "@app.route('/')\n"
        "def index():\n"
        "    return __name__\n")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    srv, port, _ = script(
        "import os\n"
        "import shop.web\n"
        "from drover import serve\n"
        "if __name__ == '__main__':\n"
        "    serve(shop.web.app, host='127.0.0.1',\n"
        "          port=int(os.environ['PORT_FOR_TEST']))\n",
        name="proj/run.py", cwd=elsewhere)
    srv.wait_ready(15)
    assert serving(port).text == "shop.web"
    assert "Serving python app shop.web:app" in srv.log


def test_without_a_drover_binary_the_script_falls_back_to_waitress(
        script, tmp_path):
    bindir = tmp_path / "bin"   # a PATH with python3 and no drover
    bindir.mkdir()
    (bindir / "python3").symlink_to(PYTHON)
    srv, port, mark = script(flask_script("threads=4, workers=2"),
                             env={"DROVER_BINARY": "", "PATH": str(bindir)})
    r = serving(port)
    assert r.status_code == 200
    assert r.headers["Server"] == "waitress"
    assert not is_drover(srv.pid)
    lines = [ln for ln in srv.log.splitlines() if "drover" in ln]
    assert lines == ["drover.serve: no drover binary (DROVER_BINARY unset, "
                     "none on PATH); serving with waitress instead"]
    assert mark.read_text() == "main block ran\n"


def test_a_script_run_by_a_virtualenvs_python_gets_that_virtualenv(
        script, tmp_path):
    venv = tmp_path / "venv"
    subprocess.run([PYTHON, "-m", "venv", "--system-site-packages",
                    "--without-pip", str(venv)], check=True)
    site = next(venv.glob("lib/python3*/site-packages"))
    (site / "only_in_venv.py").write_text("WHERE = 'from the venv'\n")
    srv, port, _ = script(
        "import os\n"
        "import only_in_venv\n"
        "from drover import serve\n"
        "def app(environ, start_response):\n"
        "    start_response('200 OK', [])\n"
        "    return [only_in_venv.WHERE.encode()]\n"
        "if __name__ == '__main__':\n"
        "    serve(app, host='127.0.0.1',\n"
        "          port=int(os.environ['PORT_FOR_TEST']))\n",
        program=venv / "bin" / "python3")
    srv.wait_ready(15)
    assert serving(port).text == "from the venv"


def test_a_serve_call_outside_the_main_block_returns_inside_drover(script):
    srv, port, _ = script(
        "import os\n"
        "from drover import serve\n"
        "def app(environ, start_response):\n"
        "    start_response('200 OK', [])\n"
        "    return [b'served once']\n"
        "serve(app, host='127.0.0.1', port=int(os.environ['PORT_FOR_TEST']))\n")
    srv.wait_ready(15)
    assert serving(port).text == "served once"
    assert is_drover(srv.pid)
    # drover imported the script once (preload), and did not exec again
    assert srv.log.count("drover.serve: called while drover imports") == 1
    assert srv.log.count("Starting drover") == 1
