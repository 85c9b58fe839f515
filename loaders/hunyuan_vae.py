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

Two more official behaviours are restored on the loaded instance, each selectable:
- temporal pass: the official VAE runs the whole clip through every layer at once (GroupNorm statistics
  over all frames). Newer core (0.33) encodes/decodes in rolling chunks of frames with carried conv
  state, whose per-chunk GroupNorm statistics change every multi-frame result; we switch the loaded
  encoder/decoder back to one pass ('whole clip', default), or keep core's rolling chunks for low memory;
- tiled decode: the official inference decodes in 256 px / 64-frame tiles with 1/4 overlap
  (`models/hunyuan_vae_tiling.py`); default on, as official.
Core's memory estimates are set to match the chosen pass and tiling.
"""

from __future__ import annotations

import math
import os

import torch

from ..models.hunyuan_vae_tiling import OFFICIAL_TILES, TileSpec, count_tiles, tiled_decode

_OFFICIAL_MARKER = "decoder.up_blocks.0.resnets.0.norm1.weight"
_CORE_MARKER = "decoder.conv_in.conv.weight"
CORE_DDCONFIG = {"ch": 128, "ch_mult": [1, 2, 4, 4], "num_res_blocks": 2}
TIME_COMPRESSION = 4

PASS_WHOLE = "whole clip (official)"
PASS_ROLLING = "rolling chunks (low memory)"
TEMPORAL_PASSES = (PASS_WHOLE, PASS_ROLLING)
TILES_OFFICIAL = "official tiles"
TILES_OFF = "off (whole video)"
DECODE_TILINGS = (TILES_OFFICIAL, TILES_OFF)


def read_vae_state_dict(path: str) -> dict[str, torch.Tensor]:
    from .checkpoint_files import load_state_dict, strip_prefix

    return strip_prefix(load_state_dict(path), (_OFFICIAL_MARKER, _CORE_MARKER), ("vae.",), keep_unprefixed=False)


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
    vae.upscale_ratio = (lambda a: max(0, a * 4 - 3), 8, 8)
    vae.upscale_index_formula = (4, 8, 8)
    vae.downscale_ratio = (lambda a: max(0, math.floor((a + 3) / 4)), 8, 8)
    vae.downscale_index_formula = (4, 8, 8)
    vae.latent_dim = 3
    vae.latent_channels = latent_channels
    vae.working_dtypes = [torch.bfloat16, torch.float16, torch.float32]


# Core's memory estimates (bytes) for this VAE, per temporal pass: ComfyUI 0.3.75 `comfy/sd.py:483-484`
# (whole clip: grows with every frame) and ComfyUI 0.33.0 `comfy/sd.py:800-801` (rolling chunks: at most
# 8 output / 9 input frames are live at once).
def _whole_clip_decode_bytes(shape, dtype) -> int:
    import comfy.model_management as mm

    return 1500 * shape[2] * shape[3] * shape[4] * (4 * 8 * 8) * mm.dtype_size(dtype)


def _whole_clip_encode_bytes(shape, dtype) -> int:
    import comfy.model_management as mm

    return 900 * max(shape[2], 2) * shape[3] * shape[4] * mm.dtype_size(dtype)


def _rolling_decode_bytes(shape, dtype) -> int:
    import comfy.model_management as mm

    return 2800 * min(8, (shape[2] - 1) * 4 + 1) * shape[3] * shape[4] * (8 * 8) * mm.dtype_size(dtype)


def _rolling_encode_bytes(shape, dtype) -> int:
    import comfy.model_management as mm

    return 1400 * min(9, shape[2]) * shape[3] * shape[4] * mm.dtype_size(dtype)


def has_rolling_pass(vae) -> bool:
    """Whether this ComfyUI's VAE can run in rolling chunks (core >= the version that added `carried`)."""
    fsm = vae.first_stage_model
    return hasattr(fsm.encoder, "carried") and hasattr(fsm.decoder, "carried")


class OfficialTiledDecode:
    """Replacement for the loaded model's `first_stage_model.decode`: the official tiles around core's decode.

    Core's own tiled decode (VAE Decode (Tiled)) suspends it, so an explicitly chosen core tiling is not
    tiled again.
    """

    def __init__(self, decode, spec: TileSpec = OFFICIAL_TILES) -> None:
        self.decode = decode
        self.spec = spec
        self.suspended = False

    def __call__(self, z: torch.Tensor, **kwargs) -> torch.Tensor:
        if self.suspended or z.ndim != 5:
            return self.decode(z, **kwargs)
        import comfy.model_management
        import comfy.utils

        total = count_tiles(tuple(z.shape), self.spec)
        bar = comfy.utils.ProgressBar(total) if total > 1 else None

        def on_tile() -> None:
            comfy.model_management.throw_exception_if_processing_interrupted()
            if bar is not None:
                bar.update(1)

        return tiled_decode(lambda tile: self.decode(tile, **kwargs), z, self.spec, on_tile)


def _core_tiles_only(decode_tiled, tiles: OfficialTiledDecode):
    def run(*args, **kwargs):
        tiles.suspended = True
        try:
            return decode_tiled(*args, **kwargs)
        finally:
            tiles.suspended = False

    return run


def configure_passes(vae, temporal_pass: str = PASS_WHOLE, decode_tiling: str = TILES_OFFICIAL, spec=None) -> None:
    """Set the temporal pass and decode tiling of a loaded HunyuanVideo VAE (once, right after loading)."""
    if temporal_pass not in TEMPORAL_PASSES:
        raise ValueError(f"temporal_pass: {temporal_pass!r} is not one of {list(TEMPORAL_PASSES)}")
    if decode_tiling not in DECODE_TILINGS:
        raise ValueError(f"decode_tiling: {decode_tiling!r} is not one of {list(DECODE_TILINGS)}")
    fsm = vae.first_stage_model
    rolling = temporal_pass == PASS_ROLLING
    if has_rolling_pass(vae):
        fsm.encoder.carried = rolling
        fsm.decoder.carried = rolling
    elif rolling:
        raise ValueError(
            f"temporal_pass: {PASS_ROLLING!r} needs a ComfyUI whose VAE decodes in rolling chunks "
            f"(newer than 0.3.75); this one always runs the whole clip: choose {PASS_WHOLE!r}"
        )
    decode_bytes = _rolling_decode_bytes if rolling else _whole_clip_decode_bytes
    vae.memory_used_encode = _rolling_encode_bytes if rolling else _whole_clip_encode_bytes
    if decode_tiling == TILES_OFFICIAL:
        spec = spec or OFFICIAL_TILES
        tiles = OfficialTiledDecode(fsm.decode, spec)
        fsm.decode = tiles
        vae.decode_tiled = _core_tiles_only(vae.decode_tiled, tiles)
        vae.memory_used_decode = lambda shape, dtype: decode_bytes(spec.bounded_latent_shape(shape), dtype)
    else:
        vae.memory_used_decode = decode_bytes


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


def load_hunyuan_vae(path: str, temporal_pass: str = PASS_WHOLE, decode_tiling: str = TILES_OFFICIAL):
    """Official `.pt` or repacked safetensors -> core VAE, official whole-clip pass and tiled decode by default."""
    try:
        vae = build_vae(to_core_layout(read_vae_state_dict(path)))
    except ValueError as e:
        raise ValueError(f"{os.path.basename(path)}: {e}") from e
    configure_passes(vae, temporal_pass, decode_tiling)
    return vae
