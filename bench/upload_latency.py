#!/usr/bin/env python3
"""bench/upload_latency.py: does a large upload stall a worker's other
requests? (Request bodies past body_buffer_size spill to a temporary file
with write(2) on the event loop.)

    bench/upload_latency.py [DROVER] [MB]

One worker serves hello_wsgi:app; a client times GET / on a keep-alive
connection, first alone, then while another client uploads MB (100)
megabytes as fast as loopback takes them. Prints median, p99 and max of
both.
"""
import os
import socket
import statistics
import subprocess
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
binary = os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else
                         os.path.join(HERE, "..", "build", "drover"))
mb = int(sys.argv[2]) if len(sys.argv) > 2 else 100
with socket.socket() as s:
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
server = subprocess.Popen(
    [binary, "-b", f"127.0.0.1:{port}", "-w", "1", "--access-logfile", "",
     "--max-body-size", "0", "hello_wsgi:app"],
    cwd=os.path.join(HERE, "apps"), stderr=subprocess.DEVNULL)


def timed_gets(n, out):
    with socket.create_connection(("127.0.0.1", port)) as c:
        for _ in range(n):
            t0 = time.perf_counter()
            c.sendall(b"GET / HTTP/1.1\r\nHost: bench\r\n\r\n")
            c.recv(4096)
            out.append((time.perf_counter() - t0) * 1000)
            time.sleep(0.001)


def upload():
    with socket.create_connection(("127.0.0.1", port)) as c:
        c.sendall(b"POST /up HTTP/1.1\r\nHost: bench\r\n"
                  b"Content-Length: %d\r\n\r\n" % (mb << 20))
        chunk = b"x" * (1 << 20)
        for _ in range(mb):
            c.sendall(chunk)
        assert c.recv(4096).startswith(b"HTTP/1.1 200")


def summary(v):
    v = sorted(v)
    return (f"median {statistics.median(v):.2f} p99 "
            f"{v[max(0, int(len(v) * 0.99) - 1)]:.2f} max {v[-1]:.2f} ms "
            f"({len(v)} requests)")


try:
    for _ in range(100):
        try:
            socket.create_connection(("127.0.0.1", port)).close()
            break
        except OSError:
            time.sleep(0.1)
    alone, during = [], []
    timed_gets(1000, alone)
    t = threading.Thread(target=upload)
    t.start()
    while t.is_alive():
        timed_gets(20, during)
    t.join()
    print(f"GET / alone:            {summary(alone)}")
    print(f"GET / during {mb} MB upload: {summary(during)}")
finally:
    server.terminate()
    server.wait()
