"""Focus on the face: spatially weighted HuMo audio cross-attention, and several speakers.

HuMo adds, in every DiT block, ``x = x + audio_cross_attn(norm1_audio(x), audio)`` where each latent
frame's tokens attend only to that frame's 16 audio tokens. The paper's "focus-by-predicting" trains a
face-mask predictor as a soft regulariser so that this residual concentrates on the face; the released
checkpoints carry no predictor. At inference we let the user (or a face detector) supply the region:

    x = x + w * audio_cross_attn(norm1_audio(x), audio),   w = 1 - strength * (1 - mask)

per spatial token, so strength 0 (or no mask) is exactly the official block. With K speakers the audio
context holds K tracks stacked along frames, and region j listens to track j:

    x = x + sum_j w_j * audio_cross_attn(norm1_audio(x), audio_j),
    w_j = strength * p_j + (1 - strength) / K,   p_j = m_j / max(1, sum_i m_i)

The block is swapped with ModelPatcher object patches (the weights stay the original modules, under
the original key paths, so LoRA patches and offloading keep working), and a diffusion-model wrapper
tells the blocks the latent grid of the current call.
"""

from __future__ import annotations

from dataclasses import dataclass

import comfy.patcher_extension
import torch
import torch.nn.functional as F

from . import humo_spec
from .humo_spec import AUDIO_TOKENS, latent_frames

GRID_KEY = "hv_humo_grid"
WRAPPER_KEY = "humanvideo_humo_focus"


@dataclass
class FocusConfig:
    """masks: per speaker, [T_lat, H, W] in 0..1 (already grouped per latent frame) or None (everywhere)."""

    masks: list[torch.Tensor | None]
    strength: float
    video_latent_frames: int

    def __post_init__(self) -> None:
        if not self.masks:
            raise ValueError("focus: needs at least one speaker")
        if not 0.0 <= self.strength <= 1.0:
            raise ValueError(f"focus strength: must be within 0..1, got {self.strength}")
        if len(self.masks) > 1 and any(m is None for m in self.masks):
            raise ValueError("focus: with several speakers every speaker needs a mask")

    @property
    def speakers(self) -> int:
        return len(self.masks)

    @property
    def is_identity(self) -> bool:
        return self.speakers == 1 and (self.masks[0] is None or self.strength == 0.0)


def mask_per_latent_frame(mask: torch.Tensor, video_frames: int) -> torch.Tensor:
    """MASK [N, H, W] (N = 1: static, else one per video frame) -> [T_lat, H, W].

    Latent 0 covers video frame 0 and latent i >= 1 covers frames 4i-3..4i (Wan's causal 4x), so a
    latent frame gets the mean of the masks of the frames it covers. Missing frames repeat the last.
    """
    if mask.ndim == 2:
        mask = mask[None]
    if mask.ndim != 3:
        raise ValueError(f"focus mask: expected MASK [frames, H, W], got {tuple(mask.shape)}")
    mask = mask.float().clamp(0, 1)
    t_lat = latent_frames(video_frames)
    if mask.shape[0] == 1:
        return mask.expand(t_lat, -1, -1).clone()
    out = []
    for i in range(t_lat):
        frames = [0] if i == 0 else list(range(humo_spec.video_frames(i), humo_spec.video_frames(i + 1)))
        idx = torch.tensor([min(f, mask.shape[0] - 1) for f in frames])
        out.append(mask[idx].mean(0))
    return torch.stack(out)


def token_weights(cfg: FocusConfig, frames: int, h: int, w: int, device, dtype) -> torch.Tensor:
    """[K, frames * h * w, 1] residual weights per speaker; frames past the video (reference) are uniform."""
    k, s = cfg.speakers, cfg.strength
    t_vid = min(cfg.video_latent_frames, frames)
    probs = torch.full((k, frames, h, w), 1.0 / k)
    if all(m is not None for m in cfg.masks):
        grids = []
        for m in cfg.masks:
            m = m[:t_vid]
            if m.shape[0] < t_vid:
                m = torch.cat([m, m[-1:].expand(t_vid - m.shape[0], -1, -1)])
            grids.append(F.interpolate(m[:, None], size=(h, w), mode="area")[:, 0])
        g = torch.stack(grids)  # [K, t_vid, h, w]
        if k == 1:
            weight = 1.0 - s * (1.0 - g)
        else:
            p = g / g.sum(0, keepdim=True).clamp(min=1.0)
            weight = s * p + (1.0 - s) / k
        probs[:, :t_vid] = weight
        if k == 1:
            probs[:, t_vid:] = 1.0
    return probs.reshape(k, -1, 1).to(device=device, dtype=dtype)


