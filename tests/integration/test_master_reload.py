"""SIGHUP: new code and a re-read configuration with no failed request;
a reload that fails at any step keeps the old workers serving."""
import os
import signal
import threading
import time
from collections import Counter

import pytest
import requests

from helpers import APPS, Closed, children, get, wait_for, wait_workers


def write_app(directory, version):
    src = (APPS / "master_app.py").read_text()
    (directory / "reload_app.py").write_text(
        src.replace('VERSION = "v1"', f'VERSION = "{version}"'))


@pytest.mark.parametrize("preload", ["--preload", "--no-preload"])
def test_hup_reloads_code_with_no_failed_request(drover, tmp_path, preload):
    appdir = tmp_path / "app"
    appdir.mkdir()
    write_app(appdir, "v1")
    srv = drover("-w", "2", preload, "reload_app:app", cwd=appdir)
    old = wait_workers(srv, 2)
    stop = threading.Event()
    seen, failures = Counter(), []

    def client():
        with requests.Session() as s:
            while not stop.is_set():
                try:
                    r = s.get(srv.url + "/", timeout=10)
                    seen[r.text.split()[1]] += 1
                    if r.status_code != 200:
                        failures.append(r.status_code)
                except requests.RequestException as e:
                    failures.append(repr(e))

    def fresh_client():
        while not stop.is_set():
            try:
                r = get(srv.port, "/")
                seen[r.text.split()[1]] += 1
                if r.status != 200:
                    failures.append(r.status)
            except (Closed, OSError) as e:
                failures.append(repr(e))

    threads = [threading.Thread(target=client) for _ in range(3)]
    threads.append(threading.Thread(target=fresh_client))
    for t in threads:
        t.start()
    try:
        time.sleep(0.5)
        write_app(appdir, "v2")
        srv.kill(signal.SIGHUP)
        wait_for(lambda: seen["v2"] > 50, timeout=15, what="v2 responses")
        # The old generation is gone, the master kept its pid.
        wait_for(lambda: len(children(srv.pid)) == 2 and
                 not (children(srv.pid) & old), what="old workers gone")
        time.sleep(0.3)
    finally:
        stop.set()
        for t in threads:
            t.join()
    assert failures == []
    assert seen["v1"] > 0 and seen["v2"] > 0
    assert get(srv.port, "/").text.endswith("v2")
    assert srv.proc.poll() is None


def test_hup_with_a_broken_app_keeps_the_old_workers(drover, tmp_path):
    appdir = tmp_path / "app"
    appdir.mkdir()
    write_app(appdir, "v1")
    srv = drover("-w", "2", "reload_app:app", cwd=appdir)
    old = wait_workers(srv, 2)
    (appdir / "reload_app.py").write_text("def app(:\n")
    srv.kill(signal.SIGHUP)
    srv.wait_log(r"SyntaxError")
    srv.wait_log(r"Reload failed")
    assert children(srv.pid) == old
    for _ in range(5):
        assert get(srv.port, "/").text.endswith("v1")
    # Fixed, the next HUP goes through.
    write_app(appdir, "v3")
    srv.kill(signal.SIGHUP)
    wait_for(lambda: get(srv.port, "/").text.endswith("v3"), what="v3")


def test_new_workers_that_cannot_boot_after_a_reload_leave_the_old_serving(
        drover, tmp_path):
    # The reload check imports fine; only a worker (by its title) fails.
    appdir = tmp_path / "app"
    appdir.mkdir()
    write_app(appdir, "v1")
    srv = drover("-w", "2", "--no-preload", "reload_app:app", cwd=appdir)
    old = wait_workers(srv, 2)
    srv.wait_log(r"2 worker\(s\) ready")  # imported, before the edit
    (appdir / "reload_app.py").write_text(
        "from pathlib import Path\n"
        "if Path('/proc/self/cmdline').read_bytes().startswith(b'drover: w'):\n"
        "    raise RuntimeError('cannot reach the database')\n"
        + (APPS / "master_app.py").read_text())
    srv.kill(signal.SIGHUP)
    srv.wait_log(r"New workers failed to boot \d+ times: the previous workers "
                 r"keep serving", timeout=15)
    assert old <= children(srv.pid)
    for _ in range(5):
        assert get(srv.port, "/").text.endswith("v1")
    # Fixed, the next HUP brings the new code.
    write_app(appdir, "v2")
    srv.kill(signal.SIGHUP)
    wait_for(lambda: get(srv.port, "/").text.endswith("v2"), what="v2")
    wait_for(lambda: not (children(srv.pid) & old), what="old workers gone")


