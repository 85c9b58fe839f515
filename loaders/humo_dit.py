"""HuMo DiT checkpoints (official HuMo-17B shards, HuMo-1.7B ``ema.pth``, ComfyUI/kijai repacks) -> core MODEL.

HuMo is Wan2.1 with an audio projection MLP and an audio cross-attention in every block. ComfyUI core
already implements it (``comfy.ldm.wan.model.HumoWanModel``, model type ``WAN21_HuMo``) under the
official module names, so "conversion" means: open the official containers, drop training wrappers and
prefixes, check that the file really is a complete HuMo DiT (naming what it is otherwise), and hand the
state dict to core's diffusion-model loader. Core then infers the configuration from the weights and
builds the ModelPatcher, so LoRA, fp8 / scaled-fp8 / mixed-precision quantization and offloading
behave exactly as for any core model.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass

import torch

from ..models.humo_spec import (
    AUDIO_CONTEXT_DIM,
    AUDIO_GROUPS,
    AUDIO_HIDDEN,
    AUDIO_TOKENS,
    AUDIO_WINDOW,
    WHISPER_DIM,
)
from .checkpoint_files import describe_state_dict, load_state_dict, strip_prefix
from .dtypes import dtype_choices, parse_dtype
from .recipe import record

HEAD_DIM = 128  # Wan2.1 uses 128-wide heads at every size; core derives num_heads = dim // 128

# Prefixes put in front of the DiT keys by ComfyUI checkpoints, DDP/torch.compile wrappers and trainers.
KEY_PREFIXES = ("model.diffusion_model.", "diffusion_model.", "model.", "module.", "_orig_mod.", "dit.", "net.")

# Extra tensors of quantized repacks that sit next to the weights they describe; core consumes them.
QUANT_SUFFIXES = (
    ".scale_weight",
    ".scale_input",
    ".weight_scale",
    ".input_scale",
    ".comfy_quant",
    ".weight_scale_2",
    ".scale",
)
QUANT_KEYS = ("scaled_fp8",)

WEIGHT_DTYPES = dtype_choices("default", "bf16", "fp16", "fp8_e4m3fn")


@dataclass(frozen=True)
class HumoConfig:
    """Shape-defining hyper-parameters of a HuMo DiT (everything else is fixed by the architecture)."""

    dim: int
    ffn_dim: int
    num_layers: int
    in_dim: int
    out_dim: int = 16
    text_dim: int = 4096
    freq_dim: int = 256
    patch_size: tuple[int, int, int] = (1, 2, 2)

    @property
    def num_heads(self) -> int:
        return self.dim // HEAD_DIM

    @property
    def variant(self) -> str:
        # 17B concatenates a 20-channel I2V-style condition (in_dim 36); 1.7B swaps the reference in (in_dim 16).
        return "17B-style (channel-concat condition)" if self.in_dim > self.out_dim else "1.7B-style (reference swap)"


# The two released sizes (humo/configs/models/Wan_14B_I2V.yaml and Wan_1.3B.yaml).
HUMO_17B = HumoConfig(dim=5120, ffn_dim=13824, num_layers=40, in_dim=36)
HUMO_1_7B = HumoConfig(dim=1536, ffn_dim=8960, num_layers=30, in_dim=16)


def official_key_manifest(cfg: HumoConfig) -> dict[str, tuple[int, ...]]:
    """Key -> shape of an official HuMo checkpoint with this configuration.

    Written from the official module tree (``model_humo.py``: WanModel with ``insert_audio`` and
    ``AudioProjModel`` wrapped in ``DummyAdapterLayer``); no CLIP image branch, no focus heads.
    """
    d, f = cfg.dim, cfg.ffn_dim
    m: dict[str, tuple[int, ...]] = {
        "patch_embedding.weight": (d, cfg.in_dim, *cfg.patch_size),
        "patch_embedding.bias": (d,),
        "text_embedding.0.weight": (d, cfg.text_dim),
        "text_embedding.0.bias": (d,),
        "text_embedding.2.weight": (d, d),
        "text_embedding.2.bias": (d,),
        "time_embedding.0.weight": (d, cfg.freq_dim),
        "time_embedding.0.bias": (d,),
        "time_embedding.2.weight": (d, d),
        "time_embedding.2.bias": (d,),
        "time_projection.1.weight": (6 * d, d),
        "time_projection.1.bias": (6 * d,),
        "head.head.weight": (cfg.out_dim * cfg.patch_size[0] * cfg.patch_size[1] * cfg.patch_size[2], d),
        "head.head.bias": (cfg.out_dim * cfg.patch_size[0] * cfg.patch_size[1] * cfg.patch_size[2],),
        "head.modulation": (1, 2, d),
    }
    audio_in = AUDIO_WINDOW * AUDIO_GROUPS * WHISPER_DIM
    for name, shape in (
        ("audio_proj_glob_1", (AUDIO_HIDDEN, audio_in)),
        ("audio_proj_glob_2", (AUDIO_HIDDEN, AUDIO_HIDDEN)),
        ("audio_proj_glob_3", (AUDIO_TOKENS * AUDIO_CONTEXT_DIM, AUDIO_HIDDEN)),
        ("audio_proj_glob_norm", (AUDIO_CONTEXT_DIM,)),
    ):
        m[f"audio_proj.{name}.layer.weight"] = shape
        m[f"audio_proj.{name}.layer.bias"] = (shape[0],)

    def attention(prefix: str, kv_dim: int) -> None:
        for proj, in_features in (("q", d), ("k", kv_dim), ("v", kv_dim), ("o", d)):
            m[f"{prefix}.{proj}.weight"] = (d, in_features)
            m[f"{prefix}.{proj}.bias"] = (d,)
        m[f"{prefix}.norm_q.weight"] = (d,)
        m[f"{prefix}.norm_k.weight"] = (d,)

    for i in range(cfg.num_layers):
        b = f"blocks.{i}"
        attention(f"{b}.self_attn", d)
        attention(f"{b}.cross_attn", d)
        m[f"{b}.norm3.weight"] = (d,)
        m[f"{b}.norm3.bias"] = (d,)
        m[f"{b}.ffn.0.weight"] = (f, d)
        m[f"{b}.ffn.0.bias"] = (f,)
        m[f"{b}.ffn.2.weight"] = (d, f)
        m[f"{b}.ffn.2.bias"] = (d,)
        m[f"{b}.modulation"] = (1, 6, d)
        m[f"{b}.audio_cross_attn_wrapper.norm1_audio.weight"] = (d,)
        m[f"{b}.audio_cross_attn_wrapper.norm1_audio.bias"] = (d,)
        attention(f"{b}.audio_cross_attn_wrapper.audio_cross_attn", AUDIO_CONTEXT_DIM)
    return m


def _is_quant_extra(key: str) -> bool:
    return key in QUANT_KEYS or key.endswith(QUANT_SUFFIXES)


def to_core_layout(sd: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Official / repack key layout -> the key names of core's ``HumoWanModel`` (no prefix).

    Official and core names coincide module for module, so only wrappers' prefixes are removed.
    """
    return strip_prefix(sd, "head.modulation", KEY_PREFIXES)


