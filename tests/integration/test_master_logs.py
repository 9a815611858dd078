"""SIGUSR1 reopens rotated log files, in workers of another user too."""
import os
import pwd
import shutil
import signal
import time
from pathlib import Path

import pytest

from helpers import APPS, get, wait_for, wait_workers


def test_usr1_reopens_a_rotated_access_log(drover, tmp_path):
    log = tmp_path / "access.log"
    srv = drover("-w", "2", "--access-logfile", log, "master_app:app",
                 cwd=APPS)
    wait_workers(srv, 2)
    get(srv.port, "/")
    wait_for(lambda: log.exists() and log.read_text(), what="access line")
    log.rename(tmp_path / "access.log.1")
    srv.kill(signal.SIGUSR1)
    srv.wait_log(r"SIGUSR1: reopening log files")
    time.sleep(0.3)  # the workers reopen on their own loop
    for _ in range(4):
        get(srv.port, "/")
    wait_for(lambda: log.exists() and log.read_text().count("GET /") == 4,
             what="lines in the new access log")
    assert (tmp_path / "access.log.1").read_text().count("GET /") == 1


@pytest.mark.skipif(os.geteuid() != 0, reason="switching users needs root")
def test_workers_of_another_user_reopen_a_rotated_access_log(drover,
                                                              tmp_path):
    # A directory the workers' user can reach (pytest's tmp_path is not).
    import tempfile
    logdir = Path(tempfile.mkdtemp(prefix="drover-logs-", dir="/tmp"))
    logdir.chmod(0o755)
    log = logdir / "access.log"
    srv = drover("-w", "1", "--user", "nobody", "--access-logfile", log,
                 "master_app:app", cwd=APPS)
    wait_workers(srv, 1)
    get(srv.port, "/")
    wait_for(lambda: log.exists() and log.read_text(), what="a first line")
    log.rename(logdir / "access.log.1")
    srv.kill(signal.SIGUSR1)
    srv.wait_log(r"SIGUSR1: reopening log files")
    time.sleep(0.3)
    get(srv.port, "/")
    wait_for(lambda: log.exists() and "GET /" in log.read_text(),
             what="the line in the new file")
    assert log.stat().st_uid == pwd.getpwnam("nobody").pw_uid
    assert "reopening the log files" not in srv.log
    shutil.rmtree(logdir)
