"""master_app, after an import that takes SLOW_BOOT seconds (default 2):
workers that boot slowly, for readiness checks (with --no-preload)."""
import os
import time

time.sleep(float(os.environ.get("SLOW_BOOT", "2")))

from master_app import app  # noqa: E402,F401
