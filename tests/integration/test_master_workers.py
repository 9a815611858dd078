"""The prefork master's workers: N of them start and all serve, under
process titles naming master and workers; TTIN and TTOU change how many."""
import signal
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from helpers import APPS, children, get, serving_pid, wait_for, wait_workers


def test_n_workers_start_and_all_serve(drover):
    srv = drover("-w", "3", "master_app:app", cwd=APPS)
    workers = wait_workers(srv, 3)
    # Three slow requests at once land on three different workers.
    with ThreadPoolExecutor(3) as pool:
        pids = set(pool.map(lambda _: serving_pid(srv, "/sleep?s=0.5"),
                            range(3)))
    assert pids == workers
    assert srv.pid not in pids
    assert children(srv.pid) == workers


def test_process_titles_name_master_and_workers(drover):
    srv = drover("-w", "2", "--name", "shop", "master_app:app", cwd=APPS)
    workers = wait_workers(srv, 2)
    title = Path(f"/proc/{srv.pid}/cmdline").read_bytes().split(b"\0")[0]
    assert title == b"drover: master [shop]"
    want = {b"drover: worker 1 [shop]", b"drover: worker 2 [shop]"}
    wait_for(lambda: {Path(f"/proc/{p}/cmdline").read_bytes().split(b"\0")[0]
                      for p in workers} == want, what="worker titles")


def test_ttin_and_ttou_change_the_worker_count(drover):
    srv = drover("-w", "2", "master_app:app", cwd=APPS)
    wait_workers(srv, 2)
    srv.kill(signal.SIGTTIN)
    wait_workers(srv, 3)
    srv.kill(signal.SIGTTOU)
    wait_workers(srv, 2)
    srv.kill(signal.SIGTTOU)
    wait_workers(srv, 1)
    srv.kill(signal.SIGTTOU)  # never below one
    time.sleep(0.5)
    assert len(children(srv.pid)) == 1
    assert get(srv.port, "/").status == 200


def test_the_gunicorn_dockerfile_command_line_works(drover):
    srv = drover("--workers", "4", "--timeout", "120", "--max-requests",
                 "1000", "--max-requests-jitter", "100", "--preload",
                 "master_app:app", cwd=APPS)
    wait_workers(srv, 4)
    assert get(srv.port, "/").status == 200
