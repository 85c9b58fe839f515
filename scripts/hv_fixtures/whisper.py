"""Tiny random-weight Whisper encoders in the two real file formats, in `models/audio_encoders`.

- `whisper_tiny`: OpenAI release format (`{"dims": ..., "model_state_dict": ...}` torch file, the
  format of LatentSync's `checkpoints/whisper/tiny.pt`) with whisper-tiny's width (384), 80 mels and
  4 blocks, so its features fit LatentSync (5 states x 384), but a 64-wide MLP to stay small.
- `whisper_large_v3`: Hugging Face names under `model.encoder.` in one safetensors (the layout of
  Comfy-Org's `whisper_large_v3_fp16.safetensors`, a few decoder tensors included) with large-v3's
  width (1280, which core's HuMo audio projection requires) and 128 mels, but 4 blocks and a 64-wide MLP.
Neither file carries its size: loaders must infer it from tensor shapes (and `dims` for OpenAI).
"""

from __future__ import annotations

import math
from pathlib import Path

import torch

from . import register

N_CTX = 1500  # fixed by Whisper's 30 s window
TINY_FFN = 64


def _sinusoids(length: int, channels: int) -> torch.Tensor:
    half = channels // 2
    inv = torch.exp(-math.log(10000.0) / (half - 1) * torch.arange(half, dtype=torch.float32))
    angle = torch.arange(length, dtype=torch.float32)[:, None] * inv[None]
    return torch.cat([torch.sin(angle), torch.cos(angle)], dim=1)


def _encoder_shapes(n_mels: int, d: int, n_layers: int, ffn: int, names: dict[str, str]) -> dict[str, tuple]:
    shapes = {
        "conv1.weight": (d, n_mels, 3),
        "conv1.bias": (d,),
        "conv2.weight": (d, d, 3),
        "conv2.bias": (d,),
        names["ln_post"] + ".weight": (d,),
        names["ln_post"] + ".bias": (d,),
    }
    for i in range(n_layers):
        b = names["block"].format(i=i)
        for proj in ("q", "k", "v", "o"):
            shapes[f"{b}.{names[proj]}.weight"] = (d, d)
            if proj != "k":  # Whisper's key projection has no bias
                shapes[f"{b}.{names[proj]}.bias"] = (d,)
        for ln in ("attn_ln", "mlp_ln"):
            shapes[f"{b}.{names[ln]}.weight"] = (d,)
            shapes[f"{b}.{names[ln]}.bias"] = (d,)
        shapes[f"{b}.{names['fc1']}.weight"] = (ffn, d)
        shapes[f"{b}.{names['fc1']}.bias"] = (ffn,)
        shapes[f"{b}.{names['fc2']}.weight"] = (d, ffn)
        shapes[f"{b}.{names['fc2']}.bias"] = (d,)
    return shapes


OPENAI_NAMES = {
    "block": "blocks.{i}",
    "q": "attn.query",
    "k": "attn.key",
    "v": "attn.value",
    "o": "attn.out",
    "attn_ln": "attn_ln",
    "mlp_ln": "mlp_ln",
    "fc1": "mlp.0",
    "fc2": "mlp.2",
    "ln_post": "ln_post",
}
HF_NAMES = {
    "block": "layers.{i}",
    "q": "self_attn.q_proj",
    "k": "self_attn.k_proj",
    "v": "self_attn.v_proj",
    "o": "self_attn.out_proj",
    "attn_ln": "self_attn_layer_norm",
    "mlp_ln": "final_layer_norm",
    "fc1": "fc1",
    "fc2": "fc2",
    "ln_post": "layer_norm",
}


def random_encoder(
    n_mels: int, d: int, n_layers: int, ffn: int, names: dict[str, str], seed: int, dtype: torch.dtype = torch.float16
) -> dict[str, torch.Tensor]:
    """Random weights scaled like a trained model's (unit-ish LayerNorms, ~1/sqrt(fan_in) matrices)."""
    g = torch.Generator().manual_seed(seed)
    sd = {}
    for name, shape in _encoder_shapes(n_mels, d, n_layers, ffn, names).items():
        if name.endswith(".weight") and len(shape) == 1:  # LayerNorm gains
            t = 1.0 + 0.1 * torch.randn(shape, generator=g)
        elif name.endswith(".bias"):
            t = 0.02 * torch.randn(shape, generator=g)
        else:
            fan_in = math.prod(shape[1:])
            t = torch.randn(shape, generator=g) / math.sqrt(fan_in)
        sd[name] = t.to(dtype)
    return sd


def write_openai_tiny(path: Path, ffn: int = TINY_FFN, seed: int = 384) -> Path:
    """A whisper-tiny-shaped file in OpenAI's release layout (80 mels, width 384, 4 layers, 6 heads) with
    random weights and an MLP of width `ffn` (1536 at real size)."""
    n_mels, d, layers = 80, 384, 4
    encoder = random_encoder(n_mels, d, layers, ffn, OPENAI_NAMES, seed=seed)
    encoder["positional_embedding"] = _sinusoids(N_CTX, d).half()
    state = {f"encoder.{k}": v for k, v in encoder.items()}
    # a stub decoder (tiny vocabulary) so the file has both halves like a release; loaders must skip it
    state["decoder.token_embedding.weight"] = torch.zeros(8, d, dtype=torch.float16)
    state["decoder.positional_embedding"] = torch.zeros(4, d, dtype=torch.float16)
    state["decoder.ln.weight"] = torch.ones(d, dtype=torch.float16)
    state["decoder.ln.bias"] = torch.zeros(d, dtype=torch.float16)
    dims = {
        "n_mels": n_mels,
        "n_audio_ctx": N_CTX,
        "n_audio_state": d,
        "n_audio_head": d // 64,
        "n_audio_layer": layers,
        "n_vocab": 8,
        "n_text_ctx": 4,
        "n_text_state": d,
        "n_text_head": d // 64,
        "n_text_layer": 0,
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"dims": dims, "model_state_dict": state}, path)
    return path


@register("whisper_tiny")
def whisper_tiny(models_dir: Path) -> list[Path]:
    return [write_openai_tiny(Path(models_dir) / "audio_encoders" / "whisper_tiny_test.pt")]


@register("whisper_large_v3")
def whisper_large_v3(models_dir: Path) -> list[Path]:
    from safetensors.torch import save_file

    n_mels, d, layers = 128, 1280, 4
    encoder = random_encoder(n_mels, d, layers, TINY_FFN, HF_NAMES, seed=1280)
    encoder["embed_positions.weight"] = _sinusoids(N_CTX, d).half()
    state = {f"model.encoder.{k}": v for k, v in encoder.items()}
    state["model.decoder.embed_tokens.weight"] = torch.zeros(8, d, dtype=torch.float16)
    state["model.decoder.layer_norm.weight"] = torch.ones(d, dtype=torch.float16)
    state["model.decoder.layer_norm.bias"] = torch.zeros(d, dtype=torch.float16)
    path = Path(models_dir) / "audio_encoders" / "whisper_large_v3_test.safetensors"
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file({k: v.contiguous() for k, v in state.items()}, str(path))
    return [path]
