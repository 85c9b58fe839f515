"""LatentSync UNet3D: an SD-1.5 UNet over 16-frame chunks, conditioned on per-frame audio.

Paper: "LatentSync: Taming Audio-Conditioned Latent Diffusion Models for Lip Sync with SyncNet
Supervision" (arXiv 2412.09262). The network is the SD-1.5 UNet with
- 13 input channels: noisy latent (4) + mask (1) + masked-frame latent (4) + reference-frame latent (4);
- cross-attention (`attn2`) on Whisper-tiny audio tokens (384-d) instead of CLIP text: each frame attends
  only to its own 50 audio tokens;
- AnimateDiff motion modules (`latentsync_motion.py`) after every attention / resnet of the encoder and
  decoder (LatentSync 1.5 / 1.6), of the decoder only (stage2_efficient) or nowhere (1.0 / stage1).

Convolutions and attention work per frame. The resnet GroupNorms and the output GroupNorm see the whole
chunk: the official model applies `nn.GroupNorm` to the 5-D (b, c, f, h, w) tensor, so their statistics
span all frames (AnimateDiff v1 behaviour, `use_inflated_groupnorm: false`). The norms inside the
spatial and temporal transformers are per frame.

Key names and shapes equal the official `latentsync_unet.pt` (1246 tensors for stage2 / stage2_512).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import comfy.ops
import torch
import torch.nn.functional as F
from comfy.ldm.modules.attention import CrossAttention, FeedForward
from comfy.ldm.modules.diffusionmodules.util import timestep_embedding
from torch import nn

from .latentsync_motion import MotionModule, MotionModuleConfig

Ops = type[comfy.ops.disable_weight_init]  # an operations namespace (disable_weight_init, manual_cast, ...)


@dataclass(frozen=True)
class LatentSyncUNetConfig:
    in_channels: int = 13
    out_channels: int = 4
    block_out_channels: tuple[int, ...] = (320, 640, 1280, 1280)
    down_attention: tuple[bool, ...] = (True, True, True, False)  # CrossAttnDownBlock3D x3, DownBlock3D
    up_attention: tuple[bool, ...] = (False, True, True, True)  # UpBlock3D, CrossAttnUpBlock3D x3
    layers_per_block: int = 2
    num_heads: int = 8  # `attention_head_dim: 8` in the yaml is the head COUNT (legacy diffusers meaning)
    norm_num_groups: int = 32
    norm_eps: float = 1e-5
    cross_attention_dim: int = 384
    add_audio_layer: bool = True
    down_motion: tuple[bool, ...] = (True, True, True, True)
    mid_motion: bool = False
    up_motion: tuple[bool, ...] = (True, True, True, True)
    motion: MotionModuleConfig = field(default_factory=MotionModuleConfig)

    @property
    def time_embed_dim(self) -> int:
        return self.block_out_channels[0] * 4

    @property
    def has_motion_modules(self) -> bool:
        return any(self.down_motion) or any(self.up_motion) or self.mid_motion

    @property
    def variant(self) -> str:
        if not self.has_motion_modules:
            return "no motion modules (LatentSync 1.0 / stage1)"
        if not any(self.down_motion):
            return "decoder-only motion modules (stage2_efficient)"
        return "motion modules (LatentSync 1.5 / 1.6, stage2)"

    @classmethod
    def from_state_dict(cls, sd: Mapping[str, torch.Tensor]) -> LatentSyncUNetConfig:
        """Infer the configuration from the tensors of a checkpoint (any size, e.g. tiny test ones)."""

        def shape(key: str) -> tuple[int, ...]:
            if key not in sd:
                raise ValueError(f"state dict has no '{key}', which every LatentSync UNet has")
            return tuple(sd[key].shape)

        def indices(prefix: str) -> list[int]:
            pattern = re.compile(re.escape(prefix) + r"(\d+)\.")
            return sorted({int(m.group(1)) for k in sd for m in [pattern.match(k)] if m})

        in_channels = shape("conv_in.weight")[1]
        out_channels = shape("conv_out.weight")[0]
        down_ids = indices("down_blocks.")
        if not down_ids or down_ids != list(range(len(down_ids))):
            raise ValueError(f"down_blocks indices {down_ids} are not 0..n-1")
        channels = tuple(shape(f"down_blocks.{i}.resnets.0.conv1.weight")[0] for i in down_ids)
        layers = len(indices("down_blocks.0.resnets."))
        down_attention = tuple(bool(indices(f"down_blocks.{i}.attentions.")) for i in down_ids)
        up_attention = tuple(bool(indices(f"up_blocks.{i}.attentions.")) for i in down_ids)
        down_motion = tuple(bool(indices(f"down_blocks.{i}.motion_modules.")) for i in down_ids)
        up_motion = tuple(bool(indices(f"up_blocks.{i}.motion_modules.")) for i in down_ids)
        mid_motion = bool(indices("mid_block.motion_modules."))

        audio_keys = [k for k in sd if ".attn2.to_k.weight" in k]
        cross_dim = tuple(sd[audio_keys[0]].shape)[1] if audio_keys else 384

        motion = MotionModuleConfig()
        mm = next((k.split("temporal_transformer.")[0] for k in sd if "temporal_transformer.proj_in.weight" in k), None)
        if mm is not None:
            base = mm + "temporal_transformer.transformer_blocks."
            pe_key = next((k for k in sd if k.startswith(base + "0.attention_blocks.0.pos_encoder.pe")), None)
            motion = MotionModuleConfig(
                num_transformer_blocks=len(indices(base)),
                num_attention_blocks=len(indices(base + "0.attention_blocks.")),
                position_encoding=pe_key is not None,
                max_frames=tuple(sd[pe_key].shape)[1] if pe_key is not None else MotionModuleConfig.max_frames,
            )
        return cls(
            in_channels=in_channels,
            out_channels=out_channels,
            block_out_channels=channels,
            down_attention=down_attention,
            up_attention=up_attention,
            layers_per_block=layers,
            cross_attention_dim=cross_dim,
            add_audio_layer=bool(audio_keys),
            down_motion=down_motion,
            mid_motion=mid_motion,
            up_motion=up_motion,
            motion=motion,
        )


def video_group_norm(norm: nn.Module, x: torch.Tensor, frames: int) -> torch.Tensor:
    """GroupNorm with statistics over all frames of each batch item; x is (batch * frames, c, h, w).

    The (b, c, f, h*w) view is made contiguous first: strided inputs (the transpose here, or a
    channels-last activation) take PyTorch's channels-last CPU GroupNorm kernel, whose one-pass variance
    loses float32 precision when a group's mean is large against its spread (1e-2 and worse on the small
    spatial sizes of the deep blocks); the official model feeds its 5-D GroupNorm contiguous tensors.
    """
    bf, c, h, w = x.shape
    v = x.reshape(bf // frames, frames, c, h * w).transpose(1, 2).contiguous()
    return norm(v).transpose(1, 2).reshape(bf, c, h, w)


class ResnetBlock(nn.Module):
    def __init__(
        self,
        cfg: LatentSyncUNetConfig,
        in_ch: int,
        out_ch: int,
        dtype=None,
        device=None,
        operations: Ops = comfy.ops.disable_weight_init,
    ):
        super().__init__()
        g, eps = cfg.norm_num_groups, cfg.norm_eps
        self.norm1 = operations.GroupNorm(g, in_ch, eps=eps, affine=True, dtype=dtype, device=device)
        self.conv1 = operations.Conv2d(in_ch, out_ch, 3, padding=1, dtype=dtype, device=device)
        self.time_emb_proj = operations.Linear(cfg.time_embed_dim, out_ch, dtype=dtype, device=device)
        self.norm2 = operations.GroupNorm(g, out_ch, eps=eps, affine=True, dtype=dtype, device=device)
        self.conv2 = operations.Conv2d(out_ch, out_ch, 3, padding=1, dtype=dtype, device=device)
        self.conv_shortcut = (
            operations.Conv2d(in_ch, out_ch, 1, dtype=dtype, device=device) if in_ch != out_ch else None
        )

    def forward(self, x: torch.Tensor, temb: torch.Tensor, frames: int) -> torch.Tensor:
        h = self.conv1(F.silu(video_group_norm(self.norm1, x, frames)))
        h = h + self.time_emb_proj(F.silu(temb))[:, :, None, None]
        h = self.conv2(F.silu(video_group_norm(self.norm2, h, frames)))
        skip = self.conv_shortcut(x) if self.conv_shortcut is not None else x
        return skip + h


class AudioTransformerBlock(nn.Module):
    """Self-attention over the frame's pixels, cross-attention to its audio tokens, GEGLU feed-forward."""

    def __init__(
        self,
        dim: int,
        cfg: LatentSyncUNetConfig,
        dtype=None,
        device=None,
        operations: Ops = comfy.ops.disable_weight_init,
    ):
        super().__init__()
        heads = cfg.num_heads
        self.norm1 = operations.LayerNorm(dim, dtype=dtype, device=device)
        self.attn1 = CrossAttention(
            dim, heads=heads, dim_head=dim // heads, dtype=dtype, device=device, operations=operations
        )
        if cfg.add_audio_layer:
            self.norm2 = operations.LayerNorm(dim, dtype=dtype, device=device)
            self.attn2 = CrossAttention(
                dim,
                context_dim=cfg.cross_attention_dim,
                heads=heads,
                dim_head=dim // heads,
                dtype=dtype,
                device=device,
                operations=operations,
            )
        else:
            self.attn2 = None
        self.ff = FeedForward(dim, glu=True, dtype=dtype, device=device, operations=operations)
        self.norm3 = operations.LayerNorm(dim, dtype=dtype, device=device)

    def forward(self, x: torch.Tensor, audio: torch.Tensor | None) -> torch.Tensor:
        x = self.attn1(self.norm1(x)) + x
        # As upstream: with no audio at all the audio layer is skipped (CFG passes zeros, not None).
        if self.attn2 is not None and audio is not None:
            x = self.attn2(self.norm2(x), context=audio) + x
        return self.ff(self.norm3(x)) + x


