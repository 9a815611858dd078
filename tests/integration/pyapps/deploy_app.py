"""For the deployment tests: what the app sees of its client and of the
process environment (socket activation variables must not leak)."""
import json
import os
import subprocess


def app(environ, start_response):
    child = subprocess.run(["/bin/sh", "-c", "echo ${LISTEN_FDS-unset}"],
                           capture_output=True, text=True).stdout.strip()
    body = json.dumps({
        "REMOTE_ADDR": environ["REMOTE_ADDR"],
        "REMOTE_PORT": environ["REMOTE_PORT"],
        "url_scheme": environ["wsgi.url_scheme"],
        "LISTEN_PID": os.environ.get("LISTEN_PID"),
        "LISTEN_FDS": os.environ.get("LISTEN_FDS"),
        "LISTEN_FDNAMES": os.environ.get("LISTEN_FDNAMES"),
        "child_LISTEN_FDS": child,
        "pid": os.getpid(),
    }).encode()
    start_response("200 OK", [("Content-Type", "application/json")])
    return [body]
