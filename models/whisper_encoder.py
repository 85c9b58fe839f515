"""Whisper audio encoder (Radford et al. 2022, "Robust Speech Recognition via Large-Scale Weak
Supervision"), encoder half only, in the manner of `comfy/ldm/`.

Two 1-D convolutions (the second with stride 2) turn 3000 log-mel frames into 1500 positions,
a fixed sinusoidal table is added, then pre-LayerNorm transformer blocks and a final LayerNorm
(`ln_post`). Parameter names follow the original OpenAI release; `loaders/whisper.py` maps the
Hugging Face and Comfy-Org layouts onto them.

`forward` returns every intermediate state because the video models condition on them:
HuMo on Hugging Face's 33 `hidden_states` (input embedding, block outputs, last one after
`ln_post`), LatentSync on the input embedding and the block outputs before `ln_post`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import comfy.ops
import torch
import torch.nn as nn
import torch.nn.functional as F
from comfy.ldm.modules.attention import optimized_attention

# Every released Whisper size uses 64-dimensional attention heads.
HEAD_DIM = 64

# (d_model, n_layers, n_mels) -> release name; used for messages and for picking conventions.
KNOWN_SIZES = {
    (384, 4, 80): "tiny",
    (512, 6, 80): "base",
    (768, 12, 80): "small",
    (1024, 24, 80): "medium",
    (1280, 32, 80): "large-v2",
    (1280, 32, 128): "large-v3",
}


@dataclass(frozen=True)
class WhisperEncoderConfig:
    n_mels: int = 80
    n_ctx: int = 1500
    d_model: int = 384
    n_heads: int = 6
    n_layers: int = 4
    d_ffn: int = 1536

    @property
    def name(self) -> str:
        known = KNOWN_SIZES.get((self.d_model, self.n_layers, self.n_mels))
        if known and self.d_ffn == 4 * self.d_model:
            return f"whisper-{known}"
        return f"whisper-custom(d={self.d_model}, layers={self.n_layers}, mels={self.n_mels}, ffn={self.d_ffn})"

    @property
    def n_states(self) -> int:
        """Number of states `forward` returns: embedding, one per block, and the post-LayerNorm output."""
        return self.n_layers + 2


def sinusoids(length: int, channels: int, max_timescale: float = 10000.0) -> torch.Tensor:
    """Whisper's fixed position table: [sin | cos] halves, geometric timescales from 1 to 10 000."""
    if channels % 2:
        raise ValueError(f"sinusoidal positions need an even width, got {channels}")
    half = channels // 2
    increment = math.log(max_timescale) / (half - 1) if half > 1 else 0.0
    inv_timescales = torch.exp(-increment * torch.arange(half, dtype=torch.float32))
    angle = torch.arange(length, dtype=torch.float32)[:, None] * inv_timescales[None, :]
    return torch.cat([torch.sin(angle), torch.cos(angle)], dim=1)


class SelfAttention(nn.Module):
    def __init__(self, d_model: int, n_heads: int, dtype=None, device=None, operations=comfy.ops.manual_cast):
        super().__init__()
        self.n_heads = n_heads
        self.query = operations.Linear(d_model, d_model, dtype=dtype, device=device)
        # Whisper's key projection has no bias: it would only shift every logit of a row equally.
        self.key = operations.Linear(d_model, d_model, bias=False, dtype=dtype, device=device)
        self.value = operations.Linear(d_model, d_model, dtype=dtype, device=device)
        self.out = operations.Linear(d_model, d_model, dtype=dtype, device=device)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out(optimized_attention(self.query(x), self.key(x), self.value(x), self.n_heads))


