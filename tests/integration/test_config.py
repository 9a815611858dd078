"""Settings reach the real binary from every source, in the right order,
and bad input stops the start with one line and exit status 2."""
import re

import pytest
import requests

from conftest import ECHO, HELLO, run_drover


def resolved(*args, env=None, cwd=None):
    """Run --print-config and return {key: raw value text}."""
    r = run_drover("--print-config", *args, env=env, cwd=cwd)
    assert r.returncode == 0, r.stderr
    values = {}
    for line in r.stdout.splitlines():
        m = re.match(r"^(\w+):\s*(.*)$", line)
        if m:
            values[m.group(1)] = m.group(2)
    return values, r.stdout


def test_command_line_beats_environment_beats_yaml_beats_default(tmp_path):
    cfg = tmp_path / "drover.yml"
    cfg.write_text("workers: 3\ntimeout: 40\nbacklog: 100\n")
    v, _ = resolved("-c", cfg, "--workers", "5",
                    env={"DROVER_WORKERS": "4", "DROVER_TIMEOUT": "50"})
    assert v["workers"] == "5"       # CLI over env and YAML
    assert v["timeout"] == "50"      # env over YAML
    assert v["backlog"] == "100"     # YAML over default
    assert v["keepalive"] == "2"     # default


def test_config_file_can_come_from_drover_config(tmp_path):
    cfg = tmp_path / "c.yml"
    cfg.write_text("max_requests: 1000\nmax-requests-jitter: 100\n")
    v, _ = resolved(env={"DROVER_CONFIG": str(cfg)})
    assert v["max_requests"] == "1000"
    assert v["max_requests_jitter"] == "100"


def test_port_and_web_concurrency_set_the_defaults_like_gunicorn():
    v, out = resolved(env={"PORT": "8123", "WEB_CONCURRENCY": "6"})
    assert "0.0.0.0:8123" in out
    assert v["workers"] == "6"
    v, out = resolved("--bind", "127.0.0.1:9000", "-w", "2",
                      env={"PORT": "8123", "WEB_CONCURRENCY": "6"})
    assert "127.0.0.1:9000" in out and "8123" not in out
    assert v["workers"] == "2"


def test_print_config_output_loads_back_unchanged(tmp_path):
    _, first = resolved("--workers", "3", "--bind", "unix:/tmp/x.sock",
                        "--bind", "[::1]:8000", "--access-logfile", "-",
                        "--no-preload")
    cfg = tmp_path / "round.yml"
    cfg.write_text(first)
    _, second = resolved("-c", cfg)
    strip = lambda s: [l for l in s.splitlines() if not l.startswith("#")]
    assert strip(first) == strip(second)


def test_check_config_on_bad_yaml_names_the_line(tmp_path):
    cfg = tmp_path / "bad.yml"
    cfg.write_text("workers: 2\ntimeout: 30\nwrokers: 4\n")
    r = run_drover("--check-config", "-c", cfg, HELLO)
    assert r.returncode == 2
    assert r.stderr.strip().count("\n") == 0, "one line only"
    assert f"{cfg}:3:1" in r.stderr and "wrokers" in r.stderr


def test_check_config_on_yaml_syntax_error_names_the_line(tmp_path):
    cfg = tmp_path / "syntax.yml"
    cfg.write_text("workers: 2\nbind:\n  - 127.0.0.1:80\ntimeout 30\nx: [\n")
    r = run_drover("--check-config", "-c", cfg)
    assert r.returncode == 2
    assert re.search(rf"{re.escape(str(cfg))}:\d+:\d+: ", r.stderr), r.stderr


def test_check_config_accepts_a_good_file_and_loads_the_app(tmp_path):
    cfg = tmp_path / "good.yml"
    cfg.write_text(f"app: {ECHO}\nworkers: 2\nbind:\n  - 127.0.0.1:0\n")
    r = run_drover("--check-config", "-c", cfg)
    assert r.returncode == 0, r.stderr
    assert "OK" in r.stdout


