"""The deployment files in conf/: checked by the real tools where this
machine has them (systemd-analyze, nginx), and drover's own flags in them
checked by drover itself. tests/deploy (`make test-deploy`) runs the units
under a real systemd and builds and runs the Dockerfile."""
import json
import re
import shutil
import subprocess

import pytest
import yaml

from conftest import BIN, HELLO, ROOT, run_drover
from helpers import NGINX

CONF = ROOT / "conf"
ANALYZE = shutil.which("systemd-analyze")


def unit_value(text, key):
    values = re.findall(rf"^{key}=(.*)$", text, re.M)
    assert values, f"{key}= missing"
    return values[-1].strip()


def seconds(value):
    m = re.fullmatch(r"(\d+)\s*(s|min)?", value)
    assert m, value
    return int(m.group(1)) * (60 if m.group(2) == "min" else 1)


def graceful_timeout_in(args):
    return int(args[args.index("--graceful-timeout") + 1])


def verify_units(tmp_path, service_text):
    (tmp_path / "drover.service").write_text(service_text)
    shutil.copy(CONF / "drover.socket", tmp_path / "drover.socket")
    return subprocess.run(
        [ANALYZE, "verify", str(tmp_path / "drover.service"),
         str(tmp_path / "drover.socket")],
        capture_output=True, text=True, timeout=60)


@pytest.mark.skipif(ANALYZE is None, reason="systemd-analyze missing "
                    "(Debian package systemd; tools/install-deps.sh test)")
def test_systemd_analyze_verify_accepts_the_service_and_socket_units(tmp_path):
    service = (CONF / "drover.service").read_text()
    # verify checks that ExecStart's binary exists: point it at ours.
    service = service.replace("/usr/local/bin/drover", str(BIN))
    r = verify_units(tmp_path, service)
    assert r.returncode == 0 and r.stdout + r.stderr == "", r.stdout + r.stderr
    # Control: verify does complain about a broken unit, so silence above
    # means something.
    broken = verify_units(tmp_path, service.replace("Type=notify", "Type=notfy"))
    assert "notfy" in broken.stdout + broken.stderr


def test_the_service_unit_stops_gracefully_and_is_hardened():
    text = (CONF / "drover.service").read_text()
    assert unit_value(text, "Type") == "notify"
    assert unit_value(text, "ExecReload") == "/bin/kill -HUP $MAINPID"
    assert unit_value(text, "KillMode") == "mixed"
    exec_start = unit_value(text, "ExecStart").split()
    assert seconds(unit_value(text, "TimeoutStopSec")) > \
        graceful_timeout_in(exec_start)
    assert unit_value(text, "User") not in ("", "root")
    for key, value in [("NoNewPrivileges", "yes"),
                       ("ProtectSystem", "strict"), ("PrivateTmp", "yes")]:
        assert unit_value(text, key) == value
    # The flags in ExecStart are drover's own.
    args = [a for a in exec_start[1:] if a not in ("--config",)
            and not a.endswith(".yml")]
    r = run_drover(*args, HELLO, "--check-config")
    assert r.returncode == 0, r.stderr


@pytest.mark.skipif(NGINX is None, reason="nginx missing (Debian package "
                    "nginx-light; tools/install-deps.sh test)")
