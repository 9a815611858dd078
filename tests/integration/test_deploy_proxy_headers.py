"""Proxy headers (forwarded_allow_ips): X-Forwarded-For, X-Forwarded-Proto
and Forwarded set REMOTE_ADDR and wsgi.url_scheme only when the peer is a
trusted proxy, for Python and native apps alike, and in the access log."""
import time

import requests

from conftest import run_drover
from helpers import APPS, ECHO, echoed, get

PYAPP = "wsgi_basic:environ_app"


def py_environ(srv, headers):
    r = requests.get(srv.url + "/", headers=headers, timeout=5)
    assert r.status_code == 200
    return r.json()


def native(srv, headers, unix=None):
    r = get(None if unix else srv.port, "/", headers, unix=unix)
    assert r.status == 200
    return r.body


PROXIED = [("X-Forwarded-For", "203.0.113.7"), ("X-Forwarded-Proto", "https")]


def test_a_trusted_loopback_proxy_sets_remote_addr_and_scheme_for_python(drover):
    srv = drover(PYAPP, cwd=APPS)  # default forwarded_allow_ips: 127.0.0.1,::1
    env = py_environ(srv, dict(PROXIED))
    assert env["REMOTE_ADDR"] == "203.0.113.7"
    assert env["wsgi.url_scheme"] == "https"
    assert env["HTTP_X_FORWARDED_FOR"] == "203.0.113.7"  # still visible
    plain = py_environ(srv, {})
    assert plain["REMOTE_ADDR"] == "127.0.0.1"
    assert plain["wsgi.url_scheme"] == "http"


def test_a_trusted_proxy_sets_remote_addr_and_scheme_for_native_apps(drover):
    srv = drover(ECHO)
    body = native(srv, PROXIED)
    assert echoed(body, "remote_addr") == "203.0.113.7"
    assert echoed(body, "url_scheme") == "https"
    assert echoed(body, "remote_port") == "0"


def test_an_untrusted_peer_cannot_spoof_its_address_or_scheme(drover):
    srv = drover(PYAPP, "--forwarded-allow-ips", "10.0.0.1,192.168.0.0/16",
                 cwd=APPS)
    env = py_environ(srv, {**dict(PROXIED),
                           "Forwarded": "for=198.51.100.1;proto=https"})
    assert env["REMOTE_ADDR"] == "127.0.0.1"
    assert env["wsgi.url_scheme"] == "http"
    body = native(drover(ECHO, "--forwarded-allow-ips", "10.0.0.1"), PROXIED)
    assert echoed(body, "remote_addr") == "127.0.0.1"
    assert echoed(body, "url_scheme") == "http"


def test_a_forged_x_forwarded_for_prefix_is_skipped(drover):
    # The client sent "X-Forwarded-For: 6.6.6.6"; a proxy at 10.0.0.5
    # appended the address it saw, then the loopback proxy appended 10.0.0.5.
    srv = drover(PYAPP, "--forwarded-allow-ips", "127.0.0.1,10.0.0.0/8",
                 cwd=APPS)
    env = py_environ(srv, {"X-Forwarded-For": "6.6.6.6, 198.51.100.20, 10.0.0.5"})
    assert env["REMOTE_ADDR"] == "198.51.100.20"
    # "*" trusts the peer as one proxy: the hop it added is the client,
    # and what the client wrote further left cannot win.
    star = drover(PYAPP, "--forwarded-allow-ips", "*", cwd=APPS)
    env = py_environ(star, {"X-Forwarded-For": "6.6.6.6, 198.51.100.20"})
    assert env["REMOTE_ADDR"] == "198.51.100.20"


def test_the_rfc_7239_forwarded_header_is_understood(drover):
    srv = drover(PYAPP, cwd=APPS)
    env = py_environ(srv, {"Forwarded":
                           'for="[2001:db8:cafe::17]:4711";proto=https'})
    assert env["REMOTE_ADDR"] == "2001:db8:cafe::17"
    assert env["REMOTE_PORT"] == "4711"
    assert env["wsgi.url_scheme"] == "https"


def test_a_network_in_forwarded_allow_ips_trusts_its_members(drover):
    srv = drover(ECHO, "--forwarded-allow-ips", "127.0.0.0/8")
    assert echoed(native(srv, PROXIED), "remote_addr") == "203.0.113.7"


def test_a_unix_socket_peer_is_trusted(drover, tmp_path):
    path = tmp_path / "proxied.sock"
    srv = drover(ECHO, "--bind", f"unix:{path}",
                 "--forwarded-allow-ips", "10.0.0.1")
    body = native(srv, PROXIED, unix=path)
    assert echoed(body, "remote_addr") == "203.0.113.7"
    assert echoed(body, "url_scheme") == "https"


def test_forwarded_allow_ips_comes_from_gunicorns_variable_and_ours(drover):
    # gunicorn's FORWARDED_ALLOW_IPS replaces the default ...
    srv = drover(ECHO, env={"FORWARDED_ALLOW_IPS": "10.0.0.1"})
    assert echoed(native(srv, PROXIED), "remote_addr") == "127.0.0.1"
    # ... and DROVER_FORWARDED_ALLOW_IPS overrides it.
    srv = drover(ECHO, env={"FORWARDED_ALLOW_IPS": "10.0.0.1",
                            "DROVER_FORWARDED_ALLOW_IPS": "10.0.0.1, 127.0.0.1"})
    assert echoed(native(srv, PROXIED), "remote_addr") == "203.0.113.7"


def test_a_bad_forwarded_allow_ips_stops_the_start(tmp_path):
    r = run_drover(ECHO, "--forwarded-allow-ips", "127.0.0.1,proxy.local")
    assert r.returncode == 2
    assert "--forwarded-allow-ips" in r.stderr
    assert "'proxy.local' is not an IP address" in r.stderr
    assert r.stderr.count("\n") == 1, r.stderr  # one line
    r = run_drover(ECHO, env={"FORWARDED_ALLOW_IPS": "10.0.0.0/40"})
    assert r.returncode == 2
    assert "FORWARDED_ALLOW_IPS" in r.stderr
    # A YAML list item is named by its position.
    conf = tmp_path / "drover.yml"
    conf.write_text("forwarded_allow_ips:\n  - 127.0.0.1\n  - ::1/200\n")
    r = run_drover(ECHO, "--config", conf)
    assert r.returncode == 2
    assert r.stderr == (f"drover: {conf}:3:5: '::1/200' is not an IP "
                        "address, a network (ADDRESS/BITS) or *\n")


def test_the_access_log_shows_the_client_a_trusted_proxy_names(drover, tmp_path):
    log = tmp_path / "access.log"
    srv = drover(ECHO, "--access-logfile", log)
    native(srv, PROXIED)
    native(srv, [])
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and log.read_text().count("\n") < 2:
        time.sleep(0.02)
    lines = log.read_text().splitlines()
    assert lines[0].startswith("203.0.113.7 "), lines
    assert lines[1].startswith("127.0.0.1 "), lines


def test_print_config_shows_the_trusted_proxies(tmp_path):
    r = run_drover("--print-config", "--forwarded-allow-ips", "10.0.0.0/8")
    assert r.returncode == 0
    assert "forwarded_allow_ips" in r.stdout and "10.0.0.0/8" in r.stdout
