"""HunyuanVideo-I2V DiT checkpoints -> core `MODEL`.

Accepted layouts:
- official `mp_rank_00_model_states.pt` (a DeepSpeed dict ``{"module": state_dict}``, original key names),
  both releases: v1 "concat" (33 input channels, no guidance embedding) and v2 "replace" (16 channels,
  `guidance_in`);
- Comfy-Org repacks (`hunyuan_video_*image_to_video_720p_bf16.safetensors`): the same original key names,
  optionally under `model.diffusion_model.`.

The network is core's `comfy.ldm.hunyuan_video.model.HunyuanVideo`; the official names are renamed by
core's `HunyuanVideo.process_unet_state_dict`. Before handing a file to core we check it against the key /
shape manifest of the configuration inferred from its own weights, because core loads non-strictly and
would otherwise run a half-initialised model without complaint.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

import torch

from ..models.hunyuan_video_spec import HunyuanDiTConfig, release_for
from . import checkpoint_files
from .dtypes import FP8_FAST, dtype_choices, parse_dtype
from .recipe import record

MARKER_KEY = "txt_in.individual_token_refiner.blocks.0.norm1.weight"
_PREFIXES = ("model.diffusion_model.", "diffusion_model.", "model.")


WEIGHT_DTYPES = dtype_choices("default", "bf16", "fp16", "fp32", "fp8_e4m3fn", FP8_FAST, "fp8_e5m2")


def official_manifest(cfg: HunyuanDiTConfig) -> dict[str, tuple[int, ...]]:
    """Key -> shape of an official HYVideo-T/2 state dict with this configuration.

    Written from the official module tree (`models.py`, `token_refiner.py`, `embed_layers.py`,
    `mlp_layers.py`); parameter-free norms (`img_norm1`, `pre_norm`, `norm_final`) have no keys.
    """
    h, hd, mlp = cfg.hidden_size, cfg.head_dim, cfg.mlp_hidden
    m: dict[str, tuple[int, ...]] = {}

    def linear(name: str, out_f: int, in_f: int) -> None:
        m[f"{name}.weight"] = (out_f, in_f)
        m[f"{name}.bias"] = (out_f,)

    m["img_in.proj.weight"] = (h, cfg.in_channels, *cfg.patch_size)
    m["img_in.proj.bias"] = (h,)

    # SingleTokenRefiner: LLM states -> hidden, refined by `refiner_blocks` self-attention blocks.
    linear("txt_in.input_embedder", h, cfg.text_dim)
    linear("txt_in.t_embedder.mlp.0", h, 256)
    linear("txt_in.t_embedder.mlp.2", h, h)
    linear("txt_in.c_embedder.linear_1", h, cfg.text_dim)
    linear("txt_in.c_embedder.linear_2", h, h)
    for i in range(cfg.refiner_blocks):
        b = f"txt_in.individual_token_refiner.blocks.{i}"
        for norm in ("norm1", "norm2"):
            m[f"{b}.{norm}.weight"] = (h,)
            m[f"{b}.{norm}.bias"] = (h,)
        linear(f"{b}.self_attn_qkv", 3 * h, h)
        linear(f"{b}.self_attn_proj", h, h)
        linear(f"{b}.mlp.fc1", mlp, h)
        linear(f"{b}.mlp.fc2", h, mlp)
        linear(f"{b}.adaLN_modulation.1", 2 * h, h)

    linear("time_in.mlp.0", h, 256)
    linear("time_in.mlp.2", h, h)
    linear("vector_in.in_layer", h, cfg.pooled_dim)
    linear("vector_in.out_layer", h, h)
    if cfg.guidance_embed:
        linear("guidance_in.mlp.0", h, 256)
        linear("guidance_in.mlp.2", h, h)

    for i in range(cfg.double_blocks):
        for stream in ("img", "txt"):
            b = f"double_blocks.{i}.{stream}"
            linear(f"{b}_mod.linear", 6 * h, h)
            linear(f"{b}_attn_qkv", 3 * h, h)
            m[f"{b}_attn_q_norm.weight"] = (hd,)
            m[f"{b}_attn_k_norm.weight"] = (hd,)
            linear(f"{b}_attn_proj", h, h)
            linear(f"{b}_mlp.fc1", mlp, h)
            linear(f"{b}_mlp.fc2", h, mlp)

    for i in range(cfg.single_blocks):
        b = f"single_blocks.{i}"
        linear(f"{b}.linear1", 3 * h + mlp, h)
        linear(f"{b}.linear2", h, h + mlp)
        m[f"{b}.q_norm.weight"] = (hd,)
        m[f"{b}.k_norm.weight"] = (hd,)
        linear(f"{b}.modulation.linear", 3 * h, h)

    patch = cfg.patch_size[0] * cfg.patch_size[1] * cfg.patch_size[2]
    linear("final_layer.linear", patch * cfg.out_channels, h)
    linear("final_layer.adaLN_modulation.1", 2 * h, h)
    return m


def to_core_keys(sd: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Rename official keys to core's module names (core's own table, so both stay in step)."""
    from comfy.supported_models import HunyuanVideo

    return HunyuanVideo.process_unet_state_dict(None, dict(sd))


def core_key(official_key: str) -> str:
    return next(iter(to_core_keys({official_key: None})))


