"""APP as a file (path/to/script.py:attr) and Dash-shaped objects (not
callable, with a WSGI .server), as the seeds' scripts are written."""
import requests

from conftest import run_drover
from helpers import wait_for

DASHISH = '''
import os
from flask import Flask
import helper_beside   # a sibling module, as under `python script.py`

class Dashish:
    """Like dash.Dash: not callable, its Flask app is .server."""
    def __init__(self, name):
        self.server = Flask(name)

app = Dashish(__name__)

@app.server.route("/")
def index():
    return {"name": __name__, "helper": helper_beside.VALUE,
            "root": app.server.root_path}

if __name__ == "__main__":
    open(os.environ["MAIN_MARK"], "a").write("main ran\\n")
    app.server.run(port=8050)
'''


def write_script(folder, name, text=DASHISH):
    folder.mkdir(exist_ok=True)
    (folder / "helper_beside.py").write_text("VALUE = 42\n")
    path = folder / name
    path.write_text(text, encoding="utf-8")
    return path


def test_a_dash_object_in_a_non_ascii_file_is_served_by_path(drover, tmp_path):
    folder = tmp_path / "看板"
    write_script(folder, "智能门店看板_Dash版.py")
    mark = tmp_path / "main.mark"
    srv = drover("./看板/智能门店看板_Dash版.py:app", cwd=tmp_path,
                 env={"MAIN_MARK": str(mark)})
    got = requests.get(srv.url, timeout=5).json()
    assert got == {"name": "智能门店看板_Dash版", "helper": 42,
                   "root": str(folder)}
    assert not mark.exists()   # the __main__ block did not run
    wait_for(lambda: "serving its .server" in srv.log, what="the .server line")
    lines = [ln for ln in srv.log.splitlines() if ".server" in ln]
    assert len(lines) == 1
    assert "Dashish object, not a WSGI callable" in lines[0]
    assert "智能门店看板_Dash版.py:app.server" in lines[0]


def test_a_dash_object_is_served_by_module_name(drover, tmp_path):
    write_script(tmp_path, "dashboard.py")
    srv = drover("dashboard:app", cwd=tmp_path, env={"MAIN_MARK": "/nonexistent"})
    got = requests.get(srv.url, timeout=5).json()
    assert got["name"] == "dashboard" and got["helper"] == 42


def test_the_file_is_found_from_another_directory_with_threads(drover, tmp_path):
    path = write_script(tmp_path / "site", "dash_app.py")
    srv = drover("--threads", "4", "--workers", "2", f"{path}:app",
                 cwd="/", env={"MAIN_MARK": "/nonexistent"})
    got = requests.get(srv.url, timeout=5).json()
    assert got["name"] == "dash_app" and got["root"] == str(path.parent)


def test_a_file_named_like_a_standard_module_gets_drovers_name(drover, tmp_path):
    write_script(tmp_path, "this.py")
    srv = drover("this.py:app", cwd=tmp_path, env={"MAIN_MARK": "/x"})
    assert requests.get(srv.url, timeout=5).json()["name"] == "__drover_app__"


def test_a_file_with_no_attribute_given_serves_application(drover, tmp_path):
    (tmp_path / "plain.py").write_text(
        "def application(environ, start_response):\n"
        "    start_response('200 OK', [('Content-Type', 'text/plain')])\n"
        "    return [__name__.encode()]\n")
    srv = drover("plain.py", cwd=tmp_path)
    assert requests.get(srv.url, timeout=5).text == "plain"


def test_a_missing_file_is_a_one_line_error(tmp_path):
    r = run_drover("--bind", "127.0.0.1:0", "nope/app.py:app", cwd=tmp_path)
    assert r.returncode == 2
    last = r.stderr.strip().splitlines()[-1]
    assert "cannot load app 'nope/app.py:app'" in last
    assert "FileNotFoundError" in last and "nope/app.py" in last


def test_an_object_neither_callable_nor_with_a_server_is_refused(tmp_path):
    (tmp_path / "notapp.py").write_text("app = object()\n")
    r = run_drover("--bind", "127.0.0.1:0", "notapp.py:app", cwd=tmp_path)
    assert r.returncode == 2
    assert "object is not callable" in r.stderr.strip().splitlines()[-1]


def test_a_file_that_raises_is_not_left_half_imported(tmp_path):
    (tmp_path / "broken.py").write_text("raise RuntimeError('boom at import')\n")
    r = run_drover("--bind", "127.0.0.1:0", "broken.py:app", cwd=tmp_path)
    assert r.returncode == 2
    assert "RuntimeError: boom at import" in r.stderr
    assert "broken.py" in r.stderr  # the traceback names the file


def test_the_example_make_run_serves_answers_its_routes(drover):
    from conftest import ROOT
    srv = drover(ROOT / "examples" / "flask_hello.py:app")
    r = requests.get(srv.url + "/", timeout=5)
    assert r.status_code == 200 and r.text == "Hello from drover!\n"
    r = requests.get(srv.url + "/json?a=1", headers={"X-Request-ID": "ex-1"},
                     timeout=5)
    assert r.status_code == 200
    assert r.json()["args"] == {"a": "1"}
    assert r.json()["request_id"] == "ex-1" == r.headers["X-Request-ID"]
