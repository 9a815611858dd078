"""drover as a Docker CMD: PID 1 of its own PID namespace.

`unshare --pid --fork --mount-proc` gives drover what a container gives
it: it is PID 1, with its own /proc, and so (1) the kernel ignores every
signal it has no handler for, (2) when it exits the kernel SIGKILLs all
the rest of the namespace, and (3) every orphan in the namespace becomes
its child. The tests prove that SIGTERM from outside (what `docker stop`
sends) still stops it gracefully with exit status 0, that in-flight
requests finish first, that orphaned grandchildren are reaped instead of
piling up as zombies, and that its logs reach stderr/stdout while it
runs, not when it exits.

unshare stays outside the namespace as the parent of drover (its forked
child) and exits with drover's exit status; the tests signal drover by
its pid in the host's namespace, as the container runtime does.
"""
import os
import re
import shutil
import signal
import subprocess
import threading
import time
from pathlib import Path

import pytest

from conftest import BIN, Server
from helpers import APPS, children, get, wait_for

UNSHARE = shutil.which("unshare") or "/usr/bin/unshare"
UNSHARE_ARGS = [UNSHARE, "--pid", "--fork", "--mount-proc", "--kill-child"]


def unshare_problem():
    """Why a PID namespace cannot be made here, or None."""
    if not Path(UNSHARE).exists():
        return ("unshare missing (Debian package util-linux; "
                "tools/install-deps.sh test)")
    r = subprocess.run([*UNSHARE_ARGS, "true"], capture_output=True,
                       text=True, timeout=10)
    if r.returncode != 0:
        return (f"`unshare --pid --fork --mount-proc true` failed here "
                f"(exit {r.returncode}): {r.stderr.strip()}; creating a PID "
                "namespace needs CAP_SYS_ADMIN or unprivileged user namespaces")
    return None


PROBLEM = unshare_problem()
pytestmark = pytest.mark.skipif(PROBLEM is not None, reason=PROBLEM or "")


def status_field(pid, name):
    """A field of /proc/PID/status (host view), or None if pid is gone."""
    try:
        text = Path(f"/proc/{pid}/status").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return None
    m = re.search(rf"^{name}:\s*(.*)$", text, re.M)
    return m[1] if m else None


def ns_pid(pid):
    """The pid of host process `pid` in its innermost PID namespace."""
    return int(status_field(pid, "NSpid").split()[-1])


def pid_ns(pid):
    try:
        return os.readlink(f"/proc/{pid}/ns/pid")
    except OSError:  # gone, or not ours to look at
        return None


def namespace_members(ns):
    """{host pid: (ns pid, state letter)} of every process in `ns`."""
    found = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or pid_ns(entry.name) != ns:
            continue
        nspid, state = status_field(entry.name, "NSpid"), \
            status_field(entry.name, "State")
        if nspid and state:
            found[int(entry.name)] = (int(nspid.split()[-1]), state[0])
    return found


class Pid1Server(Server):
    """drover started as `unshare ... drover ARGS`: self.proc is unshare,
    self.host_pid is drover (PID 1 inside)."""

    def __init__(self, args, cwd, env, log_path, stdout_path):
        super().__init__(args, cwd, env, log_path, stdout_path,
                         prefix=UNSHARE_ARGS)
        self.host_pid = None

    def wait_ready(self, timeout=10.0):
        super().wait_ready(timeout)
        kids = children(self.proc.pid)
        assert len(kids) == 1, kids
        self.host_pid = kids.pop()
        return self

    def send(self, sig):
        os.kill(self.host_pid, sig)

    def stop(self, sig=signal.SIGTERM, timeout=10.0):
        if self.proc.poll() is None:
            try:
                if self.host_pid:
                    self.send(sig)
                self.proc.wait(timeout)
            except (subprocess.TimeoutExpired, ProcessLookupError):
                self.kill_hard()
                raise AssertionError(f"drover ignored {sig!r}:\n{self.log}")
        self._out.close()
        self._err.close()
        return self.proc.returncode

    def kill_hard(self):
        """SIGKILL to PID 1 takes the whole namespace with it; SIGKILL to
        unshare does too (--kill-child), should drover not be known."""
        for pid in (self.host_pid, self.proc.pid):
            try:
                if pid:
                    os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        self.proc.wait(10)