def strip_prefix(sd: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Drops a repack's `model.diffusion_model.`-style prefix (and anything outside it)."""
    return checkpoint_files.strip_prefix(sd, MARKER_KEY, _PREFIXES, keep_unprefixed=False)


def read_state_dict(path: str) -> dict[str, torch.Tensor]:
    """Tensors of a DiT file: official `.pt` (DeepSpeed `{"module": ...}`, opened weights_only and
    memory-mapped: the official file is ~25 GB), safetensors, or a shard set."""
    return checkpoint_files.load_state_dict(path)


def _count_blocks(keys, prefix: str) -> int:
    ids = {int(k[len(prefix) :].split(".", 1)[0]) for k in keys if k.startswith(prefix)}
    return max(ids) + 1 if ids else 0


def config_from_state_dict(sd: Mapping[str, torch.Tensor]) -> HunyuanDiTConfig:
    """Infer the configuration from official-named weights (any size, so tiny test files load too)."""
    if MARKER_KEY not in sd or "img_in.proj.weight" not in sd:
        raise ValueError(
            "model file: not a HunyuanVideo DiT (no 'txt_in.individual_token_refiner' / 'img_in' weights); "
            f"it looks like {checkpoint_files.describe_state_dict(sd)}"
        )
    w = sd["img_in.proj.weight"]
    if w.ndim != 5:
        raise ValueError("model file: 'img_in.proj.weight' is not a 3-D patch embedding; not HunyuanVideo")
    hidden = w.shape[0]
    q_norm = sd.get("double_blocks.0.img_attn_q_norm.weight", sd.get("single_blocks.0.q_norm.weight"))
    head_dim = q_norm.shape[0] if q_norm is not None else 128
    patch = tuple(w.shape[2:])
    final = sd["final_layer.linear.weight"].shape[0]
    mlp = (
        sd["double_blocks.0.img_mlp.fc1.weight"].shape[0] if "double_blocks.0.img_mlp.fc1.weight" in sd else 4 * hidden
    )
    return HunyuanDiTConfig(
        in_channels=w.shape[1],
        out_channels=final // (patch[0] * patch[1] * patch[2]),
        hidden_size=hidden,
        heads=hidden // head_dim,
        double_blocks=_count_blocks(sd, "double_blocks."),
        single_blocks=_count_blocks(sd, "single_blocks."),
        mlp_ratio=mlp / hidden,
        patch_size=patch,  # type: ignore[arg-type]
        text_dim=sd["txt_in.input_embedder.weight"].shape[1],
        pooled_dim=sd["vector_in.in_layer.weight"].shape[1] if "vector_in.in_layer.weight" in sd else 768,
        refiner_blocks=_count_blocks(sd, "txt_in.individual_token_refiner.blocks."),
        guidance_embed=any(k.startswith("guidance_in.") for k in sd),
    )


def check_against_manifest(sd: Mapping[str, torch.Tensor], cfg: HunyuanDiTConfig) -> None:
    """Raise a ValueError naming missing / unexpected / mis-shaped keys (at most 12 of each)."""
    expected = official_manifest(cfg)
    missing = sorted(set(expected) - set(sd))
    unexpected = sorted(set(sd) - set(expected))
    wrong = sorted(k for k in set(expected) & set(sd) if tuple(sd[k].shape) != expected[k])
    problems = []
    if missing:
        problems.append(f"{len(missing)} missing (e.g. {missing[:12]})")
    if unexpected:
        problems.append(f"{len(unexpected)} unexpected (e.g. {unexpected[:12]})")
    if wrong:
        problems.append(
            f"{len(wrong)} with wrong shapes (e.g. "
            + ", ".join(f"{k}: {tuple(sd[k].shape)} != {expected[k]}" for k in wrong[:6])
            + ")"
        )
    if problems:
        raise ValueError("model file: incomplete or foreign HunyuanVideo DiT weights: " + "; ".join(problems))


def load_state_dict_as_model(sd: dict[str, torch.Tensor], weight_dtype: str = "default"):
    """Official-named (or repack) state dict -> (core ModelPatcher, release)."""
    import comfy.sd

    dtype = parse_dtype(weight_dtype, WEIGHT_DTYPES, "weight_dtype")
    sd = strip_prefix(sd)
    cfg = config_from_state_dict(sd)
    release = release_for(cfg.in_channels, cfg.guidance_embed)
    check_against_manifest(sd, cfg)
    options: dict = {}
    if dtype is not None:
        options["dtype"] = dtype
    if weight_dtype == FP8_FAST:
        options["fp8_optimizations"] = True
    model = comfy.sd.load_diffusion_model_state_dict(sd, model_options=options)
    if model is None:
        raise ValueError("model file: ComfyUI could not build a HunyuanVideo model from these weights")
    return model, release


def load_hunyuan_dit(path: str, weight_dtype: str = "default"):
    """Load an official or repacked HunyuanVideo-I2V DiT file -> (ModelPatcher, HunyuanI2VRelease)."""
    try:
        model, release = load_state_dict_as_model(read_state_dict(path), weight_dtype)
    except ValueError as e:
        raise ValueError(f"{os.path.basename(path)}: {e}") from e
    record(model, load_hunyuan_dit, path, weight_dtype=weight_dtype)
    return model, release
