"""Socket activation: drover started by systemd-socket-activate (the
service manager's protocol: LISTEN_FDS, LISTEN_PID, LISTEN_FDNAMES) serves
on the sockets it is given, as they are, instead of binding."""
import os
import re
import shutil
import signal
import socket
import subprocess
import time

import pytest

from conftest import BIN, HELLO, LISTEN_RE
from helpers import APPS, free_port, get

ACTIVATE = shutil.which("systemd-socket-activate")
SS = shutil.which("ss")

pytestmark = pytest.mark.skipif(
    ACTIVATE is None,
    reason="systemd-socket-activate missing (Debian package systemd; "
           "tools/install-deps.sh test installs it)")


class Activated:
    """systemd-socket-activate -l ADDR... drover ARGS: the activator
    listens, and on the first connection execs drover with the sockets."""

    def __init__(self, tmp_path, listen, args, fdnames=None, env=None):
        self.log_path = tmp_path / f"activated-{len(listen)}-{time.monotonic_ns()}.err"
        self._err = open(self.log_path, "wb")
        cmd = [ACTIVATE]
        for addr in listen:
            cmd += ["-l", addr]
        if fdnames:
            cmd.append("--fdname=" + ":".join(fdnames))
        for name in (env or {}):
            cmd += ["-E", name]
        cmd += [str(BIN), *map(str, args)]
        full_env = {k: v for k, v in os.environ.items()
                    if not k.startswith(("DROVER_", "LISTEN_"))}
        full_env.update(env or {})
        self.proc = subprocess.Popen(cmd, cwd=APPS, env=full_env,
                                     stdin=subprocess.DEVNULL,
                                     stdout=self._err, stderr=self._err)
        self.wait_log(r"Listening on .* as \d+", what="the activator")

    @property
    def log(self):
        return self.log_path.read_text(errors="replace")

    def wait_log(self, pattern, timeout=10.0, what="drover"):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            m = re.search(pattern, self.log)
            if m:
                return m
            if self.proc.poll() is not None:
                raise AssertionError(f"{what} exited with "
                                     f"{self.proc.returncode}:\n{self.log}")
            time.sleep(0.02)
        raise AssertionError(f"{what}: log never matched {pattern!r}:\n{self.log}")

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                raise AssertionError(f"drover ignored SIGTERM:\n{self.log}")
        self._err.close()
        return self.proc.returncode


@pytest.fixture
def activate(tmp_path):
    started = []

    def start(listen, *args, **kw):
        a = Activated(tmp_path, listen, args, **kw)
        started.append(a)
        return a

    yield start
    for a in started:
        a.stop()


# Every request is HTTP/1.0; the first one also triggers the exec.
HTTP10 = {"version": "HTTP/1.0", "headers": [("Host", "t")]}


def listen_backlog(port):
    """The backlog of the socket listening on 127.0.0.1:port (ss shows it
    as Send-Q of a LISTEN socket)."""
    out = subprocess.run([SS, "-ltnH", f"sport = :{port}"], check=True,
                         capture_output=True, text=True).stdout.split()
    assert out and out[0] == "LISTEN", out
    return int(out[2])


def test_drover_serves_on_the_socket_systemd_socket_activate_passes(activate):
    port, unused = free_port(), free_port()
    a = activate([f"127.0.0.1:{port}"], HELLO, "--bind", f"127.0.0.1:{unused}")
    r = get(port, **HTTP10)
    assert r.status == 200 and r.body.startswith(b"Hello, World!"), a.log
    a.wait_log(r"Serving")
    urls = LISTEN_RE.findall(a.log)
    assert urls == [f"http://127.0.0.1:{port}"], a.log
    assert "socket activation" in a.log
    # The bind address is not opened: the .socket unit owns the addresses.
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", unused), timeout=2).close()
    for i in range(5):
        assert get(port, f"/again/{i}", **HTTP10).status == 200
    assert a.stop() == 0


def test_the_passed_socket_keeps_its_backlog(activate, drover):
    if SS is None:
        pytest.skip("ss missing (Debian package iproute2)")
    # Control: drover's own socket does get --backlog 16 ...
    own = drover(HELLO, "--backlog", "16")
    assert listen_backlog(own.port) == 16
    # ... a passed socket is not listen()ed again with it.
    port = free_port()
    a = activate([f"127.0.0.1:{port}"], HELLO, "--backlog", "16")
    before = listen_backlog(port)
    assert get(port, **HTTP10).status == 200
    a.wait_log(r"Serving")
    assert before != 16
    assert listen_backlog(port) == before


def test_the_app_and_its_children_never_see_the_listen_variables(activate):
    port = free_port()
    a = activate([f"127.0.0.1:{port}"], "deploy_app:app", "--chdir", APPS)
    r = get(port, **HTTP10)
    assert r.status == 200, a.log
    env = r.json()
    assert env["LISTEN_PID"] is None
    assert env["LISTEN_FDS"] is None
    assert env["LISTEN_FDNAMES"] is None
    assert env["child_LISTEN_FDS"] == "unset"
    assert env["REMOTE_ADDR"] == "127.0.0.1"


def test_an_fd_bind_picks_one_of_the_passed_sockets(activate):
    p1, p2 = free_port(), free_port()
    a = activate([f"127.0.0.1:{p1}", f"127.0.0.1:{p2}"], HELLO,
                 "--bind", "fd://4", fdnames=["public", "admin"])
    assert get(p2, **HTTP10).status == 200  # fd 4 is the second -l
    a.wait_log(r"Serving")
    assert LISTEN_RE.findall(a.log) == [f"http://127.0.0.1:{p2}"]
    assert re.search(r"fd 3 is not named by any fd:// bind", a.log), a.log
    # fd 3 was closed: nobody listens on p1 any more.
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", p1), timeout=2).close()


def test_a_passed_datagram_socket_stops_the_start_with_a_clear_error(tmp_path):
    port = free_port()
    proc = subprocess.Popen(
        [ACTIVATE, "--datagram", "-l", f"127.0.0.1:{port}", str(BIN), HELLO],
        stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT, text=True)
    time.sleep(0.3)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.sendto(b"x", ("127.0.0.1", port))  # wakes the activator
    try:
        out, _ = proc.communicate(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, _ = proc.communicate()
        raise AssertionError(f"drover started on a datagram socket:\n{out}")
    assert proc.returncode == 1, out
    assert "fd://3: not a listening stream socket" in out
