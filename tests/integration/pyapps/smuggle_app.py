"""For test_deploy_smuggling.py: every request that reaches the app is
logged on drover's stderr and answered with its own details (method,
target, body length, and which process saw it as its how-manieth), so a
test can tell which requests the app saw, how often, and whether an
answer belongs to the request it came back for."""
import itertools
import json
import os

seen = itertools.count(1)


def app(environ, start_response):
    body = environ["wsgi.input"].read()
    query = environ["QUERY_STRING"]
    record = {
        "pid": os.getpid(),
        "n": next(seen),
        "method": environ["REQUEST_METHOD"],
        "target": environ["PATH_INFO"] + ("?" + query if query else ""),
        "body_length": len(body),
    }
    errors = environ["wsgi.errors"]
    errors.write("smuggle_app: seen " + json.dumps(record) + "\n")
    errors.flush()
    data = json.dumps(record).encode()
    start_response("200 OK", [("Content-Type", "application/json"),
                              ("Content-Length", str(len(data)))])
    return [data]
