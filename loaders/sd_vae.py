"""The Stable Diffusion VAE (LatentSync uses stabilityai/sd-vae-ft-mse) -> core ``VAE``, any width.

Core's VAE loader hard-codes the SD layout's widths (ch 128, ch_mult 1-2-4-4); the widths are read off
the weights here instead, so the official file and small test checkpoints load alike. Diffusers-format
files (``diffusion_pytorch_model.safetensors``) are converted by core's own converter.
"""

from __future__ import annotations

import re

import comfy.sd
from comfy import diffusers_convert

from .checkpoint_files import describe_state_dict, load_state_dict, strip_prefix

SD_VAE_SCALE = 0.18215


def _ldm_layout(sd: dict) -> dict:
    if "decoder.up_blocks.0.resnets.0.norm1.weight" in sd:
        return diffusers_convert.convert_vae_state_dict(sd)
    # A full SD checkpoint keeps its VAE under first_stage_model.; some repacks under vae.
    return strip_prefix(sd, "encoder.conv_in.weight", ("first_stage_model.", "vae."), keep_unprefixed=False)


def infer_ddconfig(sd: dict) -> dict:
    """Encoder/decoder widths of an LDM-layout SD VAE state dict."""
    required = ("encoder.conv_in.weight", "decoder.conv_in.weight", "quant_conv.weight", "encoder.conv_out.weight")
    missing = [k for k in required if k not in sd]
    if missing:
        raise ValueError(
            f"not a Stable Diffusion VAE: missing {missing}; the file looks like {describe_state_dict(sd)}"
        )
    ch = sd["encoder.conv_in.weight"].shape[0]
    levels = sorted({int(m.group(1)) for k in sd if (m := re.match(r"encoder\.down\.(\d+)\.", k))})
    ch_mult = [sd[f"encoder.down.{i}.block.0.conv1.weight"].shape[0] // ch for i in levels]
    num_res_blocks = len({m.group(1) for k in sd if (m := re.match(r"encoder\.down\.0\.block\.(\d+)\.", k))})
    z_channels = sd["decoder.conv_in.weight"].shape[1]
    if sd["decoder.conv_in.weight"].ndim != 4 or z_channels != 4:
        raise ValueError(
            f"not an SD-1.x VAE: {z_channels} latent channels "
            f"({'video' if sd['decoder.conv_in.weight'].ndim != 4 else 'image'} VAE); LatentSync needs "
            "the 4-channel sd-vae-ft-mse"
        )
    return {
        "double_z": True,
        "z_channels": z_channels,
        "resolution": 256,
        "in_channels": 3,
        "out_ch": 3,
        "ch": ch,
        "ch_mult": ch_mult,
        "num_res_blocks": num_res_blocks,
        "attn_resolutions": [],
        "dropout": 0.0,
    }


def load_sd_vae(path: str) -> comfy.sd.VAE:
    sd = _ldm_layout(load_state_dict(path))
    ddconfig = infer_ddconfig(sd)
    vae = comfy.sd.VAE(sd=sd, config={"params": {"embed_dim": ddconfig["z_channels"], "ddconfig": ddconfig}})
    vae.throw_exception_if_invalid()
    return vae