def test_hup_rereads_the_configuration_file(drover, tmp_path):
    config = tmp_path / "drover.yml"
    config.write_text("workers: 2\n")
    srv = drover("--config", config, "master_app:app", cwd=APPS)
    old = wait_workers(srv, 2)
    config.write_text("workers: 3\n")
    srv.kill(signal.SIGHUP)
    wait_for(lambda: len(children(srv.pid)) == 3 and
             not (children(srv.pid) & old), what="3 new workers")
    # A broken file is refused and the running configuration stays.
    config.write_text("workers: lots\n")
    srv.kill(signal.SIGHUP)
    srv.wait_log(r"drover.yml:1:\d+: .*not an integer")
    srv.wait_log(r"Reload failed")
    assert len(children(srv.pid)) == 3
    assert get(srv.port, "/").status == 200


def test_a_unix_socket_survives_reload_and_is_removed_at_stop(drover,
                                                              tmp_path):
    path = tmp_path / "drover.sock"
    srv = drover("-w", "1", "--bind", f"unix:{path}", "master_app:app",
                 cwd=APPS)
    old = wait_workers(srv, 1)

    def status_via_socket():
        return get(None, "/", unix=path).status

    assert status_via_socket() == 200
    srv.kill(signal.SIGHUP)
    wait_for(lambda: len(children(srv.pid)) == 1 and
             not (children(srv.pid) & old), what="the new worker")
    assert status_via_socket() == 200
    assert srv.stop() == 0
    assert not path.exists()


def test_a_reload_whose_new_log_file_cannot_open_keeps_serving(drover,
                                                                tmp_path):
    config = tmp_path / "drover.yml"
    config.write_text("workers: 2\n")
    srv = drover("--config", config, "master_app:app", cwd=APPS)
    old = wait_workers(srv, 2)
    config.write_text("workers: 2\naccesslog: /nonexistent/dir/access.log\n")
    srv.kill(signal.SIGHUP)
    srv.wait_log(r"--access-logfile '/nonexistent/dir/access.log'")
    srv.wait_log(r"Reload failed")
    assert children(srv.pid) == old
    assert get(srv.port, "/").status == 200


def test_a_reload_that_fails_after_its_check_keeps_the_old_workers(
        drover, tmp_path):
    # The check passes (the pid file's directory is writable), the start
    # does not (the file names another live process): the re-executed
    # master must keep the previous workers instead of exiting.
    taken = tmp_path / "taken.pid"
    taken.write_text(f"{os.getpid()}\n")
    config = tmp_path / "drover.yml"
    config.write_text("workers: 2\n")
    srv = drover("--config", config, "master_app:app", cwd=APPS)
    old = wait_workers(srv, 2)
    config.write_text(f"workers: 2\npidfile: {taken}\n")
    srv.kill(signal.SIGHUP)
    srv.wait_log(r"Reload failed: --pid '.*taken.pid': drover is already "
                 r"running as pid \d+; the previous workers keep serving")
    time.sleep(0.5)
    assert srv.proc.poll() is None
    assert children(srv.pid) == old
    for _ in range(5):
        assert get(srv.port, "/").status == 200
    # Fixed, the next HUP starts a new generation.
    config.write_text("workers: 2\n")
    srv.kill(signal.SIGHUP)
    wait_for(lambda: len(children(srv.pid)) == 2 and
             not (children(srv.pid) & old), what="new workers")
    assert get(srv.port, "/").status == 200
