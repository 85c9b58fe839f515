"""AnimateDiff-style motion modules of the LatentSync UNet3D (the "Vanilla" temporal module).

A motion module mixes information across the frames of a chunk: at every spatial position the
features of the f frames attend to each other. It sits after a spatial transformer (or a resnet in
blocks without attention) and is residual, so with `proj_out` zeroed it is the identity.

Layout follows the official checkpoint key names:
`motion_modules.{j}.temporal_transformer.{norm, proj_in, transformer_blocks.{k}.{attention_blocks.{m}.
{to_q, to_k, to_v, to_out.0, pos_encoder.pe}, norms.{m}, ff.net.{0.proj, 2}, ff_norm}, proj_out}`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import comfy.ops
import torch
from comfy.ldm.modules.attention import CrossAttention, FeedForward
from torch import nn


@dataclass(frozen=True)
class MotionModuleConfig:
    num_heads: int = 8
    num_transformer_blocks: int = 1
    num_attention_blocks: int = 2  # ("Temporal_Self", "Temporal_Self")
    position_encoding: bool = True
    max_frames: int = 24  # temporal_position_encoding_max_len
    norm_num_groups: int = 32


def sinusoidal_positions(max_len: int, dim: int) -> torch.Tensor:
    """(1, max_len, dim) table: even channels sin, odd channels cos (the Transformer paper's encoding)."""
    position = torch.arange(max_len, dtype=torch.float32).unsqueeze(1)
    div_term = torch.exp(torch.arange(0, dim, 2, dtype=torch.float32) * (-math.log(10000.0) / dim))
    pe = torch.zeros(1, max_len, dim)
    pe[0, :, 0::2] = torch.sin(position * div_term)
    pe[0, :, 1::2] = torch.cos(position * div_term)
    return pe


class PositionalEncoding(nn.Module):
    def __init__(self, dim: int, max_len: int, device=None):
        super().__init__()
        # Persistent: the official checkpoints store the table (`pos_encoder.pe`), so it is part of the
        # strict key list; building it here keeps a freshly constructed module correct too.
        self.register_buffer("pe", sinusoidal_positions(max_len, dim).to(device=device), persistent=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        frames = x.shape[1]
        # The buffer may stay on the offload device under ComfyUI's partial loading.
        return x + self.pe[:, :frames].to(device=x.device, dtype=x.dtype)


class TemporalSelfAttention(CrossAttention):
    """Self-attention across frames, with the position table added to its (normed) input."""

    def __init__(
        self,
        dim: int,
        heads: int,
        cfg: MotionModuleConfig,
        dtype=None,
        device=None,
        operations=comfy.ops.disable_weight_init,
    ):
        super().__init__(dim, heads=heads, dim_head=dim // heads, dtype=dtype, device=device, operations=operations)
        self.pos_encoder = PositionalEncoding(dim, cfg.max_frames, device=device) if cfg.position_encoding else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # x: (batch * tokens, frames, dim)
        if self.pos_encoder is not None:
            x = self.pos_encoder(x)
        return super().forward(x)


class TemporalTransformerBlock(nn.Module):
    def __init__(
        self, dim: int, cfg: MotionModuleConfig, dtype=None, device=None, operations=comfy.ops.disable_weight_init
    ):
        super().__init__()
        self.attention_blocks = nn.ModuleList(
            [
                TemporalSelfAttention(dim, cfg.num_heads, cfg, dtype=dtype, device=device, operations=operations)
                for _ in range(cfg.num_attention_blocks)
            ]
        )
        self.norms = nn.ModuleList(
            [operations.LayerNorm(dim, dtype=dtype, device=device) for _ in range(cfg.num_attention_blocks)]
        )
        self.ff = FeedForward(dim, glu=True, dtype=dtype, device=device, operations=operations)
        self.ff_norm = operations.LayerNorm(dim, dtype=dtype, device=device)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for attention, norm in zip(self.attention_blocks, self.norms, strict=True):
            x = attention(norm(x)) + x
        return self.ff(self.ff_norm(x)) + x


class TemporalTransformer(nn.Module):
    def __init__(
        self, channels: int, cfg: MotionModuleConfig, dtype=None, device=None, operations=comfy.ops.disable_weight_init
    ):
        super().__init__()
        self.norm = operations.GroupNorm(
            cfg.norm_num_groups, channels, eps=1e-6, affine=True, dtype=dtype, device=device
        )
        self.proj_in = operations.Linear(channels, channels, dtype=dtype, device=device)
        self.transformer_blocks = nn.ModuleList(
            [
                TemporalTransformerBlock(channels, cfg, dtype=dtype, device=device, operations=operations)
                for _ in range(cfg.num_transformer_blocks)
            ]
        )
        self.proj_out = operations.Linear(channels, channels, dtype=dtype, device=device)

    def forward(self, x: torch.Tensor, frames: int) -> torch.Tensor:
        """x: (batch * frames, channels, height, width), frames contiguous per batch item."""
        bf, c, h, w = x.shape
        b = bf // frames
        residual = x
        # The GroupNorm here is per frame (the official code folds frames into the batch first). Contiguous
        # input: PyTorch's channels-last CPU GroupNorm loses float32 precision on small spatial sizes.
        x = self.norm(x.contiguous()).permute(0, 2, 3, 1).reshape(bf, h * w, c)
        x = self.proj_in(x)
        # LayerNorm, FF and projections are per token, so one (b*h*w, f, c) layout serves all blocks.
        x = x.view(b, frames, h * w, c).transpose(1, 2).reshape(b * h * w, frames, c)
        for block in self.transformer_blocks:
            x = block(x)
        x = self.proj_out(x)
        # contiguous, so the residual sum (and the GroupNorms after it) is not channels-last
        x = x.view(b, h * w, frames, c).transpose(1, 2).reshape(bf, h, w, c).permute(0, 3, 1, 2).contiguous()
        return x + residual


class MotionModule(nn.Module):
    """`VanillaTemporalModule`: a wrapper whose only child is the temporal transformer."""

    def __init__(
        self, channels: int, cfg: MotionModuleConfig, dtype=None, device=None, operations=comfy.ops.disable_weight_init
    ):
        super().__init__()
        self.temporal_transformer = TemporalTransformer(
            channels, cfg, dtype=dtype, device=device, operations=operations
        )

    def forward(self, x: torch.Tensor, frames: int) -> torch.Tensor:
        return self.temporal_transformer(x, frames)
