"""conf/Dockerfile built and run by a real Docker engine.

The engine is private to the run (machines.Dockerd: no iptables, no
bridge); the Dockerfile's debian:bookworm base is imported from a
debootstrap root, and `docker build --network host` lets its apt-get
reach Debian's mirror. Containers run with `--network none`: drover
binds the seed's 0.0.0.0:5000 inside the container, where the image's
HEALTHCHECK looks for it, and the tests' clients enter the container's
network namespace (machines.NetNS) instead of a published port.
"""
import shutil
import time

import pytest

from conftest import ROOT, install_app
from machines import Dockerd, NetNS

IMAGE = "drover-deploy-test"
SEED = ["drover", "--bind", "0.0.0.0:5000", "--workers", "4", "--timeout",
        "120", "--max-requests", "1000", "--max-requests-jitter", "100",
        "--preload", "app.wsgi:application"]


@pytest.fixture(scope="module")
def engine():
    with Dockerd() as d:
        d.ensure_base_image()
        yield d


@pytest.fixture(scope="module")
def image(engine, tmp_path_factory, report):
    """The image of conf/Dockerfile for the test app. The context is the
    Dockerfile's (the repository's sources, the app in ./app) without
    the build trees; requirements.txt is empty, as PyPI is out of reach."""
    ctx = tmp_path_factory.mktemp("context")
    shutil.copy(ROOT / "CMakeLists.txt", ctx)
    for d in ("src", "include", "examples", "python"):
        shutil.copytree(ROOT / d, ctx / d,
                        ignore=shutil.ignore_patterns("__pycache__"))
    install_app(ctx / "app")
    (ctx / "app" / "requirements.txt").write_text(
        "# PyPI is out of reach of the test machine: nothing to install\n")
    t0 = time.monotonic()
    engine.docker("build", "--network", "host", "-f", ROOT / "conf/Dockerfile",
                  "-t", IMAGE, ctx, timeout=1200)
    report("docker build", f"{time.monotonic() - t0:.0f} s")
    size = int(engine.docker("image", "inspect", "-f", "{{.Size}}",
                             IMAGE).stdout)
    report("image size", f"{size / 1e6:.0f} MB")
    return IMAGE


class Container:
    def __init__(self, engine, cid):
        self.engine, self.id = engine, cid
        self.pid = int(self.inspect("{{.State.Pid}}"))
        self.ns = NetNS(self.pid)

    def inspect(self, fmt):
        return self.engine.docker("inspect", "-f", fmt, self.id).stdout.strip()

    def logs(self):
        r = self.engine.docker("logs", self.id, check=False)
        return r.stdout + r.stderr

    def wait_log(self, text, count=1, timeout=20):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.logs().count(text) >= count:
                return
            time.sleep(0.05)
        raise AssertionError(f"{count} x {text!r} never logged:\n{self.logs()}")

    def exec(self, *cmd, user=None):
        args = ["exec", *(["-u", user] if user else []), self.id, *cmd]
        return self.engine.docker(*args).stdout


@pytest.fixture
def container(engine, image):
    """Factory: container(*command, options=[]) -> a serving Container."""
    started = []

    def run(*command, options=()):
        cid = engine.docker("run", "-d", "--network", "none", *options,
                            image, *command).stdout.strip()
        c = Container(engine, cid)
        started.append(c)
        c.wait_log("worker(s) ready")
        return c

    yield run
    for c in started:
        c.ns.close()
        engine.docker("rm", "-f", c.id, check=False)


def test_the_image_holds_drover_and_no_build_tools(engine, image):
    out = engine.docker("run", "--rm", "--network", "none", image, "sh", "-c",
                        "command -v drover; command -v gcc cmake make pip || true"
                        ).stdout.split()
    assert out == ["/usr/local/bin/drover"]


def test_the_seed_command_line_serves_with_drover_as_pid_1_reaping(container):
    c = container(*SEED)
    status, who = c.ns.get("/")
    assert status == 200 and who["ppid"] == 1 and who["version"] == "v1"
    assert c.exec("cat", "/proc/1/comm").startswith("drover")
    assert "4 worker(s) ready" in c.logs()
    for _ in range(3):
        status, data = c.ns.get("/orphan")
        assert status == 200
    time.sleep(1.0)  # the orphans' sleep 0.5 ends; PID 1 must reap them
    assert c.ns.get("/zombies") == (200, {"zombies": []})


def test_docker_stop_lets_requests_in_flight_finish_and_exits_0(engine,
                                                                container):
    c = container(*SEED)
    slow = [c.ns.submit("/sleep?s=2") for _ in range(3)]
    c.wait_log("webapp: sleeping", count=3)
    t0 = time.monotonic()
    engine.docker("stop", c.id)  # SIGTERM, then SIGKILL after 10 s
    took = time.monotonic() - t0
    assert [f.result(5)[0] for f in slow] == [200, 200, 200]
    assert c.inspect("{{.State.ExitCode}}") == "0", c.logs()
    assert took < 5, f"docker stop took {took:.1f} s:\n{c.logs()}"
    assert "SIGKILL" not in c.logs()


def test_docker_kill_hup_reloads_new_code_without_a_failed_request(engine,
                                                                   container):
    c = container(*SEED)
    load = c.ns.load(clients=4)
    try:
        load.wait_ok(50)
        c.exec("sh", "-c", "echo v2 > /app/app/VERSION", user="0")
        engine.docker("kill", "-s", "HUP", c.id)
        deadline = time.monotonic() + 20
        while "v2" not in load.versions and time.monotonic() < deadline:
            time.sleep(0.05)
        load.wait_ok(50)
    finally:
        load.stop()
    assert "v2" in load.versions, c.logs()
    assert load.failures == [], (load.failures[:5], c.logs())
    assert load.ok > 100


def test_the_healthcheck_turns_the_container_healthy(container):
    # The image's own CMD and HEALTHCHECK; only the interval is shortened.
    c = container(options=["--health-interval", "1s",
                            "--health-start-period", "5s"])
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if c.inspect("{{.State.Health.Status}}") == "healthy":
            break
        time.sleep(0.2)
    assert c.inspect("{{.State.Health.Status}}") == "healthy", \
        c.inspect("{{json .State.Health}}")
