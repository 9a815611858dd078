"""conf/drover.service and conf/drover.socket under a real systemd.

systemd-nspawn boots the cached Debian root (machines.Nspawn) with
systemd as PID 1 and a private network; drover, the unit files of conf/
as they are, a `drover` user and the test app are installed in it, and
the tests drive `systemctl` through nsenter. A drop-in only shortens the
watchdog interval and the abort timeout, so that the watchdog test takes
seconds instead of a minute. The tests run in file order on one booted
container, each leaving drover.socket listening.
"""
import re
import shutil
import time

import pytest

from conftest import BIN, ROOT, install_app
from machines import Nspawn

DROP_IN = """\
# tests/deploy: shorter times only, so the watchdog test takes seconds.
[Service]
WatchdogSec=2s
TimeoutAbortSec=2s
"""
CONFIG = "app: app.wsgi:application\nworkers: 2\n"


@pytest.fixture(scope="module")
def machine(tmp_path_factory):
    m = Nspawn(tmp_path_factory.mktemp("nspawn"))
    try:
        root = m.root
        shutil.copy(BIN, root / "usr/local/bin/drover")
        for unit in ("drover.service", "drover.socket"):
            shutil.copy(ROOT / "conf" / unit, root / "etc/systemd/system")
        (root / "etc/systemd/system/drover.service.d").mkdir()
        (root / "etc/systemd/system/drover.service.d/test.conf").write_text(
            DROP_IN)
        (root / "etc/drover").mkdir()
        (root / "etc/drover/drover.yml").write_text(CONFIG)
        install_app(root / "srv/app")
        m.boot()
        m.sh("useradd --system --home-dir /srv/app --shell /usr/sbin/nologin "
             "drover && systemctl daemon-reload")
        yield m
    finally:
        m.close()


@pytest.fixture(scope="module")
def ns(machine):
    from machines import NetNS
    n = NetNS(machine.leader)
    yield n
    n.close()


def service(machine, *props):
    return machine.show("drover.service", *props)


def journal(machine):
    return machine.sh("journalctl -o cat --no-pager -u drover.service").stdout


def wait_until(predicate, timeout, what):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def test_socket_activation_starts_drover_on_the_first_connection(machine, ns):
    machine.sh("systemctl start drover.socket")
    assert service(machine, "ActiveState")["ActiveState"] == "inactive"
    status, who = ns.get("/")
    assert status == 200 and who["version"] == "v1"
    assert service(machine, "ActiveState")["ActiveState"] in ("active",
                                                               "activating")
    assert "serving on the 1 socket(s) passed by the service manager" in \
        journal(machine)


def test_systemctl_start_returns_once_every_worker_accepts(machine, ns):
    machine.sh("systemctl stop drover.service")
    (machine.root / "srv/app/app/BOOT_DELAY").write_text("1")
    try:
        t0 = time.monotonic()
        machine.sh("systemctl start drover.service")
        took = time.monotonic() - t0
    finally:
        (machine.root / "srv/app/app/BOOT_DELAY").unlink()
    state = service(machine, "ActiveState", "MainPID")
    assert state["ActiveState"] == "active" and took >= 1.0, (state, took)
    workers = machine.sh(f"ps -o pid= --ppid {state['MainPID']}").stdout.split()
    assert len(workers) == 2
    # READY=1 came after drover saw both workers accept.
    log = machine.sh("journalctl -o cat --no-pager -n 30").stdout
    ready = log.rindex("2 worker(s) ready")
    assert log.index("Started drover.service", ready) > ready, log
    assert ns.get("/")[0] == 200


def test_status_text_shows_workers_and_requests(machine, ns):
    for _ in range(5):
        assert ns.get("/")[0] == 200

    def served():
        text = service(machine, "StatusText")["StatusText"]
        m = re.fullmatch(r"2 worker\(s\), (\d+) requests served", text)
        return m and int(m[1]) >= 5 and text
    wait_until(served, 10, "a StatusText with the counts")


