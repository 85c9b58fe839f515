"""What every benchmark script needs: the pack loaded in-process, device sync, peak memory."""

from __future__ import annotations

import resource
import sys
from pathlib import Path
from types import ModuleType

import torch

PACK_ROOT = Path(__file__).resolve().parents[1]


def load_pack(comfyui_path: str, cpu: bool) -> ModuleType:
    sys.path.insert(0, str(PACK_ROOT / "scripts"))
    from pack_loader import load_pack as load

    return load(comfyui_path, cpu)


DTYPES = {"fp16": torch.float16, "bf16": torch.bfloat16, "fp32": torch.float32}


def start(comfyui_path: str, tiny: bool) -> torch.device:
    """The device of the run (CUDA for real size, the CPU for --tiny), with the pack loaded for it."""
    cuda = torch.cuda.is_available() and not tiny
    if not cuda and not tiny:
        sys.exit("no CUDA device: the real-size benchmark needs a GPU; use --tiny for a CPU smoke run")
    load_pack(comfyui_path, cpu=not cuda)
    return torch.device("cuda" if cuda else "cpu")


def pick_dtype(name: str | None, device: torch.device) -> torch.dtype:
    """The named dtype, else fp16 on CUDA and fp32 on the CPU."""
    return DTYPES[name or ("fp16" if device.type == "cuda" else "fp32")]


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def reset_peak(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)


def peak_gib(device: torch.device) -> float:
    """Peak CUDA memory allocated since the last reset; on the CPU the process's max RSS."""
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**30
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # KiB -> GiB
