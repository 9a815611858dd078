"""How a Python app is found and loaded: --chdir, --pythonpath,
--virtualenv, --env, --script-name."""
import subprocess

import requests

from conftest import run_drover
from helpers import APPS


def test_chdir_puts_the_directory_first_on_sys_path(drover, tmp_path):
    srv = drover("--chdir", APPS, "envinfo:app", cwd=tmp_path)
    got = requests.get(srv.url, timeout=5).json()
    assert got["cwd"] == str(APPS)
    assert got["path"][0] == str(APPS)
    assert got["argv"][0] == "drover"


def test_pythonpath_entries_come_first_and_split_on_commas(drover, tmp_path):
    extra = tmp_path / "extra"
    extra.mkdir()
    srv = drover("--pythonpath", f"{APPS},{extra}", "envinfo:app",
                 cwd=tmp_path)
    got = requests.get(srv.url, timeout=5).json()
    assert got["path"][:3] == [str(APPS), str(extra), str(tmp_path)]


def test_a_wsgi_app_does_not_pay_for_asyncio(drover):
    # Telling WSGI from ASGI must not import asyncio (some 8 MiB a
    # process); the ASGI glue is loaded only for an ASGI app.
    for extra in ([], ["--preload"]):
        srv = drover(*extra, "envinfo:app", cwd=APPS)
        assert requests.get(srv.url, timeout=5).json()["asyncio"] is False
        srv.stop()


def test_env_is_set_before_the_app_is_imported(drover):
    srv = drover("-e", "DROVER_TEST_VALUE=a=b", "envinfo:app", cwd=APPS)
    assert requests.get(srv.url, timeout=5).json()["env"] == "a=b"


def test_script_name_mounts_the_app_and_404s_outside_it(drover):
    srv = drover("--script-name", "/api/", "envinfo:app", cwd=APPS)
    got = requests.get(srv.url + "/api/users/1", timeout=5).json()
    assert got["script_name"] == "/api"
    assert got["path_info"] == "/users/1"
    got = requests.get(srv.url + "/api", timeout=5).json()
    assert got["script_name"] == "/api" and got["path_info"] == ""
    assert requests.get(srv.url + "/apix", timeout=5).status_code == 404
    assert requests.get(srv.url + "/", timeout=5).status_code == 404


def test_script_name_defaults_from_the_environment_like_gunicorn(drover):
    srv = drover("envinfo:app", cwd=APPS, env={"SCRIPT_NAME": "/m"})
    got = requests.get(srv.url + "/m/x", timeout=5).json()
    assert (got["script_name"], got["path_info"]) == ("/m", "/x")


def make_venv(tmp_path):
    venv = tmp_path / "venv"
    subprocess.run(["/usr/bin/python3", "-m", "venv", "--system-site-packages",
                    "--without-pip", str(venv)], check=True)
    site = next(venv.glob("lib/python3*/site-packages"))
    (site / "only_in_venv.py").write_text(
        "def app(environ, start_response):\n"
        "    start_response('200 OK', [])\n"
        "    return [b'from the venv']\n")
    return venv


def test_virtualenv_site_packages_are_importable(drover, tmp_path):
    venv = make_venv(tmp_path)
    srv = drover("--virtualenv", venv, "only_in_venv:app")
    assert requests.get(srv.url, timeout=5).text == "from the venv"


def test_virtual_env_variable_is_the_default_virtualenv(drover, tmp_path):
    venv = make_venv(tmp_path)
    srv = drover("only_in_venv:app", env={"VIRTUAL_ENV": str(venv)})
    assert requests.get(srv.url, timeout=5).text == "from the venv"


def test_a_module_only_in_a_venv_is_not_found_without_it(tmp_path):
    make_venv(tmp_path)
    r = run_drover("--bind", "127.0.0.1:0", "only_in_venv:app", cwd=tmp_path)
    assert r.returncode == 2 and "ModuleNotFoundError" in r.stderr


def test_a_missing_virtualenv_is_a_one_line_error(tmp_path):
    r = run_drover("--bind", "127.0.0.1:0", "--virtualenv", tmp_path / "nope",
                   "x:app")
    assert r.returncode == 2
    assert r.stderr.strip().splitlines()[-1].startswith("drover: --virtualenv")


def test_bad_chdir_and_env_values_name_their_flag():
    r = run_drover("--chdir", "/no/such/dir", "x:app")
    assert r.returncode == 2 and "--chdir" in r.stderr
    r = run_drover("-e", "NOEQUALS", "x:app")
    assert r.returncode == 2 and "-e" in r.stderr
