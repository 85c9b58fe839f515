"""The browser suite skips without a browser on a developer's machine and fails in CI (``CI=true``), where a
skipped suite would pass unnoticed. Run as pytest itself is run, with the browser pointed at a missing file."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

PACK_ROOT = Path(__file__).resolve().parents[2]
A_BROWSER_TEST = "tests/browser/test_workflows_in_page.py::test_core_workflow_queued_from_the_page_shows_its_preview"


def run_browser_test(ci: str | None) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "CI"}
    env["HV_CHROMIUM"] = str(PACK_ROOT / "no-such-chromium")
    if ci is not None:
        env["CI"] = ci
    return subprocess.run(
        [sys.executable, "-m", "pytest", A_BROWSER_TEST, "-q", "-p", "no:cacheprovider", "-rfEs"],
        cwd=PACK_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )


def test_missing_browser_skips_outside_ci():
    out = run_browser_test(None)
    assert out.returncode == 0 and "1 skipped" in out.stdout and "chromium not found" in out.stdout, out.stdout[-2000:]


def test_missing_browser_fails_in_ci():
    out = run_browser_test("true")
    assert out.returncode != 0, out.stdout[-2000:]
    assert "CI=true and the browser suite cannot run: chromium not found" in out.stdout, out.stdout[-2000:]
    assert "skipped" not in out.stdout.splitlines()[-1] and "To see the GUI" not in out.stdout, out.stdout[-2000:]
