"""Whisper encoder checkpoints: detect the file layout, rename keys, infer the size, build the model.

Three layouts carry the same tensors under different names:
- OpenAI `.pt` (`tiny.pt` ... `large-v3.pt`, also LatentSync's `checkpoints/whisper/tiny.pt`):
  `{"dims": {...}, "model_state_dict": {"encoder.conv1.weight", "encoder.blocks.0.attn.query.weight", ...}}`.
- Hugging Face transformers (`openai/whisper-*` folders with config.json, or one safetensors):
  `encoder.layers.0.self_attn.q_proj.weight` under `encoder.` (WhisperModel), `model.encoder.`
  (WhisperForConditionalGeneration) or no prefix (an encoder-only export).
- Comfy-Org `audio_encoders/whisper_large_v3_fp16.safetensors`: the Hugging Face names under
  `model.encoder.` (core strips `model.`), decoder tensors included.
Decoder tensors are ignored: only the encoder is used.
"""

from __future__ import annotations

import json
import logging
import os
import re
from dataclasses import dataclass

import torch

from ..models.whisper_encoder import HEAD_DIM, WhisperEncoder, WhisperEncoderConfig, WhisperModel
from . import checkpoint_files
from .checkpoint_files import Checkpoint, describe_state_dict
from .dtypes import dtype_choices, parse_dtype

# The one key-renaming table: Hugging Face name (after the encoder prefix) -> OpenAI name (ours).
# `{i}` stands for the block index.
HF_TO_OPENAI = {
    "conv1.weight": "conv1.weight",
    "conv1.bias": "conv1.bias",
    "conv2.weight": "conv2.weight",
    "conv2.bias": "conv2.bias",
    "embed_positions.weight": "positional_embedding",
    "layer_norm.weight": "ln_post.weight",
    "layer_norm.bias": "ln_post.bias",
    "layers.{i}.self_attn.q_proj.weight": "blocks.{i}.attn.query.weight",
    "layers.{i}.self_attn.q_proj.bias": "blocks.{i}.attn.query.bias",
    "layers.{i}.self_attn.k_proj.weight": "blocks.{i}.attn.key.weight",
    "layers.{i}.self_attn.v_proj.weight": "blocks.{i}.attn.value.weight",
    "layers.{i}.self_attn.v_proj.bias": "blocks.{i}.attn.value.bias",
    "layers.{i}.self_attn.out_proj.weight": "blocks.{i}.attn.out.weight",
    "layers.{i}.self_attn.out_proj.bias": "blocks.{i}.attn.out.bias",
    "layers.{i}.self_attn_layer_norm.weight": "blocks.{i}.attn_ln.weight",
    "layers.{i}.self_attn_layer_norm.bias": "blocks.{i}.attn_ln.bias",
    "layers.{i}.fc1.weight": "blocks.{i}.mlp.0.weight",
    "layers.{i}.fc1.bias": "blocks.{i}.mlp.0.bias",
    "layers.{i}.fc2.weight": "blocks.{i}.mlp.2.weight",
    "layers.{i}.fc2.bias": "blocks.{i}.mlp.2.bias",
    "layers.{i}.final_layer_norm.weight": "blocks.{i}.mlp_ln.weight",
    "layers.{i}.final_layer_norm.bias": "blocks.{i}.mlp_ln.bias",
}

_HF_PATTERNS = [
    (re.compile("^" + re.escape(hf).replace(r"\{i\}", r"(\d+)") + "$"), ours) for hf, ours in HF_TO_OPENAI.items()
]

WEIGHT_FILES = (
    "model.safetensors",
    "pytorch_model.bin",
    "model.safetensors.index.json",
    "pytorch_model.bin.index.json",
)


@dataclass(frozen=True)
class WhisperCheckpoint:
    """An encoder state dict in our (OpenAI) names, its configuration and where it came from."""

    state_dict: dict[str, torch.Tensor]
    config: WhisperEncoderConfig
    layout: str  # "openai" or "hf" (Hugging Face names, which Comfy-Org's file also uses)
    source: str


