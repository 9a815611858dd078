"""A streamed body is pulled from the app only as fast as the client reads:
a slow reader of a huge body costs drover bounded memory."""
import time

from helpers import TESTAPP, RawConn, assert_serves, request, rss_kb, \
    stream_body


def test_a_slow_reader_of_a_128mb_stream_keeps_drovers_memory_bounded(drover):
    srv = drover(TESTAPP)
    base = rss_kb(srv.pid)
    with RawConn(srv.port, rcvbuf=64 * 1024) as c:
        s = c.sock
        c.send(request("GET", "/stream?chunks=2000&size=65536"))
        _, status, _, headers, _ = c.read_head()
        assert ("Transfer-Encoding", "chunked") in headers
        assert status == 200
        data = [c.buf]
        peak = base
        deadline = time.monotonic() + 2.5
        while time.monotonic() < deadline:
            data.append(s.recv(16384))
            peak = max(peak, rss_kb(srv.pid))
            time.sleep(0.005)
        data = b"".join(data)
        received = len(data)
        # What arrived is the start of the right body, framed in chunks.
        first = b"10000\r\n" + b"a" * 65536 + b"\r\n10000\r\n" + b"b" * 65536
        assert data.startswith(first)
        assert received > 200 * 1024
        assert received < 100 * 1024 * 1024, "the reader was not slow"
        growth_mb = (peak - base) / 1024
        assert growth_mb < 64, f"drover grew {growth_mb:.0f} MB"
    # The abandoned stream is closed and the server serves on.
    assert_serves(srv.port)


def test_a_large_stream_read_at_full_speed_arrives_complete(drover):
    srv = drover(TESTAPP)
    with RawConn(srv.port, timeout=10) as c:
        c.send(request("GET", "/stream?chunks=100&size=65536"))
        r = c.read_response()
    assert r.complete
    assert len(r.body) == 100 * 65536
    assert r.body == stream_body(100, 65536)
