"""Unit tests of python/drover without the binary: waitress's keywords as
drover flags, how the app is named, the import path, and the fallbacks.
tests/integration/test_python_serve.py runs the real thing."""
import os
import socket
import sys
import types
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "python"))

import drover  # noqa: E402
from drover._locate import app_spec, import_path  # noqa: E402
from drover._waitress import (ADDRESS, FLAGS, IGNORED,  # noqa: E402
                              command_line)


def flags(**kw):
    return command_line(kw)[0]


def value_of(args, flag):
    values = [args[i + 1] for i, a in enumerate(args) if a == flag]
    assert len(values) <= 1, args
    return values[0] if values else None


def binds(args):
    return [args[i + 1] for i, a in enumerate(args) if a == "--bind"]


def test_every_waitress_keyword_is_mapped_or_ignored_by_name():
    adjustments = pytest.importorskip("waitress.adjustments")
    waitress = {name for name, _ in adjustments.Adjustments._params}
    known = set(FLAGS) | set(IGNORED) | set(ADDRESS) | \
        {"trusted_proxy_headers"}
    assert waitress <= known
    assert known - waitress == {"workers", "timeout", "_quiet"}


def test_without_keywords_drover_keeps_waitress_behaviour():
    assert flags() == ["--bind", "0.0.0.0:8080", "--threads", "4",
                       "--workers", "1", "--timeout", "0"]


def test_host_and_port_bind_one_numeric_address():
    assert binds(flags(host="127.0.0.1", port="8050")) == ["127.0.0.1:8050"]
    assert binds(flags(port=8050)) == ["0.0.0.0:8050"]


def test_listen_takes_waitress_forms_including_star_and_ipv6():
    args = flags(listen="127.0.0.1:81 [::1]:82 *:83\n127.0.0.2")
    assert binds(args) == ["127.0.0.1:81", "[::1]:82", "0.0.0.0:83",
                           "[::]:83", "127.0.0.2:8080"]
    assert binds(flags(listen=["*:83"], ipv6=False)) == ["0.0.0.0:83"]
    assert binds(flags(listen="*:83", ipv4="no")) == ["[::]:83"]


def test_unix_socket_binds_unix_path():
    assert binds(flags(unix_socket="/run/app.sock")) == ["unix:/run/app.sock"]


def test_a_socket_the_script_made_is_passed_as_an_inherited_descriptor():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        assert binds(flags(sockets=[sock])) == [f"fd://{sock.fileno()}"]
        assert os.get_inheritable(sock.fileno())
        assert sock.getsockopt(socket.SOL_SOCKET, socket.SO_ACCEPTCONN)


@pytest.mark.parametrize("kw, message", [
    ({"listen": "*:80", "port": 80},
     "host or port may not be set if listen is set."),
    ({"unix_socket": "/s", "host": "x"},
     "unix_socket may not be set if host is set"),
    ({"host": "no such host.invalid"}, "Invalid host/port specified."),
])
def test_conflicting_or_bad_addresses_fail_as_in_waitress(kw, message):
    with pytest.raises(ValueError) as e:
        command_line(kw)
    assert str(e.value) == message


def test_values_are_converted_like_waitress_does():
    args = flags(threads="8", connection_limit="100", channel_timeout="60",
                 backlog=64, url_prefix="//board/", workers="2",
                 timeout=120, max_request_body_size="1048576")
    assert value_of(args, "--threads") == "8"
    assert value_of(args, "--worker-connections") == "100"
    assert value_of(args, "--keep-alive") == "60"
    assert value_of(args, "--io-timeout") == "60"
    assert value_of(args, "--backlog") == "64"
    assert value_of(args, "--script-name") == "/board"
    assert value_of(args, "--workers") == "2"
    assert value_of(args, "--timeout") == "120"
    assert value_of(args, "--max-body-size") == "1048576"


def test_header_size_sets_drovers_limits_up_to_their_caps():
    args = flags(max_request_header_size=4096)
    assert value_of(args, "--limit-request-line") == "4096"
    assert value_of(args, "--limit-request-field-size") == "4096"
    args = flags(max_request_header_size=262144)
    assert value_of(args, "--limit-request-line") == "8190"
    assert value_of(args, "--limit-request-field-size") == "262144"


def test_trusted_proxy_becomes_forwarded_allow_ips():
    args, notes = command_line({
        "trusted_proxy": "10.0.0.1",
        "trusted_proxy_headers": "x-forwarded-for X-Forwarded-Proto"})
    assert value_of(args, "--forwarded-allow-ips") == "10.0.0.1"
    assert notes == []
    assert value_of(flags(trusted_proxy=""), "--forwarded-allow-ips") is None


def test_proxy_headers_drover_does_not_read_get_one_line():
    _, notes = command_line({"trusted_proxy": "*", "trusted_proxy_headers":
                             {"x-forwarded-host", "x-forwarded-port",
                              "x-forwarded-for"}})
    assert len(notes) == 1
    assert "x-forwarded-host, x-forwarded-port" in notes[0]


