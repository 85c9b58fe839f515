"""Import ComfyUI and this pack in-process, the way ComfyUI itself does, for tools outside a server.

ComfyUI's folder goes on ``sys.path`` (never the pack root: its ``nodes/`` would shadow ComfyUI's
``nodes``), ComfyUI is told it runs without argument parsing and, when asked, on the CPU before
``comfy.model_management`` is imported, and the pack is loaded by path as the package ``humanvideo``.
Used by the test suite's conftest, the benchmarks, scripts/gen_node_list.py and the workflow specs.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

PACK_ROOT = Path(__file__).resolve().parents[1]


def load_pack_file(relative: str) -> ModuleType:
    """One dependency-free module of the pack (release facts such as ``models/humo_spec.py``), read by
    path without ComfyUI, for generators that only need its constants."""
    path = PACK_ROOT / relative
    name = "hv_" + path.stem
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def load_pack(
    comfyui_path: str, cpu: bool = True, name: str = "humanvideo", pytorch_attention: bool = False
) -> ModuleType:
    """Import the pack as ComfyUI would, with core's options set first: ``cpu`` (no CUDA at import) and
    ``pytorch_attention`` (core's --use-pytorch-cross-attention, the attention core picks on CUDA; on the
    CPU core otherwise falls back to its slower sub-quadratic attention)."""
    if name in sys.modules:
        return sys.modules[name]
    if not comfyui_path or not (Path(comfyui_path) / "main.py").is_file():
        raise SystemExit(
            f"COMFYUI_PATH / --comfyui must point at a ComfyUI checkout (got {comfyui_path!r}); "
            "scripts/setup.sh --print-env prints it"
        )
    sys.path.insert(0, str(Path(comfyui_path).resolve()))
    sys.path.insert(0, str(PACK_ROOT / "scripts"))
    import comfy.options

    comfy.options.enable_args_parsing(False)
    from comfy.cli_args import args

    args.cpu = cpu
    args.use_pytorch_cross_attention = args.use_pytorch_cross_attention or pytorch_attention
    args.disable_all_custom_nodes = True
    import comfy.model_management  # noqa: F401  (must come after args.cpu)

    spec = importlib.util.spec_from_file_location(
        name, PACK_ROOT / "__init__.py", submodule_search_locations=[str(PACK_ROOT)]
    )
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module