class FocusedAudioCrossAttention(torch.nn.Module):
    """Drop-in for core's AudioCrossAttentionWrapper that shares its submodules (same key paths)."""

    def __init__(self, original: torch.nn.Module, cfg: FocusConfig) -> None:
        super().__init__()
        self.audio_cross_attn = original.audio_cross_attn
        self.norm1_audio = original.norm1_audio
        self.cfg = cfg
        self._cache: tuple | None = None

    def set_config(self, cfg: FocusConfig) -> None:
        if cfg.speakers != self.cfg.speakers:
            raise ValueError(f"focus: {cfg.speakers} speaker region(s) for a model set up for {self.cfg.speakers}")
        self.cfg = cfg
        self._cache = None

    def _weights(self, grid: tuple[int, int, int, int], device, dtype) -> torch.Tensor:
        key = (grid, device, dtype)
        if self._cache is None or self._cache[0] != key:
            frames, h, w, _ = grid
            self._cache = (key, token_weights(self.cfg, frames, h, w, device, dtype))
        return self._cache[1]

    def forward(self, x: torch.Tensor, audio: torch.Tensor, transformer_options={}) -> torch.Tensor:
        grid = transformer_options.get(GRID_KEY)
        y = self.norm1_audio(x)
        if grid is None or self.cfg.is_identity:
            if self.cfg.speakers > 1:
                raise RuntimeError("focus: several speakers need the HuMo focus wrapper on the model")
            return x + self.audio_cross_attn(y, audio, transformer_options=transformer_options)
        frames, h, w, appended = grid
        if x.shape[1] != frames * h * w:
            raise RuntimeError(f"focus: {x.shape[1]} tokens do not match the latent grid {frames}x{h}x{w}")
        weights = self._weights(grid, x.device, x.dtype)
        k = self.cfg.speakers
        n_audio = audio.shape[1] // AUDIO_TOKENS
        per = (n_audio - appended) // k
        if per * k + appended != n_audio or per + appended != frames:
            raise RuntimeError(
                f"focus: {n_audio} audio frames cannot be split into {k} speakers for {frames} latent frames"
            )
        tail = audio[:, k * per * AUDIO_TOKENS :]
        out = x
        for j in range(k):
            track = audio[:, j * per * AUDIO_TOKENS : (j + 1) * per * AUDIO_TOKENS]
            if appended:
                track = torch.cat([track, tail], dim=1)
            out = out + weights[j] * self.audio_cross_attn(y, track, transformer_options=transformer_options)
        return out


def record_grid(executor, x, timestep, context, clip_fea=None, time_dim_concat=None, transformer_options={}, **kwargs):
    """Diffusion-model wrapper: puts (frames, h, w, appended reference frames) of the token grid in
    transformer_options."""
    appended = 0
    ref = kwargs.get("reference_latent")
    if ref is not None and ref.ndim == 5:
        appended = ref.shape[2]  # HumoWanModel appends these frames' tokens after the video
    p = 2  # Wan patch size (1, 2, 2)
    grid = (x.shape[2] + appended, (x.shape[3] + p - 1) // p, (x.shape[4] + p - 1) // p, appended)
    transformer_options = {**transformer_options, GRID_KEY: grid}
    return executor(x, timestep, context, clip_fea, time_dim_concat, transformer_options, **kwargs)


def apply_focus(model_patcher, cfg: FocusConfig, updatable: bool = False):
    """A clone of a HuMo MODEL whose audio cross-attention follows ``cfg``; the input is left untouched.

    ``updatable`` patches the blocks even for an identity focus, so :func:`set_focus` can change it later.
    """
    m = model_patcher.clone()
    if cfg.is_identity and not updatable:
        return m
    dm = m.get_model_object("diffusion_model")
    if not hasattr(dm, "audio_proj"):
        raise ValueError("model: focus needs a HuMo model (no audio cross-attention found)")
    for i in range(len(dm.blocks)):
        name = f"diffusion_model.blocks.{i}.audio_cross_attn_wrapper"
        m.add_object_patch(name, FocusedAudioCrossAttention(m.get_model_object(name), cfg))
    m.remove_wrappers_with_key(comfy.patcher_extension.WrappersMP.DIFFUSION_MODEL, WRAPPER_KEY)
    m.add_wrapper_with_key(comfy.patcher_extension.WrappersMP.DIFFUSION_MODEL, WRAPPER_KEY, record_grid)
    return m


def set_focus(model_patcher, cfg: FocusConfig) -> int:
    """Changes, in place, the focus of a MODEL patched by :func:`apply_focus`; it holds from the next forward.

    The patched blocks are the objects the loaded model runs, so this works mid-sampling. Returns how many
    blocks were updated (0: the model carries no focus patch).
    """
    blocks = [p for p in model_patcher.object_patches.values() if isinstance(p, FocusedAudioCrossAttention)]
    for block in blocks:
        block.set_config(cfg)
    return len(blocks)