class SpatialTransformer(nn.Module):
    """`Transformer3DModel`: per-frame GroupNorm, 1x1 conv in, one transformer block, 1x1 conv out."""

    def __init__(
        self,
        dim: int,
        cfg: LatentSyncUNetConfig,
        dtype=None,
        device=None,
        operations: Ops = comfy.ops.disable_weight_init,
    ):
        super().__init__()
        self.norm = operations.GroupNorm(cfg.norm_num_groups, dim, eps=1e-6, affine=True, dtype=dtype, device=device)
        self.proj_in = operations.Conv2d(dim, dim, 1, dtype=dtype, device=device)
        self.transformer_blocks = nn.ModuleList(
            [AudioTransformerBlock(dim, cfg, dtype=dtype, device=device, operations=operations)]
        )
        self.proj_out = operations.Conv2d(dim, dim, 1, dtype=dtype, device=device)

    def forward(self, x: torch.Tensor, audio: torch.Tensor | None) -> torch.Tensor:
        bf, c, h, w = x.shape
        tokens = self.proj_in(self.norm(x.contiguous())).permute(0, 2, 3, 1).reshape(bf, h * w, c)
        for block in self.transformer_blocks:
            tokens = block(tokens, audio)
        # Back to a contiguous (bf, c, h, w): the permuted view would make proj_out and everything after it
        # channels-last, and the next GroupNorm imprecise (see `video_group_norm`).
        return self.proj_out(tokens.reshape(bf, h, w, c).permute(0, 3, 1, 2).contiguous()) + x


