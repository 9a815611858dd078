"""Real machines for the deployment tests: a Debian root file system that
debootstrap builds once and keeps outside the source tree, booted by
systemd-nspawn with a real systemd as PID 1, and a private Docker engine
whose base image is imported from such a root (Docker Hub is not needed).

The cache (DROVER_DEPLOY_CACHE, default /var/cache/drover-test-deploy):

  debs-NAME/     debootstrap's package cache, one per root (the two roots
                 are built at once, and debootstrap does not share a cache)
  systemd-root/  bookworm minbase + systemd, python3 and drover's runtime
                 libraries; each boot runs on an overlay of it, so the
                 cached tree is never written
  base-root/     bookworm minbase trimmed as Debian's official slim image
                 is (no docs, man pages, locales, apt lists or caches),
                 imported as the Dockerfile's debian:bookworm and
                 debian:bookworm-slim
  docker/        the test engine's data root (images, build cache)

Run as a script, this file checks the machine, builds what the cache
lacks, prints one `SKIP` line (on stderr) for each part that cannot run
here, saying why, and prints the test files that can run (on stdout).
"""
import ctypes
import http.client
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

HERE = Path(__file__).resolve().parent
CACHE = Path(os.environ.get("DROVER_DEPLOY_CACHE",
                            "/var/cache/drover-test-deploy"))
MIRROR = os.environ.get("DROVER_DEPLOY_MIRROR", "http://deb.debian.org/debian")
SUITE = "bookworm"
RUNTIME_LIBS = ("libev4,libyaml-0-2,libsystemd0,libwslay1,"
                "libnettle8")
SYSTEMD_INCLUDE = f"systemd,systemd-sysv,dbus,procps,python3,{RUNTIME_LIBS}"
DOCKER = "/usr/bin/docker"  # Debian's client, the engine's own version
COMPOSE = "/usr/bin/docker-compose"  # Debian's (1.29, Python), no plugin
DOCKER_RUN = Path("/run/drover-test-deploy")  # engine socket, exec root
BASE_TAGS = (f"debian:{SUITE}", f"debian:{SUITE}-slim")


def run(*args, timeout=120, check=True, **kw):
    return subprocess.run([str(a) for a in args], capture_output=True,
                          text=True, timeout=timeout, check=check, **kw)


# ---- what this machine can do -----------------------------------------------

def common_problem():
    """Why nothing here can run, or None."""
    if os.geteuid() != 0:
        return "not root (namespaces, mounts and dockerd need root)"
    try:
        r = run("unshare", "--pid", "--mount", "--net", "--fork", "true",
                check=False, timeout=20)
    except FileNotFoundError:
        return "unshare missing (Debian package util-linux)"
    if r.returncode != 0:
        return f"no namespaces here: unshare failed: {r.stderr.strip()}"
    with tempfile.TemporaryDirectory() as d:
        for sub in ("l", "u", "w", "m"):
            os.mkdir(f"{d}/{sub}")
        r = run("mount", "-t", "overlay", "overlay", "-o",
                f"lowerdir={d}/l,upperdir={d}/u,workdir={d}/w", f"{d}/m",
                check=False)
        if r.returncode != 0:
            return f"no overlay file system here: {r.stderr.strip()}"
        run("umount", f"{d}/m")
    return None


def ensure_root(name, include=None):
    """CACHE/name holds a debootstrapped root (built now if missing).
    Returns None, or why it could not be built."""
    root = CACHE / name
    stamp = root / ".drover-complete"
    # Built with the packages asked for now (a new runtime library of
    # drover's makes the cached root stale: it is built again).
    if stamp.exists() and stamp.read_text() == f"{SUITE} {include or ''}\n":
        return None
    if shutil.which("debootstrap") is None:
        return "debootstrap missing (tools/install-deps.sh deploy)"
    tmp = CACHE / f"{name}.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    debs = CACHE / f"debs-{name}"
    debs.mkdir(parents=True, exist_ok=True)
    args = ["debootstrap", "--variant=minbase", f"--cache-dir={debs}"]
    if include:
        args.append(f"--include={include}")
    t0 = time.monotonic()
    print(f"deploy: debootstrap {SUITE} into {root} ...", file=sys.stderr)
    r = run(*args, SUITE, tmp, MIRROR, check=False, timeout=1200)
    if r.returncode != 0:
        shutil.rmtree(tmp, ignore_errors=True)
        last = (r.stdout + r.stderr).strip().splitlines()[-1:] or ["?"]
        return (f"debootstrap {SUITE} from {MIRROR} failed (no network to "
                f"the Debian mirror?): {last[0]}")
    (tmp / ".drover-complete").write_text(f"{SUITE} {include or ''}\n")
    shutil.rmtree(root, ignore_errors=True)
    tmp.rename(root)
    print(f"deploy: {root} built in {time.monotonic() - t0:.0f} s",
          file=sys.stderr)
    return None


