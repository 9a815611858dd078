#!/usr/bin/env python3
"""bench/idle_conns.py: what an idle keep-alive connection costs drover.

    bench/idle_conns.py [DROVER] [CONNECTIONS] [WORKERS]

Starts DROVER (default build/drover) with WORKERS workers (2) on
hello_wsgi:app, opens CONNECTIONS (8000) keep-alive connections that each
make one request and then stay open, and prints the workers' resident
memory before and after, per connection, and how long a new request takes
to be answered while they are open. Goal (issue 13): at most 1 KiB per idle
connection, a new request answered in under 100 ms.
"""
import os
import resource
import socket
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
binary = os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else
                         os.path.join(HERE, "..", "build", "drover"))
n = int(sys.argv[2]) if len(sys.argv) > 2 else 8000
workers = int(sys.argv[3]) if len(sys.argv) > 3 else 2
resource.setrlimit(resource.RLIMIT_NOFILE, (n + 1000, n + 1000))
REQ = b"GET / HTTP/1.1\r\nHost: bench\r\n\r\n"


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


with socket.socket() as s:
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
server = subprocess.Popen(
    [binary, "-b", f"127.0.0.1:{port}", "-w", str(workers),
     "--worker-connections", str(n + 100), "--keep-alive", "600",
     "--access-logfile", "", "hello_wsgi:app"],
    cwd=os.path.join(HERE, "apps"), stderr=subprocess.DEVNULL)
try:
    for _ in range(100):
        try:
            socket.create_connection(("127.0.0.1", port)).close()
            break
        except OSError:
            time.sleep(0.1)
    time.sleep(0.5)
    pids = [int(p) for p in subprocess.check_output(
        ["pgrep", "-P", str(server.pid)]).split()]
    warm = []
    for _ in range(workers * 20):  # every worker has served
        c = socket.create_connection(("127.0.0.1", port))
        c.sendall(REQ)
        c.recv(4096)
        warm.append(c)
    before = sum(rss_kib(p) for p in pids)
    conns = []
    for _ in range(n):
        c = socket.create_connection(("127.0.0.1", port))
        c.sendall(REQ)
        conns.append(c)
    for c in conns:
        assert c.recv(4096).startswith(b"HTTP/1.1 200")
    time.sleep(1)
    after = sum(rss_kib(p) for p in pids)
    t0 = time.monotonic()
    c = socket.create_connection(("127.0.0.1", port))
    c.sendall(REQ)
    ok = c.recv(4096).startswith(b"HTTP/1.1 200")
    ms = (time.monotonic() - t0) * 1000
    per = (after - before) * 1024 / n
    print(f"{n} idle keep-alive connections on {workers} workers: workers' "
          f"RSS {before} KiB -> {after} KiB, {per:.0f} bytes per connection "
          f"(goal <= 1024); a new request answered in {ms:.1f} ms "
          f"(goal < 100){'' if ok else ' (NOT 200)'}")
finally:
    server.terminate()
    server.wait()
