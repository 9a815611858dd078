"""The prefork master: N workers, timeouts, recycling, crashes, signals."""
import http.client
import os
import pwd
import re
import shutil
import signal
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import requests

from conftest import SANITIZED
from helpers import Closed, children, get, wait_for

APPS = Path(__file__).resolve().parent / "pyapps"


def wait_workers(srv, n, timeout=10.0):
    """Wait until the master has exactly n children, all serving."""
    return wait_for(lambda: len(children(srv.pid)) == n and children(srv.pid),
                    timeout, f"{n} workers")


def serving_pid(srv, path="/"):
    r = get(srv.port, path)
    assert r.status == 200
    return int(r.text.split()[0])


def test_n_workers_start_and_all_serve(drover):
    srv = drover("-w", "3", "master_app:app", cwd=APPS)
    workers = wait_workers(srv, 3)
    # Three slow requests at once land on three different workers.
    with ThreadPoolExecutor(3) as pool:
        pids = set(pool.map(lambda _: serving_pid(srv, "/sleep?s=0.5"),
                            range(3)))
    assert pids == workers
    assert srv.pid not in pids
    assert children(srv.pid) == workers


def test_process_titles_name_master_and_workers(drover):
    srv = drover("-w", "2", "--name", "shop", "master_app:app", cwd=APPS)
    workers = wait_workers(srv, 2)
    title = Path(f"/proc/{srv.pid}/cmdline").read_bytes().split(b"\0")[0]
    assert title == b"drover: master [shop]"
    want = {b"drover: worker 1 [shop]", b"drover: worker 2 [shop]"}
    wait_for(lambda: {Path(f"/proc/{p}/cmdline").read_bytes().split(b"\0")[0]
                      for p in workers} == want, what="worker titles")


def test_a_worker_stuck_past_the_timeout_is_killed_and_replaced(drover):
    srv = drover("-w", "2", "--timeout", "2", "master_app:app", cwd=APPS)
    wait_workers(srv, 2)
    stuck = {}

    def sleeper():
        t0 = time.monotonic()
        try:
            stuck["result"] = get(srv.port, "/sleep?s=30", timeout=20)
        except (Closed, ConnectionError) as e:
            stuck["result"] = e
        stuck["elapsed"] = time.monotonic() - t0

    t = threading.Thread(target=sleeper)
    t.start()
    time.sleep(0.3)
    # Other requests keep being served by the other worker meanwhile.
    ok = 0
    while t.is_alive():
        assert get(srv.port, "/").status == 200
        ok += 1
    t.join()
    assert ok > 10
    assert isinstance(stuck["result"], Exception), stuck
    assert 2.0 <= stuck["elapsed"] <= 4.0, stuck
    m = srv.wait_log(r"WORKER TIMEOUT \(pid: (\d+)\): worker \d has served "
                     r"'GET /sleep\?s=30 HTTP/1.1' for \d")
    # faulthandler's dump of the Python stack, naming the app's frame.
    srv.wait_log(r'File ".*master_app.py", line \d+ in app')
    dead = int(m[1])
    wait_for(lambda: dead not in children(srv.pid), what="the worker's end")
    wait_workers(srv, 2)
    pids = {serving_pid(srv) for _ in range(20)}
    assert dead not in pids


def test_max_requests_recycles_workers_under_keepalive_load(drover):
    srv = drover("-w", "2", "--max-requests", "50", "--max-requests-jitter",
                 "10", "master_app:app", cwd=APPS)
    wait_workers(srv, 2)
    served = Counter()
    failures = []

    def client(n):
        with requests.Session() as s:
            for _ in range(n):
                try:
                    r = s.get(srv.url + "/", timeout=10)
                    if r.status_code != 200:
                        failures.append(r.status_code)
                    served[int(r.text.split()[0])] += 1
                except requests.RequestException as e:
                    failures.append(repr(e))

    with ThreadPoolExecutor(4) as pool:
        list(pool.map(client, [500] * 4))
    assert failures == []
    assert sum(served.values()) == 2000
    assert len(served) >= 2000 // 60
    assert max(served.values()) <= 60, served.most_common(3)
    srv.wait_log(r"Autorestarting worker: \d+ requests served")


def test_a_worker_that_exits_or_segfaults_is_replaced(drover):
    srv = drover("-w", "1", "master_app:app", cwd=APPS)
    first = wait_workers(srv, 1).pop()
    with pytest.raises((Closed, ConnectionError)):
        get(srv.port, "/exit")
    srv.wait_log(rf"Worker 1 \(pid: {first}\) exited with code 1")
    second = serving_pid(srv)
    assert second != first
    if SANITIZED:
        return  # ASan reports the deliberate SEGV itself: not a finding
    with pytest.raises((Closed, ConnectionError)):
        get(srv.port, "/segv")
    srv.wait_log(rf"Worker 1 \(pid: {second}\) was killed by signal 11")
    # faulthandler reports the crash with the Python stack.
    srv.wait_log(r"Fatal Python error: Segmentation fault")
    assert serving_pid(srv) not in (first, second)


