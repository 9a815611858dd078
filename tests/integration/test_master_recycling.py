"""Workers replaced by the master: after --max-requests (with jitter),
and when one exits or crashes."""
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from conftest import SANITIZED
from helpers import APPS, Closed, get, keepalive_load, serving_pid, \
    wait_workers


def test_max_requests_recycles_workers_under_keepalive_load(drover):
    srv = drover("-w", "2", "--max-requests", "50", "--max-requests-jitter",
                 "10", "master_app:app", cwd=APPS)
    wait_workers(srv, 2)
    served, failures = keepalive_load(srv, 4, 500)
    assert failures == []
    assert sum(served.values()) == 2000
    assert len(served) >= 2000 // 60
    assert max(served.values()) <= 60, served.most_common(3)
    srv.wait_log(r"Autorestarting worker: \d+ requests served")


def test_a_worker_that_exits_or_segfaults_is_replaced(drover):
    srv = drover("-w", "1", "master_app:app", cwd=APPS)
    first = wait_workers(srv, 1).pop()
    with pytest.raises((Closed, ConnectionError)):
        get(srv.port, "/exit")
    srv.wait_log(rf"Worker 1 \(pid: {first}\) exited with code 1")
    second = serving_pid(srv)
    assert second != first
    if SANITIZED:
        return  # ASan reports the deliberate SEGV itself: not a finding
    with pytest.raises((Closed, ConnectionError)):
        get(srv.port, "/segv")
    srv.wait_log(rf"Worker 1 \(pid: {second}\) was killed by signal 11")
    # faulthandler reports the crash with the Python stack.
    srv.wait_log(r"Fatal Python error: Segmentation fault")
    assert serving_pid(srv) not in (first, second)


def test_a_worker_past_max_worker_memory_is_replaced_and_no_request_fails(
        drover):
    srv = drover("-w", "1", "--max-worker-memory", "150", "master_app:app",
                 cwd=APPS)
    first = wait_workers(srv, 1).pop()
    with ThreadPoolExecutor(1) as pool:
        load = pool.submit(keepalive_load, srv, 3, 100)
        r = requests.get(srv.url + "/grow?mb=200", timeout=20)
        assert r.status_code == 200
        _, failures = load.result()
    assert failures == []
    srv.wait_log(r"Autorestarting worker: resident memory 2\d\d MiB is past "
                 r"--max-worker-memory 150 MiB")
    srv.wait_log(rf"Worker 1 \(pid: {first}\) exited\n")
    assert serving_pid(srv) != first
    # The new worker is small again and serves on.
    assert requests.get(srv.url + "/", timeout=5).status_code == 200