class EncoderBlock(nn.Module):
    def __init__(self, cfg: WhisperEncoderConfig, dtype=None, device=None, operations=comfy.ops.manual_cast):
        super().__init__()
        self.attn_ln = operations.LayerNorm(cfg.d_model, dtype=dtype, device=device)
        self.attn = SelfAttention(cfg.d_model, cfg.n_heads, dtype=dtype, device=device, operations=operations)
        self.mlp_ln = operations.LayerNorm(cfg.d_model, dtype=dtype, device=device)
        self.mlp = nn.Sequential(
            operations.Linear(cfg.d_model, cfg.d_ffn, dtype=dtype, device=device),
            nn.GELU(),
            operations.Linear(cfg.d_ffn, cfg.d_model, dtype=dtype, device=device),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.attn_ln(x))
        return x + self.mlp(self.mlp_ln(x))


class WhisperEncoder(nn.Module):
    def __init__(self, cfg: WhisperEncoderConfig, dtype=None, device=None, operations=comfy.ops.manual_cast):
        super().__init__()
        if cfg.d_model % cfg.n_heads:
            raise ValueError(f"d_model {cfg.d_model} is not divisible by {cfg.n_heads} heads")
        self.config = cfg
        self.conv1 = operations.Conv1d(cfg.n_mels, cfg.d_model, kernel_size=3, padding=1, dtype=dtype, device=device)
        self.conv2 = operations.Conv1d(
            cfg.d_model, cfg.d_model, kernel_size=3, stride=2, padding=1, dtype=dtype, device=device
        )
        self.register_buffer("positional_embedding", sinusoids(cfg.n_ctx, cfg.d_model).to(device=device, dtype=dtype))
        self.blocks = nn.ModuleList(
            [EncoderBlock(cfg, dtype=dtype, device=device, operations=operations) for _ in range(cfg.n_layers)]
        )
        self.ln_post = operations.LayerNorm(cfg.d_model, dtype=dtype, device=device)

    def forward(self, mel: torch.Tensor) -> torch.Tensor:
        """[B, n_mels, 2 * n_ctx] log-mel -> [B, n_ctx, n_layers + 2, d_model] states.

        State 0 is the input embedding, state k (1..n_layers) the output of block k, and the last one
        is `ln_post` applied to the final block output.
        """
        cfg = self.config
        if mel.ndim != 3 or mel.shape[1] != cfg.n_mels or mel.shape[2] != 2 * cfg.n_ctx:
            raise ValueError(
                f"{cfg.name} expects log-mel [batch, {cfg.n_mels}, {2 * cfg.n_ctx}], got {tuple(mel.shape)}"
            )
        x = F.gelu(self.conv1(mel))
        x = F.gelu(self.conv2(x)).transpose(1, 2)
        x = x + comfy.ops.cast_to_input(self.positional_embedding, x)
        states = [x]
        for block in self.blocks:
            x = block(x)
            states.append(x)
        states.append(self.ln_post(x))
        return torch.stack(states, dim=2)


class WhisperModel:
    """The `HV_WHISPER` value: an encoder in a ModelPatcher so ComfyUI can load and offload it."""

    def __init__(
        self,
        encoder: WhisperEncoder,
        *,
        compute_dtype: torch.dtype,
        load_device: torch.device,
        offload_device: torch.device,
        layout: str = "",
        source: str = "",
    ):
        import comfy.model_patcher

        self.patcher = comfy.model_patcher.ModelPatcher(encoder, load_device=load_device, offload_device=offload_device)
        self.compute_dtype = compute_dtype
        self.layout = layout
        self.source = source

    @property
    def config(self) -> WhisperEncoderConfig:
        return self.patcher.model.config

    @property
    def name(self) -> str:
        return self.config.name

    def __repr__(self) -> str:
        return f"WhisperModel({self.name}, {self.layout} layout from {self.source!r}, {self.compute_dtype})"

    def encode(self, mel: torch.Tensor) -> torch.Tensor:
        """[N, n_mels, 3000] log-mel windows -> [N, 1500, n_layers + 2, d_model] states on the CPU.

        States keep the compute dtype: half precision halves the memory of long clips and holds no less
        information than the computation that produced it.
        """
        import comfy.model_management

        comfy.model_management.load_models_gpu([self.patcher])
        device = self.patcher.load_device
        with torch.no_grad():
            states = self.patcher.model(mel.to(device=device, dtype=self.compute_dtype))
        return states.to(device="cpu")
