"""Model FLOP utilisation of the DiT steps: FLOPs per forward from the shapes, and the device's bf16 peak.

Counted: the matrix multiplications of the transformer blocks (projections, attention scores and
weighted sums, feed-forward), the patch embedding, the text embedding and the output head, two FLOPs
per multiply-add, per sample. Left out: norms, RoPE, modulation, time embedding and the audio projection
(well under 1% at real size). ``tests/unit/test_gpu_suite.py`` checks the block counts against
``torch.utils.flop_counter`` on tiny networks.
"""

from __future__ import annotations

import math

# Dense bf16 tensor-core peak in FLOP/s, from the vendor's data sheets (without sparsity), by device name.
# The first entry whose key is in torch.cuda.get_device_name() wins, so the specific names come first.
BF16_PEAK_FLOPS: tuple[tuple[str, float], ...] = (
    ("H100 PCIe", 756e12),
    ("H100 NVL", 835e12),
    ("H100", 989e12),  # SXM ("NVIDIA H100 80GB HBM3")
    ("H200", 989e12),
    ("H800", 989e12),
    ("GH200", 989e12),
    ("A100", 312e12),
    ("A800", 312e12),
    ("L40S", 362e12),
    ("L40", 181e12),
    ("RTX 4090", 165e12),
    ("A10G", 70e12),
)

HUMO_AUDIO_TOKENS_PER_LATENT_FRAME = 16  # core's WanT2VCrossAttentionGather: 16 audio tokens per latent frame
HUMO_AUDIO_DIM = 1536  # HuMo's audio projection output width


def bf16_peak(device_name: str) -> float | None:
    """The device's dense bf16 peak in FLOP/s, None when unknown (the CPU included)."""
    for key, peak in BF16_PEAK_FLOPS:
        if key.lower() in device_name.lower():
            return peak
    return None


def mfu(flops_per_second: float | None, device_name: str) -> float | None:
    peak = bf16_peak(device_name)
    if peak is None or not flops_per_second:
        return None
    return flops_per_second / peak


def humo_block_flops(cfg, video_tokens: int, text_tokens: int, latent_frames: int) -> int:
    """One HuMo (Wan 2.1 + audio cross-attention) block for one sample."""
    d, n, lt = cfg.dim, video_tokens, text_tokens
    la = latent_frames * HUMO_AUDIO_TOKENS_PER_LATENT_FRAME
    self_attn = 2 * 4 * n * d * d + 2 * 2 * n * n * d
    text_attn = 2 * 2 * n * d * d + 2 * 2 * lt * d * d + 2 * 2 * n * lt * d
    # each latent frame's tokens attend to that frame's 16 audio tokens
    audio_attn = (
        2 * 2 * n * d * d + 2 * 2 * la * HUMO_AUDIO_DIM * d + 2 * 2 * n * HUMO_AUDIO_TOKENS_PER_LATENT_FRAME * d
    )
    ffn = 2 * 2 * n * d * cfg.ffn_dim
    return self_attn + text_attn + audio_attn + ffn


def humo_forward_flops(cfg, video_tokens: int, text_tokens: int, latent_frames: int) -> int:
    """One HuMo DiT forward for one sample (one guidance pass)."""
    patch = math.prod(cfg.patch_size)
    embed = 2 * video_tokens * cfg.in_dim * patch * cfg.dim
    text = 2 * text_tokens * (cfg.text_dim * cfg.dim + cfg.dim * cfg.dim)
    head = 2 * video_tokens * cfg.dim * cfg.out_dim * patch
    blocks = cfg.num_layers * humo_block_flops(cfg, video_tokens, text_tokens, latent_frames)
    return embed + text + head + blocks


def hunyuan_double_block_flops(cfg, video_tokens: int, text_tokens: int) -> int:
    d, m, n = cfg.hidden_size, cfg.mlp_hidden, video_tokens + text_tokens
    # per stream: qkv (3 d^2), output projection (d^2), MLP (2 d m); joint attention over both streams
    return 2 * n * (4 * d * d + 2 * d * m) + 2 * 2 * n * n * d


def hunyuan_single_block_flops(cfg, video_tokens: int, text_tokens: int) -> int:
    d, m, n = cfg.hidden_size, cfg.mlp_hidden, video_tokens + text_tokens
    # linear1: d -> 3d + m (qkv and MLP in), linear2: d + m -> d
    return 2 * n * (d * (3 * d + m) + (d + m) * d) + 2 * 2 * n * n * d


def hunyuan_forward_flops(cfg, video_tokens: int, text_tokens: int) -> int:
    """One HunyuanVideo DiT forward for one sample (the token refiner and embedders left out)."""
    patch = math.prod(cfg.patch_size)
    embed = 2 * video_tokens * cfg.in_channels * patch * cfg.hidden_size
    head = 2 * video_tokens * cfg.hidden_size * cfg.out_channels * patch
    return (
        embed
        + head
        + cfg.double_blocks * hunyuan_double_block_flops(cfg, video_tokens, text_tokens)
        + cfg.single_blocks * hunyuan_single_block_flops(cfg, video_tokens, text_tokens)
    )
