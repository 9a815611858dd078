"""An app with a background thread started at import, as schedulers and
Dash's callback machinery do. It only runs when drover releases the GIL
while it waits for the network."""
import threading
import time

ticks = 0


def _tick():
    global ticks
    while True:
        ticks += 1
        time.sleep(0.01)


threading.Thread(target=_tick, daemon=True).start()


def app(environ, start_response):
    body = str(ticks).encode()
    start_response("200 OK", [("Content-Type", "text/plain"),
                              ("Content-Length", str(len(body)))])
    return [body]