def infer_config(sd: dict[str, torch.Tensor], source: str = "checkpoint") -> HumoConfig:
    """Reads the configuration off the weights (core-layout keys), so any size loads."""
    try:
        pe = sd["patch_embedding.weight"].shape
        dim = sd["head.modulation"].shape[-1]
        ffn_dim = sd["blocks.0.ffn.0.weight"].shape[0]
        text_dim = sd["text_embedding.0.weight"].shape[1]
        freq_dim = sd["time_embedding.0.weight"].shape[1]
        out_dim = sd["head.head.weight"].shape[0] // (pe[2] * pe[3] * pe[4])
    except KeyError as e:
        raise ValueError(f"{source}: is {describe_state_dict(sd)}; the HuMo DiT tensor {e.args[0]} is missing") from e
    num_layers = 0
    while f"blocks.{num_layers}.modulation" in sd:
        num_layers += 1
    if dim % HEAD_DIM:
        raise ValueError(
            f"{source}: hidden size {dim} is not a multiple of {HEAD_DIM}; Wan/HuMo heads are {HEAD_DIM} wide"
        )
    return HumoConfig(
        dim=dim,
        ffn_dim=ffn_dim,
        num_layers=num_layers,
        in_dim=pe[1],
        out_dim=out_dim,
        text_dim=text_dim,
        freq_dim=freq_dim,
        patch_size=tuple(pe[2:]),
    )