def test_bad_values_name_their_source_and_exit_2():
    cases = [
        (["--workers", "lots", HELLO], {}, "--workers"),
        (["--timeout", "-5", HELLO], {}, "--timeout"),
        (["--bind", "127.0.0.1:99999", HELLO], {}, "--bind"),
        (["--bind", "[::1:80", HELLO], {}, "--bind"),
        (["--log-level", "loud", HELLO], {}, "--log-level"),
        (["--wrkers", "4", HELLO], {}, "--wrkers"),
        ([HELLO], {"DROVER_WORKERS": "x"}, "DROVER_WORKERS"),
        ([HELLO], {"PORT": "http"}, "PORT"),
        ([HELLO], {"WEB_CONCURRENCY": "0"}, "WEB_CONCURRENCY"),
        (["--access-logfile", "-", "--access-logformat", "%(zz)s", HELLO],
         {}, "--access-logformat"),
    ]
    for args, env, source in cases:
        r = run_drover(*args, env=env)
        assert r.returncode == 2, (args, env, r.stderr)
        lines = r.stderr.strip().splitlines()
        assert len(lines) == 1, (args, r.stderr)
        assert source in lines[0], (args, lines[0])


def test_native_app_load_errors_are_one_line_and_exit_2(tmp_path):
    for spec, expect in [
        (f"{tmp_path}/missing.so:app", "cannot load"),
        (HELLO.replace(":hello_app", ":no_such_symbol"), "no_such_symbol"),
        ("lib.so", "PATH.so:SYMBOL"),
    ]:
        r = run_drover("--bind", "127.0.0.1:0", spec)
        assert r.returncode == 2, (spec, r.stderr)
        assert expect in r.stderr, (spec, r.stderr)
        assert r.stderr.strip().splitlines()[-1].startswith("drover: ")


def test_bind_address_in_use_fails_with_exit_1(drover):
    srv = drover(HELLO)
    r = run_drover("--bind", f"127.0.0.1:{srv.port}", HELLO)
    assert r.returncode == 1
    assert "Address already in use" in r.stderr


def test_settings_from_yaml_take_effect_in_the_server(drover):
    srv = drover(config=f"app: {ECHO}\nbind: 127.0.0.1:0\nmax_body_size: 10\n")
    ok = requests.post(srv.url + "/", data=b"0123456789", timeout=5)
    assert ok.status_code == 200
    too_big = requests.post(srv.url + "/", data=b"0123456789a", timeout=5)
    assert too_big.status_code == 413


def test_help_and_version_exit_0():
    r = run_drover("--help")
    assert r.returncode == 0 and "--max-requests-jitter" in r.stdout
    assert "DROVER_WORKERS" in r.stdout
    r = run_drover("--version")
    assert r.returncode == 0 and r.stdout.startswith("drover ")


def test_configuration_reference_is_up_to_date():
    """docs/configuration.md is generated from the settings table."""
    from pathlib import Path
    r = run_drover("--print-reference")
    doc = Path(__file__).resolve().parents[2] / "docs" / "configuration.md"
    assert r.returncode == 0
    assert doc.read_text() == r.stdout, \
        "regenerate: build/drover --print-reference > docs/configuration.md"


def test_the_shipped_example_config_is_valid():
    from pathlib import Path
    root = Path(__file__).resolve().parents[2]
    r = run_drover("--check-config", "-c", "conf/drover.yml", cwd=root)
    assert r.returncode == 0, r.stderr


@pytest.mark.parametrize("args", [
    ["-k", "gthread", "--threads", "4"],
    ["-k", "sync"],
    ["--worker-class", "gunicorn.workers.gthread.ThreadWorker"],
    ["--worker-connections", "100"],
])
def test_gunicorn_worker_classes_drover_covers_are_accepted(args):
    r = run_drover(*args, "--check-config", HELLO)
    assert r.returncode == 0, r.stderr


def test_other_worker_classes_are_refused_with_one_line():
    r = run_drover("-k", "gevent", "app:app")
    assert r.returncode == 2
    line = r.stderr.strip()
    assert line.startswith("drover: -k: worker class 'gevent' is not")
    assert "--threads" in line and "\n" not in line


@pytest.mark.parametrize("args, hint", [
    (["--reload"], "use --dev"),
    (["--certfile=cert.pem"], "terminate TLS at the proxy"),
])
def test_gunicorn_only_options_say_what_to_do_instead(args, hint):
    r = run_drover(*args, "app:app")
    assert r.returncode == 2
    line = r.stderr.strip()
    assert line.startswith(f"drover: {args[0].split('=')[0]} is a gunicorn "
                           "option drover does not have: ")
    assert hint in line and "\n" not in line
