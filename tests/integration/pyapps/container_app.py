"""For the deployment tests (PID 1 in a container, instances behind nginx):
who serves (pid and parent, as this process's PID namespace numbers them),
what it sees of its client, slow calls that say when they start, and an
orphaned grandchild left for PID 1 to reap."""
import json
import os
import subprocess
import time
from pathlib import Path
from urllib.parse import parse_qs


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
        # "pid (comm) S ...": comm may hold spaces and parentheses.
        comm = stat[stat.index("(") + 1:stat.rindex(")")]
        if stat[stat.rindex(")") + 2] == "Z":
            found.append(f"{entry.name} {comm}")
    return found


def app(environ, start_response):
    path = environ["PATH_INFO"]
    query = parse_qs(environ["QUERY_STRING"])
    if path == "/sleep":
        # The test waits for this line on drover's stderr, so it knows the
        # request is in the app before it signals the master.
        errors = environ["wsgi.errors"]
        errors.write(f"container_app: sleeping in {os.getpid()} "
                     f"({environ['QUERY_STRING']})\n")
        errors.flush()
        time.sleep(float(query.get("s", ["1"])[0]))
    elif path == "/orphan":
        # sh starts sleep in the background and exits at once: sleep's
        # parent is gone, so the kernel hands it to PID 1 of the namespace.
        sh = subprocess.run(
            ["/bin/sh", "-c", "sleep 0.5 </dev/null >/dev/null 2>&1 & echo $!"],
            capture_output=True, text=True, check=True)
        return respond(start_response, {"grandchild": int(sh.stdout)})
    elif path == "/zombies":
        return respond(start_response, {"zombies": zombies()})
    return respond(start_response, {
        "pid": os.getpid(),
        "ppid": os.getppid(),
        "REMOTE_ADDR": environ["REMOTE_ADDR"],
        "url_scheme": environ["wsgi.url_scheme"],
        "HTTP_HOST": environ.get("HTTP_HOST"),
        "HTTP_X_FORWARDED_FOR": environ.get("HTTP_X_FORWARDED_FOR"),
        "HTTP_FORWARDED": environ.get("HTTP_FORWARDED"),
        "HTTP_X_REQUEST_ID": environ.get("HTTP_X_REQUEST_ID"),
    })
