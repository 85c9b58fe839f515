"""Official HunyuanVideo-I2V effect LoRAs (kohya-style keys) -> patches on core's HunyuanVideo `MODEL`.

The official trainer (`train_image2video_lora.py`) wraps the DiT with PEFT and saves
``Hunyuan_video_I2V_lora_<module path with '.' -> '_'>.lora_down.weight / .lora_up.weight / .alpha``.
Core 0.3.75 recognises neither the prefix nor the original module names ("lora key not loaded").

We map each underscored module name back through the official key manifest of the model's own
configuration (so no greedy guessing where to split on '_'), rename to core's module names and hand
the result to core's LoRA machinery, which patches the ModelPatcher (offload- and fp8-aware).

The official loader (`hyvideo/utils/lora_utils.py`) ignores the stored `.alpha` and merges
``W += scale * up @ down``; we do the same, so the effect at strength 1.0 equals the official one.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping

import torch

from ..models.hunyuan_video_spec import HunyuanDiTConfig, release_of_model
from .hunyuan_dit import core_key, official_manifest

log = logging.getLogger(__name__)

OFFICIAL_PREFIX = "Hunyuan_video_I2V_lora_"
# PEFT `target_modules` of the official trainer; PEFT matches them as module-name suffixes.
OFFICIAL_TARGETS = (
    "linear",
    "fc1",
    "fc2",
    "img_attn_qkv",
    "img_attn_proj",
    "txt_attn_qkv",
    "txt_attn_proj",
    "linear1",
    "linear2",
)
_SUFFIXES = (".lora_down.weight", ".lora_up.weight", ".alpha")
# Suffixes of the LoRA-like formats core itself reads (comfy/lora.py, comfy/weight_adapter).
_CORE_SUFFIXES = _SUFFIXES + (
    ".lora_A.weight",
    ".lora_B.weight",
    ".lora.up.weight",
    ".lora.down.weight",
    ".lora_mid.weight",
    ".lora_linear_layer.up.weight",
    ".lora_linear_layer.down.weight",
    ".dora_scale",
    ".diff",
    ".diff_b",
    ".set_weight",
    ".reshape_weight",
    ".hada_w1_a",
    ".hada_w1_b",
    ".hada_w2_a",
    ".hada_w2_b",
    ".lokr_w1",
    ".lokr_w2",
    ".lokr_w1_a",
    ".lokr_w1_b",
    ".lokr_w2_a",
    ".lokr_w2_b",
    ".oft_blocks",
    ".rescale",
)


def official_linear_modules(cfg: HunyuanDiTConfig) -> dict[str, tuple[int, int]]:
    """Official module name -> (out, in) of every Linear layer of the DiT."""
    return {
        k[: -len(".weight")]: shape  # type: ignore[misc]
        for k, shape in official_manifest(cfg).items()
        if k.endswith(".weight") and len(shape) == 2
    }


def peft_targets(cfg: HunyuanDiTConfig) -> list[str]:
    """Modules the official trainer puts LoRA on (PEFT suffix matching over the module tree)."""
    return sorted(
        name
        for name in official_linear_modules(cfg)
        if any(name == t or name.endswith("." + t) for t in OFFICIAL_TARGETS)
    )


def kohya_name(module: str) -> str:
    return OFFICIAL_PREFIX + module.replace(".", "_")


def _split(key: str, suffixes: tuple[str, ...] = _SUFFIXES) -> tuple[str, str]:
    for suffix in suffixes:
        if key.endswith(suffix):
            return key[: -len(suffix)], suffix
    return key, ""


def is_official_lora(sd: Mapping[str, torch.Tensor]) -> bool:
    return any(k.startswith(OFFICIAL_PREFIX) for k in sd)


def convert_official_lora(lora: Mapping[str, torch.Tensor], cfg: HunyuanDiTConfig) -> dict[str, torch.Tensor]:
    """Official kohya-style LoRA -> core's generic LoRA format (``diffusion_model.<core module>.lora_*``).

    Raises ValueError listing every key that maps to no module of this model, and every pair whose
    shapes do not fit the module (a LoRA for another model or size).
    """
    modules = official_linear_modules(cfg)
    by_kohya = {kohya_name(m): m for m in modules}
    out: dict[str, torch.Tensor] = {}
    unmapped: list[str] = []
    mismatched: list[str] = []
    for key, value in lora.items():
        base, suffix = _split(key)
        module = by_kohya.get(base)
        if module is None or not suffix:
            unmapped.append(key)
            continue
        if suffix == ".alpha":
            continue  # ignored, as by the official loader
        out_f, in_f = modules[module]
        if suffix == ".lora_down.weight" and (value.ndim != 2 or value.shape[1] != in_f):
            mismatched.append(f"{key} {tuple(value.shape)} (module input {in_f})")
        if suffix == ".lora_up.weight" and (value.ndim != 2 or value.shape[0] != out_f):
            mismatched.append(f"{key} {tuple(value.shape)} (module output {out_f})")
        out[f"diffusion_model.{core_key(module + '.weight')[: -len('.weight')]}{suffix}"] = value
    if unmapped:
        raise ValueError(
            f"lora: {len(unmapped)} keys match no module of this HunyuanVideo-I2V model "
            f"(a LoRA for another model?): {sorted(unmapped)[:20]}"
        )
    if mismatched:
        raise ValueError(f"lora: {len(mismatched)} weights do not fit this model's layers: {mismatched[:10]}")
    downs = {k[: -len(".lora_down.weight")] for k in out if k.endswith(".lora_down.weight")}
    ups = {k[: -len(".lora_up.weight")] for k in out if k.endswith(".lora_up.weight")}
    if downs != ups:
        raise ValueError(f"lora: modules with only one of lora_down / lora_up: {sorted(downs ^ ups)[:10]}")
    return out


def model_config_of(model) -> HunyuanDiTConfig:
    """The HunyuanDiTConfig of a core HunyuanVideo ModelPatcher."""
    dm = model.model.diffusion_model
    p = dm.params
    return HunyuanDiTConfig(
        in_channels=p.in_channels,
        out_channels=p.out_channels,
        hidden_size=p.hidden_size,
        heads=p.num_heads,
        double_blocks=p.depth,
        single_blocks=p.depth_single_blocks,
        mlp_ratio=p.mlp_ratio,
        patch_size=tuple(p.patch_size),  # type: ignore[arg-type]
        text_dim=p.context_in_dim,
        pooled_dim=p.vec_in_dim or 768,
        refiner_blocks=len(dm.txt_in.individual_token_refiner.blocks),
        guidance_embed=p.guidance_embed,
    )


def apply_hunyuan_lora(model, lora: Mapping[str, torch.Tensor], strength: float):
    """Clone `model` and patch it with an official (or core-format) HunyuanVideo LoRA.

    Returns (patched ModelPatcher, number of patched weights, format name).
    """
    import comfy.lora
    import comfy.lora_convert

    release_of_model(model)  # clear error for a MODEL that is not HunyuanVideo
    if not lora:
        raise ValueError("lora: the file holds no tensors")
    if is_official_lora(lora):
        converted = convert_official_lora(lora, model_config_of(model))
        fmt = "official HunyuanVideo-I2V (kohya)"
    else:
        converted = comfy.lora_convert.convert_lora(dict(lora))
        fmt = "ComfyUI / diffusion-pipe"
    key_map = comfy.lora.model_lora_keys_unet(model.model, {})
    bases = {_split(k, _CORE_SUFFIXES)[0] for k in converted}
    unmapped = sorted(b for b in bases if b not in key_map)
    if unmapped:
        raise ValueError(
            f"lora: {len(unmapped)} modules are not in this HunyuanVideo model (a LoRA for another model?): "
            f"{unmapped[:20]}"
        )
    patches = comfy.lora.load_lora(converted, key_map)
    patched = model.clone()
    applied = patched.add_patches(patches, strength)
    if len(applied) != len(patches):
        missing = sorted(set(patches) - set(applied))
        raise ValueError(f"lora: {len(missing)} patches found no weight in the model: {missing[:10]}")
    log.info("HunyuanVideo LoRA (%s): %d weights patched at strength %s", fmt, len(applied), strength)
    return patched, len(applied), fmt
