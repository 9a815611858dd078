"""--timeout: a worker stuck in a request is killed and replaced, and the
request's client gets a 504; idle workers are not, however short the
timeout."""
import threading
import time

from helpers import (APPS, Closed, RawConn, children, get, request,
                     serving_pid, wait_for, wait_workers)


def test_a_worker_stuck_past_the_timeout_is_killed_and_replaced(drover):
    srv = drover("-w", "2", "--timeout", "2", "master_app:app", cwd=APPS)
    wait_workers(srv, 2)
    stuck = {}

    def sleeper():
        t0 = time.monotonic()
        try:
            stuck["result"] = get(srv.port, "/sleep?s=30", timeout=20)
        except (Closed, ConnectionError) as e:
            stuck["result"] = e
        stuck["elapsed"] = time.monotonic() - t0

    t = threading.Thread(target=sleeper)
    t.start()
    time.sleep(0.3)
    # Other requests keep being served by the other worker meanwhile.
    ok = 0
    while t.is_alive():
        assert get(srv.port, "/").status == 200
        ok += 1
    t.join()
    assert ok > 10
    # The client is answered, not dropped (the master sends the 504).
    r = stuck["result"]
    assert not isinstance(r, Exception), stuck
    assert r.status == 504 and r.header("Connection") == "close"
    assert b"--timeout" in r.body
    assert 2.0 <= stuck["elapsed"] <= 4.0, stuck
    m = srv.wait_log(r"WORKER TIMEOUT \(pid: (\d+)\): worker \d has served "
                     r"'GET /sleep\?s=30 HTTP/1.1' for \d")
    # faulthandler's dump of the Python stack, naming the app's frame.
    srv.wait_log(r'File ".*master_app.py", line \d+ in app')
    dead = int(m[1])
    wait_for(lambda: dead not in children(srv.pid), what="the worker's end")
    wait_workers(srv, 2)
    pids = {serving_pid(srv) for _ in range(20)}
    assert dead not in pids


def test_idle_workers_outlive_a_timeout_shorter_than_a_second(drover):
    srv = drover("-w", "2", "--timeout", "0.3", "master_app:app", cwd=APPS)
    workers = wait_workers(srv, 2)
    time.sleep(1.5)  # idle: only the loop's own beat keeps them alive
    assert children(srv.pid) == workers
    assert "WORKER TIMEOUT" not in srv.log


def test_a_timed_out_head_request_gets_a_504_without_a_body(drover):
    srv = drover("-w", "1", "--timeout", "1", "master_app:app", cwd=APPS)
    wait_workers(srv, 1)
    with RawConn(srv.port, timeout=10) as c:
        c.send(request("HEAD", "/sleep?s=30"))
        r = c.read_response(head_request=True)
        assert r.status == 504 and r.body == b""
        assert int(r.header("Content-Length")) > 0
        assert c.buf == b"" and c.sock.recv(1) == b""  # and it ends there
