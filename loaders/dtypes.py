"""The one table of weight / compute dtype choices the loader nodes offer.

Every loader offers "let ComfyUI choose" plus some of the names below. The first loaders shipped that
choice as "default", later ones as "auto"; saved workflows hold whichever their node showed, and ComfyUI
refuses a combo value that is not in the node's list. So each node keeps the spelling it shipped with,
and every loader accepts both spellings for the same behaviour.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

COMFY_CHOOSES = ("auto", "default")  # the two spellings of "ComfyUI picks from the file and the device"

DTYPES: dict[str, torch.dtype] = {
    "bf16": torch.bfloat16,
    "fp16": torch.float16,
    "fp32": torch.float32,
    "fp8_e4m3fn": torch.float8_e4m3fn,
    "fp8_e4m3fn_fast": torch.float8_e4m3fn,  # fp8 storage that core also computes in (fp8_optimizations)
    "fp8_e5m2": torch.float8_e5m2,
}
FP8_FAST = "fp8_e4m3fn_fast"


def dtype_choices(choose: str, *names: str) -> list[str]:
    """A node's option list: its spelling of "ComfyUI chooses" first, then ``names`` from ``DTYPES``."""
    unknown = [n for n in (choose, *names) if n not in DTYPES and n not in COMFY_CHOOSES]
    if unknown or choose not in COMFY_CHOOSES:
        raise ValueError(f"dtype choices {unknown or [choose]} are not in the dtype table")
    return [choose, *names]


def parse_dtype(value: str, choices: Sequence[str], input_name: str) -> torch.dtype | None:
    """The torch dtype a choice names, or None when ComfyUI chooses ("auto" and "default" alike)."""
    if value in COMFY_CHOOSES:
        return None
    if value not in choices:
        raise ValueError(f"{input_name} {value!r} is not offered; {input_name} must be one of {list(choices)}")
    return DTYPES[value]
