"""--dev: one process, one thread, one loop; reloads in place when a
watched file changes; load errors and request exceptions come back as
plain-text tracebacks (only in dev mode)."""
import os
import re
import shutil
import signal
import subprocess
import threading
import time
from pathlib import Path

import pytest
import requests

from conftest import ROOT
from helpers import APPS


@pytest.fixture
def app_dir(tmp_path):
    """A private copy of dev_app.py (and its helper module) to edit."""
    d = tmp_path / "site"
    d.mkdir()
    shutil.copy(APPS / "dev_app.py", d / "app.py")
    shutil.copy(APPS / "dev_helper.py", d / "dev_helper.py")
    return d


def edit(path, old, new):
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new))


def wait_for(url, check, timeout=5.0):
    """GET url until check(response) holds; the last response otherwise."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        try:
            last = requests.get(url, timeout=5)
            if check(last):
                return last
        except requests.ConnectionError as e:
            last = e
        time.sleep(0.05)
    raise AssertionError(f"{url}: never matched; last: {last!r}")


def pids_in_log(srv):
    return {int(p) for p in re.findall(r"Listening at: \S+ \((\d+)\)", srv.log)}


def reloads(srv):
    return len(re.findall(r"Reloading: ", srv.log))


def test_editing_the_app_serves_the_new_text_from_the_same_pid(drover, app_dir):
    srv = drover("--dev", "app:app", cwd=app_dir)
    assert requests.get(srv.url, timeout=5).text == "version 1"
    started = time.monotonic()
    edit(app_dir / "app.py", '"version 1"', '"version 2"')
    wait_for(srv.url, lambda r: r.text == "version 2")
    assert time.monotonic() - started < 3
    assert srv.proc.poll() is None
    assert pids_in_log(srv) == {srv.pid}
    srv.wait_log(r"Reloading: \S*/app\.py changed")
    srv.wait_log(r"Reloaded drover \S+ in \d+\.\d+s")


def test_editing_an_imported_module_reloads(drover, app_dir):
    srv = drover("--dev", "app:app", cwd=app_dir)
    assert requests.get(srv.url + "/helper", timeout=5).text == "helper 1"
    edit(app_dir / "dev_helper.py", "helper 1", "helper 2")
    wait_for(srv.url + "/helper", lambda r: r.text == "helper 2")
    srv.wait_log(r"Reloading: \S*/dev_helper\.py changed")


def test_a_save_by_rename_over_the_file_reloads(drover, app_dir):
    srv = drover("--dev", "app:app", cwd=app_dir)
    app = app_dir / "app.py"
    tmp = app_dir / ".app.py.swp-new"
    tmp.write_text(app.read_text().replace('"version 1"', '"renamed in"'))
    os.replace(tmp, app)
    wait_for(srv.url, lambda r: r.text == "renamed in")
    # The directory watch survives the replaced inode: a second save too.
    tmp.write_text(app.read_text().replace('"renamed in"', '"renamed again"'))
    os.replace(tmp, app)
    wait_for(srv.url, lambda r: r.text == "renamed again")


def test_a_burst_of_writes_reloads_once(drover, app_dir):
    srv = drover("--dev", "app:app", cwd=app_dir)
    app = app_dir / "app.py"
    for i in range(2, 7):
        edit(app, f'"version {i - 1}"', f'"version {i}"')
        time.sleep(0.01)
    wait_for(srv.url, lambda r: r.text == "version 6")
    time.sleep(0.5)
    assert reloads(srv) == 1, srv.log


def test_requests_sent_during_edits_all_succeed(drover, app_dir):
    srv = drover("--dev", "app:app", cwd=app_dir)
    stop = threading.Event()
    results, errors = [], []

    def client():
        while not stop.is_set():
            try:
                r = requests.get(srv.url, timeout=10)
                results.append((r.status_code, r.text))
            except requests.RequestException as e:
                errors.append(e)

    threads = [threading.Thread(target=client) for _ in range(3)]
    for t in threads:
        t.start()
    try:
        for i in range(2, 5):
            edit(app_dir / "app.py", f'"version {i - 1}"', f'"version {i}"')
            wait_for(srv.url, lambda r, i=i: r.text == f"version {i}")
            time.sleep(0.2)
    finally:
        stop.set()
        for t in threads:
            t.join()
    assert reloads(srv) == 3
    assert errors == []
    assert len(results) > 20
    assert {s for s, _ in results} == {200}
    assert {t for _, t in results} <= {f"version {i}" for i in range(1, 5)}
    assert srv.proc.poll() is None and pids_in_log(srv) == {srv.pid}


def test_a_syntax_error_serves_its_traceback_until_fixed(drover, app_dir):
    srv = drover("--dev", "app:app", cwd=app_dir)
    app = app_dir / "app.py"
    good = app.read_text()
    app.write_text(good + "\ndef broken(:\n    pass\n")
    r = wait_for(srv.url, lambda r: r.status_code == 500)
    assert r.headers["Content-Type"].startswith("text/plain")
    assert "Traceback (most recent call last)" in r.text
    assert "SyntaxError" in r.text and "app.py" in r.text
    assert "def broken(:" in r.text
    assert srv.proc.poll() is None
    srv.wait_log(r"Serving the load-error page")
    app.write_text(good.replace('"version 1"', '"fixed"'))
    wait_for(srv.url, lambda r: r.status_code == 200 and r.text == "fixed")
    assert pids_in_log(srv) == {srv.pid}


def test_an_import_error_in_a_module_is_served_and_fixing_it_reloads(
        drover, app_dir):
    srv = drover("--dev", "app:app", cwd=app_dir)
    helper = app_dir / "dev_helper.py"
    good = helper.read_text()
    helper.write_text("import no_such_module_here\n" + good)
    r = wait_for(srv.url, lambda r: r.status_code == 500)
    assert "ModuleNotFoundError" in r.text and "no_such_module_here" in r.text
    # The module that failed is no longer in sys.modules; it is watched
    # because the traceback names it.
    helper.write_text(good.replace("helper 1", "helper back"))
    wait_for(srv.url + "/helper", lambda r: r.text == "helper back")


def test_a_missing_app_module_reloads_once_it_is_created(drover, app_dir):
    (app_dir / "app.py").rename(app_dir / "later.py")
    srv = drover("--dev", "app:app", cwd=app_dir)
    r = requests.get(srv.url, timeout=5)
    assert r.status_code == 500 and "No module named 'app'" in r.text
    (app_dir / "later.py").rename(app_dir / "app.py")
    wait_for(srv.url, lambda r: r.text == "version 1")


def test_an_exception_in_a_view_shows_its_traceback_in_dev_mode(drover,
                                                               app_dir):
    srv = drover("--dev", "app:app", cwd=app_dir)
    r = requests.get(srv.url + "/boom", timeout=5)
    assert r.status_code == 500
    assert r.headers["Content-Type"].startswith("text/plain")
    assert "Traceback (most recent call last)" in r.text
    assert "RuntimeError: dev view failed on purpose" in r.text
    assert "RuntimeError: dev view failed on purpose" in srv.log
    assert requests.get(srv.url, timeout=5).text == "version 1"


def test_a_wsgi_exception_shows_its_traceback_in_dev_mode(drover):
    srv = drover("--dev", "wsgi_basic:raises", cwd=APPS)
    r = requests.get(srv.url, timeout=5)
    assert r.status_code == 500
    assert "ValueError: deliberate failure for the test" in r.text
    assert "wsgi_basic.py" in r.text


@pytest.mark.parametrize("spec", ["app:app", "wsgi_basic:raises"])
def test_without_dev_no_response_carries_a_traceback(drover, app_dir, spec):
    shutil.copy(APPS / "wsgi_basic.py", app_dir / "wsgi_basic.py")
    srv = drover(spec, cwd=app_dir)
    r = requests.get(srv.url + ("/boom" if spec == "app:app" else "/"),
                     timeout=5)
    assert r.status_code == 500
    for leak in ("Traceback", "File \"", "dev view failed", "deliberate"):
        assert leak not in r.text
    assert "Traceback (most recent call last)" in srv.log


def test_dev_runs_one_process_with_one_thread(drover, app_dir):
    srv = drover("--dev", "app:app", cwd=app_dir)
    for _ in range(5):
        assert requests.get(srv.url, timeout=5).status_code == 200
    edit(app_dir / "app.py", '"version 1"', '"version 2"')
    wait_for(srv.url, lambda r: r.text == "version 2")
    tasks = os.listdir(f"/proc/{srv.pid}/task")
    assert tasks == [str(srv.pid)]
    children = [p for p in os.listdir("/proc") if p.isdigit() and
                _ppid(p) == srv.pid]
    assert children == []


def _ppid(pid):
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return int(stat.rsplit(")", 1)[1].split()[1])


def test_dev_binds_loopback_port_5000_by_default(drover, app_dir):
    srv = drover("--dev", "app:app", cwd=app_dir, bind=False, ready=False)
    try:
        srv.wait_ready()
    except AssertionError:
        if "Address already in use" in srv.log:
            pytest.skip("port 5000 is taken on this machine")
        raise
    assert srv.urls == ["http://127.0.0.1:5000"]
    assert "Do not use it in production" in srv.log
    assert "Serving python app app:app" in srv.log


def test_dev_logs_requests_to_stderr_by_default(drover, app_dir):
    srv = drover("--dev", "app:app", cwd=app_dir)
    requests.get(srv.url + "/?probe=1", timeout=5)
    srv.wait_log(r'"GET /\?probe=1 HTTP/1.1" 200')
    assert "probe=1" not in srv.stdout


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_sigint_and_sigterm_stop_at_once_with_status_0(drover, app_dir, sig):
    srv = drover("--dev", "app:app", cwd=app_dir)
    assert requests.get(srv.url, timeout=5).status_code == 200
    started = time.monotonic()
    assert srv.stop(sig) == 0
    assert time.monotonic() - started < 1.0


def test_a_signal_during_a_long_request_still_stops_at_once(drover, app_dir):
    srv = drover("--dev", "app:app", cwd=app_dir)
    slow = threading.Thread(target=lambda: _ignore_errors(
        lambda: requests.get(srv.url + "/slow?s=20", timeout=30)))
    slow.start()
    time.sleep(0.3)
    started = time.monotonic()
    assert srv.stop(signal.SIGINT) == 0
    assert time.monotonic() - started < 2.5
    slow.join()


def _ignore_errors(fn):
    try:
        fn()
    except requests.RequestException:
        pass


def test_the_config_file_is_watched(drover, app_dir):
    cfg = app_dir / "drover.yml"
    cfg.write_text("dev: true\nbind: 127.0.0.1:0\n")
    srv = drover("--config", cfg, "app:app", cwd=app_dir)
    cfg.write_text("dev: true\nbind: 127.0.0.1:0\nkeepalive: 3\n")
    srv.wait_log(r"Reloading: \S*/drover\.yml changed")
    srv.wait_log(r"Reloaded drover")
    wait_for(srv.url, lambda r: r.status_code == 200)
    assert pids_in_log(srv) == {srv.pid}


def test_reload_extra_files_watches_files_and_directory_trees(drover,
                                                              app_dir):
    templates = app_dir / "templates" / "nested"
    templates.mkdir(parents=True)
    notes = app_dir / "notes.txt"
    notes.write_text("one")
    srv = drover("--dev", "--reload-extra-file", "templates",
                 "--reload-extra-file", notes, "app:app", cwd=app_dir)
    notes.write_text("two")
    srv.wait_log(r"Reloading: \S*/notes\.txt changed")
    srv.wait_log(r"Reloaded drover")
    (templates / "page.html").write_text("<p>hi</p>")
    srv.wait_log(r"Reloading: \S*/templates/nested/page\.html changed")
    # Editor scratch files do not count.
    time.sleep(0.3)
    n = reloads(srv)
    (templates / ".page.html.swp").write_text("x")
    (templates / "page.html~").write_text("x")
    time.sleep(0.5)
    assert reloads(srv) == n
    wait_for(srv.url, lambda r: r.text == "version 1")


NATIVE_APP = r"""
#include <drover/app.h>
static int handle(void *state, const struct drover_request *req,
                  struct drover_response *res)
{
    static const char body[] = GREETING;
    (void)state;
    (void)req;
    if (res->start(res, 200, NULL, NULL, 0) != 0)
        return -1;
    return res->write(res, body, sizeof(body) - 1);
}
const struct drover_app dev_native = {
    .abi_version = DROVER_APP_ABI_VERSION,
    .handle = handle,
};
"""


def build_native(src, out, greeting):
    subprocess.run(["cc", "-shared", "-fPIC", "-I", str(ROOT / "include"),
                    f'-DGREETING="{greeting}"', "-o", str(out), str(src)],
                   check=True)


def test_a_native_app_reloads_when_its_so_is_rebuilt(drover, tmp_path):
    if not shutil.which("cc"):
        pytest.skip("no C compiler")
    src = tmp_path / "dev_native.c"
    src.write_text(NATIVE_APP)
    so = tmp_path / "dev_native.so"
    build_native(src, so, "native 1")
    srv = drover("--dev", f"{so}:dev_native", cwd=tmp_path)
    assert requests.get(srv.url, timeout=5).text == "native 1"
    build_native(src, so, "native 2")
    wait_for(srv.url, lambda r: r.text == "native 2")
    srv.wait_log(r"Reloading: \S*/dev_native\.so changed")
    assert pids_in_log(srv) == {srv.pid}


def test_a_native_app_that_fails_to_load_is_a_500_page(drover, tmp_path):
    if not shutil.which("cc"):
        pytest.skip("no C compiler")
    src = tmp_path / "dev_native.c"
    src.write_text(NATIVE_APP)
    so = tmp_path / "dev_native.so"
    srv = drover("--dev", f"{so}:dev_native", cwd=tmp_path)
    r = requests.get(srv.url, timeout=5)
    assert r.status_code == 500 and "cannot load native app" in r.text
    build_native(src, so, "native now")
    wait_for(srv.url, lambda r: r.text == "native now")


def test_the_pid_file_holds_the_pid_across_reloads_and_goes_at_exit(
        drover, app_dir, tmp_path):
    pidfile = tmp_path / "dev.pid"
    srv = drover("--dev", "--pid", pidfile, "app:app", cwd=app_dir)
    assert pidfile.read_text().strip() == str(srv.pid)
    edit(app_dir / "app.py", '"version 1"', '"version 2"')
    wait_for(srv.url, lambda r: r.text == "version 2")
    assert pidfile.read_text().strip() == str(srv.pid)
    assert srv.stop() == 0
    assert not pidfile.exists()


def test_a_save_during_the_reimport_is_not_lost(drover, tmp_path):
    # The module takes a second to import; the second save lands while
    # the new image imports it, before its watches exist.
    d = tmp_path / "slow"
    d.mkdir()
    (d / "slow.py").write_text(
        "import time\ntime.sleep(1)\nV = b'1'\n"
        "def app(environ, start_response):\n"
        "    start_response('200 OK', [])\n"
        "    return [V]\n")
    srv = drover("--dev", "slow:app", cwd=d)
    assert requests.get(srv.url, timeout=5).text == "1"
    edit(d / "slow.py", "V = b'1'", "V = b'2'")
    srv.wait_log(r"Reloading: \S*slow\.py changed")
    time.sleep(0.5)  # the new image is inside its one-second import
    edit(d / "slow.py", "V = b'2'", "V = b'3'")
    wait_for(srv.url, lambda r: r.text == "3", timeout=10)