# What Debian's official images configure, so that the imported base and
# what apt-get installs on it stay as small as on Docker Hub's.
SLIM_DPKG = """\
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/man/*
path-exclude /usr/share/groff/*
path-exclude /usr/share/info/*
path-exclude /usr/share/lintian/*
path-exclude /usr/share/linda/*
path-exclude /usr/share/locale/*
"""
SLIM_APT = """\
DPkg::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/*.bin || true"; };
APT::Update::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/*.bin || true"; };
Dir::Cache::pkgcache "";
Dir::Cache::srcpkgcache "";
Acquire::GzipIndexes "true";
Acquire::CompressionTypes::Order:: "gz";
"""


def slim_base_root():
    """Trim CACHE/base-root as Debian's slim image is trimmed (once)."""
    root = CACHE / "base-root"
    dpkg_cfg = root / "etc/dpkg/dpkg.cfg.d/docker"
    if dpkg_cfg.exists():
        return
    (root / "etc/apt/apt.conf.d/docker-clean").write_text(SLIM_APT)
    doomed = [p for p in root.glob("usr/share/doc/*/*")
              if p.name != "copyright"]
    for pattern in ("var/lib/apt/lists/*", "var/cache/apt/*.bin",
                    "usr/share/man/*", "usr/share/info/*",
                    "usr/share/locale/*"):
        doomed += root.glob(pattern)
    for path in doomed:  # a doc folder may be a link to another
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)
    dpkg_cfg.write_text(SLIM_DPKG)


def systemd_problem():
    if shutil.which("systemd-nspawn") is None:
        return "systemd-nspawn missing (tools/install-deps.sh deploy)"
    return ensure_root("systemd-root", SYSTEMD_INCLUDE)


def docker_problem():
    if shutil.which("dockerd") is None or not Path(DOCKER).exists():
        return "dockerd missing (Debian package docker.io; tools/install-deps.sh deploy)"
    why = ensure_root("base-root")
    if why:
        return why
    slim_base_root()
    try:
        with Dockerd() as engine:
            engine.ensure_base_image()
    except Exception as e:  # noqa: BLE001 (becomes the SKIP reason)
        return f"the Docker engine does not run here: {e}"
    return None


# ---- systemd-nspawn ----------------------------------------------------------

class NetNS:
    """HTTP clients in another process's network namespace: each thread
    that talks enters it first (setns moves only the calling thread)."""

    def __init__(self, pid):
        self.fd = os.open(f"/proc/{pid}/ns/net", os.O_RDONLY)
        self.pool = ThreadPoolExecutor(8, initializer=self.enter)

    def enter(self):
        libc = ctypes.CDLL(None, use_errno=True)
        if libc.setns(self.fd, 0x40000000) != 0:  # CLONE_NEWNET
            raise OSError(ctypes.get_errno(), "setns")

    def _get(self, path, port, timeout):
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
        try:
            conn.request("GET", path)
            r = conn.getresponse()
            body = r.read()
            return r.status, json.loads(body) if body.startswith(b"{") else body
        finally:
            conn.close()

    def get(self, path="/", port=5000, timeout=10):
        """(status, decoded JSON body), fetched from inside."""
        return self.pool.submit(self._get, path, port, timeout).result()

    def submit(self, path="/", port=5000, timeout=30):
        """A future of get(path), for requests left in flight."""
        return self.pool.submit(self._get, path, port, timeout)

    def load(self, clients=4, path="/", port=5000):
        return Load(self, clients, path, port)

    def close(self):
        self.pool.shutdown(wait=True)
        os.close(self.fd)


class Load:
    """Clients requesting `path` in a loop, each on a new connection,
    until stop(); counts successes and keeps every failure."""

    def __init__(self, ns, clients, path, port):
        self.ns, self.path, self.port = ns, path, port
        self.ok, self.failures, self.versions = 0, [], set()
        self.lock = threading.Lock()
        self.done = threading.Event()
        self.threads = [threading.Thread(target=self._client, daemon=True)
                        for _ in range(clients)]
        for t in self.threads:
            t.start()

    def _client(self):
        self.ns.enter()
        while not self.done.is_set():
            try:
                status, body = self.ns._get(self.path, self.port, 30)
                good = status == 200
            except Exception as e:  # noqa: BLE001 (kept as a failure)
                status, body, good = repr(e), None, False
            with self.lock:
                if good:
                    self.ok += 1
                    self.versions.add(body.get("version"))
                else:
                    self.failures.append((time.monotonic(), status))

    def wait_ok(self, n, timeout=30):
        deadline = time.monotonic() + timeout
        start = self.ok
        while self.ok < start + n and time.monotonic() < deadline:
            time.sleep(0.02)
        assert self.ok >= start + n, f"load stalled: {self.ok} ok, {self.failures[:5]}"

    def stop(self):
        self.done.set()
        for t in self.threads:
            t.join(60)
        return self


