"""HunyuanVideo-I2V text encoders from the official folders -> core `CLIP` + `CLIP_VISION`.

Folders (`ckpts/text_encoder_i2v`, `ckpts/text_encoder_2` of the official repo):
- LLaVA-Llama-3-8B, transformers layout (`xtuner/llava-llama-3-8b-v1_1-transformers`): `config.json` and
  safetensors shards holding `language_model.*`, `vision_tower.*`, `multi_modal_projector.*` (or the
  transformers >= 4.52 names `model.language_model.*`, `model.vision_tower.*`, ...);
- CLIP ViT-L/14 (`openai/clip-vit-large-patch14`): `config.json` + `model.safetensors` (full CLIPModel).

The Llama LM and CLIP-L text tower become core's `HunyuanVideoClipModel` (the same `CLIP` that
`DualCLIPLoader(type=hunyuan_video)` builds); the vision tower + projector become core's `ClipVisionModel`
(as `CLIPVisionLoader` on `llava_llama3_vision.safetensors`). Sizes come from the weights and config.json,
so the real 8B and tiny test folders go through the same code. The official encode with them is
`samplers/hunyuan_text_encode.py`.
"""

from __future__ import annotations

import glob
import json
import logging
import os
import tempfile

import torch

from ..models import hunyuan_template as tpl

log = logging.getLogger(__name__)

_LM_PREFIXES = ("language_model.model.", "model.language_model.")
_VISION_PREFIXES = ("vision_tower.", "model.vision_tower.")
_PROJECTOR_PREFIXES = ("multi_modal_projector.", "model.multi_modal_projector.")


def _read_folder(folder: str) -> tuple[dict, dict[str, torch.Tensor]]:
    """config.json and all weights of a transformers folder (safetensors preferred, `.bin` with weights_only)."""
    from .checkpoint_files import find_index_in_folder, load_state_dict

    if not os.path.isdir(folder):
        raise ValueError(f"text encoder folder {folder!r} does not exist")
    cfg_path = os.path.join(folder, "config.json")
    if not os.path.isfile(cfg_path):
        raise ValueError(f"{os.path.basename(folder)}: no config.json; expected a transformers model folder")
    with open(cfg_path) as f:
        config = json.load(f)
    if find_index_in_folder(folder) is not None:  # sharded, as the published 8B folder
        return config, load_state_dict(folder)
    files = sorted(glob.glob(os.path.join(folder, "*.safetensors"))) or sorted(glob.glob(os.path.join(folder, "*.bin")))
    if not files:
        raise ValueError(f"{os.path.basename(folder)}: no *.safetensors or *.bin weights")
    sd: dict[str, torch.Tensor] = {}
    for path in files:
        sd.update(load_state_dict(path))
    return config, sd


def _take(sd: dict[str, torch.Tensor], prefixes: tuple[str, ...], new_prefix: str = "") -> dict[str, torch.Tensor]:
    for prefix in prefixes:
        part = {new_prefix + k[len(prefix) :]: v for k, v in sd.items() if k.startswith(prefix)}
        if part:
            return part
    return {}


def _count(sd, prefix: str) -> int:
    ids = {int(k[len(prefix) :].split(".", 1)[0]) for k in sd if k.startswith(prefix)}
    return max(ids) + 1 if ids else 0


def split_llava(config: dict, sd: dict[str, torch.Tensor]):
    """LLaVA folder weights -> (llama sd in core names, llama config overrides, vision sd, vision config)."""
    llama = _take(sd, _LM_PREFIXES, "model.")
    vision = _take(sd, _VISION_PREFIXES)
    vision.update(_take(sd, _PROJECTOR_PREFIXES, "multi_modal_projector."))
    if "model.embed_tokens.weight" not in llama:
        raise ValueError("LLaVA folder: no language model weights ('language_model.model.*'); not a LLaVA checkpoint")
    if (
        "vision_model.embeddings.patch_embedding.weight" not in vision
        or "multi_modal_projector.linear_1.weight" not in vision
    ):
        raise ValueError(
            "LLaVA folder: no vision tower / projector weights; HunyuanVideo-I2V needs the full LLaVA model "
            "(xtuner/llava-llama-3-8b-v1_1-transformers), not the text-only Llama used by T2V"
        )
    tc = config.get("text_config", {})
    vocab, hidden = llama["model.embed_tokens.weight"].shape
    heads = tc.get("num_attention_heads", 32)
    if hidden // heads != 128:
        raise ValueError(f"LLaVA folder: head size {hidden // heads} != 128, which core's Llama implementation fixes")
    llama_cfg = {
        "vocab_size": vocab,
        "hidden_size": hidden,
        "intermediate_size": llama["model.layers.0.mlp.gate_proj.weight"].shape[0],
        "num_hidden_layers": _count(llama, "model.layers."),
        "num_attention_heads": heads,
        "num_key_value_heads": llama["model.layers.0.self_attn.k_proj.weight"].shape[0] // 128,
        "rms_norm_eps": tc.get("rms_norm_eps", 1e-5),
        "rope_theta": tc.get("rope_theta", 500000.0),
    }
    if vocab <= tpl.PAD_ID:
        raise ValueError(f"LLaVA folder: vocabulary of {vocab} has no <image> ({tpl.IMAGE_TOKEN_ID}) / <pad> ids")

    vc = config.get("vision_config", {})
    patch_w = vision["vision_model.embeddings.patch_embedding.weight"]
    positions = vision["vision_model.embeddings.position_embedding.weight"].shape[0]
    patch = patch_w.shape[-1]
    side = round((positions - 1) ** 0.5)
    vision_cfg = {
        "model_type": "clip_vision_model",
        "hidden_act": vc.get("hidden_act", "quick_gelu"),
        "hidden_size": patch_w.shape[0],
        "image_size": side * patch,
        "intermediate_size": vision["vision_model.encoder.layers.0.mlp.fc1.weight"].shape[0],
        "layer_norm_eps": vc.get("layer_norm_eps", 1e-5),
        "num_attention_heads": vc.get("num_attention_heads", 16),
        "num_channels": patch_w.shape[1],
        "num_hidden_layers": _count(vision, "vision_model.encoder.layers."),
        "patch_size": patch,
        "projector_type": "llava3",
    }
    if side * side != tpl.IMAGE_TOKENS:
        log.warning("LLaVA vision tower gives %d patch tokens, the official template expects 576", side * side)
    return llama, llama_cfg, vision, vision_cfg


