"""ASGI lifespan (pyapps/asgi_raw.py): startup in every worker after the
fork (preloaded or not, replacements too) before it serves, its state
copied into each request's scope, shutdown on a graceful stop, a failed
startup as a worker boot failure, and --lifespan auto|on|off with an app
that has no lifespan support."""
import os
import signal

import pytest
import requests

from helpers import (RawConn, asgi, children, get, marked, marker,
                     wait_for, wait_started, wait_workers)


@pytest.mark.parametrize("preload", ["--preload", "--no-preload"])
def test_startup_runs_in_every_worker_after_the_fork(drover, tmp_path,
                                                     preload):
    srv = asgi(drover, tmp_path, "--workers", "2", preload)
    workers = wait_started(srv, tmp_path, 2)
    assert marked(tmp_path, "startup") == workers
    for pid in workers:
        assert marker(tmp_path, f"startup-{pid}")["ppid"] == srv.pid
    assert srv.pid not in marked(tmp_path, "startup")
    # Every worker answers with its startup done.
    seen = set()
    for _ in range(20):
        got = requests.get(srv.url + "/state", timeout=5).json()
        assert got["startup"] is True
        seen.add(got["pid"])
    assert seen <= workers


def test_a_replacement_worker_runs_startup_too(drover, tmp_path):
    srv = asgi(drover, tmp_path, "--workers", "1")
    (first,) = wait_workers(srv, 1)
    marker(tmp_path, f"startup-{first}")
    os.kill(first, signal.SIGKILL)
    wait_for(lambda: children(srv.pid) and first not in children(srv.pid),
             what="a new worker")
    (second,) = wait_workers(srv, 1)
    assert marker(tmp_path, f"startup-{second}")["pid"] == second
    assert requests.get(srv.url + "/state", timeout=5).json()["startup"]


def test_no_request_is_served_before_startup_completes(drover, tmp_path):
    srv = asgi(drover, tmp_path, "--workers", "1",
               env={"ASGI_STARTUP_DELAY": "0.5"})
    got = requests.get(srv.url + "/state", timeout=10).json()
    assert got["startup"] is True
    assert marked(tmp_path, "startup") == {got["pid"]}


def test_the_lifespan_state_is_copied_into_each_request(drover, tmp_path):
    srv = asgi(drover, tmp_path, "--workers", "1")
    with RawConn(srv.port) as c:
        got = get(srv.port, "/state", conn=c).json()
        assert got["state"] == {"worker_pid": got["pid"], "answer": 42}
        assert get(srv.port, "/state-mutate", conn=c).body == b"mutated"
        # A request's change to its copy is not seen by the next one.
        again = get(srv.port, "/state", conn=c).json()
        assert again["state"] == {"worker_pid": got["pid"], "answer": 42}


def test_shutdown_runs_in_every_worker_on_a_graceful_stop(drover, tmp_path):
    srv = asgi(drover, tmp_path, "--workers", "2")
    workers = wait_started(srv, tmp_path, 2)
    assert marked(tmp_path, "shutdown") == set()
    assert srv.stop() == 0
    assert marked(tmp_path, "shutdown") == workers


def boot_failure(srv):
    """The master gave up: a worker boot failure, as for a broken import."""
    assert srv.proc.wait(15) == 3, srv.log
    assert "failed to boot" in srv.log


def test_a_failed_startup_is_a_worker_boot_failure(drover, tmp_path):
    srv = asgi(drover, tmp_path, "--workers", "2", ready=False,
               env={"ASGI_STARTUP_FAIL": "no database for the test"})
    boot_failure(srv)
    assert "no database for the test" in srv.log
    assert marked(tmp_path, "startup") == set()


def test_a_startup_that_raises_under_lifespan_on_is_a_boot_failure(
        drover, tmp_path):
    srv = asgi(drover, tmp_path, "--lifespan", "on", ready=False,
               env={"ASGI_STARTUP_FAIL": "raise"})
    boot_failure(srv)
    assert "RuntimeError: lifespan startup raised for the test" in srv.log


def test_lifespan_on_refuses_an_app_without_lifespan(drover, tmp_path):
    srv = asgi(drover, tmp_path, "--lifespan", "on",
               app="asgi_raw:no_lifespan_app", ready=False)
    boot_failure(srv)
    assert "unsupported scope type 'lifespan'" in srv.log


@pytest.mark.parametrize("flag", [[], ["--lifespan", "auto"]])
def test_lifespan_auto_tolerates_an_app_without_lifespan(drover, tmp_path,
                                                         flag):
    srv = asgi(drover, tmp_path, *flag, app="asgi_raw:no_lifespan_app")
    for _ in range(3):
        r = requests.get(srv.url + "/fixed", timeout=5)
        assert (r.status_code, r.text) == (200, "hello world")
    assert srv.proc.poll() is None
    assert srv.stop() == 0


def test_lifespan_off_sends_no_lifespan_events(drover, tmp_path):
    srv = asgi(drover, tmp_path, "--lifespan", "off")
    got = requests.get(srv.url + "/state", timeout=5).json()
    assert got["startup"] is False
    assert srv.stop() == 0
    assert marked(tmp_path, "startup") == marked(tmp_path, "shutdown") == set()
