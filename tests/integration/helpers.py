"""Helpers for the HTTP integration tests: the test app, a raw HTTP/1.x
client that reads exactly one response at a time (so pipelining and
framing can be checked byte for byte), and small measurements.
"""

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import requests

from conftest import BUILD, ECHO, HELLO, ROOT, Server  # noqa: F401 (re-exported)

TESTAPP_SO = BUILD / "tests" / "apps" / "testapp.so"
TESTAPP = f"{TESTAPP_SO}:test_app"
# The Python apps (pyapps/*.py), served with cwd=APPS.
APPS = Path(__file__).resolve().parent / "pyapps"

# nginx (Debian: nginx-light), for the tests of conf/nginx.conf; None if
# this machine has none.
NGINX = shutil.which("nginx") or (
    "/usr/sbin/nginx" if Path("/usr/sbin/nginx").exists() else None)

DATE_RE = re.compile(
    r"^(Mon|Tue|Wed|Thu|Fri|Sat|Sun), \d\d "
    r"(Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) \d{4} "
    r"\d\d:\d\d:\d\d GMT$")


def pattern(n, start=0):
    """What /write?bytes=N sends: byte j is 'a' + j % 26."""
    alphabet = bytes(range(ord("a"), ord("a") + 26))
    whole = alphabet * ((start + n) // 26 + 2)
    return whole[start % 26:start % 26 + n]


def stream_body(chunks, size):
    """What /stream?chunks=N&size=S sends: chunk i is S x ('a' + i % 26)."""
    return b"".join(bytes([ord("a") + i % 26]) * size for i in range(chunks))


def fnv1a64(data):
    """FNV-1a 64, as /body-sha computes it."""
    h = 0xcbf29ce484222325
    prime, mask = 0x100000001b3, 0xFFFFFFFFFFFFFFFF
    for b in data:
        h = ((h ^ b) * prime) & mask
    return h


def request(method, target, headers=None, body=b"", version="HTTP/1.1",
            host="test"):
    """Raw request bytes. `headers` is a dict or a list of (name, value)
    pairs or raw header lines (str, sent as they are); Host is added for
    HTTP/1.1 unless host is None; Content-Length is added when a body is
    given and no framing header is."""
    if isinstance(headers, dict):
        headers = headers.items()
    headers = list(headers or [])
    names = {(h.partition(":")[0] if isinstance(h, str) else h[0]).lower()
             for h in headers}
    if host is not None and version == "HTTP/1.1" and "host" not in names:
        headers.insert(0, ("Host", host))
    if body and "content-length" not in names and \
            "transfer-encoding" not in names:
        headers.append(("Content-Length", str(len(body))))
    head = f"{method} {target} {version}\r\n" + "".join(
        h + "\r\n" if isinstance(h, str) else f"{h[0]}: {h[1]}\r\n"
        for h in headers) + "\r\n"
    return head.encode("latin-1") + body


class Response:
    def __init__(self, version, status, reason, headers, body, raw_head,
                 chunks=None, complete=True):
        self.version = version
        self.status = status
        self.reason = reason
        self.headers = headers      # list of (name, value), order kept
        self.body = body
        self.raw_head = raw_head
        self.chunks = chunks        # chunk sizes when chunked
        self.complete = complete    # False: the framing was cut short

    def header(self, name):
        """The value of the only header `name` (None if absent)."""
        values = self.all(name)
        assert len(values) <= 1, f"{name} repeated: {self.headers}"
        return values[0] if values else None

    def all(self, name):
        return [v for n, v in self.headers if n.lower() == name.lower()]

    @property
    def text(self):
        """The body as UTF-8 text."""
        return self.body.decode()

    def json(self):
        """The body parsed as JSON."""
        return json.loads(self.body)

    def __repr__(self):
        return f"<Response {self.status} {self.headers} {self.body[:80]!r}>"


class Closed(Exception):
    """The server closed the connection before a response head (or, for
    get(), before the whole response)."""


class RawConn:
    """One client connection that reads responses one at a time. `source`
    is the client's own address (e.g. another loopback address)."""

    def __init__(self, port=None, host="127.0.0.1", timeout=5.0, unix=None,
                 rcvbuf=None, source=None):
        if unix is not None:
            self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            target = str(unix)
        else:
            family = socket.AF_INET6 if ":" in host else socket.AF_INET
            self.sock = socket.socket(family, socket.SOCK_STREAM)
            target = (host, port)
            if source is not None:
                self.sock.bind((source, 0))
        if rcvbuf is not None:
            # Before connect, so the advertised TCP window stays small.
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        self.sock.settimeout(timeout)
        self.sock.connect(target)
        self.buf = b""
        self.eof = False

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def close(self):
        self.sock.close()

    def send(self, data):
        self.sock.sendall(data)

    def _fill(self):
        if self.eof:
            return False
        try:
            d = self.sock.recv(65536)
        except ConnectionResetError:
            d = b""
        if not d:
            self.eof = True
            return False
        self.buf += d
        return True

    def _take(self, n):
        while len(self.buf) < n:
            if not self._fill():
                raise Closed(f"closed with {len(self.buf)} of {n} bytes")
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def _line(self):
        while b"\r\n" not in self.buf:
            if not self._fill():
                raise Closed(f"closed mid-line: {self.buf[:200]!r}")
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line

    def read_head(self):
        """Read one response head; returns (version, status, reason,
        headers, raw_head)."""
        while b"\r\n\r\n" not in self.buf:
            if not self._fill():
                raise Closed(f"closed before a full head: {self.buf[:300]!r}")
        head, self.buf = self.buf.split(b"\r\n\r\n", 1)
        lines = head.decode("latin-1").split("\r\n")
        version, status, reason = (lines[0].split(" ", 2) + [""])[:3]
        headers = []
        for line in lines[1:]:
            name, _, value = line.partition(":")
            assert name and name == name.strip(), f"bad header line {line!r}"
            headers.append((name, value.strip()))
        return version, int(status), reason, headers, head + b"\r\n\r\n"

    def read_response(self, head_request=False):
        """Read one response, framed as RFC 9112 section 6.3 says."""
        version, status, reason, headers, raw = self.read_head()
        resp = Response(version, status, reason, headers, b"", raw)
        if head_request or status < 200 or status in (204, 304):
            return resp
        te = resp.all("Transfer-Encoding")
        cl = resp.all("Content-Length")
        try:
            if te:
                assert te == ["chunked"], te
                resp.chunks = []
                body = []
                while True:
                    size = int(self._line().split(b";")[0], 16)
                    resp.chunks.append(size)
                    if size == 0:
                        break
                    body.append(self._take(size))
                    assert self._take(2) == b"\r\n", "chunk not CRLF-ended"
                    resp.body = b"".join(body)
                while self._line() != b"":   # trailers
                    pass
                resp.body = b"".join(body)
            elif cl:
                assert len(cl) == 1, cl
                resp.body = self._take(int(cl[0]))
            else:
                while self._fill():
                    pass
                resp.body, self.buf = self.buf, b""
        except Closed:
            resp.complete = False
            if not te:
                resp.body, self.buf = self.buf, b""
        return resp

    def read_until_close(self, timeout=None):
        """Everything until the server closes; raises socket.timeout."""
        if timeout is not None:
            self.sock.settimeout(timeout)
        while self._fill():
            pass
        out, self.buf = self.buf, b""
        return out

    def closed_by_server(self, timeout=2.0):
        """True when the server closes (EOF or reset) within `timeout`
        without sending anything more."""
        self.sock.settimeout(timeout)
        try:
            rest = self.read_until_close()
        except socket.timeout:
            return False
        assert rest == b"", f"unexpected bytes before close: {rest[:200]!r}"
        return True


def get(port, target="/", headers=None, *, conn=None, version="HTTP/1.1",
        host="test", timeout=10.0, **kw):
    """GET `target` on `conn` (a RawConn, left open for the next request)
    or else on a fresh connection to `port` (kw go to RawConn: unix,
    source). `headers`, `version` and `host` (the Host header) are as for
    request(). Returns the Response; raises Closed when the server closes
    before the whole response."""
    if conn is None:
        with RawConn(port, timeout=timeout, **kw) as c:
            return get(port, target, headers, conn=c, version=version,
                       host=host)
    conn.send(request("GET", target, headers, version=version, host=host))
    r = conn.read_response()
    if not r.complete:
        raise Closed(f"response cut short: {r!r}")
    return r


def free_port():
    """A TCP port on 127.0.0.1 that nothing listens on (as of now)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def echoed(body, key):
    """A field of the echo app's answer."""
    for line in body.decode("latin-1").split("\n"):
        if line.startswith(key + ": "):
            return line[len(key) + 2:]
    raise AssertionError(f"no {key} in {body!r}")


def assert_serves(port, **kw):
    """The server still answers a normal request."""
    with RawConn(port, **kw) as c:
        c.send(request("GET", "/status/200",
                       [("Connection", "close")]))
        r = c.read_response()
        assert r.status == 200, r
        assert r.complete, r
        return r


def rss_kb(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError("no VmRSS")


def time_until_closed(sock, limit):
    """Seconds until the server closes `sock` (None after `limit`); the
    bytes received meanwhile are returned too."""
    start = time.monotonic()
    sock.settimeout(0.1)
    data = b""
    while time.monotonic() - start < limit:
        try:
            d = sock.recv(65536)
        except socket.timeout:
            continue
        except ConnectionResetError:
            return time.monotonic() - start, data
        if not d:
            return time.monotonic() - start, data
        data += d
    return None, data


def start_unchecked(tmp_path, *args, name="unchecked"):
    """Start drover outside the `drover` fixture, for xfail tests of bugs
    that corrupt memory: the test stops it and checks the sanitizer marks
    itself, so the failure stays inside the test (where xfail covers it)
    instead of erroring at fixture teardown."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("DROVER_")}
    srv = Server(["--bind", "127.0.0.1:0", *map(str, args)], tmp_path, env,
                 tmp_path / f"{name}.err", tmp_path / f"{name}.out")
    return srv.wait_ready()


def children(pid):
    """The pids of a process's children."""
    try:
        text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    except FileNotFoundError:
        return set()
    return {int(p) for p in text.split()}


def wait_for(predicate, timeout=10.0, what="condition"):
    """Poll `predicate` until it returns something true; return that."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.02)
    raise AssertionError(f"timed out waiting for {what}")


# --- the prefork master; pyapps/master_app.py answers "<pid> <version>" ---

def wait_workers(srv, n, timeout=10.0):
    """Wait until the master has exactly n children, all serving."""
    return wait_for(lambda: len(children(srv.pid)) == n and children(srv.pid),
                    timeout, f"{n} workers")


def serving_pid(srv, path="/"):
    """The pid of the worker that answers a GET of `path`."""
    r = get(srv.port, path)
    assert r.status == 200
    return int(r.text.split()[0])


def keepalive_load(srv, clients, n, stop=None):
    """`clients` keep-alive sessions, n GET / each at once (fewer if the
    Event `stop` is set first). Returns the responses counted by the pid
    that served them, and every failure."""
    served = Counter()
    failures = []

    def client(_):
        with requests.Session() as s:
            for _ in range(n):
                if stop is not None and stop.is_set():
                    return
                try:
                    r = s.get(srv.url + "/", timeout=10)
                    if r.status_code != 200:
                        failures.append(r.status_code)
                    served[int(r.text.split()[0])] += 1
                except requests.RequestException as e:
                    failures.append(repr(e))

    with ThreadPoolExecutor(clients) as pool:
        list(pool.map(client, range(clients)))
    return served, failures


def wait_lines(read, n, timeout=5):
    """The lines of read() once there are at least n (a log being
    written by another process)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        lines = read().splitlines()
        if len(lines) >= n:
            return lines
        time.sleep(0.02)
    raise AssertionError(f"wanted {n} lines, got: {read()!r}")


def json_lines(path, n):
    """The first n lines of a JSON access log at `path`, each parsed on its
    own (the file must be UTF-8, each line one JSON object). The split is
    str.splitlines(), which also breaks at U+2028, U+0085 and the like: a
    line that still parses proves drover escaped them."""
    lines = wait_lines(lambda: path.read_bytes().decode("utf-8"), n)
    return [json.loads(line) for line in lines]


# --- nginx in front of drover (conf/nginx.conf, see test_deploy_nginx.py) ---

def substitute(text, old, new):
    """Replace `old` (a regex) exactly once: a shipped config that changes
    shape must fail here, not silently test something else."""
    text, n = re.subn(old, new if callable(new) else lambda _: new, text,
                      flags=re.M)
    assert n == 1, f"conf/nginx.conf no longer has {old!r}"
    return text


def nginx_conf(tmp, port, upstreams):
    """conf/nginx.conf with only its paths, listen address and upstream
    servers changed (`upstreams`: "127.0.0.1:PORT[ options]", at most as
    many as it has; those left over are dropped)."""
    text = (ROOT / "conf" / "nginx.conf").read_text()
    text = substitute(text, r"^worker_processes auto;", "worker_processes 2;")
    text = substitute(text, r"^error_log \S+", f"error_log {tmp}/error.log")
    text = substitute(text, r"^pid \S+;", f"pid {tmp}/nginx.pid;")
    # Which upstream(s) served each request, and their statuses; scratch
    # directories in tmp too.
    extra = ["log_format upstreams '$request_id $remote_addr \"$request\" "
             "$status [$upstream_addr] [$upstream_status]';",
             f"access_log {tmp}/access.log upstreams;"]
    extra += [f"{kind}_temp_path {tmp}/{kind};" for kind in
              ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")]
    text = substitute(text, r"^(\s*)access_log \S+ combined;",
                      lambda m: "\n".join(m[1] + line for line in extra))
    servers = re.findall(r"^\s*server 127\.0\.0\.1:\d+ .*\n", text, re.M)
    assert 0 < len(upstreams) <= len(servers), servers
    for i, old in enumerate(servers):
        new = (re.sub(r"127\.0\.0\.1:\d+", upstreams[i], old)
               if i < len(upstreams) else "")
        text = text.replace(old, new, 1)
    text = substitute(text, r"listen 80 default_server;",
                      f"listen 127.0.0.1:{port} default_server;")
    return text


class Nginx:
    """nginx -c nginx_conf(...) in the foreground, in its own session."""

    def __init__(self, tmp, upstreams):
        self.tmp = tmp
        self.port = free_port()
        self.conf = tmp / "nginx.conf"
        self.conf.write_text(nginx_conf(tmp, self.port, upstreams))
        self._err = open(tmp / "nginx.stderr", "wb")
        # Its own session, so that cleanup can reach its workers too.
        self.proc = subprocess.Popen(
            [NGINX, "-p", str(tmp), "-c", str(self.conf), "-e",
             str(tmp / "error.log"), "-g", "daemon off;"],
            stdin=subprocess.DEVNULL, stdout=self._err, stderr=self._err,
            start_new_session=True)

    @property
    def error_log(self):
        path = self.tmp / "error.log"
        return path.read_text(errors="replace") if path.exists() else ""

    @property
    def access_log(self):
        path = self.tmp / "access.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def wait_ready(self, timeout=10.0):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"nginx exited with {self.proc.returncode}"
                                     f":\n{self.error_log}")
            try:
                socket.create_connection(("127.0.0.1", self.port), 0.5).close()
                return self
            except OSError:
                time.sleep(0.02)
        raise AssertionError(f"nginx did not start:\n{self.error_log}")

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()  # fast shutdown of master and workers
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                pass
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)  # any worker left
        except ProcessLookupError:
            pass
        if self.proc.poll() is None:
            self.proc.wait(5)
        self._err.close()


def upstreams_of(access_log, tag):
    """[(upstream addresses, statuses)] of the requests naming `tag`."""
    found = []
    for line in access_log.splitlines():
        if tag in line:
            addrs, statuses = re.search(r"\[(.*)\] \[(.*)\]$", line).groups()
            found.append((addrs.split(", "), statuses.split(", ")))
    return found


# --- ASGI apps (pyapps/asgi_*.py; see test_asgi_*.py) ---

def asgi(drover, markers, *args, app="asgi_raw:app", env=None, **kw):
    """drover serving an ASGI app of pyapps/ (`app`, after `args`), which
    writes its marker files to the directory `markers`."""
    return drover(*args, app, cwd=APPS,
                  env={"ASGI_MARKERS": str(markers), **(env or {})}, **kw)


def marker(markers, name, timeout=5.0):
    """The JSON of marker file `name` once the app has written it."""
    path = Path(markers) / name
    wait_for(path.exists, timeout, f"marker {name}")
    return json.loads(path.read_text())


def ws_url(srv, path):
    """The ws:// URL of `path` on a running server."""
    return f"ws://127.0.0.1:{srv.port}{path}"


def marked(markers, kind):
    """The pids that wrote a <kind>-<pid> marker (asgi_raw's lifespan:
    startup-<pid>, shutdown-<pid>)."""
    return {int(p.name.split("-")[1]) for p in Path(markers).glob(f"{kind}-*")
            if not p.name.endswith(".tmp")}


def wait_started(srv, markers, n, timeout=10.0):
    """Wait until the master has exactly n workers and each has run
    asgi_raw's lifespan startup (so each one serves); return their pids."""
    def started():
        workers = children(srv.pid)
        return len(workers) == n and workers <= marked(markers, "startup") \
            and workers
    return wait_for(started, timeout, f"{n} workers past their startup")
