"""Many clients at once on the single event loop."""
import selectors
import socket
import threading

import requests

from helpers import ECHO, TESTAPP, request


def test_200_concurrent_connections_each_get_200(drover):
    srv = drover(ECHO)
    socks = [socket.create_connection(("127.0.0.1", srv.port), timeout=10)
             for _ in range(200)]
    try:
        # All 200 are open before any request is sent, so drover holds them
        # all at once; then every request goes out before any is read.
        for i, s in enumerate(socks):
            s.sendall(request("GET", f"/c/{i}", [("Connection", "close")]))
        sel = selectors.DefaultSelector()
        got = {}
        for i, s in enumerate(socks):
            s.setblocking(False)
            sel.register(s, selectors.EVENT_READ, i)
            got[i] = b""
        open_ = set(got)
        while open_:
            events = sel.select(timeout=10)
            assert events, f"{len(open_)} connections got no answer"
            for key, _ in events:
                d = key.fileobj.recv(65536)
                if d:
                    got[key.data] += d
                else:
                    sel.unregister(key.fileobj)
                    open_.discard(key.data)
    finally:
        for s in socks:
            s.close()
    for i, data in got.items():
        assert data.startswith(b"HTTP/1.1 200 OK\r\n"), (i, data[:100])
        assert b"\npath: /c/%d\n" % i in data


def test_concurrent_threads_with_keep_alive_sessions_all_succeed(drover):
    srv = drover(TESTAPP)
    errors = []

    def worker(n):
        try:
            with requests.Session() as s:
                for j in range(4):  # 200..203: all with a body
                    r = s.get(f"{srv.url}/status/{200 + j}", timeout=10)
                    assert r.status_code == 200 + j
                    assert r.content == b"status %d\n" % (200 + j)
        except Exception as e:  # noqa: BLE001 (collected, then asserted)
            errors.append((n, repr(e)))

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert errors == []