def _encoder_prefix(sd: dict[str, torch.Tensor], source: str) -> tuple[str, str]:
    """Return (prefix, "openai" | "hf") of the encoder tensors, or raise a ValueError naming the file."""
    keys = list(sd)
    candidates = sorted({k[: -len("conv1.weight")] for k in keys if k.endswith("conv1.weight")})
    candidates = [p for p in candidates if "decoder" not in p]
    for prefix in candidates:
        if prefix + "blocks.0.attn.query.weight" in keys:
            return prefix, "openai"
        if prefix + "layers.0.self_attn.q_proj.weight" in keys:
            return prefix, "hf"
    raise ValueError(
        f"whisper file {source!r} holds no Whisper encoder (no conv1 + attention blocks found); it is "
        f"{describe_state_dict(sd)}. HuMo needs whisper-large-v3 (e.g. Comfy-Org "
        "whisper_large_v3_fp16.safetensors), LatentSync needs whisper tiny (tiny.pt)."
    )


def convert_state_dict(
    sd: dict[str, torch.Tensor], source: str = "<state dict>"
) -> tuple[dict[str, torch.Tensor], str]:
    """Rename any supported layout to ours; returns (encoder state dict, layout name)."""
    prefix, family = _encoder_prefix(sd, source)
    out: dict[str, torch.Tensor] = {}
    unknown: list[str] = []
    for key, value in sd.items():
        if not key.startswith(prefix):
            continue
        name = key[len(prefix) :]
        if name.startswith(("decoder.", "proj_out.")):  # only reachable with an empty prefix
            continue
        if family == "openai":
            out[name] = value
            continue
        for pattern, ours in _HF_PATTERNS:
            m = pattern.match(name)
            if m:
                out[ours.replace("{i}", m.group(1)) if m.groups() else ours] = value
                break
        else:
            unknown.append(key)
    if unknown:
        raise ValueError(f"whisper file {source!r}: unknown encoder tensors {unknown[:5]}")
    return out, family


def infer_config(
    sd: dict[str, torch.Tensor], n_heads: int | None = None, source: str = "<state dict>"
) -> WhisperEncoderConfig:
    """Read the size from tensor shapes; heads are not visible in shapes, so default to 64 per head."""
    try:
        d_model, n_mels, _ = sd["conv1.weight"].shape
        n_layers = 1 + max(int(k.split(".")[1]) for k in sd if k.startswith("blocks."))
        d_ffn = sd["blocks.0.mlp.0.weight"].shape[0]
    except (KeyError, ValueError) as e:
        raise ValueError(f"whisper file {source!r}: incomplete encoder ({e})") from e
    n_ctx = sd["positional_embedding"].shape[0] if "positional_embedding" in sd else 1500
    if n_heads is None:
        if d_model % HEAD_DIM:
            raise ValueError(
                f"whisper file {source!r}: width {d_model} is not a multiple of {HEAD_DIM}; "
                "put a config.json with encoder_attention_heads next to it"
            )
        n_heads = d_model // HEAD_DIM
    return WhisperEncoderConfig(
        n_mels=n_mels, n_ctx=n_ctx, d_model=d_model, n_heads=n_heads, n_layers=n_layers, d_ffn=d_ffn
    )


def _read_hf_folder(folder: str) -> tuple[Checkpoint, int | None]:
    with open(os.path.join(folder, "config.json"), encoding="utf-8") as f:
        config = json.load(f)
    heads = config.get("encoder_attention_heads")
    for name in WEIGHT_FILES:
        path = os.path.join(folder, name)
        if os.path.isfile(path):
            return _read(path), heads
    raise ValueError(f"whisper folder {folder!r} has config.json but none of {list(WEIGHT_FILES)}")


