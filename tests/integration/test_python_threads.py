"""The GIL and the app's own threads: drover holds the GIL only while it
runs Python, so a thread the app started keeps running while the worker
waits in epoll."""
import time

import requests

from helpers import APPS


def test_a_background_thread_runs_while_the_worker_is_idle(drover):
    # Threads do not survive fork(): a thread started at import must be
    # started in the worker, so the app is not preloaded here.
    srv = drover("bg_thread:app", "--no-preload", cwd=APPS)
    first = int(requests.get(srv.url, timeout=5).text)
    time.sleep(0.5)
    second = int(requests.get(srv.url, timeout=5).text)
    # 10 ms ticks over 0.5 s: about 50; with the GIL held it stays ~0.
    assert second - first >= 20, (first, second)


def test_the_server_stops_cleanly_with_a_thread_running(drover):
    srv = drover("bg_thread:app", cwd=APPS)
    assert requests.get(srv.url, timeout=5).status_code == 200
    assert srv.stop() == 0
    assert "Traceback" not in srv.log
    srv.check_sanitizers()