def test_sigterm_finishes_in_flight_requests_then_refuses(drover):
    srv = drover("-w", "2", "master_app:app", cwd=APPS)
    wait_workers(srv, 2)
    with ThreadPoolExecutor(2) as pool:
        futures = [pool.submit(get, srv.port, "/sleep?s=1")
                   for _ in range(2)]
        time.sleep(0.3)
        srv.kill(signal.SIGTERM)
        results = [f.result() for f in futures]
    assert [r.status for r in results] == [200, 200]
    assert srv.proc.wait(10) == 0
    with pytest.raises(ConnectionRefusedError):
        get(srv.port, "/")


def test_sigint_stops_the_workers_at_once(drover):
    srv = drover("-w", "2", "master_app:app", cwd=APPS)
    workers = wait_workers(srv, 2)
    t0 = time.monotonic()
    srv.kill(signal.SIGINT)
    assert srv.proc.wait(5) == 0
    assert time.monotonic() - t0 < 3
    for pid in workers:
        assert not Path(f"/proc/{pid}").exists() or \
            "zombie" in Path(f"/proc/{pid}/status").read_text()


def test_ttin_and_ttou_change_the_worker_count(drover):
    srv = drover("-w", "2", "master_app:app", cwd=APPS)
    wait_workers(srv, 2)
    srv.kill(signal.SIGTTIN)
    wait_workers(srv, 3)
    srv.kill(signal.SIGTTOU)
    wait_workers(srv, 2)
    srv.kill(signal.SIGTTOU)
    wait_workers(srv, 1)
    srv.kill(signal.SIGTTOU)  # never below one
    time.sleep(0.5)
    assert len(children(srv.pid)) == 1
    assert get(srv.port, "/").status == 200


def test_usr1_reopens_a_rotated_access_log(drover, tmp_path):
    log = tmp_path / "access.log"
    srv = drover("-w", "2", "--access-logfile", log, "master_app:app",
                 cwd=APPS)
    wait_workers(srv, 2)
    get(srv.port, "/")
    wait_for(lambda: log.exists() and log.read_text(), what="access line")
    log.rename(tmp_path / "access.log.1")
    srv.kill(signal.SIGUSR1)
    srv.wait_log(r"SIGUSR1: reopening log files")
    time.sleep(0.3)  # the workers reopen on their own loop
    for _ in range(4):
        get(srv.port, "/")
    wait_for(lambda: log.exists() and log.read_text().count("GET /") == 4,
             what="lines in the new access log")
    assert (tmp_path / "access.log.1").read_text().count("GET /") == 1


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


def test_workers_that_cannot_boot_stop_the_master(drover, tmp_path):
    (tmp_path / "broken.py").write_text("raise RuntimeError('no database')\n")
    srv = drover("-w", "2", "--no-preload", "broken:app", cwd=tmp_path,
                 ready=False)
    assert srv.proc.wait(15) == 3
    assert "RuntimeError: no database" in srv.log
    assert "failed to boot" in srv.log
    # Not a fork loop: a handful of attempts, not hundreds.
    assert len(re.findall(r"Booting worker", srv.log)) <= 6


def test_the_gunicorn_dockerfile_command_line_works(drover):
    srv = drover("--workers", "4", "--timeout", "120", "--max-requests",
                 "1000", "--max-requests-jitter", "100", "--preload",
                 "master_app:app", cwd=APPS)
    wait_workers(srv, 4)
    assert get(srv.port, "/").status == 200


def test_pidfile_is_written_and_removed(drover, tmp_path):
    pidfile = tmp_path / "drover.pid"
    srv = drover("-w", "1", "--pid", pidfile, "master_app:app", cwd=APPS)
    assert pidfile.read_text().strip() == str(srv.pid)
    assert srv.stop() == 0
    assert not pidfile.exists()


def test_a_pidfile_of_a_running_server_refuses_a_second(drover, tmp_path):
    pidfile = tmp_path / "drover.pid"
    drover("-w", "1", "--pid", pidfile, "master_app:app", cwd=APPS)
    second = drover("-w", "1", "--pid", pidfile, "master_app:app", cwd=APPS,
                    ready=False)
    assert second.proc.wait(10) == 1
    assert "already running" in second.log


