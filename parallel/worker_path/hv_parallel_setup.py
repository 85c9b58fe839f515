"""Start-up hook of every Ray worker process that runs pack code (Ray's ``worker_process_setup_hook``).

This folder, and only this module, is on the workers' PYTHONPATH. The hook makes the pack importable
under the same package name the ComfyUI process gave it (ComfyUI loads custom nodes by file path, so
the name can be a path) without running the pack's ``__init__`` (which registers nodes), and puts
ComfyUI's folder on ``sys.path``. Actor classes and the objects sent to them are then unpickled by
reference exactly as in the ComfyUI process. Nothing here imports torch or ComfyUI: the GPU a worker
gets is assigned after start-up.
"""

import os
import sys
import types

ENV_COMFYUI_DIR = "HV_PARALLEL_COMFYUI_DIR"
ENV_PACK_DIR = "HV_PARALLEL_PACK_DIR"
ENV_PACK_NAME = "HV_PARALLEL_PACK_NAME"


def setup() -> None:
    comfy_dir = os.environ[ENV_COMFYUI_DIR]
    pack_dir = os.environ[ENV_PACK_DIR]
    name = os.environ[ENV_PACK_NAME]
    if comfy_dir not in sys.path:
        sys.path.insert(0, comfy_dir)
    if name not in sys.modules:
        package = types.ModuleType(name, "ComfyUI-HumanVideo library modules (worker process)")
        package.__path__ = [pack_dir]
        package.__package__ = name
        package.__file__ = os.path.join(pack_dir, "__init__.py")
        sys.modules[name] = package