class Downsample(nn.Module):
    def __init__(self, ch: int, dtype=None, device=None, operations: Ops = comfy.ops.disable_weight_init):
        super().__init__()
        self.conv = operations.Conv2d(ch, ch, 3, stride=2, padding=1, dtype=dtype, device=device)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x)


class Upsample(nn.Module):
    def __init__(self, ch: int, dtype=None, device=None, operations: Ops = comfy.ops.disable_weight_init):
        super().__init__()
        self.conv = operations.Conv2d(ch, ch, 3, padding=1, dtype=dtype, device=device)

    def forward(self, x: torch.Tensor, size: tuple[int, int] | None = None) -> torch.Tensor:
        # Matching the skip's size (not a plain x2) keeps latents whose side is not a multiple of 8 working.
        if size is None:
            x = F.interpolate(x, scale_factor=2.0, mode="nearest")
        else:
            x = F.interpolate(x, size=size, mode="nearest")
        return self.conv(x)


def _motion_list(n: int, ch: int, enabled: bool, cfg: LatentSyncUNetConfig, dtype, device, operations) -> nn.ModuleList:
    # None entries keep the official indices (`motion_modules.{j}`) and add no keys when disabled.
    return nn.ModuleList(
        [
            MotionModule(ch, cfg.motion, dtype=dtype, device=device, operations=operations) if enabled else None
            for _ in range(n)
        ]
    )


