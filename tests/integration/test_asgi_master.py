"""The prefork master's promises with ASGI workers (pyapps/asgi_raw.py):
--timeout kills a worker whose event loop is blocked and replaces it, HUP
reloads under load with no failed request, TERM lets requests in flight
finish and closes open WebSockets with 1001 (Going Away) once
--graceful-timeout is up, and --max-requests recycles without a failure."""
import asyncio
import signal
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import websockets
from websockets.exceptions import ConnectionClosed

from helpers import (APPS, Closed, RawConn, asgi, children, get,
                     keepalive_load, marker, request, serving_pid, wait_for,
                     wait_started, ws_url)


def test_a_worker_whose_loop_is_blocked_is_killed_and_replaced(drover,
                                                                tmp_path):
    srv = asgi(drover, tmp_path, "--workers", "2", "--timeout", "2")
    wait_started(srv, tmp_path, 2)
    stuck = {}

    def blocked_request():
        t0 = time.monotonic()
        try:
            stuck["result"] = get(srv.port, "/block?s=30", timeout=20)
        except (Closed, ConnectionError) as e:
            stuck["result"] = e
        stuck["elapsed"] = time.monotonic() - t0

    t = threading.Thread(target=blocked_request)
    t.start()
    time.sleep(0.3)
    # The other worker serves meanwhile.
    ok = 0
    while t.is_alive():
        assert get(srv.port, "/fixed").body == b"hello world"
        ok += 1
    t.join()
    assert ok > 10
    # Its client is answered or cut off when the worker dies, not left
    # hanging for the 30 s the app sleeps.
    result = stuck["result"]
    assert isinstance(result, Exception) or result.status == 504, result
    assert 1.5 <= stuck["elapsed"] <= 5, stuck
    m = srv.wait_log(r"WORKER TIMEOUT \(pid: ?(\d+)\)")
    # the stack of the blocked loop, down to the app's frame
    srv.wait_log(r'File ".*asgi_raw.py", line \d+ in block')
    dead = int(m[1])
    wait_for(lambda: dead not in children(srv.pid), what="the worker's end")
    wait_started(srv, tmp_path, 2)
    assert dead not in {serving_pid(srv) for _ in range(20)}


def test_awaiting_is_not_blocking_and_outlives_the_timeout(drover, tmp_path):
    """--timeout is about a blocked loop: a request that awaits longer than
    the timeout, and a WebSocket open as long, are no reason to kill."""
    srv = asgi(drover, tmp_path, "--workers", "1", "--timeout", "1")
    (worker,) = wait_started(srv, tmp_path, 1)

    async def hold_socket():
        async with websockets.connect(ws_url(srv, "/ws/echo")) as ws:
            await asyncio.sleep(2)
            await ws.send("still here")
            return await asyncio.wait_for(ws.recv(), 5)

    with ThreadPoolExecutor(1) as pool:
        socket_held = pool.submit(asyncio.run, hold_socket())
        r = get(srv.port, "/sleep?s=2")
        assert r.status == 200 and r.text == f"{worker} slept 2.0"
        assert socket_held.result() == "still here"
    assert "WORKER TIMEOUT" not in srv.log
    assert children(srv.pid) == {worker}


def write_app(directory, version):
    src = (APPS / "asgi_raw.py").read_text()
    assert 'VERSION = "v1"' in src
    (directory / "reload_asgi.py").write_text(
        src.replace('VERSION = "v1"', f'VERSION = "{version}"'))


