"""Load `latentsync_unet.pt` (LatentSync 1.0 / 1.5 / 1.6) strictly into a ComfyUI ModelPatcher.

The official loader uses `strict=False` and silently drops mismatching tensors (a 1.0 file in a
stage2 config runs with identity motion modules). Here the configuration is inferred from the file,
and any tensor the inferred network does not have, lacks, or has in another shape is an error that
lists them. Files that are not a LatentSync UNet are named for what they look like.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping

import comfy.model_management as mm
import comfy.model_patcher
import comfy.ops
import comfy.utils
import torch

from ..models.latentsync_unet import LatentSyncUNet3D, LatentSyncUNetConfig
from . import checkpoint_files
from .checkpoint_files import describe_state_dict, identify_state_dict, key_mismatches, load_state_dict, mismatch_report
from .dtypes import dtype_choices, parse_dtype

DTYPE_OPTIONS = dtype_choices("auto", "fp16", "bf16", "fp32")
_LIST_LIMIT = 12


def read_checkpoint(path: str) -> dict[str, torch.Tensor]:
    """Tensors of a `.pt/.pth/.ckpt` ({"state_dict": ...} or a plain dict; weights_only) or `.safetensors` file."""
    if not os.path.isfile(path):
        raise ValueError(f"checkpoint file not found: {path}")
    try:
        return load_state_dict(path)
    except ValueError as e:  # unpickling errors, truncated files, foreign formats
        raise ValueError(
            f"{os.path.basename(path)}: cannot be read as a safe torch or safetensors checkpoint ({e})"
        ) from e


def describe_foreign(sd: Mapping) -> str | None:
    """What a checkpoint that is not a LatentSync UNet looks like, or None when it may be one."""
    conv_in, conv_out = sd.get("conv_in.weight"), sd.get("conv_out.weight")
    if not torch.is_tensor(conv_in):
        found = identify_state_dict(sd)
        if found is not None:
            return found
        sample = ", ".join([k for k in sd if isinstance(k, str)][:5])
        return f"not a UNet in the diffusers / LatentSync layout (no 'conv_in.weight'; first keys: {sample})"
    if torch.is_tensor(conv_out) and conv_in.ndim == 4 and conv_in.shape[1] != 3 * conv_out.shape[0] + 1:
        return (
            f"{describe_state_dict(sd)}; a LatentSync UNet takes {3 * conv_out.shape[0] + 1} channels "
            "(noisy + mask + masked + reference latents) and 384-d audio"
        )
    return None


def strip_prefix(sd: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Drop a wrapper prefix ("module.", "unet.", ...) that some repacks put in front of every key."""
    return checkpoint_files.strip_prefix(sd, "conv_in.weight", confirm="time_embedding.linear_1.weight")


def check_strict(
    expected: Mapping[str, tuple[int, ...]], sd: Mapping[str, torch.Tensor], name: str, variant: str
) -> None:
    """Raise a ValueError listing missing, unexpected and mis-shaped keys (nothing is skipped silently)."""
    problems = mismatch_report(key_mismatches(expected, sd), "keys", _LIST_LIMIT)
    if problems:
        raise ValueError(
            f"{name}: does not match the LatentSync UNet inferred from it ({variant}): " + "; ".join(problems)
        )


def expected_shapes(cfg: LatentSyncUNetConfig) -> dict[str, tuple[int, ...]]:
    """Key -> shape of the network for `cfg`, built on the meta device (no memory)."""
    model = LatentSyncUNet3D(cfg, device="meta")
    return {k: tuple(v.shape) for k, v in model.state_dict().items()}


def resolve_dtypes(
    dtype: str, sd: Mapping[str, torch.Tensor], load_device: torch.device
) -> tuple[torch.dtype, torch.dtype | None]:
    """(weight dtype, manual-cast compute dtype or None) following ComfyUI's UNet dtype policy."""
    chosen = parse_dtype(dtype, DTYPE_OPTIONS, "dtype")
    supported = [torch.float16, torch.bfloat16, torch.float32]
    if chosen is None:
        params = comfy.utils.calculate_parameters(sd)
        weight_dtype = mm.unet_dtype(
            load_device, model_params=params, supported_dtypes=supported, weight_dtype=comfy.utils.weight_dtype(sd)
        )
        if weight_dtype not in supported:
            weight_dtype = torch.float16 if mm.should_use_fp16(load_device) else torch.float32
    else:
        weight_dtype = chosen
    return weight_dtype, mm.unet_manual_cast(weight_dtype, load_device, supported)


def build_unet(
    sd: Mapping[str, torch.Tensor], dtype: str = "auto", name: str = "state dict"
) -> comfy.model_patcher.ModelPatcher:
    """Strictly load a LatentSync UNet state dict into a ModelPatcher (weights on the offload device)."""
    sd = strip_prefix(sd)
    foreign = describe_foreign(sd)
    if foreign is not None:
        raise ValueError(f"{name}: this is not a LatentSync UNet; it looks like {foreign}")
    try:
        cfg = LatentSyncUNetConfig.from_state_dict(sd)
    except (ValueError, IndexError, KeyError) as e:
        raise ValueError(f"{name}: cannot infer a LatentSync UNet configuration: {e}") from e
    check_strict(expected_shapes(cfg), sd, name, cfg.variant)

    load_device = mm.get_torch_device()
    offload_device = mm.unet_offload_device()
    weight_dtype, manual_cast = resolve_dtypes(dtype, sd, load_device)
    operations = comfy.ops.pick_operations(weight_dtype, manual_cast, load_device)
    model = LatentSyncUNet3D(
        cfg, dtype=weight_dtype, device=offload_device, operations=operations, compute_dtype=manual_cast or weight_dtype
    )
    model.load_state_dict(sd, strict=True)
    model.eval()
    return comfy.model_patcher.ModelPatcher(model, load_device=load_device, offload_device=offload_device)


def release_resolution_from_path(path: str) -> int | None:
    """256 for LatentSync 1.5, 512 for 1.6, when the file or folder name says which (None otherwise).

    Both releases ship the same architecture under the same file name, so the weights cannot tell them
    apart; the folder the user keeps them in (models/latentsync/1.5/, .../1.6/) can.
    """
    text = os.path.normpath(path).lower()
    says_512 = re.search(r"(?<![\d.])(1\.6|512)(?![\d])", text) is not None
    says_256 = re.search(r"(?<![\d.])(1\.5|256)(?![\d])", text) is not None
    if says_512 == says_256:
        return None
    return 512 if says_512 else 256


def load_latentsync_unet(path: str, dtype: str = "auto") -> comfy.model_patcher.ModelPatcher:
    patcher = build_unet(read_checkpoint(path), dtype=dtype, name=os.path.basename(path))
    patcher.model.release_resolution = release_resolution_from_path(path)
    patcher.model.source_path = path
    return patcher
