"""Shared fixtures: start the real drover binary and talk to it over sockets.

Environment:
  DROVER_BUILD  build directory holding drover and examples/ (default: build)
  DROVER_BIN    the binary (default: $DROVER_BUILD/drover)

Every server binds 127.0.0.1:0 unless a test says otherwise; the port is
read from the "Listening at:" line of the error log. At teardown the error
log is checked for sanitizer reports, so the ASan/UBSan pass of `make test`
fails on any memory error a test provokes.
"""

import os
import re
import signal
import socket
import subprocess
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
BUILD = Path(os.environ.get("DROVER_BUILD", ROOT / "build")).resolve()
BIN = Path(os.environ.get("DROVER_BIN", BUILD / "drover")).resolve()
EXAMPLES = BUILD / "examples"
HELLO = f"{EXAMPLES}/hello.so:hello_app"
ECHO = f"{EXAMPLES}/echo.so:echo_app"

# The sanitizer pass of `make test` runs with ASAN_OPTIONS set.
SANITIZED = "ASAN_OPTIONS" in os.environ
SANITIZER_MARKS = ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer",
                   "runtime error:", "SUMMARY: UndefinedBehaviorSanitizer")
LISTEN_RE = re.compile(r"Listening at: (\S+)")


class Server:
    """A running drover process."""

    def __init__(self, args, cwd, env, log_path, stdout_path, prefix=(),
                 program=BIN):
        self.args = args
        self.log_path = log_path
        self.stdout_path = stdout_path
        self._out = open(stdout_path, "wb")
        self._err = open(log_path, "wb")
        # prefix: a wrapper command, e.g. unshare for the PID 1 tests;
        # program: what runs in its place, e.g. a script calling serve()
        self.proc = subprocess.Popen([*prefix, str(program), *args], cwd=cwd,
                                     env=env,
                                     stdin=subprocess.DEVNULL,
                                     stdout=self._out, stderr=self._err)
        self.urls = []
        self.port = None

    @property
    def pid(self):
        return self.proc.pid

    @property
    def log(self):
        return Path(self.log_path).read_text(errors="replace")

    @property
    def stdout(self):
        return Path(self.stdout_path).read_text(errors="replace")

    @property
    def url(self):
        return f"http://127.0.0.1:{self.port}"

    def wait_ready(self, timeout=10.0):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            urls = LISTEN_RE.findall(self.log)
            if urls and "Serving" in self.log:
                self.urls = urls
                m = re.search(r":(\d+)$", urls[0])
                self.port = int(m.group(1)) if m else None
                return self
            if self.proc.poll() is not None:
                raise AssertionError(
                    f"drover exited with {self.proc.returncode}:\n{self.log}")
            time.sleep(0.02)
        raise AssertionError(f"drover did not start in {timeout}s:\n{self.log}")

    def wait_log(self, pattern, timeout=5.0):
        """Wait until the error log matches `pattern` (a regex)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            m = re.search(pattern, self.log)
            if m:
                return m
            time.sleep(0.02)
        raise AssertionError(f"log never matched {pattern!r}:\n{self.log}")

    def kill(self, sig):
        """Send a signal."""
        self.proc.send_signal(sig)

    def stop(self, sig=signal.SIGTERM, timeout=10.0):
        """Stop the server and return its exit status."""
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                raise AssertionError(f"drover ignored {sig!r}:\n{self.log}")
        self._out.close()
        self._err.close()
        return self.proc.returncode

    def check_sanitizers(self):
        log = self.log + self.stdout
        for mark in SANITIZER_MARKS:
            assert mark not in log, f"sanitizer report in drover's output:\n{log}"


@pytest.fixture
def drover(tmp_path):
    """Factory: drover(*args, config=None, env=None, ready=True) -> Server.

    `config` is YAML text written to a file passed with --config. Unless
    the args name a --bind (or the config/env sets one), 127.0.0.1:0 is
    added. The server is stopped and checked at teardown. With
    DROVER_TEST_THREADS=N in the test's environment, servers that do not
    set DROVER_THREADS themselves run N app threads (not with --dev).
    """
    servers = []

    def start(*args, config=None, env=None, ready=True, bind=True, cwd=None):
        args = [str(a) for a in args]
        if config is not None:
            path = tmp_path / f"drover-{len(servers)}.yml"
            path.write_text(config)
            args = ["--config", str(path), *args]
        full_env = {k: v for k, v in os.environ.items()
                    if not k.startswith("DROVER_") and k not in
                    ("PORT", "WEB_CONCURRENCY")}
        full_env.update(env or {})
        if os.environ.get("DROVER_TEST_THREADS") and "--dev" not in args:
            full_env.setdefault("DROVER_THREADS", os.environ["DROVER_TEST_THREADS"])
        if bind and "--bind" not in args and "-b" not in args and \
                not (config and "bind" in config) and \
                "DROVER_BIND" not in full_env:
            args = ["--bind", "127.0.0.1:0", *args]
        n = len(servers)
        srv = Server(args, cwd or tmp_path, full_env,
                     tmp_path / f"drover-{n}.err", tmp_path / f"drover-{n}.out")
        servers.append(srv)
        if ready:
            srv.wait_ready()
        return srv

    yield start
    for srv in servers:
        srv.stop()
        srv.check_sanitizers()


def run_drover(*args, env=None, cwd=None, timeout=20):
    """Run drover to completion (for --help, --check-config, bad configs)."""
    full_env = {k: v for k, v in os.environ.items()
                if not k.startswith("DROVER_") and k not in ("PORT", "WEB_CONCURRENCY")}
    full_env.update(env or {})
    return subprocess.run([str(BIN), *map(str, args)], env=full_env, cwd=cwd,
                          stdin=subprocess.DEVNULL, capture_output=True,
                          text=True, timeout=timeout)


def raw_request(port, data, timeout=2.0, host="127.0.0.1", shut=False):
    """Send raw bytes, return everything the server sends until it closes
    the connection or `timeout` seconds pass without data."""
    with socket.create_connection((host, port), timeout=timeout) as s:
        s.sendall(data)
        if shut:
            s.shutdown(socket.SHUT_WR)
        chunks = []
        try:
            while True:
                d = s.recv(65536)
                if not d:
                    break
                chunks.append(d)
        except (socket.timeout, ConnectionResetError):
            pass
        return b"".join(chunks)


def status_of(response):
    """Status code of the first response in raw bytes."""
    line = response.split(b"\r\n", 1)[0]
    parts = line.split(b" ")
    return int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else None
