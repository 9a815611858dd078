"""The app the deployment tests serve, under systemd and in Docker.

Installed as the package `app` (this file is app/__init__.py, beside a
VERSION file and app/wsgi.py), so both `app:app` and the seed's
`app.wsgi:application` name it. It answers who serves (pid, parent, the
code's VERSION read at import, so a reload that loads new code shows),
slow calls, and an orphaned grandchild left for PID 1 to reap.
"""
import json
import os
import subprocess
import time
from pathlib import Path
from urllib.parse import parse_qs

HERE = Path(__file__).resolve().parent
VERSION = (HERE / "VERSION").read_text().strip()
# A slow import, for the test that `systemctl start` waits for the workers.
_delay = HERE / "BOOT_DELAY"
if _delay.exists():
    time.sleep(float(_delay.read_text()))


def respond(start_response, data):
    body = json.dumps(data).encode()
    start_response("200 OK", [("Content-Type", "application/json"),
                              ("Content-Length", str(len(body)))])
    return [body]


def zombies():
    """Processes of this PID namespace in state Z, as "pid comm"."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue  # gone meanwhile
        if stat[stat.rindex(")") + 2] == "Z":
            found.append(f"{entry.name} {stat[stat.index('(') + 1:stat.rindex(')')]}")
    return found


def app(environ, start_response):
    path = environ["PATH_INFO"]
    query = parse_qs(environ["QUERY_STRING"])
    if path == "/sleep":
        errors = environ["wsgi.errors"]
        errors.write(f"webapp: sleeping in {os.getpid()}\n")
        errors.flush()
        time.sleep(float(query.get("s", ["1"])[0]))
    elif path == "/orphan":
        # sh starts sleep in the background and exits at once: the kernel
        # hands sleep to PID 1 of the namespace.
        sh = subprocess.run(
            ["/bin/sh", "-c", "sleep 0.5 </dev/null >/dev/null 2>&1 & echo $!"],
            capture_output=True, text=True, check=True)
        return respond(start_response, {"grandchild": int(sh.stdout)})
    elif path == "/zombies":
        return respond(start_response, {"zombies": zombies()})
    return respond(start_response, {"pid": os.getpid(), "ppid": os.getppid(),
                                    "version": VERSION})
