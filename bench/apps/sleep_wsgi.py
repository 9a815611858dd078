"""A blocking WSGI app for bench/run.sh (group "blocking").

Every request sleeps BENCH_SLEEP_MS milliseconds (default 50) in
time.sleep(), standing in for a database or another service, then answers
like hello_wsgi: 200, Content-Type: text/plain, "Hello, World!\\n". The sleep
releases the GIL, so a server with N app threads in total can serve at
most N / sleep requests/s: that is the "ideal" the report compares with.

    drover --workers 2 --threads 8 sleep_wsgi:app           (PYTHONPATH=bench/apps)
    gunicorn --workers 2 --worker-class gthread --threads 8 --chdir bench/apps sleep_wsgi:app

Every path sleeps, GET / included, so that the URL wrk loads is also the one
run.sh checks before measuring.
"""

import os
import time

SLEEP = int(os.environ.get("BENCH_SLEEP_MS", "50")) / 1000.0
BODY = b"Hello, World!\n"
HEADERS = [
    ("Content-Type", "text/plain"),
    ("Content-Length", str(len(BODY))),
]


def app(environ, start_response):
    time.sleep(SLEEP)
    start_response("200 OK", list(HEADERS))
    return [BODY]


# uWSGI and mod_wsgi look for "application" by default.
application = app