def test_hup_reloads_under_load_with_no_failed_request(drover, tmp_path):
    appdir = tmp_path / "app"
    appdir.mkdir()
    write_app(appdir, "v1")
    srv = drover("--workers", "2", "reload_asgi:app", cwd=appdir,
                 env={"ASGI_MARKERS": str(tmp_path)})
    old = wait_started(srv, tmp_path, 2)
    stop = threading.Event()
    with ThreadPoolExecutor(1) as pool:
        load = pool.submit(keepalive_load, srv, 3, 100_000, stop)
        try:
            time.sleep(0.5)
            write_app(appdir, "v2")
            srv.kill(signal.SIGHUP)
            wait_for(lambda: not (children(srv.pid) & old), timeout=15,
                     what="the old generation's end")
            new = wait_started(srv, tmp_path, 2)
            time.sleep(0.5)   # the new generation under load
        finally:
            stop.set()
        served, failures = load.result()
    assert failures == []
    assert set(served) & old and set(served) & new, (served, old, new)
    assert get(srv.port, "/").text.endswith(" v2")
    assert srv.proc.poll() is None
    # lifespan shutdown in each old worker (startup ran in the new ones)
    for pid in old:
        marker(tmp_path, f"shutdown-{pid}")


def test_term_lets_the_requests_in_flight_finish(drover, tmp_path):
    srv = asgi(drover, tmp_path, "--workers", "2")
    workers = wait_started(srv, tmp_path, 2)
    with ThreadPoolExecutor(6) as pool:
        futures = [pool.submit(get, srv.port, "/sleep?s=1")
                   for _ in range(6)]
        time.sleep(0.4)
        t0 = time.monotonic()
        srv.kill(signal.SIGTERM)
        results = [f.result() for f in futures]
    assert [r.status for r in results] == [200] * 6
    assert all(r.text.endswith("slept 1.0") for r in results)
    assert srv.proc.wait(10) == 0
    assert time.monotonic() - t0 >= 0.5
    for pid in workers:
        marker(tmp_path, f"shutdown-{pid}")


def test_term_closes_open_websockets_with_1001(drover, tmp_path):
    srv = asgi(drover, tmp_path, "--workers", "1", "--graceful-timeout", "1")
    wait_started(srv, tmp_path, 1)

    async def hold():
        socks = [await websockets.connect(ws_url(srv, f"/ws/echo?id={i}"))
                 for i in range(3)]
        for i, ws in enumerate(socks):
            await ws.send(f"open {i}")
            assert await ws.recv() == f"open {i}"
        t0 = time.monotonic()
        srv.kill(signal.SIGTERM)
        codes = []
        for ws in socks:
            try:
                while True:   # nothing is sent: the next event is the close
                    await asyncio.wait_for(ws.recv(), 10)
            except ConnectionClosed:
                codes.append(ws.close_code)
        return codes, time.monotonic() - t0

    codes, elapsed = asyncio.run(hold())
    assert codes == [1001, 1001, 1001]
    assert elapsed < 1 + 2.5, f"closed {elapsed:.2f} s after TERM"
    assert srv.proc.wait(5) == 0


def test_max_requests_recycles_asgi_workers_with_no_failure(drover,
                                                            tmp_path):
    srv = asgi(drover, tmp_path, "--workers", "2", "--max-requests", "20")
    wait_started(srv, tmp_path, 2)
    served, failures = keepalive_load(srv, 4, 60)
    assert failures == []
    assert sum(served.values()) == 240
    # a worker past its 20 only finishes what its 4 clients already sent
    assert max(served.values()) <= 20 + 4, served.most_common(3)
    assert len(served) >= 240 // 24
    srv.wait_log(r"Autorestarting worker: \d+ requests served")


def test_a_response_begun_before_term_keeps_its_keep_alive_promise(drover,
                                                                  tmp_path):
    # The bug: a response whose head said keep-alive, finished after the
    # stop began, had its connection closed under the client's next
    # request (a reset). It now gets that request answered, with
    # Connection: close, in the stop's last call.
    srv = asgi(drover, tmp_path, "--graceful-timeout", "5")
    wait_started(srv, tmp_path, 1)
    with RawConn(srv.port) as c:
        c.send(request("GET", "/sleep?s=0.5"))
        time.sleep(0.2)            # the app is sleeping: its head is not out
        srv.kill(signal.SIGTERM)
        first = c.read_response()
        assert first.status == 200
        assert first.header("Connection") is None  # begun before the stop
        c.send(request("GET", "/fixed"))
        second = c.read_response()
        assert second.status == 200 and second.body == b"hello world"
        assert second.header("Connection") == "close"
    assert srv.proc.wait(10) == 0