class DownBlock(nn.Module):
    """`CrossAttnDownBlock3D` (with attentions) or `DownBlock3D`: (resnet -> attention -> motion) x layers."""

    def __init__(
        self,
        cfg: LatentSyncUNetConfig,
        index: int,
        in_ch: int,
        out_ch: int,
        dtype=None,
        device=None,
        operations: Ops = comfy.ops.disable_weight_init,
    ):
        super().__init__()
        n = cfg.layers_per_block
        kw = dict(dtype=dtype, device=device, operations=operations)
        self.resnets = nn.ModuleList([ResnetBlock(cfg, in_ch if i == 0 else out_ch, out_ch, **kw) for i in range(n)])
        if cfg.down_attention[index]:
            self.attentions = nn.ModuleList([SpatialTransformer(out_ch, cfg, **kw) for _ in range(n)])
        else:
            self.attentions = None
        self.motion_modules = _motion_list(n, out_ch, cfg.down_motion[index], cfg, dtype, device, operations)
        last = index == len(cfg.block_out_channels) - 1
        self.downsamplers = None if last else nn.ModuleList([Downsample(out_ch, **kw)])

    def forward(self, x, temb, audio, frames) -> tuple[torch.Tensor, list[torch.Tensor]]:
        outputs = []
        for i, resnet in enumerate(self.resnets):
            x = resnet(x, temb, frames)
            if self.attentions is not None:
                x = self.attentions[i](x, audio)
            if self.motion_modules[i] is not None:
                x = self.motion_modules[i](x, frames)
            outputs.append(x)
        if self.downsamplers is not None:
            x = self.downsamplers[0](x)
            outputs.append(x)
        return x, outputs


class MidBlock(nn.Module):
    """`UNetMidBlock3DCrossAttn`: resnet -> (attention -> [motion] -> resnet)."""

    def __init__(
        self,
        cfg: LatentSyncUNetConfig,
        ch: int,
        dtype=None,
        device=None,
        operations: Ops = comfy.ops.disable_weight_init,
    ):
        super().__init__()
        kw = dict(dtype=dtype, device=device, operations=operations)
        self.resnets = nn.ModuleList([ResnetBlock(cfg, ch, ch, **kw), ResnetBlock(cfg, ch, ch, **kw)])
        self.attentions = nn.ModuleList([SpatialTransformer(ch, cfg, **kw)])
        self.motion_modules = _motion_list(1, ch, cfg.mid_motion, cfg, dtype, device, operations)

    def forward(self, x, temb, audio, frames) -> torch.Tensor:
        x = self.resnets[0](x, temb, frames)
        x = self.attentions[0](x, audio)
        if self.motion_modules[0] is not None:
            x = self.motion_modules[0](x, frames)
        return self.resnets[1](x, temb, frames)