def test_nginx_accepts_the_example_configuration(tmp_path):
    text = (CONF / "nginx.conf").read_text()
    # Logs and pid file into the temporary directory: nothing else changes.
    text = text.replace("/var/log/nginx/", f"{tmp_path}/")
    text = text.replace("/run/nginx-drover.pid", f"{tmp_path}/nginx.pid")
    conf = tmp_path / "nginx.conf"
    conf.write_text(text)
    r = subprocess.run([NGINX, "-t", "-c", str(conf), "-p", str(tmp_path),
                        "-e", str(tmp_path / "startup.log")],
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, r.stderr
    assert "X-Forwarded-For $proxy_add_x_forwarded_for" in text
    assert "X-Forwarded-Proto $scheme" in text


def dockerfile_instruction(text, name):
    """One instruction's argument, continuation lines joined."""
    joined = re.sub(r"\\\n\s*", " ", text)
    found = re.findall(rf"^{name}\s+(.*)$", joined, re.M)
    assert found, f"no {name} in the Dockerfile"
    return found[-1].strip()


def test_the_dockerfile_runs_drover_as_a_non_root_user_on_port_5000():
    text = (CONF / "Dockerfile").read_text()
    assert dockerfile_instruction(text, "FROM").startswith("debian:")
    assert dockerfile_instruction(text, "USER") not in ("root", "0")
    assert dockerfile_instruction(text, "EXPOSE") == "5000"
    assert "CMD" in dockerfile_instruction(text, "HEALTHCHECK")
    assert "/readyz" in dockerfile_instruction(text, "HEALTHCHECK")
    cmd = json.loads(dockerfile_instruction(text, "CMD"))
    assert cmd[:5] == ["drover", "--bind", "0.0.0.0:5000", "--workers", "4"]
    # Every flag of the CMD is one drover accepts.
    r = run_drover(*cmd[1:-1], HELLO, "--check-config")
    assert r.returncode == 0, r.stderr


def test_compose_gives_drover_time_for_a_graceful_stop():
    compose = yaml.safe_load((CONF / "compose.yaml").read_text())
    web = compose["services"]["web"]
    assert web["build"]["dockerfile"] == "conf/Dockerfile"
    cmd = web["command"]
    assert seconds(web["stop_grace_period"]) > graceful_timeout_in(cmd)
    # Every flag of the command is one drover accepts.
    r = run_drover(*cmd[1:-1], HELLO, "--check-config")
    assert r.returncode == 0, r.stderr
    # The healthcheck asks the metrics listener the service configures.
    port = web["environment"]["DROVER_METRICS_BIND"].rsplit(":", 1)[1]
    assert f"127.0.0.1:{port}/readyz" in " ".join(web["healthcheck"]["test"])


def test_kubernetes_grace_period_covers_pre_stop_and_graceful_timeout():
    docs = list(yaml.safe_load_all((CONF / "kubernetes.yaml").read_text()))
    deploy = next(d for d in docs if d["kind"] == "Deployment")
    pod = deploy["spec"]["template"]["spec"]
    web = pod["containers"][0]
    pre_stop = int(web["lifecycle"]["preStop"]["exec"]["command"][1])
    graceful = graceful_timeout_in(web["command"])
    assert pod["terminationGracePeriodSeconds"] > pre_stop + graceful
    env = {e["name"]: e["value"] for e in web["env"]}
    assert env["PORT"] == "5000" and int(env["WEB_CONCURRENCY"]) >= 1
    # Probes go to the master's metrics listener (--metrics-bind), which
    # answers while every worker is busy; the Service does not expose it.
    ports = {p["name"]: p["containerPort"] for p in web["ports"]}
    args = web["command"]
    metrics_bind = args[args.index("--metrics-bind") + 1]
    assert metrics_bind == f"0.0.0.0:{ports['metrics']}"
    assert web["readinessProbe"]["httpGet"] == {"path": "/readyz",
                                                "port": "metrics"}
    assert web["livenessProbe"]["httpGet"] == {"path": "/healthz",
                                               "port": "metrics"}
    annotations = deploy["spec"]["template"]["metadata"]["annotations"]
    assert annotations["prometheus.io/port"] == str(ports["metrics"])
    service = next(d for d in docs if d["kind"] == "Service")
    assert [p["targetPort"] for p in service["spec"]["ports"]] == ["http"]
    assert web["resources"]["limits"] and web["resources"]["requests"]
    # drover takes the command and its PORT/WEB_CONCURRENCY as they are.
    r = run_drover(*web["command"][1:-1], HELLO, "--print-config",
                   env={k: v for k, v in env.items()})
    assert r.returncode == 0, r.stderr
    assert "0.0.0.0:5000" in r.stdout
    assert re.search(r"^workers: 4$", r.stdout, re.M), r.stdout