def _summarise(keys: list[str], limit: int = 4) -> str:
    shown = ", ".join(keys[:limit])
    return shown + (f" and {len(keys) - limit} more" if len(keys) > limit else "")


def check_humo_state_dict(sd: dict[str, torch.Tensor], source: str = "checkpoint") -> HumoConfig:
    """Raises ValueError naming what ``sd`` is unless it is a complete HuMo DiT; returns its config.

    Unexpected non-quantization keys are removed from ``sd`` (and logged), like the official loader's
    ``strict=False``; missing or mis-shaped tensors are errors.
    """
    expected_what = (
        "expected a HuMo DiT (HuMo-17B shard set + index json, HuMo-1.7B ema.pth, or a "
        "humo_*.safetensors repack) with audio_proj.* and blocks.N.audio_cross_attn_wrapper.* tensors"
    )
    if "head.modulation" not in sd:
        raise ValueError(f"{source} is {describe_state_dict(sd)}; {expected_what}")
    if "audio_proj.audio_proj_glob_1.layer.bias" not in sd:
        raise ValueError(
            f"{source} is {describe_state_dict(sd)}; {expected_what}. Load plain Wan models with "
            "core's 'Load Diffusion Model' node"
        )
    cfg = infer_config(sd, source)
    manifest = official_key_manifest(cfg)
    weights = [k for k in sd if not _is_quant_extra(k)]
    missing = [k for k in manifest if k not in sd]
    if missing:
        raise ValueError(
            f"{source} is an incomplete HuMo DiT ({cfg.num_layers} blocks found, dim {cfg.dim}): {len(missing)} "
            f"tensors missing ({_summarise(missing)}). A shard may belong to another set or be missing from the index"
        )
    # Packed integer quant formats store other shapes; their layout is core's business.
    bad = [
        f"{k} {tuple(sd[k].shape)} (expected {manifest[k]})"
        for k in manifest
        if tuple(sd[k].shape) != manifest[k] and (sd[k].is_floating_point() or sd[k].is_meta)
    ]
    if bad:
        raise ValueError(f"{source}: HuMo DiT tensors with unexpected shapes: {_summarise(bad, 3)}")
    unexpected = [k for k in weights if k not in manifest]
    if unexpected:
        logging.warning(
            "HumanVideo: ignoring %d tensors of %s that a HuMo DiT does not use: %s",
            len(unexpected),
            source,
            _summarise(unexpected),
        )
        for k in unexpected:
            sd.pop(k)
    return cfg


def load_humo_model(path: str | os.PathLike, weight_dtype: str = "default"):
    """Loads a HuMo DiT checkpoint of any published layout into core's ModelPatcher (MODEL).

    Returns ``(model_patcher, config)``.
    """
    import comfy.sd

    dtype = parse_dtype(weight_dtype, WEIGHT_DTYPES, "weight_dtype")
    source = os.path.basename(os.path.normpath(str(path)))
    sd, metadata = load_state_dict(path, return_metadata=True)
    sd = to_core_layout(sd)
    cfg = check_humo_state_dict(sd, source)
    model_options = {}
    if dtype is not None:
        model_options["dtype"] = dtype
    # metadata carries ComfyUI's per-layer quantization description for mixed-precision repacks.
    model = comfy.sd.load_diffusion_model_state_dict(sd, model_options=model_options, metadata=metadata)
    if model is None:
        raise ValueError(
            f"{source}: ComfyUI core could not build a model from this HuMo DiT ({describe_state_dict(sd)})"
        )
    record(model, load_humo_model, path, weight_dtype=weight_dtype)
    return model, cfg