def test_each_meaningless_keyword_gets_one_line_naming_it():
    args, notes = command_line({"asyncore_use_poll": True, "recv_bytes": 1,
                                "ident": "shop", "threads": 2})
    assert notes == [
        "drover.serve: ignoring waitress's asyncore_use_poll=True "
        "(drover has no such setting)",
        "drover.serve: ignoring waitress's recv_bytes=1 "
        "(drover has no such setting)",
        "drover.serve: ignoring waitress's ident='shop' "
        "(drover always sends Server: drover)"]
    assert "asyncore_use_poll" not in " ".join(args)


def test_an_unknown_keyword_raises_what_waitress_raises():
    with pytest.raises(ValueError) as ours:
        command_line({"thread": 4})
    assert str(ours.value) == "Unknown adjustment 'thread'"
    adjustments = pytest.importorskip("waitress.adjustments")
    with pytest.raises(ValueError) as theirs:
        adjustments.Adjustments(thread=4)
    assert str(theirs.value) == str(ours.value)


# --- naming the app ---------------------------------------------------------

class Dashish:
    def __init__(self):
        self.server = lambda environ, start_response: []


def wsgi(environ, start_response):
    return []


DASH = Dashish()


def test_a_module_level_app_is_named_module_colon_name():
    assert app_spec(wsgi, globals()) == f"{__name__}:wsgi"


def test_a_dash_objects_server_is_named_through_its_owner():
    assert app_spec(DASH.server, globals()) == f"{__name__}:DASH.server"


def test_an_app_in_another_module_is_found_in_sys_modules(monkeypatch):
    mod = types.ModuleType("shop_web_for_test")
    mod.application = lambda environ, start_response: []
    monkeypatch.setitem(sys.modules, mod.__name__, mod)
    assert app_spec(mod.application, {"__name__": "caller"}) == \
        "shop_web_for_test:application"


def test_a_script_run_as_main_is_named_by_its_absolute_path(tmp_path,
                                                            monkeypatch):
    monkeypatch.chdir(tmp_path)
    ns = {"__name__": "__main__", "__spec__": None,
          "__file__": "dash_app.py", "app": wsgi}
    assert app_spec(wsgi, ns) == f"{tmp_path}/dash_app.py:app"


def test_a_module_run_with_dash_m_is_named_by_its_module_name():
    ns = {"__name__": "__main__", "__file__": "/x/shop/web.py",
          "__spec__": types.SimpleNamespace(name="shop.web"), "app": wsgi}
    assert app_spec(wsgi, ns) == "shop.web:app"


def test_an_app_with_no_module_level_name_is_a_one_line_error():
    def local_app(environ, start_response):
        return []
    with pytest.raises(LookupError) as e:
        app_spec(local_app, {"__name__": "__main__"})
    assert "\n" not in str(e.value)
    assert "module-level name" in str(e.value)


def test_an_app_typed_at_the_prompt_is_a_one_line_error():
    ns = {"__name__": "__main__", "__spec__": None, "app": wsgi}
    with pytest.raises(LookupError) as e:
        app_spec(wsgi, ns)
    assert "\n" not in str(e.value) and ".py files" in str(e.value)


def test_import_path_keeps_the_scripts_folders_not_the_standard_library(
        tmp_path, monkeypatch):
    site = tmp_path / "lib" / "site-packages"
    site.mkdir(parents=True)
    monkeypatch.setattr(sys, "path", [str(tmp_path), "",
                                      os.path.dirname(os.__file__),
                                      str(site), "/nonexistent"])
    assert import_path() == [str(tmp_path), os.getcwd()]


# --- without a drover binary --------------------------------------------

def fake_waitress(monkeypatch):
    # No drover to find either, so a slip cannot exec over pytest.
    monkeypatch.setenv("DROVER_BINARY", "")
    monkeypatch.setenv("PATH", "/nonexistent")
    calls = []
    monkeypatch.setitem(sys.modules, "waitress", types.SimpleNamespace(
        serve=lambda app, **kw: calls.append((app, kw))))
    return calls


def test_on_windows_serve_calls_waitress_with_its_own_keywords(
        monkeypatch, capsys):
    calls = fake_waitress(monkeypatch)
    monkeypatch.setattr(os, "name", "nt")
    drover.serve(wsgi, port=8050, threads=4, workers=2, timeout=60)
    assert calls == [(wsgi, {"port": 8050, "threads": 4})]
    assert capsys.readouterr().err == \
        "drover.serve: drover does not run on Windows; serving with " \
        "waitress instead\n"


def test_with_no_binary_and_no_waitress_serve_exits_with_one_line(
        monkeypatch):
    fake_waitress(monkeypatch)
    monkeypatch.setitem(sys.modules, "waitress", None)   # import fails
    with pytest.raises(SystemExit) as e:
        drover.serve(wsgi, port=8050)
    message = str(e.value.code)
    assert "\n" not in message
    assert "WSL2 or Docker" in message and "docs/deployment.md" in message


def test_a_binary_that_cannot_run_is_a_one_line_exit(monkeypatch, tmp_path):
    monkeypatch.setenv("DROVER_BINARY", str(tmp_path / "missing"))
    with pytest.raises(SystemExit) as e:
        drover.serve(wsgi, host="127.0.0.1", port=8050)
    assert str(e.value.code) == (
        f"drover.serve: cannot run {tmp_path}/missing: No such file or "
        "directory")
