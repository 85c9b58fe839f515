"""The code base stays ruff clean (lint rules and formatting configured in pyproject.toml)."""

import subprocess
import sys
from pathlib import Path

PACK_ROOT = Path(__file__).resolve().parents[2]


def _ruff(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "ruff", *args], cwd=PACK_ROOT, capture_output=True, text=True)


def test_ruff_lint_is_clean():
    result = _ruff("check", "--no-cache", ".")
    assert result.returncode == 0, result.stdout + result.stderr


def test_ruff_format_is_clean():
    result = _ruff("format", "--no-cache", "--check", ".")
    assert result.returncode == 0, result.stdout + result.stderr
