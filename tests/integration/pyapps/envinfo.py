"""Reports where it was loaded from, for the loading tests."""
import os
import sys


def app(environ, start_response):
    import json
    body = json.dumps({
        "cwd": os.getcwd(),
        "path": sys.path[:6],
        "env": os.environ.get("DROVER_TEST_VALUE"),
        "script_name": environ["SCRIPT_NAME"],
        "path_info": environ["PATH_INFO"],
        "argv": sys.argv,
    }).encode()
    start_response("200 OK", [("Content-Type", "application/json")])
    return [body]
