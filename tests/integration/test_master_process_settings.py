"""What the master sets up for its processes: the pid file, the
workers' user, the umask."""
import os
import pwd
from pathlib import Path

import pytest

from helpers import APPS, serving_pid, wait_workers


def test_pidfile_is_written_and_removed(drover, tmp_path):
    pidfile = tmp_path / "drover.pid"
    srv = drover("-w", "1", "--pid", pidfile, "master_app:app", cwd=APPS)
    assert pidfile.read_text().strip() == str(srv.pid)
    assert srv.stop() == 0
    assert not pidfile.exists()


def test_a_pidfile_of_a_running_server_refuses_a_second(drover, tmp_path):
    pidfile = tmp_path / "drover.pid"
    drover("-w", "1", "--pid", pidfile, "master_app:app", cwd=APPS)
    second = drover("-w", "1", "--pid", pidfile, "master_app:app", cwd=APPS,
                    ready=False)
    assert second.proc.wait(10) == 1
    assert "already running" in second.log


@pytest.mark.skipif(os.geteuid() != 0, reason="switching users needs root")
def test_workers_run_as_the_configured_user(drover):
    srv = drover("-w", "1", "--user", "nobody", "master_app:app", cwd=APPS)
    wait_workers(srv, 1)
    worker = serving_pid(srv)  # past its set-up, so past setuid()
    uid = Path(f"/proc/{worker}/status").read_text().split("Uid:")[1].split()
    assert uid[0] == str(pwd.getpwnam("nobody").pw_uid)
    assert Path(f"/proc/{srv.pid}/status").read_text().split("Uid:")[1] \
        .split()[0] == "0"


def test_an_unknown_user_is_a_configuration_error(drover):
    srv = drover("--user", "no-such-user-here", "master_app:app", cwd=APPS,
                 ready=False)
    assert srv.proc.wait(10) == 2
    assert "--user 'no-such-user-here': no such user" in srv.log


def test_umask_applies_to_the_files_drover_creates(drover, tmp_path):
    log = tmp_path / "access.log"
    drover("-w", "1", "--umask", "077", "--access-logfile", log,
           "master_app:app", cwd=APPS)
    assert log.stat().st_mode & 0o777 == 0o600


def test_a_bad_umask_is_a_configuration_error():
    from conftest import run_drover
    r = run_drover("--umask", "999", "master_app:app")
    assert r.returncode == 2
    assert r.stderr.strip() == ("drover: --umask: '999' is not an octal file "
                                "mode (0 to 0777)")