def test_reload_under_load_fails_no_request_and_serves_new_code(machine, ns):
    pid = service(machine, "MainPID")["MainPID"]
    load = ns.load(clients=4)
    try:
        load.wait_ok(50)
        (machine.root / "srv/app/app/VERSION").write_text("v2\n")
        machine.sh("systemctl reload drover.service")
        wait_until(lambda: "v2" in load.versions, 20, "the new code")
        load.wait_ok(50)
    finally:
        load.stop()
    assert load.failures == [], load.failures[:5]
    assert service(machine, "MainPID")["MainPID"] == pid
    assert ns.get("/")[1]["version"] == "v2"


def test_restart_under_load_with_the_socket_holding_the_listener(machine, ns,
                                                                 report):
    before = service(machine, "MainPID")["MainPID"]
    load = ns.load(clients=4)
    try:
        load.wait_ok(50)
        t0 = time.monotonic()
        machine.sh("systemctl restart drover.service")
        took = time.monotonic() - t0
        load.wait_ok(50)
    finally:
        load.stop()
    report("systemctl restart under load",
           f"{len(load.failures)} of {load.ok + len(load.failures)} requests "
           f"failed, restart took {took:.1f} s")
    assert service(machine, "MainPID")["MainPID"] != before
    # systemd's socket has no TCP_DEFER_ACCEPT, so the old workers accept
    # connections whose request has not arrived yet; their stop waits for
    # it (conn.c, drv_conns_close_idle) instead of closing them unanswered.
    assert load.failures == [], load.failures[:5]


def test_stop_with_requests_in_flight_lets_them_finish_and_exits_0(machine,
                                                                   ns):
    sleeping = journal(machine).count("webapp: sleeping")
    slow = [ns.submit("/sleep?s=2") for _ in range(2)]
    wait_until(lambda: journal(machine).count("webapp: sleeping") ==
               sleeping + 2, 10, "both requests in the app")
    t0 = time.monotonic()
    machine.sh("systemctl stop drover.service")
    took = time.monotonic() - t0
    assert [f.result(10)[0] for f in slow] == [200, 200]
    state = service(machine, "Result", "ExecMainStatus", "ActiveState")
    assert state == {"Result": "success", "ExecMainStatus": "0",
                     "ActiveState": "inactive"}, state
    assert 1.0 < took < 10, took


def test_a_stopped_master_is_caught_by_the_watchdog_and_restarted(machine,
                                                                  ns, report):
    machine.sh("systemctl start drover.service")
    state = service(machine, "MainPID", "NRestarts")
    machine.sh(f"kill -STOP {state['MainPID']}")
    t0 = time.monotonic()

    def restarted():
        now = service(machine, "MainPID", "NRestarts", "ActiveState")
        return (now["NRestarts"] != state["NRestarts"] and
                now["ActiveState"] == "active" and now)
    now = wait_until(restarted, 30, "a restart by the watchdog")
    report("watchdog restart of a stopped master",
           f"{time.monotonic() - t0:.1f} s (WatchdogSec=2s in the drop-in)")
    assert now["MainPID"] != state["MainPID"]
    assert "Watchdog timeout" in machine.sh(
        "journalctl -o cat --no-pager -u drover.service").stdout
    assert ns.get("/")[0] == 200


def test_the_journal_holds_drovers_log_lines(machine):
    log = journal(machine)
    for line in ("Starting drover", "Listening at: http://0.0.0.0:5000",
                 "Booting worker", "worker(s) ready", "Worker exiting"):
        assert line in log, line


def test_systemd_analyze_security_rates_the_unit_ok(machine, report):
    out = machine.sh("systemd-analyze security --no-pager drover.service"
                     ).stdout
    m = re.search(r"Overall exposure level for drover.service: ([\d.]+) (\w+)",
                  out)
    assert m, out
    report("systemd-analyze security drover.service", f"{m[1]} {m[2]}")
    assert float(m[1]) <= 1.3, out
