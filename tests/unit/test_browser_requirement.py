"""The browser suite fails in CI (``CI=true``) when the browser is missing, where a skipped suite would pass
unnoticed (on a developer's machine it skips). Run as pytest itself is run, with the browser pointed at a
missing file: the failure comes before any server starts."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

PACK_ROOT = Path(__file__).resolve().parents[2]
A_BROWSER_TEST = "tests/browser/test_workflows_in_page.py::test_core_workflow_queued_from_the_page_shows_its_preview"


def test_missing_browser_fails_in_ci():
    env = dict(os.environ, CI="true", HV_CHROMIUM=str(PACK_ROOT / "no-such-chromium"))
    out = subprocess.run(
        [sys.executable, "-m", "pytest", A_BROWSER_TEST, "-q", "-p", "no:cacheprovider", "-rfEs"],
        cwd=PACK_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert out.returncode != 0, out.stdout[-2000:]
    assert "CI=true and the browser suite cannot run: chromium not found" in out.stdout, out.stdout[-2000:]
    assert "skipped" not in out.stdout.splitlines()[-1] and "To see the GUI" not in out.stdout, out.stdout[-2000:]
