"""systemd's notify protocol as the master speaks it (Type=notify)."""
import signal
import socket
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from helpers import APPS, children, get, serving_pid, wait_for


class NotifySocket:
    """A NOTIFY_SOCKET for drover to talk to, as systemd would bind."""

    def __init__(self, path):
        self.path = str(path)
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(self.path)
        self.messages = []

    def wait(self, field, timeout=15.0):
        """Wait for a datagram holding `field` (e.g. "READY=1")."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.sock.settimeout(max(0.01, deadline - time.monotonic()))
            try:
                msg = self.sock.recv(4096).decode()
            except socket.timeout:
                break
            self.messages.append(msg)
            if field in msg.split("\n"):
                return msg
        raise AssertionError(f"no {field} in {self.messages}")


@pytest.fixture
def notify(tmp_path):
    ns = NotifySocket(tmp_path / "notify.sock")
    yield ns
    ns.sock.close()


def test_ready_comes_only_once_every_worker_serves(drover, notify, tmp_path):
    # Each worker takes a second to import its app: READY must wait.
    (tmp_path / "slow_boot.py").write_text(
        "import time\ntime.sleep(1)\n"
        + (APPS / "master_app.py").read_text())
    t0 = time.monotonic()
    srv = drover("-w", "3", "--no-preload", "slow_boot:app", cwd=tmp_path,
                 env={"NOTIFY_SOCKET": notify.path})
    msg = notify.wait("READY=1")
    assert time.monotonic() - t0 >= 1.0
    assert f"MAINPID={srv.pid}" in msg.split("\n")
    assert len(children(srv.pid)) == 3
    # All three accept at once: three slow requests, three workers.
    with ThreadPoolExecutor(3) as pool:
        pids = set(pool.map(lambda _: serving_pid(srv, "/sleep?s=0.5"),
                            range(3)))
    assert len(pids) == 3
    assert not any(m.startswith("READY=1") for m in notify.messages[:-1])


def test_status_reports_workers_and_requests(drover, notify):
    srv = drover("-w", "2", "master_app:app", cwd=APPS,
                 env={"NOTIFY_SOCKET": notify.path})
    notify.wait("READY=1")
    for _ in range(5):
        get(srv.port, "/")
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            notify.sock.settimeout(1)
            msg = notify.sock.recv(4096).decode()
        except socket.timeout:
            continue
        notify.messages.append(msg)
        if msg.startswith("STATUS=2 worker(s), ") and \
                "5 requests served" in msg:
            return
    raise AssertionError(f"no STATUS with the counters in {notify.messages}")


def test_hup_sends_reloading_then_ready_and_term_stopping(drover, notify):
    srv = drover("-w", "2", "master_app:app", cwd=APPS,
                 env={"NOTIFY_SOCKET": notify.path})
    notify.wait("READY=1")
    old = children(srv.pid)
    srv.kill(signal.SIGHUP)
    msg = notify.wait("RELOADING=1")
    assert any(f.startswith("MONOTONIC_USEC=") for f in msg.split("\n"))
    notify.wait("READY=1")
    # READY again only once the new generation serves.
    new = children(srv.pid) - old
    assert len(new) == 2
    # The old workers are retiring as READY goes out; soon only the new
    # ones answer.
    wait_for(lambda: serving_pid(srv) in new and serving_pid(srv) in new,
             what="the new generation serving")
    srv.kill(signal.SIGTERM)
    notify.wait("STOPPING=1")
    assert srv.proc.wait(10) == 0


def test_a_watchdog_gets_pinged_at_half_its_interval(drover, notify):
    srv = drover("-w", "1", "master_app:app", cwd=APPS,
                 env={"NOTIFY_SOCKET": notify.path,
                      "WATCHDOG_USEC": "1000000"})
    notify.wait("READY=1")
    t0 = time.monotonic()
    pings = 0
    while time.monotonic() - t0 < 2.2:
        notify.wait("WATCHDOG=1", timeout=3)
        pings += 1
    # One second interval, pinged every half second: about four in 2.2 s.
    assert 3 <= pings <= 7, pings
    assert srv.proc.poll() is None


def test_no_watchdog_pings_without_watchdog_usec(drover, notify):
    drover("-w", "1", "master_app:app", cwd=APPS,
           env={"NOTIFY_SOCKET": notify.path})
    notify.wait("READY=1")
    time.sleep(1.0)
    notify.sock.settimeout(0.1)
    try:
        while True:
            notify.messages.append(notify.sock.recv(4096).decode())
    except socket.timeout:
        pass
    assert not any("WATCHDOG=1" in m for m in notify.messages)
