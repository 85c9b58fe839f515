"""HunyuanVideo 884-16c VAE -> core `VAE`.

Accepted layouts:
- official `ckpts/hunyuan-video-i2v-720p/vae/pytorch_model.pt` (`AutoencoderKLCausal3D`, diffusers-style
  names `encoder.down_blocks.N.resnets.M.conv1.conv.*`, possibly wrapped in `state_dict` / `module` and
  prefixed `vae.`; diffusers' `AutoencoderKLHunyuanVideo` loads it without renaming);
- Comfy-Org repack `hunyuan_video_vae_bf16.safetensors` (LDM names, `decoder.conv_in.conv.*`).

The official mid-block attention is causal over frames (a token sees its own and earlier latent frames);
core's 3-D AttnBlock attends over all frames, which changes every multi-frame encode/decode. We give the
two mid-block attentions of the loaded VAE a frame-causal attention (an attribute of those two module
instances; nothing global is patched). Single-frame encodes, as used for the I2V reference image,
are identical either way.

Core renames diffusers-style keys itself (`diffusers_convert.convert_vae_state_dict`) and builds the
causal 3-D AutoencoderKL, but with a hard-coded width (128, x[1,2,4,4], 2 blocks). The real VAE goes
through core unchanged; other widths (tiny test files) get the same network with the widths read from
the weights.
"""

from __future__ import annotations

import math
import os

import torch

_OFFICIAL_MARKER = "decoder.up_blocks.0.resnets.0.norm1.weight"
_CORE_MARKER = "decoder.conv_in.conv.weight"
CORE_DDCONFIG = {"ch": 128, "ch_mult": [1, 2, 4, 4], "num_res_blocks": 2}
TIME_COMPRESSION = 4


def read_vae_state_dict(path: str) -> dict[str, torch.Tensor]:
    from .checkpoint_files import load_state_dict

    sd = load_state_dict(path)
    if any(k.startswith("vae.") for k in sd):
        sd = {k[len("vae.") :]: v for k, v in sd.items() if k.startswith("vae.")}
    return sd


def to_core_layout(sd: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Official / diffusers names -> core's LDM names (core's own converter)."""
    import comfy.diffusers_convert

    if _OFFICIAL_MARKER in sd:
        sd = comfy.diffusers_convert.convert_vae_state_dict(sd)
    if _CORE_MARKER not in sd or sd[_CORE_MARKER].ndim != 5:
        raise ValueError(
            "vae: not a HunyuanVideo causal 3-D VAE (no 3-D 'decoder.conv_in' weights); "
            "Wan / SD VAEs do not work with HunyuanVideo"
        )
    return sd


def ddconfig_from_state_dict(sd: dict[str, torch.Tensor]) -> dict:
    """Core AutoencoderKL ddconfig (core layout keys) from the weights."""
    ch = sd["encoder.conv_in.conv.weight"].shape[0]
    levels = 1 + max(int(k.split(".")[2]) for k in sd if k.startswith("encoder.down."))
    widths = [sd[f"encoder.down.{i}.block.0.conv2.conv.weight"].shape[0] for i in range(levels)]
    blocks = 1 + max(int(k.split(".")[4]) for k in sd if k.startswith("encoder.down.0.block."))
    z = sd[_CORE_MARKER].shape[1]
    return {
        "double_z": True,
        "z_channels": z,
        "resolution": 256,
        "in_channels": 3,
        "out_ch": 3,
        "ch": ch,
        "ch_mult": [w // ch for w in widths],
        "num_res_blocks": blocks,
        "attn_resolutions": [],
        "dropout": 0.0,
        "conv3d": True,
        "time_compress": TIME_COMPRESSION,
    }


def _configure_like_core_hunyuan(vae, latent_channels: int) -> None:
    """The video geometry core sets for this VAE family (comfy/sd.py, 'decoder.conv_in.conv.weight' branch)."""
    import comfy.model_management as mm

    vae.upscale_ratio = (lambda a: max(0, a * 4 - 3), 8, 8)
    vae.upscale_index_formula = (4, 8, 8)
    vae.downscale_ratio = (lambda a: max(0, math.floor((a + 3) / 4)), 8, 8)
    vae.downscale_index_formula = (4, 8, 8)
    vae.latent_dim = 3
    vae.latent_channels = latent_channels
    vae.memory_used_decode = lambda shape, dtype: (
        (1500 * shape[2] * shape[3] * shape[4] * (4 * 8 * 8)) * mm.dtype_size(dtype)
    )
    vae.memory_used_encode = lambda shape, dtype: (900 * max(shape[2], 2) * shape[3] * shape[4]) * mm.dtype_size(dtype)
    vae.working_dtypes = [torch.bfloat16, torch.float16, torch.float32]


def frame_causal_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """Single-head attention over [B, C, T, H, W] where frame t attends to frames 0..t."""
    if q.ndim != 5:
        raise ValueError("frame-causal attention expects [B, C, T, H, W] features")
    b, c, t, h, w = q.shape

    def tokens(x: torch.Tensor) -> torch.Tensor:  # [B, 1, T, HW, C]
        return x.reshape(b, c, t, h * w).permute(0, 2, 3, 1).unsqueeze(1)

    qt, kt, vt = tokens(q), tokens(k), tokens(v)
    out = torch.empty_like(qt)
    for i in range(t):  # one query frame at a time: no T*HW x T*HW mask is ever built
        keys = kt[:, :, : i + 1].reshape(b, 1, -1, c)
        vals = vt[:, :, : i + 1].reshape(b, 1, -1, c)
        out[:, :, i] = torch.nn.functional.scaled_dot_product_attention(qt[:, :, i], keys, vals)
    return out.squeeze(1).permute(0, 3, 1, 2).reshape(b, c, t, h, w)


def make_mid_attention_causal(vae) -> None:
    for coder in (vae.first_stage_model.encoder, vae.first_stage_model.decoder):
        attn = getattr(getattr(coder, "mid", None), "attn_1", None)
        if attn is not None and hasattr(attn, "optimized_attention"):
            attn.optimized_attention = frame_causal_attention


def build_vae(sd: dict[str, torch.Tensor]):
    """Core-layout state dict -> core VAE; strict about missing weights."""
    import comfy.sd

    ddconfig = ddconfig_from_state_dict(sd)
    if all(ddconfig[k] == v for k, v in CORE_DDCONFIG.items()):
        vae = comfy.sd.VAE(sd=sd)
    else:
        embed = sd["post_quant_conv.weight"].shape[1]
        vae = comfy.sd.VAE(sd=sd, config={"params": {"ddconfig": ddconfig, "embed_dim": embed}})
        _configure_like_core_hunyuan(vae, ddconfig["z_channels"])
    expected = set(vae.first_stage_model.state_dict())
    missing = sorted(expected - set(sd))
    if missing:
        raise ValueError(f"vae: {len(missing)} weights missing, e.g. {missing[:10]}")
    make_mid_attention_causal(vae)
    return vae


def load_hunyuan_vae(path: str):
    """Official `.pt` or repacked safetensors -> core VAE."""
    try:
        return build_vae(to_core_layout(read_vae_state_dict(path)))
    except ValueError as e:
        raise ValueError(f"{os.path.basename(path)}: {e}") from e
