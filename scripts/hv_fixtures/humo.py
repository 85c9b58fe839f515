"""Tiny random-weight HuMo / Wan checkpoints in the official file formats and folder layouts.

- ``humo_1_7b``: ``diffusion_models/HuMo-1.7B/ema.pth`` (torch pickle of a flat state dict, fp32, in_dim 16)
- ``humo_17b``: ``diffusion_models/HuMo-17B/humo-0000i-of-00003.safetensors`` + ``humo.safetensors.index.json``
  (fp32, in_dim 36: 16 noisy + 4 mask + 16 condition channels)
- ``humo_17b_fp8``: ``diffusion_models/humo_17B_fp8_e4m3fn.safetensors``, the same weights as one safetensors file
  with the blocks' weight matrices in float8_e4m3fn and the rest in bf16 (an fp8 repack's kind of file)
- ``wan21_vae``: ``vae/Wan2.1_VAE.pth`` (base width 8 instead of 96; core reads the width off the weights)
- ``umt5_xxl``: ``text_encoders/models_t5_umt5-xxl-enc-bf16.pth`` (official Wan T5 names, bf16) +
  ``text_encoders/google/umt5-xxl/spiece.model`` (a small sentencepiece model trained here)

Key names and shapes of the DiT and VAE come from ComfyUI core's modules (which use the official names);
the umT5 names are the official Wan ``T5Encoder`` tree. The DiT keeps the real text width (4096, what
umT5 outputs) and the fixed-size audio projection (51200 -> 512 -> 16x1536), so it is ~40 M parameters.
"""

from __future__ import annotations

import io
import json
from pathlib import Path

import torch

from . import register

TINY_DIT = {"dim": 128, "ffn_dim": 256, "num_layers": 2, "num_heads": 1}
TINY_VAE_DIM = 8
TINY_UMT5 = {"d_model": 4096, "num_heads": 2, "d_kv": 32, "d_ff": 64, "num_layers": 2, "num_buckets": 32}
SPIECE_CORPUS = [
    "a person talks to the camera in a bright room",
    "a woman sings a song on a stage with warm light",
    "a man in a suit speaks calmly, studio lighting, close up",
    "the quick brown fox jumps over the lazy dog",
    "static, blurry, low quality, worst quality, jpeg artifacts, ugly, deformed, extra fingers",
]


def _fill(shapes: dict[str, tuple[int, ...]], seed: int, dtype: torch.dtype = torch.float32) -> dict[str, torch.Tensor]:
    """Random tensors that keep activations O(1): fan-in scaled weights, near-one norm gains."""
    g = torch.Generator().manual_seed(seed)
    out = {}
    for k in sorted(shapes):
        shape = shapes[k]
        leaf = k.rsplit(".", 2)
        is_norm = any(("norm" in part) for part in leaf[:-1]) or k.endswith(("gamma", "layer_norm.weight"))
        if is_norm and not k.endswith("bias"):
            t = 1.0 + 0.02 * torch.randn(shape, generator=g)
        elif k.endswith("bias") or len(shape) == 1:
            t = 0.02 * torch.randn(shape, generator=g)
        else:
            fan_in = 1
            for s in shape[1:]:
                fan_in *= s
            t = torch.randn(shape, generator=g) / max(fan_in, 1) ** 0.5
        out[k] = t.to(dtype).contiguous()
    return out


def humo_state_dict(
    in_dim: int,
    seed: int = 0,
    dim: int = TINY_DIT["dim"],
    ffn_dim: int = TINY_DIT["ffn_dim"],
    num_layers: int = TINY_DIT["num_layers"],
) -> dict[str, torch.Tensor]:
    """A random HuMo DiT state dict with official (= core) key names."""
    import comfy.ops
    from comfy.ldm.wan.model import HumoWanModel

    with torch.device("meta"):
        model = HumoWanModel(
            in_dim=in_dim,
            dim=dim,
            ffn_dim=ffn_dim,
            num_heads=dim // 128,
            num_layers=num_layers,
            out_dim=16,
            text_dim=4096,
            freq_dim=256,
            operations=comfy.ops.disable_weight_init,
        )
    shapes = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    return _fill(shapes, seed)


def _wan21_vae(dim: int):
    """Core's Wan 2.1 VAE network at base width ``dim`` (the real one is 96), the released layout otherwise."""
    from comfy.ldm.wan.vae import WanVAE

    return WanVAE(
        dim=dim,
        z_dim=16,
        dim_mult=[1, 2, 4, 4],
        num_res_blocks=2,
        attn_scales=[],
        temperal_downsample=[False, True, True],
    )


def wan_vae_state_dict(seed: int = 0, dim: int = TINY_VAE_DIM) -> dict[str, torch.Tensor]:
    with torch.device("meta"):
        model = _wan21_vae(dim)
    shapes = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    return _fill(shapes, seed)


