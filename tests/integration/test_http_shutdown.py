"""SIGTERM finishes what is in flight, then exits cleanly."""
import http.client
import signal
import threading
import time

from helpers import TESTAPP


def test_sigterm_lets_an_in_flight_request_complete_and_exits_0(drover):
    srv = drover(TESTAPP)
    result = {}

    def call():
        conn = http.client.HTTPConnection("127.0.0.1", srv.port, timeout=10)
        conn.request("GET", "/sleep?ms=1500")
        resp = conn.getresponse()
        result["status"] = resp.status
        result["body"] = resp.read()
        conn.close()

    t = threading.Thread(target=call)
    start = time.monotonic()
    t.start()
    time.sleep(0.4)  # the app is asleep inside the request by now
    srv.kill(signal.SIGTERM)
    t.join(10)
    assert result == {"status": 200, "body": b"slept 1500\n"}
    assert srv.proc.wait(10) == 0
    assert time.monotonic() - start >= 1.4
    assert "SIGTERM" in srv.log


def test_sigterm_closes_idle_keep_alive_connections_at_once(drover):
    srv = drover(TESTAPP, "--keep-alive", "30")
    conn = http.client.HTTPConnection("127.0.0.1", srv.port, timeout=5)
    conn.request("GET", "/status/200")
    assert conn.getresponse().read() == b"status 200\n"
    start = time.monotonic()
    srv.kill(signal.SIGTERM)
    assert srv.proc.wait(5) == 0
    assert time.monotonic() - start < 2
    conn.close()


def test_a_stalled_client_cannot_delay_exit_past_the_graceful_timeout(drover):
    import socket
    srv = drover(TESTAPP, "--graceful-timeout", "1")
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 16 * 1024)
    s.connect(("127.0.0.1", srv.port))
    with s:
        s.sendall(b"GET /stream?chunks=2000&size=65536 HTTP/1.1\r\nHost: t\r\n\r\n")
        time.sleep(0.3)
        start = time.monotonic()
        srv.kill(signal.SIGTERM)
        assert srv.proc.wait(5) == 0
        assert time.monotonic() - start < 3
    assert "graceful timeout" in srv.log
