"""The shipped example workflows, as compact specs turned into UI + API JSON by build_workflows.py.

One module per family (``workflow_specs_<family>.py``) defines ``WORKFLOWS`` (a list of
``build_workflows.Workflow``) and ``TEST_FILES`` (the real model file names its workflows use -> the
tiny fixture files ``scripts/hv_fixtures`` writes). Model file names in the workflows are the names the
README's model table tells users to use; the integration tests swap in the tiny files.
"""

from __future__ import annotations

import importlib
import pkgutil
from pathlib import Path

WORKFLOWS = []
TEST_FILES: dict[str, str] = {}
for _info in sorted(pkgutil.iter_modules([str(Path(__file__).parent)]), key=lambda m: m.name):
    if _info.name.startswith("workflow_specs_"):
        _module = importlib.import_module(_info.name)
        WORKFLOWS += _module.WORKFLOWS
        for _real, _tiny in _module.TEST_FILES.items():
            if TEST_FILES.get(_real, _tiny) != _tiny:
                raise ValueError(f"{_info.name}: {_real} maps to two test files")
            TEST_FILES[_real] = _tiny
