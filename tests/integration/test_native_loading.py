"""Native apps that cannot be served stop the start with one clear line."""
import pytest

from conftest import run_drover
from helpers import TESTAPP_SO


@pytest.mark.parametrize("symbol,message", [
    ("badabi_app", "app built for ABI version 999, this drover speaks 3"),
    ("initfail_app", "init failed: test init failure"),
    ("nohandle_app", "has no handle function"),
    ("no_such_symbol", "no symbol 'no_such_symbol'"),
])
def test_an_unservable_native_app_stops_the_start_with_exit_2(symbol, message):
    out = run_drover("--bind", "127.0.0.1:0", f"{TESTAPP_SO}:{symbol}")
    assert out.returncode == 2, out
    assert message in out.stderr
    assert "Listening at" not in out.stderr


def test_the_test_app_itself_loads_and_serves(drover):
    from helpers import get
    srv = drover(f"{TESTAPP_SO}:test_app")
    assert get(srv.port, "/status/200").body == b"status 200\n"
