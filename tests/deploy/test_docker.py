"""conf/Dockerfile built and run by a real Docker engine.

The engine is private to the run (machines.Dockerd: no iptables, no
bridge); the Dockerfile's debian:bookworm base is imported from a
debootstrap root, and `docker build --network host` lets its apt-get
reach Debian's mirror. Containers run with `--network none`: drover
binds the seed's 0.0.0.0:5000 inside the container (and the image's
metrics listener 0.0.0.0:9101, where its HEALTHCHECK asks /readyz), and
the tests' clients enter the container's network namespace
(machines.NetNS) instead of a published port.
conf/compose.yaml runs the same way, through Debian's docker-compose with
an override that names the image and sets `network_mode: none`.
"""
import json
import shutil
import time
from pathlib import Path

import pytest

from conftest import ROOT, install_app
from machines import COMPOSE, Dockerd, NetNS

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


def wait_healthy(c, timeout=30):
    """The container's health turns healthy; returns the last probe's
    output (the probe prints the status and URL it got)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if c.inspect("{{.State.Health.Status}}") == "healthy":
            break
        time.sleep(0.2)
    health = json.loads(c.inspect("{{json .State.Health}}"))
    assert health["Status"] == "healthy", health
    return health["Log"][-1]["Output"].strip()


def test_the_healthcheck_asks_readyz_on_the_metrics_listener(container):
    # The image's own CMD, HEALTHCHECK and DROVER_METRICS_BIND; only the
    # interval is shortened.
    c = container(options=["--health-interval", "1s",
                            "--health-start-period", "5s"])
    assert wait_healthy(c) == "200 http://127.0.0.1:9101/readyz"
    assert c.ns.get("/readyz", port=9101) == (200, b"ready\n")


def test_compose_yaml_serves_the_seed_turns_healthy_and_stops_gracefully(
        engine, image, tmp_path, report):
    """conf/compose.yaml's web service, run by Debian's docker-compose on
    the test image (an override names it and takes the network away, as
    for the other containers), as it is otherwise: command, healthcheck,
    stop_grace_period, read-only root."""
    if not Path(COMPOSE).exists():
        pytest.skip(f"{COMPOSE} missing (Debian package docker-compose; "
                    "tools/install-deps.sh deploy)")
    compose = ROOT / "conf/compose.yaml"
    override = tmp_path / "test.yaml"
    override.write_text(f"""\
services:
  web:
    image: {image}
    network_mode: none
    healthcheck:
      interval: 1s
      start_period: 5s
""")
    files = ["-f", compose, "-f", override, "-p", "drovertest"]
    # The whole file is valid for Debian's compose, the proxy included.
    engine.compose("-f", compose, "--profile", "proxy", "config", "-q")
    t0 = time.monotonic()
    try:
        engine.compose(*files, "up", "-d", "--no-build", "web")
        c = Container(engine, engine.compose(*files, "ps", "-q", "web")
                      .stdout.strip())
        assert wait_healthy(c) == "200 http://127.0.0.1:9101/readyz"
        report("docker-compose up until healthy",
               f"{time.monotonic() - t0:.1f} s")
        status, who = c.ns.get("/")
        assert status == 200 and who["ppid"] == 1
        assert "4 worker(s) ready" in c.logs()
        assert c.inspect("{{.HostConfig.ReadonlyRootfs}}") == "true"
        slow = c.ns.submit("/sleep?s=2")
        c.wait_log("webapp: sleeping")
        t1 = time.monotonic()
        engine.compose(*files, "stop", "web")
        took = time.monotonic() - t1
        assert slow.result(5)[0] == 200
        assert c.inspect("{{.State.ExitCode}}") == "0", c.logs()
        assert took < 5, f"docker-compose stop took {took:.1f} s"
    finally:
        if "c" in locals():
            c.ns.close()
        engine.compose(*files, "down", check=False)
