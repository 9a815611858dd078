"""Fixtures of the deployment tests (`make test-deploy`).

`tests/deploy/machines.py`, run first by the make target, decides which
files can run here and fills the cache; these fixtures then start and
stop the machines. Figures worth reading in the output (image size,
exposure score, requests failed by a restart) go through `report` and are
printed at the end of the run.
"""
import os
import shutil
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

ROOT = HERE.parents[1]
BUILD = Path(os.environ.get("DROVER_BUILD", ROOT / "build")).resolve()
BIN = Path(os.environ.get("DROVER_BIN", BUILD / "drover")).resolve()

REPORT = {}


@pytest.fixture(scope="session")
def report():
    """report(name, value): a figure printed in the run's summary."""
    return REPORT.__setitem__


def pytest_terminal_summary(terminalreporter):
    if REPORT:
        terminalreporter.section("deployment figures")
        for name, value in REPORT.items():
            terminalreporter.write_line(f"{name}: {value}")


def install_app(dest, version="v1"):
    """The test app as package `app` in `dest` (app/__init__.py,
    app/wsgi.py for the seed's app.wsgi:application, app/VERSION)."""
    pkg = Path(dest) / "app"
    pkg.mkdir(parents=True, exist_ok=True)
    shutil.copy(HERE / "webapp.py", pkg / "__init__.py")
    (pkg / "wsgi.py").write_text("from app import app as application\n")
    (pkg / "VERSION").write_text(f"{version}\n")
    return pkg