@pytest.fixture
def pid1(tmp_path):
    """Factory: pid1(*args) -> a ready Pid1Server on 127.0.0.1:0."""
    servers = []

    def start(*args, env=None):
        full_env = {k: v for k, v in os.environ.items()
                    if not k.startswith("DROVER_") and k not in
                    ("PORT", "WEB_CONCURRENCY", "PYTHONUNBUFFERED")}
        full_env.update(env or {})
        n = len(servers)
        srv = Pid1Server(["--bind", "127.0.0.1:0", *map(str, args)], APPS,
                         full_env, tmp_path / f"pid1-{n}.err",
                         tmp_path / f"pid1-{n}.out")
        servers.append(srv)
        return srv.wait_ready()

    yield start
    try:
        for srv in servers:
            assert srv.stop() == 0, srv.log
            srv.check_sanitizers()
    finally:
        for srv in servers:
            if srv.proc.poll() is None:
                srv.kill_hard()


def test_drover_is_pid_1_of_its_namespace_and_serves(pid1):
    srv = pid1("-w", "2", "container_app:app")
    assert ns_pid(srv.host_pid) == 1
    assert srv.wait_log(r"Listening at: \S+ \((\d+)\)")[1] == "1"
    r = get(srv.port, "/")
    status, who = r.status, r.json()
    assert status == 200
    # The worker's parent, in the worker's own namespace, is PID 1.
    assert who["ppid"] == 1
    workers = wait_for(lambda: len(children(srv.host_pid)) == 2 and
                       children(srv.host_pid), what="two workers")
    assert who["pid"] in {ns_pid(w) for w in workers}
    assert pid_ns(srv.host_pid) != pid_ns(os.getpid())


def test_sigterm_to_pid_1_finishes_in_flight_requests_and_exits_0(pid1):
    srv = pid1("-w", "2", "--access-logfile", "-", "container_app:app")
    # Logs are written as they happen: an access log line on stdout (a
    # file here, so stdio would buffer it) shows before anything exits.
    assert get(srv.port, "/").status == 200
    wait_for(lambda: '"GET / HTTP/1.1" 200' in srv.stdout,
             what=f"the access log line on stdout:\n{srv.stdout!r}")
    results = []

    def slow():
        try:
            r = get(srv.port, "/sleep?s=1.5")
            results.append((r.status, r.json()))
        except Exception as e:  # noqa: BLE001 (reported by the assert)
            results.append(e)

    threads = [threading.Thread(target=slow) for _ in range(2)]
    try:
        # One at a time, so that each worker has one in its app call.
        for n, t in enumerate(threads, 1):
            t.start()
            wait_for(lambda n=n: srv.log.count("container_app: sleeping") == n,
                     what=f"request {n} in the app:\n{srv.log}")
        srv.send(signal.SIGTERM)
        # The master says so on stderr at once, while the requests run.
        srv.wait_log(r"SIGTERM: stopping gracefully", timeout=1.0)
        assert all(t.is_alive() for t in threads), results
    finally:
        for t in threads:
            if t.ident:
                t.join(15)
    assert len(results) == 2
    for r in results:
        assert not isinstance(r, Exception), (r, srv.log)
        assert r[0] == 200
    assert srv.proc.wait(10) == 0, srv.log
    log = srv.log
    assert log.count("Worker exiting") == 2, log
    assert "SIGKILL" not in log and "graceful timeout" not in log, log
    assert "killed by signal" not in log, log
    with pytest.raises(ConnectionRefusedError):
        get(srv.port, "/", timeout=2)


def test_orphaned_grandchildren_are_reaped_by_pid_1(pid1):
    srv = pid1("-w", "1", "container_app:app")
    ns = pid_ns(srv.host_pid)
    orphans = []
    for _ in range(3):
        r = get(srv.port, "/orphan")
        status, data = r.status, r.json()
        assert status == 200
        nspid = data["grandchild"]
        # Its parent, sh, has exited: the kernel gave it to PID 1.
        host = [h for h, (n, _) in namespace_members(ns).items()
                if n == nspid]
        assert len(host) == 1, (nspid, namespace_members(ns))
        assert int(status_field(host[0], "PPid")) == srv.host_pid
        assert status_field(host[0], "Name") == "sleep"
        orphans.append(host[0])
    # sleep 0.5 exits; a zombie would keep its /proc entry ("State: Z").
    for host in orphans:
        wait_for(lambda h=host: status_field(h, "State") is None,
                 timeout=5.0, what=f"orphan {host} to be reaped")
    zombies = {h: m for h, m in namespace_members(ns).items() if m[1] == "Z"}
    assert zombies == {}
    # Inside the namespace the app sees the same: no zombie.
    r = get(srv.port, "/zombies")
    assert (r.status, r.json()) == (200, {"zombies": []})
    assert get(srv.port, "/").status == 200