def _read(path: str) -> Checkpoint:
    try:
        return checkpoint_files.read_checkpoint(path)
    except ValueError as e:  # a pickle holding objects weights_only refuses, a truncated file, not a checkpoint
        raise ValueError(f"whisper file {path!r} cannot be read as a plain tensor checkpoint: {e}") from e


def read_checkpoint(path: str) -> WhisperCheckpoint:
    """Read a Whisper file or Hugging Face folder into our names and infer its configuration."""
    if os.path.isdir(path):
        if not os.path.isfile(os.path.join(path, "config.json")):
            raise ValueError(f"whisper folder {path!r} has no config.json")
        ckpt, heads = _read_hf_folder(path)
    elif os.path.isfile(path):
        ckpt, heads = _read(path), None
    else:
        raise ValueError(f"whisper model {path!r} does not exist")
    # The OpenAI release keeps its hyper-parameters beside the weights: {"dims": {...}, "model_state_dict": ...}.
    dims = ckpt.extras.get("dims")
    if isinstance(dims, dict):
        heads = dims.get("n_audio_head", heads)
    sd, layout = convert_state_dict(ckpt.state_dict, source=path)
    config = infer_config(sd, n_heads=heads, source=path)
    return WhisperCheckpoint(state_dict=sd, config=config, layout=layout, source=os.path.basename(path.rstrip("/")))


def build_encoder(ckpt: WhisperCheckpoint, dtype: torch.dtype, device: torch.device | str = "cpu") -> WhisperEncoder:
    """Instantiate our encoder and load the converted weights strictly (sinusoids may be absent)."""
    model = WhisperEncoder(ckpt.config, dtype=dtype, device=device)
    try:
        missing, unexpected = model.load_state_dict(ckpt.state_dict, strict=False)
    except RuntimeError as e:  # shape mismatch
        raise ValueError(f"whisper file {ckpt.source!r} does not match {ckpt.config.name}: {e}") from e
    # The position table is a fixed function of the size; some exports leave it out.
    missing = [k for k in missing if k != "positional_embedding"]
    if missing or unexpected:
        raise ValueError(
            f"whisper file {ckpt.source!r} does not match {ckpt.config.name}: "
            f"missing {missing[:5]}, unexpected {unexpected[:5]}"
        )
    if "positional_embedding" not in ckpt.state_dict:
        logging.info("HumanVideo: %s has no position table; using Whisper's sinusoids", ckpt.source)
    return model.eval().requires_grad_(False)


PRECISIONS = dtype_choices("auto", "fp32", "fp16", "bf16")


def load_whisper(path: str, precision: str = "auto") -> WhisperModel:
    """Load any supported Whisper file or folder as an `HV_WHISPER` ready for `ModelPatcher` loading.

    "auto" follows ComfyUI's text-encoder dtype on a GPU (fp16 unless overridden by the command line)
    and float32 on the CPU, where half precision is slow and inexact.
    """
    import comfy.model_management as mm

    load_device = mm.text_encoder_device()
    offload_device = mm.text_encoder_offload_device()
    dtype = parse_dtype(precision, PRECISIONS, "precision")
    if dtype is None:
        dtype = mm.text_encoder_dtype(load_device)
        if mm.is_device_cpu(load_device) or dtype not in (torch.float32, torch.float16, torch.bfloat16):
            dtype = torch.float32 if mm.is_device_cpu(load_device) else torch.float16
    ckpt = read_checkpoint(path)
    encoder = build_encoder(ckpt, dtype=dtype, device=offload_device)
    logging.info("HumanVideo: loaded %s (%s layout) from %s as %s", ckpt.config.name, ckpt.layout, ckpt.source, dtype)
    return WhisperModel(
        encoder,
        compute_dtype=dtype,
        load_device=load_device,
        offload_device=offload_device,
        layout=ckpt.layout,
        source=ckpt.source,
    )
