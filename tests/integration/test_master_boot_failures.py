"""Workers that cannot boot (their import raises, or hangs past the
timeout) stop the master after a few attempts instead of a fork loop."""
import re


def test_workers_that_cannot_boot_stop_the_master(drover, tmp_path):
    (tmp_path / "broken.py").write_text("raise RuntimeError('no database')\n")
    srv = drover("-w", "2", "--no-preload", "broken:app", cwd=tmp_path,
                 ready=False)
    assert srv.proc.wait(15) == 3
    assert "RuntimeError: no database" in srv.log
    assert "failed to boot" in srv.log
    # Not a fork loop: a handful of attempts, not hundreds.
    assert len(re.findall(r"Booting worker", srv.log)) <= 6


def test_a_worker_whose_import_hangs_is_killed_after_the_timeout(drover,
                                                                   tmp_path):
    (tmp_path / "hangs.py").write_text("import time\ntime.sleep(60)\n")
    srv = drover("-w", "1", "--no-preload", "--timeout", "1", "hangs:app",
                 cwd=tmp_path, ready=False)
    srv.wait_log(r"WORKER TIMEOUT \(pid: \d+\): worker 1 did not boot in 1\.\d s",
                 timeout=10)
    # Counted as boot failures: no endless cycle of hung imports.
    assert srv.proc.wait(20) == 3
    assert "failed to boot 3 times" in srv.log
