"""Thin V3 node classes, one module per family.

Every module in this package that defines a module-level ``NODES`` list is collected automatically,
so adding a family means adding a module, not editing a registry. An import error in any module is
not swallowed: ComfyUI then reports the whole pack as failed, which the integration tests detect.
Every node collected here gets the input checks of :mod:`.input_checks`.
"""

import importlib
import pkgutil

from comfy_api.latest import io

from .input_checks import guard


def all_nodes() -> list[type[io.ComfyNode]]:
    found: list[type[io.ComfyNode]] = []
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        if info.name.startswith("_"):
            continue
        module = importlib.import_module(f".{info.name}", __name__)
        found.extend(guard(node) for node in getattr(module, "NODES", []))
    ids = [n.GET_SCHEMA().node_id for n in found]
    duplicates = sorted({i for i in ids if ids.count(i) > 1})
    if duplicates:
        raise RuntimeError(f"ComfyUI-HumanVideo: duplicate node ids {duplicates}")
    return found