class Nspawn:
    """A booted container: systemd as PID 1 on an overlay of the cached
    root, with a private network; commands run in it through nsenter."""

    def __init__(self, workdir, name="drover-deploy"):
        self.work = Path(workdir)
        self.name = name
        self.root = self.work / name  # nspawn names the machine after it
        self.results = self.work / "results"
        self.proc = None
        self.leader = None
        self.console = None
        for sub in ("upper", "ovlwork", name, "results"):
            (self.work / sub).mkdir(parents=True, exist_ok=True)
        run("mount", "-t", "overlay", "overlay", "-o",
            f"lowerdir={CACHE}/systemd-root,upperdir={self.work}/upper,"
            f"workdir={self.work}/ovlwork", self.root)

    def boot(self, timeout=60):
        self.console = open(self.work / "console.log", "wb")
        self.proc = subprocess.Popen(
            ["systemd-nspawn", "-D", str(self.root), "--boot",
             "--register=no", "--keep-unit", "--console=pipe",
             "--private-network", f"--bind={self.results}:/results"],
            stdin=subprocess.DEVNULL, stdout=self.console,
            stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout
        # The child that has exec'd systemd: nspawn's first child may still
        # be a fork of its own that exits once it has started the
        # container's init (nsenter into that pid then fails for good).
        while self.leader is None and time.monotonic() < deadline:
            kids = Path(f"/proc/{self.proc.pid}/task/{self.proc.pid}/children")
            for pid in kids.read_text().split() if kids.exists() else []:
                try:
                    if Path(f"/proc/{pid}/comm").read_text().strip() == "systemd":
                        self.leader = int(pid)
                except OSError:
                    pass  # gone meanwhile
            assert self.proc.poll() is None, self.console_text
            time.sleep(0.05)
        assert self.leader, f"no container init:\n{self.console_text}"
        while time.monotonic() < deadline:
            r = self.sh("systemctl is-system-running", check=False)
            if r.stdout.strip() in ("running", "degraded"):
                return self
            time.sleep(0.1)
        raise AssertionError(f"the container did not boot:\n{self.console_text}")

    @property
    def console_text(self):
        return (self.work / "console.log").read_text(errors="replace")

    def sh(self, command, check=True, timeout=120):
        """Run a shell command inside (all the container's namespaces)."""
        r = subprocess.run(["nsenter", "-t", str(self.leader), "-a",
                            "/bin/sh", "-c", command],
                           capture_output=True, text=True, timeout=timeout)
        if check and r.returncode != 0:
            raise AssertionError(f"`{command}` exited {r.returncode}:\n"
                                 f"{r.stdout}{r.stderr}")
        return r

    def show(self, unit, *props):
        """systemctl show's properties as a dict."""
        out = self.sh(f"systemctl show {unit} " +
                      " ".join(f"-p {p}" for p in props)).stdout
        return dict(line.split("=", 1) for line in out.splitlines() if "=" in line)

    def close(self):
        try:
            if self.proc and self.proc.poll() is None:
                if self.leader:
                    self.sh("systemctl poweroff", check=False, timeout=30)
                try:
                    self.proc.wait(30)
                except subprocess.TimeoutExpired:
                    self.proc.kill()
                    self.proc.wait(10)
        finally:
            if self.console:
                self.console.close()
            run("umount", "-l", self.root, check=False)


# ---- Docker ------------------------------------------------------------------

class Dockerd:
    """A private Docker engine: no iptables, no bridge, overlay2, its data
    in the cache; started and stopped by the tests."""

    def __init__(self):
        DOCKER_RUN.mkdir(parents=True, exist_ok=True)
        self.sock = DOCKER_RUN / "docker.sock"
        self.pidfile = DOCKER_RUN / "dockerd.pid"
        self.log_path = DOCKER_RUN / "dockerd.log"
        self.proc = None

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    def stop_stale(self):
        """An engine a killed run left behind, found by its pid file."""
        try:
            pid = int(self.pidfile.read_text())
            if Path(f"/proc/{pid}/comm").read_text().strip() == "dockerd":
                os.kill(pid, signal.SIGTERM)
                for _ in range(200):
                    if not Path(f"/proc/{pid}").exists():
                        break
                    time.sleep(0.05)
        except (OSError, ValueError):
            pass

    def start(self, timeout=30):
        self.stop_stale()
        (CACHE / "docker").mkdir(parents=True, exist_ok=True)
        self.log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(
            ["dockerd", "--iptables=false", "--ip6tables=false",
             "--bridge=none", "--storage-driver=overlay2",
             f"--data-root={CACHE}/docker", f"--exec-root={DOCKER_RUN}/exec",
             f"--pidfile={self.pidfile}", f"--host=unix://{self.sock}"],
            stdin=subprocess.DEVNULL, stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"dockerd exited {self.proc.returncode}: "
                                   f"{self.log_tail()}")
            if self.docker("version", check=False).returncode == 0:
                return self
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"dockerd did not answer in {timeout} s: {self.log_tail()}")

    def log_tail(self):
        return " | ".join(self.log_path.read_text(errors="replace")
                          .strip().splitlines()[-3:])

    def docker(self, *args, check=True, timeout=120, **kw):
        env = {**os.environ, "DOCKER_BUILDKIT": "0"}
        r = subprocess.run([DOCKER, "-H", f"unix://{self.sock}",
                            *map(str, args)], capture_output=True, text=True,
                           timeout=timeout, env=env, **kw)
        if check and r.returncode != 0:
            raise AssertionError(f"docker {' '.join(map(str, args))} exited "
                                 f"{r.returncode}:\n{r.stdout}{r.stderr}")
        return r

    def compose(self, *args, check=True, timeout=120):
        """Debian's docker-compose against this engine."""
        env = {**os.environ, "DOCKER_HOST": f"unix://{self.sock}",
               "DOCKER_BUILDKIT": "0", "COMPOSE_DOCKER_CLI_BUILD": "0"}
        r = subprocess.run([COMPOSE, *map(str, args)], capture_output=True,
                           text=True, timeout=timeout, env=env)
        if check and r.returncode != 0:
            raise AssertionError(f"docker-compose {' '.join(map(str, args))} "
                                 f"exited {r.returncode}:\n{r.stdout}{r.stderr}")
        return r

    def ensure_base_image(self):
        """debian:bookworm(-slim) from the cached minbase root."""
        if self.docker("image", "inspect", BASE_TAGS[0],
                       check=False).returncode == 0:
            return
        tar = subprocess.Popen(["tar", "-C", str(CACHE / "base-root"),
                                "--exclude=./.drover-complete", "-c", "."],
                               stdout=subprocess.PIPE)
        self.docker("import", "-", BASE_TAGS[0], stdin=tar.stdout,
                    timeout=600)
        tar.wait()
        for tag in BASE_TAGS[1:]:
            self.docker("tag", BASE_TAGS[0], tag)

    def stop(self):
        if self.proc is None:
            return
        ids = self.docker("ps", "-aq", check=False).stdout.split()
        if ids:
            self.docker("rm", "-f", *ids, check=False)
        self.proc.terminate()
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)
        self.log.close()
        self.proc = None
        # What the engine leaves mounted (its network namespace file).
        for line in reversed(Path("/proc/self/mounts").read_text().splitlines()):
            target = line.split()[1]
            if target.startswith(f"{DOCKER_RUN}/"):
                run("umount", "-l", target, check=False)


def main():
    """Check, build the cache, say what runs: see the module comment."""
    CACHE.mkdir(parents=True, exist_ok=True)
    why = common_problem()
    if why:
        print(f"SKIP test-deploy: {why}", file=sys.stderr)
        return 0
    # Both roots at once on a first run: debootstrap mostly waits on dpkg
    # and the mirror, so two of them take little longer than one. The
    # checks below find them built (or fail again, fast, and say why).
    wanted = [(name, include) for tool, name, include in (
        ("systemd-nspawn", "systemd-root", SYSTEMD_INCLUDE),
        ("dockerd", "base-root", None)) if shutil.which(tool)]
    if shutil.which("debootstrap") and wanted:
        with ThreadPoolExecutor(len(wanted)) as pool:
            list(pool.map(lambda w: ensure_root(*w), wanted))
    for name, problem in (("test_systemd.py", systemd_problem),
                          ("test_docker.py", docker_problem)):
        why = problem()
        if why:
            print(f"SKIP test-deploy {name}: {why}", file=sys.stderr)
        else:
            print(HERE / name)
    return 0


if __name__ == "__main__":
    sys.exit(main())