def split_clip_l(config: dict, sd: dict[str, torch.Tensor]):
    """CLIP folder weights -> (text-tower sd in core names, config overrides)."""
    # the projection is not used: HunyuanVideo feeds the unprojected pooled output to `vector_in`
    text = {k: v for k, v in sd.items() if k.startswith("text_model.")}
    if "text_model.embeddings.token_embedding.weight" not in text:
        raise ValueError("CLIP folder: no 'text_model.*' weights; expected openai/clip-vit-large-patch14")
    tc = config.get("text_config", config)
    emb = text["text_model.embeddings.token_embedding.weight"]
    layers = _count(text, "text_model.encoder.layers.")
    if layers < 2:
        raise ValueError("CLIP folder: fewer than 2 text layers; core cannot tell CLIP-L from Llama weights")
    cfg = {
        "vocab_size": emb.shape[0],
        "hidden_size": emb.shape[1],
        "intermediate_size": text["text_model.encoder.layers.0.mlp.fc1.weight"].shape[0],
        "num_hidden_layers": layers,
        "num_attention_heads": tc.get("num_attention_heads", 12),
        "max_position_embeddings": text["text_model.embeddings.position_embedding.weight"].shape[0],
    }
    return text, cfg


def _check_loaded(what: str, missing, unexpected) -> None:
    missing = [k for k in missing if not k.endswith(("position_ids", "logit_scale", "text_projection.weight"))]
    if missing:
        raise ValueError(f"{what}: {len(missing)} weights missing after loading, e.g. {sorted(missing)[:10]}")
    if unexpected:
        log.debug("%s: ignored weights %s", what, sorted(unexpected)[:10])


def build_clip(llama_sd, llama_cfg, clip_sd, clip_cfg, dtype: torch.dtype | None = None):
    """Core `CLIP` (HunyuanVideo dual encoder) with configurations from the weights."""
    import comfy.sd
    import comfy.text_encoders.hunyuan_video as hv
    import comfy.utils

    class Target:
        params: dict = {}
        clip = hv.hunyuan_video_clip(dtype_llama=llama_sd["model.norm.weight"].dtype)
        tokenizer = hv.HunyuanVideoTokenizer

    options: dict = {"llama_model_config": llama_cfg, "clip_l_model_config": clip_cfg}
    if dtype is not None:
        options["dtype"] = dtype
        Target.clip = hv.hunyuan_video_clip(dtype_llama=dtype)
    params = comfy.utils.calculate_parameters(llama_sd) + comfy.utils.calculate_parameters(clip_sd)
    clip = comfy.sd.CLIP(Target(), parameters=params, model_options=options)
    _check_loaded("CLIP-L", *clip.load_sd(clip_sd))
    _check_loaded("LLaVA language model", *clip.load_sd(llama_sd))
    return clip


def build_clip_vision(vision_sd, vision_cfg, text_dim: int):
    """Core `ClipVisionModel` (LLaVA vision tower + projector) for any size."""
    import comfy.clip_model
    import comfy.clip_vision
    import comfy.model_management
    import comfy.ops

    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as f:
        json.dump(vision_cfg, f)
        path = f.name
    try:
        cv = comfy.clip_vision.ClipVisionModel(path)
    finally:
        os.unlink(path)
    if text_dim != 4096:
        # core hard-codes the LLaVA-Llama-3 projector output (4096); other LM widths need their own
        cv.model.multi_modal_projector = comfy.clip_model.LlavaProjector(
            vision_cfg["hidden_size"],
            text_dim,
            cv.dtype,
            comfy.model_management.text_encoder_offload_device(),
            comfy.ops.manual_cast,
        )
    missing, unexpected = cv.load_sd(vision_sd)
    _check_loaded("LLaVA vision tower", [k for k in missing if not k.startswith("visual_projection")], unexpected)
    return cv


def load_text_encoders(llava_folder: str, clip_folder: str, dtype: torch.dtype | None = None):
    """Official folders -> (core CLIP, core CLIP_VISION)."""
    try:
        config, sd = _read_folder(llava_folder)
        llama_sd, llama_cfg, vision_sd, vision_cfg = split_llava(config, sd)
    except ValueError as e:
        raise ValueError(f"llava_folder: {e}") from e
    try:
        clip_config, clip_sd = _read_folder(clip_folder)
        clip_text_sd, clip_cfg = split_clip_l(clip_config, clip_sd)
    except ValueError as e:
        raise ValueError(f"clip_folder: {e}") from e
    clip = build_clip(llama_sd, llama_cfg, clip_text_sd, clip_cfg, dtype)
    vision = build_clip_vision(vision_sd, vision_cfg, llama_cfg["hidden_size"])
    return clip, vision
