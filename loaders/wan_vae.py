"""Official ``Wan2.1_VAE.pth`` (and its safetensors repacks) -> core VAE.

Core's ``comfy.ldm.wan.vae.WanVAE`` is a port of the official module tree with the same parameter
names, and ``comfy.sd.VAE`` reads the base width off ``decoder.head.0.gamma``, so every width loads.
What this module adds: the pickle is opened with ``weights_only=True`` (and memory-mapped), training
wrappers and prefixes are removed, and any other file is refused with a message saying what it is.
"""

from __future__ import annotations

import os

import torch

from .checkpoint_files import describe_state_dict, load_state_dict, strip_prefix
from .dtypes import dtype_choices, parse_dtype

ANCHOR = "decoder.middle.0.residual.0.gamma"
KEY_PREFIXES = ("first_stage_model.", "vae.", "model.", "module.")
# Wan2.1 VAE: 16 latent channels; encoder outputs mean and log-variance (2 x 16) through conv1.
Z_DIM = 16

VAE_DTYPES = dtype_choices("default", "bf16", "fp16", "fp32")


def to_core_layout(sd: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return strip_prefix(sd, ANCHOR, KEY_PREFIXES)


def check_wan21_vae_state_dict(sd: dict[str, torch.Tensor], source: str = "checkpoint") -> int:
    """Raises ValueError naming what ``sd`` is unless it is a Wan2.1 VAE; returns its base width."""
    expected = "expected the Wan2.1 VAE (Wan2.1_VAE.pth or wan_2.1_vae.safetensors)"
    if ANCHOR not in sd or "decoder.head.0.gamma" not in sd:
        raise ValueError(f"{source} is {describe_state_dict(sd)}; {expected}")
    if "decoder.upsamples.0.upsamples.0.residual.2.weight" in sd:
        raise ValueError(f"{source} is the Wan2.2 VAE (48 latent channels); HuMo and Wan2.1 need {expected[9:]}")
    z = sd["conv2.weight"].shape[0] if "conv2.weight" in sd else None
    if z != Z_DIM:
        raise ValueError(f"{source}: a Wan VAE with {z} latent channels; {expected} with {Z_DIM}")
    return int(sd["decoder.head.0.gamma"].shape[0])


def load_wan_vae(path: str | os.PathLike, dtype: str = "default"):
    """Loads a Wan2.1 VAE checkpoint (official .pth or repack) as core's ``comfy.sd.VAE``."""
    import comfy.sd

    torch_dtype = parse_dtype(dtype, VAE_DTYPES, "dtype")
    source = os.path.basename(os.path.normpath(str(path)))
    sd, metadata = load_state_dict(path, return_metadata=True)
    sd = to_core_layout(sd)
    check_wan21_vae_state_dict(sd, source)
    vae = comfy.sd.VAE(sd=sd, dtype=torch_dtype, metadata=metadata)
    vae.throw_exception_if_invalid()
    return vae
