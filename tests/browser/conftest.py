"""Headless Chromium (Debian's `chromium`, driven by Playwright, no browser download) against a real
ComfyUI server with the pack installed.

The server is the session's shared one (fixture ``comfy`` in tests/conftest.py: tiny checkpoints and
test media made before it starts).
When chromium or the playwright package is missing the tests skip on a developer's machine and fail in
CI (``CI=true``), where a skipped browser suite would pass unnoticed.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
from pathlib import Path

import pytest
import requests

PACK_ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = os.environ.get("HV_CHROMIUM", shutil.which("chromium") or "/usr/bin/chromium")
ARTIFACTS = Path(os.environ.get("HV_ARTIFACTS_DIR", PACK_ROOT / ".artifacts")) / "browser"


def pytest_configure(config):
    config.addinivalue_line("markers", "browser: drives the ComfyUI page in headless Chromium")


def _missing_browser() -> str | None:
    if not Path(CHROMIUM).is_file():
        return f"chromium not found at {CHROMIUM} (apt-get install chromium)"
    if importlib.util.find_spec("playwright") is None:
        return "the playwright package is not installed (pip install playwright)"
    return None


def in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() in ("1", "true", "yes")


def pytest_collection_modifyitems(config, items):
    reason = _missing_browser()
    if reason and not in_ci():
        for item in items:
            if "browser" in item.keywords:
                item.add_marker(pytest.mark.skip(reason=reason))


@pytest.fixture(scope="session", autouse=True)
def _browser_required_in_ci():
    """In CI a missing browser fails every browser test (before the server or the page is set up)."""
    reason = _missing_browser()
    if reason and in_ci():
        pytest.fail(f"CI=true and the browser suite cannot run: {reason}", pytrace=False)


@pytest.fixture(scope="session")
def page_server(comfy):
    """The session's ComfyUI server (tests/conftest.py), as a returning user sees it."""
    # A first visit opens the template browser over the canvas; a returning user has none.
    requests.post(comfy.url + "/api/settings", json={"Comfy.TutorialCompleted": True}, timeout=30).raise_for_status()
    return comfy


@pytest.fixture(scope="session")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        b = pw.chromium.launch(
            executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"]
        )
        try:
            yield b
        finally:
            b.close()


@pytest.fixture()
def page(browser, page_server, request):
    context = browser.new_context(viewport={"width": 1600, "height": 1000})
    pg = context.new_page()
    pg.errors = []
    pg.on("pageerror", lambda e: pg.errors.append(str(e)))
    pg.goto(page_server.url + "/", wait_until="domcontentloaded")
    pg.wait_for_function(
        "window.app && window.app.graph && window.app.canvas && window.app.vueAppReady !== false", timeout=90_000
    )
    yield pg
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in request.node.name)
    pg.screenshot(path=str(ARTIFACTS / f"{safe}.png"))
    context.close()


@pytest.fixture(scope="session")
def artifacts_dir() -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    return ARTIFACTS
