"""The master's metrics listener (--metrics-bind): Prometheus metrics from
the scoreboard, /healthz and /readyz, /status and `drover status`, and a
listener that hostile clients cannot disturb. The text is parsed with
prometheus_client's own parser, and a real Prometheus scrapes it."""
import json
import os
import shutil
import signal
import socket
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from conftest import (BIN, ROOT, SANITIZED, raw_request, run_drover,
                      status_of)
from helpers import (APPS, Closed, RawConn, free_port, get, request,
                     wait_for, wait_workers)

PROMETHEUS = shutil.which("prometheus") or "/usr/bin/prometheus"
STATES = ("booting", "idle", "busy", "stopping")


def start(drover, *args, **kw):
    """drover with metrics on a port of its choosing (srv.metrics), once
    /readyz says every worker has booted."""
    kw.setdefault("cwd", APPS)
    srv = drover("--metrics-bind", "127.0.0.1:0", *args, **kw)
    m = srv.wait_log(r"Metrics at: http://127\.0\.0\.1:(\d+)/metrics")
    srv.metrics = int(m.group(1))
    wait_for(lambda: get(srv.metrics, "/readyz").status == 200,
             what="workers ready")
    return srv


def scrape(srv):
    """GET /metrics, parsed: {(sample name, sorted labels): value}."""
    r = get(srv.metrics, "/metrics")
    assert r.status == 200, r
    assert r.header("Content-Type").startswith("text/plain; version=0.0.4")
    samples = {}
    for family in text_string_to_metric_families(r.text):
        assert family.documentation, family.name  # every family has HELP
        for s in family.samples:
            samples[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return samples


def value(samples, name, **labels):
    return samples.get((name, tuple(sorted(labels.items()))))


def labelled(samples, name):
    """{labels: value} of every sample called `name`."""
    return {labels: v for (n, labels), v in samples.items() if n == name}


def metric(srv, name, **labels):
    return value(scrape(srv), name, **labels)


def restarts(srv, reason):
    return metric(srv, "drover_worker_restarts_total", reason=reason)


def scraped_when(srv, predicate, what, timeout=10.0):
    """Scrape until predicate(samples) holds; return those samples."""
    def check():
        s = scrape(srv)
        return s if predicate(s) else None
    return wait_for(check, timeout, what)


# --- what is counted ---

def test_responses_are_counted_by_code_across_two_workers(drover):
    srv = start(drover, "-w", "2", "master_app:app")
    wait_workers(srv, 2)
    for i in range(100):
        r = get(srv.port, "/status/404" if i % 5 == 0 else "/")
        assert r.status == (404 if i % 5 == 0 else 200)
    s = scraped_when(
        srv, lambda s: value(s, "drover_http_requests_total", code="200") == 80
        and value(s, "drover_http_requests_total", code="404") == 20,
        "80 x 200 and 20 x 404")
    assert set(labelled(s, "drover_http_requests_total")) == {
        (("code", "200"),), (("code", "404"),)}
    assert value(s, "drover_http_request_duration_seconds_count") == 100
    assert value(s, "drover_http_request_duration_seconds_bucket",
                 le="+Inf") == 100
    assert value(s, "drover_http_request_duration_seconds_bucket",
                 le="10") == 100
    assert 0 < value(s, "drover_http_request_duration_seconds_sum") < 10
    assert sum(value(s, "drover_workers", state=st) for st in STATES) == 2
    assert value(s, "drover_workers", state="idle") == 2, \
        {st: value(s, "drover_workers", state=st) for st in STATES}
    memory = labelled(s, "drover_worker_memory_bytes")
    assert len(memory) == 2, memory
    assert all(5e6 < v < 500e6 for v in memory.values()), memory
    assert value(s, "drover_http_requests_in_flight") == 0
    assert value(s, "drover_listen_queue_max",
                 listener=srv.urls[0]) == 2048
    assert value(s, "drover_listen_overflows_total") >= 0
    assert 5e6 < value(s, "process_resident_memory_bytes") < 500e6
    assert abs(value(s, "process_start_time_seconds") - time.time()) < 60
    assert value(s, "process_cpu_seconds_total") >= 0
    # No app threads: no gauge of them.
    assert not labelled(s, "drover_app_threads_busy")
    # The app's port serves the app, /metrics included.
    r = get(srv.port, "/metrics")
    assert r.status == 200 and r.text.endswith(" v1"), r


def test_metrics_answer_at_once_while_every_worker_is_busy(drover):
    srv = start(drover, "-w", "2", "master_app:app",
                env={"DROVER_THREADS": "1"})
    wait_workers(srv, 2)
    sleepers = [RawConn(srv.port, timeout=20) for _ in range(2)]
    waiting = []
    try:
        for c in sleepers:
            c.send(request("GET", "/sleep?s=3"))
        scraped_when(srv, lambda s: value(
            s, "drover_http_requests_in_flight") == 2, "both workers busy")
        # These wait in the kernel's accept queue: nobody can take them.
        # (They send their request, so TCP_DEFER_ACCEPT queues them.)
        waiting = [RawConn(srv.port, timeout=20) for _ in range(6)]
        for c in waiting:
            c.send(request("GET", "/"))
        s = scraped_when(srv, lambda s: value(
            s, "drover_listen_queue_length", listener=srv.urls[0]) >= 3,
            "3+ connections queued", timeout=2.5)
        began = time.monotonic()
        s = scrape(srv)
        assert time.monotonic() - began < 0.5
        assert value(s, "drover_http_requests_in_flight") == 2
        assert value(s, "drover_workers", state="busy") == 2
        assert value(s, "drover_listen_queue_length",
                     listener=srv.urls[0]) >= 3
        assert get(srv.metrics, "/healthz").status == 200
        assert get(srv.metrics, "/readyz").status == 200
        # Every client is served in the end.
        for c in sleepers + waiting:
            assert c.read_response().status == 200
    finally:
        for c in sleepers + waiting:
            c.close()


def test_busy_app_threads_are_counted(drover):
    srv = start(drover, "-w", "1", "--threads", "4", "master_app:app")
    conns = [RawConn(srv.port, timeout=20) for _ in range(3)]
    try:
        for c in conns:
            c.send(request("GET", "/sleep?s=2"))
        s = scraped_when(srv, lambda s: value(
            s, "drover_app_threads_busy") == 3, "3 app threads busy")
        assert value(s, "drover_http_requests_in_flight") == 3
        assert value(s, "drover_connections_open") == 3
        for c in conns:
            assert c.read_response().status == 200
        scraped_when(srv, lambda s: value(
            s, "drover_app_threads_busy") == 0, "app threads idle again")
    finally:
        for c in conns:
            c.close()


def test_x_request_start_from_a_trusted_proxy_is_a_queue_time(drover):
    srv = start(drover, "-w", "1", "master_app:app")
    # nginx's t=${msec}, 250 ms ago, from 127.0.0.1 (trusted by default).
    sent = time.time() - 0.25
    get(srv.port, "/", [("X-Request-Start", f"t={sent:.3f}")])
    s = scraped_when(srv, lambda s: value(
        s, "drover_request_queue_seconds_count") == 1, "one queue time")
    assert 0.2 <= value(s, "drover_request_queue_seconds_sum") < 5
    assert value(s, "drover_request_queue_seconds_bucket", le="0.1") == 0
    assert value(s, "drover_request_queue_seconds_bucket", le="5") == 1
    # Heroku's milliseconds.
    get(srv.port, "/", [("X-Request-Start", str(int(time.time() * 1000)))])
    scraped_when(srv, lambda s: value(
        s, "drover_request_queue_seconds_count") == 2, "two queue times")
    # From 127.0.0.2, which forwarded_allow_ips does not name: served and
    # counted, but not as a queue time. Nor is a value from the future.
    get(srv.port, "/", [("X-Request-Start", f"t={time.time():.3f}")],
        source="127.0.0.2")
    get(srv.port, "/", [("X-Request-Start", f"t={time.time() + 60:.3f}")])
    s = scraped_when(srv, lambda s: value(
        s, "drover_http_requests_total", code="200") == 4, "4 responses")
    assert value(s, "drover_request_queue_seconds_count") == 2


# --- restarts, by reason ---

def test_max_requests_recycling_counts_and_loses_nothing(drover):
    srv = start(drover, "-w", "2", "--max-requests", "10", "master_app:app")
    wait_workers(srv, 2)
    for _ in range(30):
        assert get(srv.port, "/").status == 200
    # (A client may read its answer before the worker has counted it.)
    s = scraped_when(srv, lambda s: value(
        s, "drover_worker_restarts_total", reason="max_requests") >= 2 and
        value(s, "drover_http_requests_total", code="200") == 30,
        "2 recycled workers and 30 responses")
    # The recycled workers' counts were folded into the totals.
    assert value(s, "drover_http_request_duration_seconds_count") == 30
    assert value(s, "drover_worker_restarts_total", reason="crash") == 0


def test_a_worker_that_dies_counts_as_a_crash(drover):
    srv = start(drover, "-w", "1", "master_app:app")
    wait_workers(srv, 1)
    with pytest.raises((Closed, ConnectionError)):
        get(srv.port, "/exit")
    wait_for(lambda: restarts(srv, "crash") == 1, what="a crash")
    if not SANITIZED:  # ASan reports the deliberate SEGV itself
        wait_workers(srv, 1)
        with pytest.raises((Closed, ConnectionError)):
            get(srv.port, "/segv")
        wait_for(lambda: restarts(srv, "crash") == 2, what="two crashes")
    assert restarts(srv, "timeout") == 0


def test_ttou_counts_as_scale(drover):
    srv = start(drover, "-w", "2", "master_app:app")
    wait_workers(srv, 2)
    srv.kill(signal.SIGTTOU)
    wait_for(lambda: restarts(srv, "scale") == 1, what="one scaled down")
    scraped_when(srv, lambda s: sum(
        value(s, "drover_workers", state=st) for st in STATES) == 1,
        "one worker left")


def test_hup_counts_reload_and_the_counts_survive_the_reexec(drover):
    srv = start(drover, "-w", "1", "master_app:app")
    old = wait_workers(srv, 1)
    for _ in range(5):
        get(srv.port, "/")
    scraped_when(srv, lambda s: value(
        s, "drover_http_requests_total", code="200") == 5, "5 responses")
    srv.kill(signal.SIGHUP)
    # The metrics listener crosses the re-exec; /readyz stays 200 while
    # the old worker serves and the new one boots.
    deadline = time.monotonic() + 15
    while restarts(srv, "reload") != 1:
        assert get(srv.metrics, "/readyz").status == 200
        assert time.monotonic() < deadline, "no reload counted"
        time.sleep(0.05)
    assert not children_of(srv) & old
    s = scrape(srv)
    assert value(s, "drover_http_requests_total", code="200") == 5
    assert value(s, "drover_worker_restarts_total", reason="crash") == 0


def children_of(srv):
    from helpers import children
    return children(srv.pid)


def test_a_worker_killed_for_its_timeout_counts_as_timeout(drover):
    srv = start(drover, "-w", "1", "--timeout", "1", "master_app:app",
                env={"DROVER_THREADS": "1"})
    wait_workers(srv, 1)
    assert get(srv.port, "/sleep?s=5").status == 504  # the master answers
    wait_for(lambda: restarts(srv, "timeout") == 1, what="a timeout")
    assert restarts(srv, "crash") == 0


# --- probes ---

def test_healthz_and_readyz_answer_200_while_serving(drover):
    srv = start(drover, "-w", "2", "master_app:app")
    for path, body in (("/healthz", "ok\n"), ("/readyz", "ready\n")):
        r = get(srv.metrics, path)
        assert (r.status, r.text) == (200, body)
        assert r.header("Connection") == "close"


def test_readyz_is_503_until_the_workers_have_booted(drover):
    srv = drover("--metrics-bind", "127.0.0.1:0", "-w", "2", "--no-preload",
                 "slow_boot:app", cwd=APPS, env={"SLOW_BOOT": "2"},
                 ready=False)
    port = int(srv.wait_log(r"Metrics at: http://127\.0\.0\.1:(\d+)/")
               .group(1))
    wait_for(lambda: _answers(port, "/readyz"), what="the metrics listener")
    assert get(port, "/readyz").status == 503
    assert get(port, "/healthz").status == 200
    wait_for(lambda: get(port, "/readyz").status == 200, timeout=15,
             what="ready")


def _answers(port, path):
    try:
        return get(port, path)
    except (ConnectionError, Closed):
        return None


def test_readyz_is_503_during_a_graceful_stop(drover):
    srv = start(drover, "-w", "1", "--graceful-timeout", "10",
                "master_app:app", env={"DROVER_THREADS": "1"})
    wait_workers(srv, 1)
    with RawConn(srv.port, timeout=20) as c:
        c.send(request("GET", "/sleep?s=3"))
        scraped_when(srv, lambda s: value(
            s, "drover_http_requests_in_flight") == 1, "a request in flight")
        srv.kill(signal.SIGTERM)
        wait_for(lambda: get(srv.metrics, "/readyz").status == 503,
                 what="not ready")
        assert get(srv.metrics, "/healthz").status == 200
        assert metric(srv, "drover_workers", state="stopping") == 1
        assert c.read_response().status == 200
    assert srv.proc.wait(10) == 0


# --- drover status ---

def test_drover_status_shows_each_worker_and_what_a_busy_one_serves(
        drover, tmp_path):
    srv = start(drover, "-w", "2", "master_app:app",
                env={"DROVER_THREADS": "1"})
    pids = wait_workers(srv, 2)
    with RawConn(srv.port, timeout=20) as c:
        c.send(request("GET", "/sleep?s=3"))
        scraped_when(srv, lambda s: value(
            s, "drover_http_requests_in_flight") == 1, "a request in flight")
        r = run_drover("status", "--metrics-bind", f"127.0.0.1:{srv.metrics}")
        assert r.returncode == 0, r.stderr
        for pid in pids:
            assert str(pid) in r.stdout, r.stdout
        busy = [line for line in r.stdout.splitlines() if " busy " in line]
        assert len(busy) == 1, r.stdout
        assert "GET /sleep?s=3 HTTP/1.1" in busy[0], r.stdout
        assert "ready" in r.stdout and srv.urls[0] in r.stdout
        assert all(len(line) <= 80 for line in r.stdout.splitlines())
        # The address can come from the config file.
        config = tmp_path / "status.yml"
        config.write_text(f"metrics_bind: 127.0.0.1:{srv.metrics}\n")
        r = run_drover("status", "-c", config)
        assert r.returncode == 0 and "/sleep?s=3" in r.stdout, r.stderr
        assert c.read_response().status == 200


def test_drover_status_says_what_is_missing_in_one_line():
    r = run_drover("status")
    assert r.returncode == 2
    assert r.stdout == "" and r.stderr.count("\n") == 1, r.stderr
    assert "metrics" in r.stderr
    address = f"127.0.0.1:{free_port()}"
    r = run_drover("status", "--metrics-bind", address)
    assert r.returncode == 1
    assert r.stderr.count("\n") == 1, r.stderr
    assert f"cannot reach the master at {address}" in r.stderr
    r = run_drover("status", "--metrics-bind", "nowhere:x")
    assert r.returncode == 2 and r.stderr.count("\n") == 1, r.stderr


def test_drover_status_watch_refreshes_until_interrupted(drover, tmp_path):
    sock = tmp_path / "metrics.sock"
    srv = drover("--metrics-bind", f"unix:{sock}", "-w", "1",
                 "master_app:app", cwd=APPS)
    wait_workers(srv, 1)
    watch = subprocess.Popen([str(BIN), "status", "--watch",
                              "--metrics-bind", f"unix:{sock}"],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             text=True)
    time.sleep(2.5)
    watch.send_signal(signal.SIGINT)
    out, err = watch.communicate(timeout=5)
    assert watch.returncode == 0, err
    assert out.count("\033[H\033[2J") >= 2, out
    assert out.count("SLOT") >= 2 and "idle" in out


# --- a listener that cannot be disturbed ---

def test_hostile_clients_do_not_disturb_the_master(drover):
    srv = start(drover, "-w", "1", "master_app:app")
    wait_workers(srv, 1)
    port = srv.metrics
    # More silent connections than the listener serves at once.
    silent = [socket.create_connection(("127.0.0.1", port))
              for _ in range(80)]
    try:
        # A request line cut short, held open: answered 408 in time.
        half = socket.create_connection(("127.0.0.1", port), timeout=10)
        half.sendall(b"GET /metrics HTTP/1.1\r\nHost: x\r\n")
        assert status_of(raw_request(port, b"\x00\x01\xff garbage\r\n\r\n")) \
            == 400
        assert status_of(raw_request(port, b"GET metrics HTTP/1.1\r\n\r\n")) \
            == 400
        assert status_of(raw_request(
            port, b"GET /metrics HTTP/1.1\r\nX-Big: " + b"a" * 10000 +
            b"\r\n\r\n")) == 431
        post = raw_request(port, b"POST /metrics HTTP/1.1\r\n"
                           b"Content-Length: 5\r\n\r\nhello")
        assert status_of(post) == 405 and b"Allow: GET, HEAD\r\n" in post
        assert status_of(raw_request(port, b"GET /nope HTTP/1.1\r\n\r\n")) \
            == 404
        head = raw_request(port, b"HEAD /metrics HTTP/1.0\r\n\r\n")
        assert status_of(head) == 200 and head.endswith(b"\r\n\r\n")
        # One byte at a time.
        with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
            for b in b"GET /healthz?x=1 HTTP/1.1\r\nHost: x\r\n\r\n":
                s.sendall(bytes([b]))
            assert s.recv(100).startswith(b"HTTP/1.1 200 OK\r\n")
        # A reader that never reads its answer.
        lazy = socket.create_connection(("127.0.0.1", port))
        lazy.sendall(b"GET /metrics HTTP/1.1\r\n\r\n")
        # Meanwhile the master answers, and the app serves.
        began = time.monotonic()
        for _ in range(5):
            scrape(srv)
        assert time.monotonic() - began < 2.5
        assert get(srv.port, "/").status == 200
        half.settimeout(10)
        assert half.recv(100).startswith(b"HTTP/1.1 408 ")
        half.close()
        lazy.close()
    finally:
        for s in silent:
            s.close()
    assert get(srv.port, "/").status == 200
    assert scrape(srv)


def test_metrics_bind_must_be_an_address_drover_binds(tmp_path):
    for bad in ("fd://3", "nowhere:port", ""):
        r = run_drover("--metrics-bind", bad, "--check-config",
                       f"{APPS}/master_app.py:app")
        if bad == "":  # empty: unset, so fine
            assert r.returncode == 0, r.stderr
            continue
        assert r.returncode == 2, r.stderr
        assert r.stderr.startswith("drover: --metrics-bind: "), r.stderr


def test_the_example_config_shows_metrics_bind_commented_out(tmp_path):
    text = (ROOT / "conf" / "drover.yml").read_text()
    assert "\n# metrics_bind: 127.0.0.1:9101\n" in text
    config = tmp_path / "drover.yml"
    config.write_text(text.replace("# metrics_bind:", "metrics_bind:"))
    r = run_drover("--print-config", "-c", config, cwd=ROOT)
    assert r.returncode == 0, r.stderr
    assert 'metrics_bind: "127.0.0.1:9101"' in r.stdout


def test_a_metrics_address_in_use_stops_the_start(drover):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        srv = drover("--metrics-bind", f"127.0.0.1:{port}", "master_app:app",
                     cwd=APPS, ready=False)
        assert srv.proc.wait(10) == 1
        assert "--metrics-bind" in srv.log and "Address already in use" \
            in srv.log


# --- a real Prometheus ---

@pytest.mark.skipif(not Path(PROMETHEUS).exists(),
                    reason="prometheus missing (Debian package prometheus; "
                    "tools/install-deps.sh test)")
def test_a_real_prometheus_scrapes_the_metrics(drover, tmp_path):
    srv = start(drover, "-w", "2", "master_app:app")
    for _ in range(25):
        assert get(srv.port, "/").status == 200
    web = free_port()
    config = tmp_path / "prometheus.yml"
    config.write_text(
        "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n"
        "  evaluation_interval: 1s\n"
        "scrape_configs:\n  - job_name: drover\n    static_configs:\n"
        f"      - targets: ['127.0.0.1:{srv.metrics}']\n")
    log = open(tmp_path / "prometheus.log", "wb")
    prom = subprocess.Popen(
        [PROMETHEUS, f"--config.file={config}",
         f"--storage.tsdb.path={tmp_path / 'tsdb'}",
         f"--web.listen-address=127.0.0.1:{web}"],
        stdout=log, stderr=log, stdin=subprocess.DEVNULL)

    def query(q):
        url = f"http://127.0.0.1:{web}/api/v1/query?" + \
            urllib.parse.urlencode({"query": q})
        try:
            with urllib.request.urlopen(url, timeout=2) as r:
                data = json.load(r)
        except OSError:
            return None
        result = data["data"]["result"]
        return float(result[0]["value"][1]) if result else None

    try:
        wait_for(lambda: query("sum(drover_http_requests_total)") == 25,
                 timeout=20, what="Prometheus to see 25 requests")
        assert query('up{job="drover"}') == 1
        assert query("sum(drover_workers)") == 2
        assert query("drover_http_request_duration_seconds_count") == 25
    finally:
        prom.terminate()
        prom.wait(10)
        log.close()
    if prom.returncode not in (0, -signal.SIGTERM):
        raise AssertionError((tmp_path / "prometheus.log").read_text())


def test_metrics_are_not_served_by_dev(drover):
    port = free_port()
    srv = drover("--dev", "--metrics-bind", f"127.0.0.1:{port}",
                 "master_app:app", cwd=APPS)
    srv.wait_log(r"--metrics-bind is not served with --dev")
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", port), timeout=2)
    assert os.path.exists(srv.log_path)


def test_a_worker_past_max_worker_memory_counts_as_memory(drover):
    srv = start(drover, "-w", "1", "--max-worker-memory", "150",
                "master_app:app")
    assert get(srv.port, "/grow?mb=200", timeout=20).status == 200
    wait_for(lambda: restarts(srv, "memory") == 1, what="a memory restart")
    assert restarts(srv, "crash") == 0
    assert restarts(srv, "max_requests") == 0
