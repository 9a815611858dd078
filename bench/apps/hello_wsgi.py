"""Hello-world WSGI app for bench/run.sh (the Python twin of examples/hello.c).

Served by every WSGI peer (gunicorn, uWSGI, waitress and, once its Python
support is built, drover) so that they all run the same code:

    gunicorn --chdir bench/apps hello_wsgi:app
    uwsgi --http-socket 127.0.0.1:8000 --chdir bench/apps --wsgi-file hello_wsgi.py --callable app
    PYTHONPATH=bench/apps waitress-serve --listen=127.0.0.1:8000 hello_wsgi:app

Same body and headers as the native app and the nginx peer: 200,
Content-Type: text/plain, "Hello, World!\\n" (14 bytes).
"""

BODY = b"Hello, World!\n"
HEADERS = [
    ("Content-Type", "text/plain"),
    ("Content-Length", str(len(BODY))),
]


def app(environ, start_response):
    start_response("200 OK", list(HEADERS))
    return [BODY]


# uWSGI and mod_wsgi look for "application" by default.
application = app