def umt5_official_state_dict(
    vocab_size: int,
    seed: int = 0,
    dtype: torch.dtype = torch.bfloat16,
    d_model: int = TINY_UMT5["d_model"],
    num_heads: int = TINY_UMT5["num_heads"],
    d_kv: int = TINY_UMT5["d_kv"],
    d_ff: int = TINY_UMT5["d_ff"],
    num_layers: int = TINY_UMT5["num_layers"],
) -> dict[str, torch.Tensor]:
    """Official Wan ``T5Encoder`` key layout (``shared_pos=False``: one position table per block)."""
    inner = num_heads * d_kv
    shapes: dict[str, tuple[int, ...]] = {"token_embedding.weight": (vocab_size, d_model), "norm.weight": (d_model,)}
    for i in range(num_layers):
        b = f"blocks.{i}"
        shapes.update(
            {
                f"{b}.norm1.weight": (d_model,),
                f"{b}.attn.q.weight": (inner, d_model),
                f"{b}.attn.k.weight": (inner, d_model),
                f"{b}.attn.v.weight": (inner, d_model),
                f"{b}.attn.o.weight": (d_model, inner),
                f"{b}.norm2.weight": (d_model,),
                f"{b}.ffn.gate.0.weight": (d_ff, d_model),
                f"{b}.ffn.fc1.weight": (d_ff, d_model),
                f"{b}.ffn.fc2.weight": (d_model, d_ff),
                f"{b}.pos_embedding.embedding.weight": (TINY_UMT5["num_buckets"], num_heads),
            }
        )
    sd = _fill(shapes, seed, torch.float32)
    g = torch.Generator().manual_seed(seed + 1)
    sd["token_embedding.weight"] = torch.randn(vocab_size, d_model, generator=g)  # official init: std 1
    return {k: v.to(dtype) for k, v in sd.items()}


def train_spiece_model() -> bytes:
    """A small sentencepiece unigram model with umT5's special ids (pad 0, eos 1, unk 2, no bos)."""
    import sentencepiece as spm

    buf = io.BytesIO()
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(SPIECE_CORPUS * 20),
        model_writer=buf,
        vocab_size=96,
        pad_id=0,
        eos_id=1,
        unk_id=2,
        bos_id=-1,
        hard_vocab_limit=False,
        model_type="unigram",
        minloglevel=2,
        num_threads=1,
    )
    return buf.getvalue()


def write_sharded(sd: dict[str, torch.Tensor], folder: Path, base: str = "humo", shards: int = 3) -> list[Path]:
    """Safetensors shards plus ``<base>.safetensors.index.json`` as in the HF HuMo-17B folder."""
    from safetensors.torch import save_file

    folder.mkdir(parents=True, exist_ok=True)
    keys = sorted(sd)
    per = -(-len(keys) // shards)
    written, weight_map = [], {}
    total = 0
    for i in range(shards):
        name = f"{base}-{i + 1:05d}-of-{shards:05d}.safetensors"
        part = {k: sd[k] for k in keys[i * per : (i + 1) * per]}
        save_file(part, str(folder / name), metadata={"format": "pt"})
        weight_map.update({k: name for k in part})
        total += sum(t.numel() * t.element_size() for t in part.values())
        written.append(folder / name)
    index = folder / f"{base}.safetensors.index.json"
    index.write_text(json.dumps({"metadata": {"total_size": total}, "weight_map": weight_map}, indent=2))
    return [index, *written]


@register("humo_1_7b")
def gen_humo_1_7b(models_dir: Path) -> list[Path]:
    out = Path(models_dir) / "diffusion_models" / "HuMo-1.7B" / "ema.pth"
    out.parent.mkdir(parents=True, exist_ok=True)
    torch.save(humo_state_dict(in_dim=16, seed=17), out)
    return [out]


@register("humo_17b")
def gen_humo_17b(models_dir: Path) -> list[Path]:
    return write_sharded(humo_state_dict(in_dim=36, seed=170), Path(models_dir) / "diffusion_models" / "HuMo-17B")


@register("humo_17b_fp8")
def gen_humo_17b_fp8(models_dir: Path) -> list[Path]:
    from safetensors.torch import save_file

    sd = {
        k: v.to(
            torch.float8_e4m3fn if k.startswith("blocks.") and k.endswith(".weight") and v.ndim >= 2 else torch.bfloat16
        )
        for k, v in humo_state_dict(in_dim=36, seed=170).items()
    }
    out = Path(models_dir) / "diffusion_models" / "humo_17B_fp8_e4m3fn.safetensors"
    out.parent.mkdir(parents=True, exist_ok=True)
    save_file(sd, str(out), metadata={"format": "pt"})
    return [out]


def tiny_wan_vae(seed: int = 0):
    """A random Wan 2.1 VAE of base width 8 as a core VAE, in process (core reads the width off the weights):
    latents of the real shape for unit tests and CPU benchmarks."""
    import comfy.sd

    torch.manual_seed(seed)
    net = _wan21_vae(TINY_VAE_DIM)
    return comfy.sd.VAE(sd={k: torch.randn_like(v) * 0.2 for k, v in net.state_dict().items()})


@register("wan21_vae")
def gen_wan21_vae(models_dir: Path) -> list[Path]:
    out = Path(models_dir) / "vae" / "Wan2.1_VAE.pth"
    out.parent.mkdir(parents=True, exist_ok=True)
    torch.save(wan_vae_state_dict(seed=21), out)
    return [out]


@register("umt5_xxl")
def gen_umt5(models_dir: Path) -> list[Path]:
    import sentencepiece as spm

    root = Path(models_dir) / "text_encoders"
    tok_dir = root / "google" / "umt5-xxl"
    tok_dir.mkdir(parents=True, exist_ok=True)
    proto = train_spiece_model()
    (tok_dir / "spiece.model").write_bytes(proto)
    vocab = spm.SentencePieceProcessor(model_proto=proto).get_piece_size()
    out = root / "models_t5_umt5-xxl-enc-bf16.pth"
    torch.save(umt5_official_state_dict(vocab_size=max(vocab, 128), seed=5), out)
    return [out, tok_dir / "spiece.model"]