class UpBlock(nn.Module):
    """`CrossAttnUpBlock3D` / `UpBlock3D`: (concat skip -> resnet -> attention -> motion) x (layers + 1)."""

    def __init__(
        self,
        cfg: LatentSyncUNetConfig,
        index: int,
        dtype=None,
        device=None,
        operations: Ops = comfy.ops.disable_weight_init,
    ):
        super().__init__()
        rev = list(reversed(cfg.block_out_channels))
        out_ch = rev[index]
        prev_ch = rev[max(index - 1, 0)]
        skip_in_ch = rev[min(index + 1, len(rev) - 1)]
        n = cfg.layers_per_block + 1
        kw = dict(dtype=dtype, device=device, operations=operations)
        resnets = []
        for i in range(n):
            res_ch = skip_in_ch if i == n - 1 else out_ch
            in_ch = prev_ch if i == 0 else out_ch
            resnets.append(ResnetBlock(cfg, in_ch + res_ch, out_ch, **kw))
        self.resnets = nn.ModuleList(resnets)
        if cfg.up_attention[index]:
            self.attentions = nn.ModuleList([SpatialTransformer(out_ch, cfg, **kw) for _ in range(n)])
        else:
            self.attentions = None
        self.motion_modules = _motion_list(n, out_ch, cfg.up_motion[index], cfg, dtype, device, operations)
        last = index == len(cfg.block_out_channels) - 1
        self.upsamplers = None if last else nn.ModuleList([Upsample(out_ch, **kw)])

    def forward(
        self,
        x,
        skips: list[torch.Tensor],
        temb,
        audio,
        frames,
        upsample_size=None,
        start_layer: int = 0,
        before_last_layer: Callable[[torch.Tensor], None] | None = None,
    ) -> torch.Tensor:
        """`skips` are consumed from the end; `start_layer` / `before_last_layer` serve the DeepCache reuse."""
        skips = list(skips)
        for i in range(start_layer, len(self.resnets)):
            if i == len(self.resnets) - 1 and before_last_layer is not None:
                before_last_layer(x)
            x = torch.cat([x, skips.pop()], dim=1)
            x = self.resnets[i](x, temb, frames)
            if self.attentions is not None:
                x = self.attentions[i](x, audio)
            if self.motion_modules[i] is not None:
                x = self.motion_modules[i](x, frames)
        if self.upsamplers is not None:
            x = self.upsamplers[0](x, upsample_size)
        return x


class TimestepEmbedding(nn.Module):
    def __init__(self, in_dim: int, dim: int, dtype=None, device=None, operations: Ops = comfy.ops.disable_weight_init):
        super().__init__()
        self.linear_1 = operations.Linear(in_dim, dim, dtype=dtype, device=device)
        self.linear_2 = operations.Linear(dim, dim, dtype=dtype, device=device)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear_2(F.silu(self.linear_1(x)))


class DeepCache:
    """DeepCache reuse (horseee/DeepCache, branch 0) for one chunk's denoising.

    On a full step the network stores the decoder state that enters the last layer of its last up
    block; on a reuse step only conv_in -> that last layer -> conv_out runs, with the fresh timestep.
    Upstream also recomputes the motion module in front of that layer, but it only depends on its
    cached input, so caching its output gives the same numbers.
    """

    def __init__(self) -> None:
        self.features: torch.Tensor | None = None

    def store(self, x: torch.Tensor) -> None:
        self.features = x


