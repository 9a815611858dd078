"""The bundled hello app answers over a real socket."""
import http.client

from conftest import HELLO


def test_hello_app_answers_hello_world(drover):
    srv = drover(HELLO)
    conn = http.client.HTTPConnection("127.0.0.1", srv.port, timeout=5)
    conn.request("GET", "/")
    resp = conn.getresponse()
    assert resp.status == 200
    assert resp.read() == b"Hello, World!\n"
    assert resp.getheader("Server") == "drover"
    assert resp.getheader("Content-Length") == "14"
    conn.close()
    assert srv.stop() == 0
