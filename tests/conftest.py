"""Puts ComfyUI (not the pack root) on sys.path and loads the pack in-process as `humanvideo`.

ComfyUI must believe it runs with --cpu before `comfy.model_management` is imported, otherwise it
initialises CUDA at import time.
"""

import os
import sys
from pathlib import Path

PACK_ROOT = Path(__file__).resolve().parents[1]
COMFYUI_PATH = Path(os.environ.get("COMFYUI_PATH", "")).resolve() if os.environ.get("COMFYUI_PATH") else None
if COMFYUI_PATH is None or not (COMFYUI_PATH / "main.py").is_file():
    raise RuntimeError("COMFYUI_PATH must point at a ComfyUI checkout; run the tests through scripts/test.sh")

sys.path.insert(0, str(PACK_ROOT / "scripts"))  # test fixture generators (hv_fixtures), pack_loader
sys.path.insert(0, str(PACK_ROOT / "tests"))  # comfy_harness (the real-server harness)

from pack_loader import load_pack  # noqa: E402

# PyTorch attention, as core picks it on CUDA: the CPU default (sub-quadratic) is several times slower.
humanvideo = load_pack(str(COMFYUI_PATH), cpu=True, pytorch_attention=True)


import pytest  # noqa: E402


class _PackRootIsAFolder:
    """The repository root holds the pack's ``__init__.py``, so pytest would collect it as a package and
    import that file on its own (as a top-level module when the clone's folder name, e.g.
    ``ComfyUI-HumanVideo``, is no Python identifier, where its relative imports fail). The pack is loaded
    above, the way ComfyUI loads it; the root is collected as a plain folder."""

    @pytest.hookimpl(tryfirst=True)
    def pytest_collect_directory(self, path, parent):
        if Path(path).resolve() == PACK_ROOT:
            return pytest.Dir.from_parent(parent, path=path)
        return None


def pytest_configure(config):
    # A plugin object, not a conftest hook: conftest hooks do not apply to folders above their own.
    config.pluginmanager.register(_PackRootIsAFolder(), "humanvideo-pack-root")


def pytest_report_header(config):
    """Which host this session tests (scripts/test.sh runs one session per host of the matrix)."""
    import importlib.metadata

    import comfyui_version

    def version(dist: str) -> str:
        try:
            return importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            return "absent"

    return (
        f"host: ComfyUI {comfyui_version.__version__} at {COMFYUI_PATH}; frontend "
        f"{version('comfyui-frontend-package')}, torch {version('torch')}, torchaudio {version('torchaudio')}"
    )


@pytest.fixture(scope="session")
def comfy(tmp_path_factory):
    """One real ComfyUI server per test session (integration and browser tests share it)."""
    import comfy_harness

    server = comfy_harness.ComfyServer(comfy_harness.prepare_base(tmp_path_factory.mktemp("comfy_base")))
    try:
        server.start()
        yield server
    finally:
        server.stop()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    server = item.funcargs.get("comfy") if hasattr(item, "funcargs") else None
    if report.failed and server is not None and hasattr(server, "log_tail"):
        report.sections.append(("ComfyUI server log (tail)", server.log_tail(120)))
