"""Real nginx (Debian nginx-light) in front of two drover instances.

The nginx configuration is conf/nginx.conf itself, with only its paths,
listen address and upstream ports changed (each change must apply, so the
test follows the shipped file): its proxy headers (Host, X-Forwarded-For
$proxy_add_x_forwarded_for, X-Forwarded-Proto $scheme, Forwarded "",
X-Request-ID $request_id), its
upstream keep-alive and its proxy_next_upstream retries are what is
tested. The tests prove that requests are spread over both instances, that
REMOTE_ADDR is the client's address as nginx saw it (a forged
X-Forwarded-For does not win), and that stopping one instance with SIGTERM
under load fails no request.
"""
import http.client
import json
import re
import signal
import threading
import time

import pytest

from helpers import (APPS, NGINX, Nginx, RawConn, children, get,
                     upstreams_of)

APP = "container_app:app"
# A client address that is on this host but not one drover trusts by
# default (127.0.0.1,::1): all of 127.0.0.0/8 is loopback on Linux.
OTHER_CLIENT = "127.0.0.5"

pytestmark = pytest.mark.skipif(
    NGINX is None,
    reason="nginx missing (Debian package nginx-light; "
           "tools/install-deps.sh test)")


@pytest.fixture
def two_behind_nginx(drover, tmp_path):
    """(nginx, drover a, drover b): two instances of -w 2 behind nginx."""
    a = drover("-w", "2", APP, cwd=APPS)
    b = drover("-w", "2", APP, cwd=APPS)
    ups = [f"127.0.0.1:{a.port}", f"127.0.0.1:{b.port}"]
    nginx = Nginx(tmp_path, ups)
    try:
        yield nginx.wait_ready(), a, b
    finally:
        nginx.stop()


def test_requests_are_spread_over_both_instances(two_behind_nginx):
    nginx, a, b = two_behind_nginx
    conn = RawConn(nginx.port, timeout=10)
    seen = []
    for _ in range(20):
        r = get(nginx.port, conn=conn)
        assert r.status == 200
        seen.append(r.json())
    conn.close()
    # Each worker's parent is its instance's master (one host namespace).
    masters = {w["ppid"] for w in seen}
    assert masters == {a.pid, b.pid}
    workers = {w["pid"] for w in seen}
    assert len(workers) >= 2
    assert workers <= children(a.pid) | children(b.pid)


FORGED = {"X-Forwarded-For": "6.6.6.6", "X-Forwarded-Proto": "https",
          "Forwarded": "for=6.6.6.6;proto=https"}


def test_remote_addr_is_the_client_nginx_saw_not_a_forged_header(
        two_behind_nginx):
    nginx, _, _ = two_behind_nginx
    # An ordinary client (not a trusted address) forges all three headers.
    r = get(nginx.port, source=OTHER_CLIENT,
            headers={**FORGED, "Host": "shop.example:8080"})
    assert r.status == 200
    env = r.json()
    # nginx appended the address it saw; drover, reading from the right,
    # skips its trusted peer nginx (127.0.0.1) and stops at 127.0.0.5.
    assert env["HTTP_X_FORWARDED_FOR"] == f"6.6.6.6, {OTHER_CLIENT}"
    assert env["REMOTE_ADDR"] == OTHER_CLIENT
    # X-Forwarded-Proto was overwritten with nginx's own $scheme, and the
    # client's Forwarded header dropped ("").
    assert env["url_scheme"] == "http"
    assert env["HTTP_FORWARDED"] is None
    assert env["HTTP_HOST"] == "shop.example"  # $host: no port
    env = get(nginx.port, source=OTHER_CLIENT).json()
    assert env["REMOTE_ADDR"] == OTHER_CLIENT
    assert env["HTTP_X_FORWARDED_FOR"] == OTHER_CLIENT
    # A client on 127.0.0.1 is itself in forwarded_allow_ips, so it counts
    # as one more trusted proxy and the hop it names is believed: by
    # design, and no worse than that client connecting to drover directly.
    env = get(nginx.port, headers=FORGED).json()
    assert env["HTTP_X_FORWARDED_FOR"] == "6.6.6.6, 127.0.0.1"
    assert env["REMOTE_ADDR"] == "6.6.6.6"
    assert env["url_scheme"] == "http"