class LatentSyncUNet3D(nn.Module):
    def __init__(
        self,
        cfg: LatentSyncUNetConfig,
        dtype=None,
        device=None,
        operations: Ops = comfy.ops.disable_weight_init,
        compute_dtype: torch.dtype | None = None,
    ):
        """dtype: weight dtype; compute_dtype: activation dtype (differs with comfy.ops.manual_cast)."""
        super().__init__()
        self.config = cfg
        self.compute_dtype = compute_dtype or dtype or torch.float32
        kw = dict(dtype=dtype, device=device, operations=operations)
        dd = dict(dtype=dtype, device=device)
        ch = cfg.block_out_channels
        self.conv_in = operations.Conv2d(cfg.in_channels, ch[0], 3, padding=1, **dd)
        self.time_embedding = TimestepEmbedding(ch[0], cfg.time_embed_dim, **kw)
        self.down_blocks = nn.ModuleList([DownBlock(cfg, i, ch[max(i - 1, 0)], ch[i], **kw) for i in range(len(ch))])
        self.mid_block = MidBlock(cfg, ch[-1], **kw)
        self.up_blocks = nn.ModuleList([UpBlock(cfg, i, **kw) for i in range(len(ch))])
        self.conv_norm_out = operations.GroupNorm(
            cfg.norm_num_groups, ch[0], eps=cfg.norm_eps, affine=True, dtype=dtype, device=device
        )
        self.conv_out = operations.Conv2d(ch[0], cfg.out_channels, 3, padding=1, **dd)

    def forward(
        self,
        x: torch.Tensor,
        timestep: torch.Tensor | float,
        audio: torch.Tensor | None = None,
        deep_cache: DeepCache | None = None,
        reuse_cache: bool = False,
    ) -> torch.Tensor:
        """Predict epsilon.

        x: (b, in_channels, f, h, w) latents of one chunk; timestep: scalar or (b,);
        audio: (b, f, tokens, cross_attention_dim) per-frame audio embeddings, or None;
        deep_cache + reuse_cache: see `DeepCache`. Returns (b, out_channels, f, h, w).
        """
        cfg = self.config
        if x.ndim != 5 or x.shape[1] != cfg.in_channels:
            raise ValueError(
                f"UNet input must be (batch, {cfg.in_channels}, frames, height, width), got {tuple(x.shape)}"
            )
        b, _, f, h, w = x.shape
        if cfg.has_motion_modules and cfg.motion.position_encoding and f > cfg.motion.max_frames:
            raise ValueError(f"a chunk has {f} frames; the motion modules allow at most {cfg.motion.max_frames}")
        if audio is not None and (
            audio.ndim != 4 or audio.shape[:2] != (b, f) or audio.shape[-1] != cfg.cross_attention_dim
        ):
            raise ValueError(
                f"audio must be (batch={b}, frames={f}, tokens, {cfg.cross_attention_dim}), got {tuple(audio.shape)}"
            )
        dtype = self.compute_dtype
        x = x.to(dtype).transpose(1, 2).reshape(b * f, cfg.in_channels, h, w)
        context = audio.to(dtype).reshape(b * f, audio.shape[2], audio.shape[3]) if audio is not None else None

        t = torch.as_tensor(timestep, device=x.device).reshape(-1).expand(b)
        temb = self.time_embedding(timestep_embedding(t, cfg.block_out_channels[0]).to(dtype))
        temb = temb.repeat_interleave(f, dim=0)

        sample = self.conv_in(x)
        last_up = self.up_blocks[-1]
        if reuse_cache:
            if deep_cache is None or deep_cache.features is None:
                raise ValueError("DeepCache reuse requested before a full step filled the cache")
            hidden = last_up(deep_cache.features, [sample], temb, context, f, start_layer=len(last_up.resnets) - 1)
        else:
            skips = [sample]
            hidden = sample
            for block in self.down_blocks:
                hidden, outs = block(hidden, temb, context, f)
                skips.extend(outs)
            hidden = self.mid_block(hidden, temb, context, f)
            for block in self.up_blocks:
                n = len(block.resnets)
                block_skips, skips = skips[-n:], skips[:-n]
                size = tuple(skips[-1].shape[-2:]) if skips else None
                capture = deep_cache.store if (deep_cache is not None and block is last_up) else None
                hidden = block(hidden, block_skips, temb, context, f, upsample_size=size, before_last_layer=capture)

        out = self.conv_out(F.silu(video_group_norm(self.conv_norm_out, hidden, f)))
        return out.reshape(b, f, cfg.out_channels, h, w).transpose(1, 2)
