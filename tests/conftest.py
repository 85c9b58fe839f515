"""Puts ComfyUI (not the pack root) on sys.path and loads the pack in-process as `humanvideo`.

ComfyUI must believe it runs with --cpu before `comfy.model_management` is imported, otherwise it
initialises CUDA at import time.
"""
import importlib.util
import os
import sys
from pathlib import Path

PACK_ROOT = Path(__file__).resolve().parents[1]
COMFYUI_PATH = Path(os.environ.get("COMFYUI_PATH", "")).resolve() if os.environ.get("COMFYUI_PATH") else None
if COMFYUI_PATH is None or not (COMFYUI_PATH / "main.py").is_file():
    raise RuntimeError("COMFYUI_PATH must point at a ComfyUI checkout; run the tests through scripts/test.sh")

sys.path.insert(0, str(COMFYUI_PATH))
sys.path.insert(0, str(PACK_ROOT / "scripts"))  # test fixture generators (hv_fixtures)
sys.path.insert(0, str(PACK_ROOT / "tests"))  # comfy_harness (the real-server harness)

import comfy.options  # noqa: E402

comfy.options.enable_args_parsing(False)
from comfy.cli_args import args  # noqa: E402

args.cpu = True
args.disable_all_custom_nodes = True

import comfy.model_management  # noqa: E402,F401

_spec = importlib.util.spec_from_file_location(
    "humanvideo", PACK_ROOT / "__init__.py", submodule_search_locations=[str(PACK_ROOT)]
)
humanvideo = importlib.util.module_from_spec(_spec)
sys.modules["humanvideo"] = humanvideo
_spec.loader.exec_module(humanvideo)


import pytest  # noqa: E402


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