@pytest.mark.skipif(os.geteuid() != 0, reason="switching users needs root")
def test_workers_run_as_the_configured_user(drover):
    srv = drover("-w", "1", "--user", "nobody", "master_app:app", cwd=APPS)
    wait_workers(srv, 1)
    worker = serving_pid(srv)  # past its set-up, so past setuid()
    uid = Path(f"/proc/{worker}/status").read_text().split("Uid:")[1].split()
    assert uid[0] == str(pwd.getpwnam("nobody").pw_uid)
    assert Path(f"/proc/{srv.pid}/status").read_text().split("Uid:")[1] \
        .split()[0] == "0"


def test_an_unknown_user_is_a_configuration_error(drover):
    srv = drover("--user", "no-such-user-here", "master_app:app", cwd=APPS,
                 ready=False)
    assert srv.proc.wait(10) == 2
    assert "--user 'no-such-user-here': no such user" in srv.log


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


def test_a_worker_whose_import_hangs_is_killed_after_the_timeout(drover,
                                                                   tmp_path):
    (tmp_path / "hangs.py").write_text("import time\ntime.sleep(60)\n")
    srv = drover("-w", "1", "--no-preload", "--timeout", "1", "hangs:app",
                 cwd=tmp_path, ready=False)
    srv.wait_log(r"WORKER TIMEOUT \(pid: \d+\): worker 1 did not boot in 1\.\d s",
                 timeout=10)
    # Counted as boot failures: no endless cycle of hung imports.
    assert srv.proc.wait(20) == 3
    assert "failed to boot 3 times" in srv.log


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


def test_a_graceful_stop_leaves_a_passed_in_socket_listening(tmp_path):
    # systemd's .socket unit (or any parent passing fd://N) keeps the
    # socket for the next start: drover must not shut it down.
    import socket as sk
    import subprocess
    from conftest import BIN
    lsock = sk.socket()
    lsock.bind(("127.0.0.1", 0))
    lsock.listen(16)
    port = lsock.getsockname()[1]
    log = tmp_path / "err.log"
    with open(log, "wb") as err:
        proc = subprocess.Popen(
            [str(BIN), "-w", "2", "--bind", f"fd://{lsock.fileno()}",
             "master_app:app"], cwd=APPS, pass_fds=[lsock.fileno()],
            stdin=subprocess.DEVNULL, stdout=err, stderr=err)
    try:
        wait_for(lambda: "2 worker(s) ready" in log.read_text(),
                 what="workers ready")
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
        c.request("GET", "/")
        assert c.getresponse().status == 200
        c.close()
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(10) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
    assert lsock.getsockopt(sk.SOL_SOCKET, sk.SO_ACCEPTCONN) == 1
    # Still listening: a connection is queued for the next start.
    with sk.create_connection(("127.0.0.1", port), timeout=2):
        pass
    assert "accept4" not in log.read_text()
    lsock.close()


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


@pytest.mark.skipif(os.geteuid() != 0, reason="switching users needs root")
def test_workers_of_another_user_reopen_a_rotated_access_log(drover,
                                                              tmp_path):
    # A directory the workers' user can reach (pytest's tmp_path is not).
    import tempfile
    logdir = Path(tempfile.mkdtemp(prefix="drover-logs-", dir="/tmp"))
    logdir.chmod(0o755)
    log = logdir / "access.log"
    srv = drover("-w", "1", "--user", "nobody", "--access-logfile", log,
                 "master_app:app", cwd=APPS)
    wait_workers(srv, 1)
    get(srv.port, "/")
    wait_for(lambda: log.exists() and log.read_text(), what="a first line")
    log.rename(logdir / "access.log.1")
    srv.kill(signal.SIGUSR1)
    srv.wait_log(r"SIGUSR1: reopening log files")
    time.sleep(0.3)
    get(srv.port, "/")
    wait_for(lambda: log.exists() and "GET /" in log.read_text(),
             what="the line in the new file")
    assert log.stat().st_uid == pwd.getpwnam("nobody").pw_uid
    assert "reopening the log files" not in srv.log
    shutil.rmtree(logdir)


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


def test_idle_workers_outlive_a_timeout_shorter_than_a_second(drover):
    srv = drover("-w", "2", "--timeout", "0.3", "master_app:app", cwd=APPS)
    workers = wait_workers(srv, 2)
    time.sleep(1.5)  # idle: only the loop's own beat keeps them alive
    assert children(srv.pid) == workers
    assert "WORKER TIMEOUT" not in srv.log


def test_umask_applies_to_the_files_drover_creates(drover, tmp_path):
    log = tmp_path / "access.log"
    drover("-w", "1", "--umask", "077", "--access-logfile", log,
           "master_app:app", cwd=APPS)
    assert log.stat().st_mode & 0o777 == 0o600


def test_a_bad_umask_is_a_configuration_error():
    from conftest import run_drover
    r = run_drover("--umask", "999", "master_app:app")
    assert r.returncode == 2
    assert r.stderr.strip() == ("drover: --umask: '999' is not an octal file "
                                "mode (0 to 0777)")
