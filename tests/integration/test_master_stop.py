"""Stopping: SIGTERM finishes the requests in flight, SIGINT stops at
once, and a socket passed in is left listening."""
import http.client
import signal
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from helpers import APPS, get, wait_for, wait_workers


def test_sigterm_finishes_in_flight_requests_then_refuses(drover):
    srv = drover("-w", "2", "master_app:app", cwd=APPS)
    wait_workers(srv, 2)
    with ThreadPoolExecutor(2) as pool:
        futures = [pool.submit(get, srv.port, "/sleep?s=1")
                   for _ in range(2)]
        time.sleep(0.3)
        srv.kill(signal.SIGTERM)
        results = [f.result() for f in futures]
    assert [r.status for r in results] == [200, 200]
    assert srv.proc.wait(10) == 0
    with pytest.raises(ConnectionRefusedError):
        get(srv.port, "/")


def test_sigint_stops_the_workers_at_once(drover):
    srv = drover("-w", "2", "master_app:app", cwd=APPS)
    workers = wait_workers(srv, 2)
    t0 = time.monotonic()
    srv.kill(signal.SIGINT)
    assert srv.proc.wait(5) == 0
    assert time.monotonic() - t0 < 3
    for pid in workers:
        assert not Path(f"/proc/{pid}").exists() or \
            "zombie" in Path(f"/proc/{pid}/status").read_text()


def test_a_graceful_stop_leaves_a_passed_in_socket_listening(tmp_path):
    # systemd's .socket unit (or any parent passing fd://N) keeps the
    # socket for the next start: drover must not shut it down.
    import socket as sk
    import subprocess
    from conftest import BIN
    lsock = sk.socket()
    lsock.bind(("127.0.0.1", 0))
    lsock.listen(16)
    port = lsock.getsockname()[1]
    log = tmp_path / "err.log"
    with open(log, "wb") as err:
        proc = subprocess.Popen(
            [str(BIN), "-w", "2", "--bind", f"fd://{lsock.fileno()}",
             "master_app:app"], cwd=APPS, pass_fds=[lsock.fileno()],
            stdin=subprocess.DEVNULL, stdout=err, stderr=err)
    try:
        wait_for(lambda: "2 worker(s) ready" in log.read_text(),
                 what="workers ready")
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
        c.request("GET", "/")
        assert c.getresponse().status == 200
        c.close()
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(10) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
    assert lsock.getsockopt(sk.SOL_SOCKET, sk.SO_ACCEPTCONN) == 1
    # Still listening: a connection is queued for the next start.
    with sk.create_connection(("127.0.0.1", port), timeout=2):
        pass
    assert "accept4" not in log.read_text()
    lsock.close()


def test_a_graceful_stop_answers_a_request_that_comes_late_on_a_new_connection(
        tmp_path):
    # A socket passed in (systemd's) has no TCP_DEFER_ACCEPT: a worker
    # accepts a connection before its request arrives. A stop must wait
    # for that request (its header timeout), not close the connection
    # after the 0.2 s last call given to idle keep-alive connections: that
    # client saw no response under `systemctl restart`.
    import socket as sk
    import subprocess
    from conftest import BIN
    lsock = sk.socket()
    lsock.bind(("127.0.0.1", 0))
    lsock.listen(16)
    port = lsock.getsockname()[1]
    log = tmp_path / "err.log"
    with open(log, "wb") as err:
        proc = subprocess.Popen(
            [str(BIN), "-w", "1", "--bind", f"fd://{lsock.fileno()}",
             "master_app:app"], cwd=APPS, pass_fds=[lsock.fileno()],
            stdin=subprocess.DEVNULL, stdout=err, stderr=err)
    lsock.close()
    try:
        wait_for(lambda: "1 worker(s) ready" in log.read_text(),
                 what="the worker ready")
        with sk.create_connection(("127.0.0.1", port), timeout=5) as s:
            time.sleep(0.2)  # the idle worker accepts it meanwhile
            proc.send_signal(signal.SIGTERM)
            time.sleep(0.6)  # past the last call
            s.sendall(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n")
            reply = b""
            while chunk := s.recv(65536):
                reply += chunk
        assert reply.startswith(b"HTTP/1.1 200 "), (reply, log.read_text())
        assert b"\r\nConnection: close\r\n" in reply
        assert proc.wait(10) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
