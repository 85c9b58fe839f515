#!/usr/bin/env python3
"""Batch runs of a workflow through a running ComfyUI server: ``python scripts/hv_batch.py --help``.

Loads the pack's ``batch/`` package by its path, not through the pack (whose ``__init__`` needs
ComfyUI), so this runs anywhere ``requests`` and ``websocket-client`` are installed.
"""

import importlib.util
import sys
from pathlib import Path

_BATCH_DIR = Path(__file__).resolve().parents[1] / "batch"


def _load_batch():
    name = "hv_batch_lib"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(
        name, _BATCH_DIR / "__init__.py", submodule_search_locations=[str(_BATCH_DIR)]
    )
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


if __name__ == "__main__":
    _load_batch()
    from hv_batch_lib.cli import main  # noqa: E402  (registered by _load_batch)

    sys.exit(main())