def test_nginxs_request_id_reaches_the_app_the_client_and_its_log(
        two_behind_nginx):
    nginx, _, _ = two_behind_nginx
    # a client's own id is replaced by nginx's $request_id (32 hex digits)
    r = get(nginx.port, "/?tag=rid-test", source=OTHER_CLIENT,
            headers={"X-Request-ID": "forged-by-client"})
    assert r.status == 200
    rid = r.json()["HTTP_X_REQUEST_ID"]
    assert re.fullmatch(r"[0-9a-f]{32}", rid), rid
    assert r.header("X-Request-ID") == rid  # drover sent it back via nginx
    deadline = time.monotonic() + 5
    while rid not in nginx.access_log and time.monotonic() < deadline:
        time.sleep(0.02)
    line = next(ln for ln in nginx.access_log.splitlines() if "rid-test" in ln)
    assert line.startswith(rid + " ")


def test_stopping_one_instance_under_load_fails_no_request(two_behind_nginx):
    nginx, a, b = two_behind_nginx
    results = []  # (start, end, status or exception, master pid or None)
    lock = threading.Lock()
    done = threading.Event()

    def record(path, conn=None):
        start = time.monotonic()
        try:
            r = get(nginx.port, path, conn=conn)
            outcome = (r.status, r.json()["ppid"] if r.status == 200 else None)
        except Exception as e:  # noqa: BLE001 (counted as a failure)
            outcome = (e, None)
        with lock:
            results.append((start, time.monotonic(), *outcome))
        return outcome[0] == 200

    def load(n):
        conn = None
        i = 0
        while not done.is_set():
            # Each request tagged, and logged by the app that gets it.
            s = 0.05 if (n + i) % 3 == 0 else 0
            path = f"/sleep?s={s}&tag=load{n}-{i}"
            i += 1
            conn = conn or RawConn(nginx.port, timeout=10)
            if not record(path, conn):
                conn.close()
                conn = None
        if conn:
            conn.close()

    # Slow requests (longer than a fast stop would allow), sent just before
    # the SIGTERM: those nginx gave to the stopping instance, in its app or
    # still queued behind its busy workers, must be answered by it.
    probes = [threading.Thread(target=record,
                               args=(f"/sleep?s=1.2&tag=inflight{k}",))
              for k in range(6)]
    threads = [threading.Thread(target=load, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    try:
        time.sleep(0.4)
        for t in probes:
            t.start()
        a.wait_log(r"sleeping in \d+ \(s=1.2&tag=inflight")
        stopped = time.monotonic()
        a.kill(signal.SIGTERM)
        assert a.proc.wait(5) == 0, a.log
        for t in probes:
            t.join(10)
        gone = time.monotonic()
        time.sleep(0.4)
    finally:
        done.set()
        for t in threads + probes:
            if t.ident:
                t.join(15)
    failed = [r for r in results if r[2] != 200]
    assert not failed, (failed, nginx.error_log, a.log)
    assert len(results) > 50
    before = {r[3] for r in results if r[1] < stopped}
    after = {r[3] for r in results if r[0] > gone}
    assert before == {a.pid, b.pid}
    assert after == {b.pid}
    assert "graceful timeout" not in a.log and "SIGKILL" not in a.log
    a_addr = f"127.0.0.1:{a.port}"

    def retried_unseen_by_a(tag):
        """nginx's first try of `tag` went to a but never reached a's app
        (a closed the connection first), and b answered it."""
        tries = upstreams_of(nginx.access_log, f"tag={tag} HTTP")
        assert len(tries) == 1, (tag, nginx.access_log)
        (addrs, statuses), = tries
        return (len(addrs) > 1 and addrs[0] == a_addr and
                statuses[-1] == "200" and f"&tag={tag})" not in a.log)

    # The slow probes nginx gave a were answered by a, each with one try;
    # a probe retried went to b without reaching a's app (see below).
    probes_seen = upstreams_of(nginx.access_log, "tag=inflight")
    assert len(probes_seen) == 6, nginx.access_log
    for k in range(6):
        (addrs, statuses), = upstreams_of(nginx.access_log,
                                          f"tag=inflight{k} HTTP")
        assert (len(addrs) == 1 and statuses == ["200"]) or \
            retried_unseen_by_a(f"inflight{k}"), (k, nginx.error_log)
    assert [a_addr] in [u[0] for u in probes_seen]
    # Upstream errors: refused connections (a's listeners are gone), and
    # the one race HTTP allows on a kept-alive connection (RFC 9112
    # 9.3.1): a closed it as idle at SIGTERM just as nginx sent a request
    # on it. nginx then tries another upstream (for any method but POST,
    # LOCK and PATCH; a cached connection's failure does not even count
    # against proxy_next_upstream_tries), so the client sees nothing.
    # Such a request never reached a's app and was answered by b: nothing
    # that a (stopping) or b had read was reset or cut short.
    errors = [line for line in nginx.error_log.splitlines()
              if "[error]" in line]
    for line in errors:
        if "connect() failed (111: Connection refused)" in line:
            continue
        assert any(race in line for race in (
            "upstream prematurely closed connection",
            "(104: Connection reset by peer)", "(32: Broken pipe)")), line
        assert f'upstream: "http://{a_addr}/' in line, line
        tag = re.search(r'request: "GET /sleep\?s=[\d.]+&tag=(\S+) ', line)[1]
        assert retried_unseen_by_a(tag), (line, nginx.access_log, a.log)
    # nginx did retry: requests it first sent to the stopped instance.
    retried = [u for u in upstreams_of(nginx.access_log, "HTTP/1.1")
               if len(u[0]) > 1]
    assert retried, nginx.access_log
    assert all(u[1][-1] == "200" for u in retried), retried


def test_a_post_arriving_during_a_graceful_stop_is_refused_not_reset(
        drover, tmp_path):
    """Bug: during a graceful stop a worker busy in the app kept its copy of
    the listening socket open, so the kernel queued new connections and
    reset them once that worker stopped; nginx cannot retry a POST it has
    sent, so the client got a 502. Now the connection is refused (nginx
    passes the POST to another instance: nothing was sent) or served."""
    # All requests go to a while it is up; b is its backup.
    a = drover("-w", "2", APP, cwd=APPS)
    b = drover("-w", "2", APP, cwd=APPS)
    nginx = Nginx(tmp_path, [f"127.0.0.1:{a.port}",
                             f"127.0.0.1:{b.port} backup"])
    try:
        nginx.wait_ready()
        slow = threading.Thread(target=get, args=(nginx.port,
                                                  "/sleep?s=1&tag=slow"))
        slow.start()
        a.wait_log(r"tag=slow")
        a.kill(signal.SIGTERM)
        a.wait_log(r"SIGTERM: stopping gracefully")
        time.sleep(0.1)  # a's idle worker has stopped meanwhile
        c = http.client.HTTPConnection("127.0.0.1", nginx.port, timeout=10)
        c.request("POST", "/", body=b"order=1")
        r = c.getresponse()
        status, body = r.status, r.read()
        c.close()
        slow.join(10)
        # Refused at connect(), so nginx passed it to b: nothing was sent.
        assert status == 200, nginx.error_log
        assert json.loads(body)["ppid"] == b.pid
    finally:
        nginx.stop()


def test_a_request_sent_within_the_keep_alive_timeout_is_answered(drover):
    """Bug: a keep-alive timer that ran out while the worker was inside an
    app call fired before the client's next request, which had arrived in
    time, was read, and the connection was reset under it (nginx reuses
    idle upstream connections all the time)."""
    srv = drover("-w", "1", "--keep-alive", "1", APP, cwd=APPS)
    kept = RawConn(srv.port, timeout=10)
    assert get(srv.port, conn=kept).status == 200
    slow = threading.Thread(target=get, args=(srv.port, "/sleep?s=1.5"))
    slow.start()
    try:
        srv.wait_log(r"sleeping in")
        time.sleep(0.6)  # 0.6 s + ~0.1 s idle: within the 1 s keep-alive
        assert get(srv.port, conn=kept).status == 200
    finally:
        kept.close()
        slow.join(10)

