"""HuMo "focus-by-predicting" mask-predictor heads (paper §3.3), optional heads on a core HuMo model.

The paper trains a face-mask predictor ``M_pred = F_mask(h_z)`` as a soft regulariser of the audio
cross-attention: heads sit right after the audio cross-attention of the LAST 4 DiT blocks, each estimates
per latent token the probability that the token lies on the face, and the 4 outputs are averaged
(training loss: ``L_mask = (h w / sum M_gt) * BCE(M_pred, M_gt)``). The released checkpoints carry no
heads; a checkpoint that does (a fine-tune that kept them) stores them, in the DiT's key space, as

    mask_predictor.{k}.norm.weight   [dim]     LayerNorm(dim, eps 1e-6) gain
    mask_predictor.{k}.norm.bias     [dim]
    mask_predictor.{k}.proj.weight   [1, dim]  one logit per token
    mask_predictor.{k}.proj.bias     [1]

where head k (0 .. K-1, K = 4 in the paper) reads block ``num_layers - K + k``. Per token,
``M_pred = mean_k sigmoid(proj_k(norm_k(h_k)))``.

At inference the heads are attached to the core diffusion model as ``diffusion_model.mask_predictor`` (so
ComfyUI loads and offloads them with the model) and a ModelPatcher patch wraps the audio cross-attention
of the last K blocks to evaluate them on the block's post-audio hidden states; the recorder keeps the
average of the most-conditioned guidance pass of the latest step, which becomes a MASK per video frame.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass

import comfy.ops
import comfy.patcher_extension
import torch
import torch.nn.functional as F

from .humo_focus import GRID_KEY, record_grid

PREFIX = "mask_predictor."
PAPER_HEADS = 4
NORM_EPS = 1e-6
WRAPPER_KEY = "humanvideo_humo_mask_predictor"
VAE_STRIDE_T = 4
_KEY = re.compile(r"^mask_predictor\.(\d+)\.(norm\.weight|norm\.bias|proj\.weight|proj\.bias)$")


@dataclass(frozen=True)
class MaskPredictorConfig:
    dim: int
    heads: int = PAPER_HEADS

    def first_block(self, num_layers: int) -> int:
        """Index of the DiT block head 0 reads (the heads cover the last ``heads`` blocks)."""
        return num_layers - self.heads


def key_manifest(cfg: MaskPredictorConfig) -> dict[str, tuple[int, ...]]:
    """Key -> shape of the heads in a checkpoint (DiT key space, no ``diffusion_model.`` prefix)."""
    m: dict[str, tuple[int, ...]] = {}
    for k in range(cfg.heads):
        m[f"{PREFIX}{k}.norm.weight"] = (cfg.dim,)
        m[f"{PREFIX}{k}.norm.bias"] = (cfg.dim,)
        m[f"{PREFIX}{k}.proj.weight"] = (1, cfg.dim)
        m[f"{PREFIX}{k}.proj.bias"] = (1,)
    return m


def split_state_dict(sd: dict[str, torch.Tensor]) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    """(DiT tensors, mask-predictor tensors) of a core-layout state dict; the input is not modified."""
    heads = {k: v for k, v in sd.items() if k.startswith(PREFIX)}
    rest = {k: v for k, v in sd.items() if not k.startswith(PREFIX)}
    return rest, heads


def infer_config(
    heads_sd: dict[str, torch.Tensor], dim: int, num_layers: int, source: str = "checkpoint"
) -> MaskPredictorConfig:
    """Validates the head tensors against the DiT (width, count <= blocks, complete) and returns their config."""
    bad = [k for k in heads_sd if not _KEY.match(k)]
    if bad:
        raise ValueError(
            f"{source}: unknown mask-predictor tensors {bad[:4]}; expected "
            f"{PREFIX}{{k}}.norm.weight/.norm.bias/.proj.weight/.proj.bias"
        )
    indexes = sorted({int(_KEY.match(k).group(1)) for k in heads_sd})
    if indexes != list(range(len(indexes))):
        raise ValueError(f"{source}: mask-predictor heads must be numbered 0..K-1, found {indexes}")
    cfg = MaskPredictorConfig(dim=dim, heads=len(indexes))
    if not 1 <= cfg.heads <= num_layers:
        raise ValueError(f"{source}: {cfg.heads} mask-predictor heads for a DiT with {num_layers} blocks")
    manifest = key_manifest(cfg)
    missing = [k for k in manifest if k not in heads_sd]
    if missing:
        raise ValueError(f"{source}: incomplete mask predictor, missing {missing[:4]}")
    wrong = [
        f"{k} {tuple(heads_sd[k].shape)} (expected {s})" for k, s in manifest.items() if tuple(heads_sd[k].shape) != s
    ]
    if wrong:
        raise ValueError(f"{source}: mask-predictor tensors do not fit the DiT width {dim}: {wrong[:3]}")
    return cfg


class MaskHead(torch.nn.Module):
    """One head: LayerNorm then a per-token logit."""

    def __init__(self, dim: int, operations=comfy.ops.manual_cast, device=None, dtype=None) -> None:
        super().__init__()
        self.norm = operations.LayerNorm(dim, eps=NORM_EPS, elementwise_affine=True, device=device, dtype=dtype)
        self.proj = operations.Linear(dim, 1, device=device, dtype=dtype)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        """[B, L, dim] -> face probability [B, L]."""
        return torch.sigmoid(self.proj(self.norm(h)).float())[..., 0]


class MaskPredictor(torch.nn.ModuleList):
    """K heads, registered as ``0 .. K-1`` so the module's keys are the checkpoint's (``mask_predictor.{k}.*``
    once hung on the diffusion model). ``forward`` takes the post-audio-attention states of the last K
    blocks, oldest first."""

    def __init__(self, cfg: MaskPredictorConfig, operations=comfy.ops.manual_cast, device=None, dtype=None) -> None:
        super().__init__(MaskHead(cfg.dim, operations, device, dtype) for _ in range(cfg.heads))
        self.cfg = cfg

    def forward(self, hidden: list[torch.Tensor]) -> torch.Tensor:
        if len(hidden) != self.cfg.heads:
            raise ValueError(f"mask predictor: {len(hidden)} hidden states for {self.cfg.heads} heads")
        return torch.stack([head(h) for head, h in zip(self, hidden, strict=True)]).mean(0)

    def load_checkpoint(self, heads_sd: dict[str, torch.Tensor]) -> None:
        self.load_state_dict({k[len(PREFIX) :]: v for k, v in heads_sd.items()}, strict=True)

    def checkpoint_state_dict(self) -> dict[str, torch.Tensor]:
        return {PREFIX + k: v for k, v in self.state_dict().items()}


# --- on a core MODEL ---------------------------------------------------------------------------------


def attach(model_patcher, heads_sd: dict[str, torch.Tensor], source: str = "checkpoint") -> MaskPredictor:
    """Builds the heads from checkpoint tensors and hangs them on the diffusion model (weights in fp32,
    cast to the compute dtype on use, stored where the DiT's weights are so offloading moves them too)."""
    dm = model_patcher.model.diffusion_model
    if not hasattr(dm, "audio_proj"):
        raise ValueError("model: mask-predictor heads need a HuMo model")
    cfg = infer_config(heads_sd, dm.dim, len(dm.blocks), source)
    device = dm.patch_embedding.weight.device
    predictor = MaskPredictor(cfg, device=device, dtype=torch.float32)
    predictor.load_checkpoint({k: v.to(device, torch.float32) for k, v in heads_sd.items()})
    dm.mask_predictor = predictor
    logging.info(
        "HumanVideo: %s carries %d mask-predictor heads (blocks %d..%d)",
        source,
        cfg.heads,
        cfg.first_block(len(dm.blocks)),
        len(dm.blocks) - 1,
    )
    return predictor


def predictor_of(model_patcher) -> MaskPredictor | None:
    dm = model_patcher.model.diffusion_model
    predictor = getattr(dm, "mask_predictor", None)
    return predictor if isinstance(predictor, MaskPredictor) else None


class MaskRecorder:
    """Collects the head outputs of each forward; keeps the average of the target guidance pass.

    ``target`` is the index of the pass (in the list handed to core's ``calc_cond_batch``) whose mask
    is wanted; ``None`` keeps the whole batch.
    """

    def __init__(self, cfg: MaskPredictorConfig) -> None:
        self.cfg = cfg
        self.target: int | None = None
        self._sum: torch.Tensor | None = None
        self._seen = 0
        self.latest: torch.Tensor | None = None  # [B, L] face probability per token
        self.grid: tuple[int, int, int, int] | None = None  # (frames, h, w, appended) of ``latest``
        self.evaluations = 0

    def add(self, k: int, probs: torch.Tensor, transformer_options: dict) -> None:
        if k == 0:
            self._sum, self._seen = torch.zeros_like(probs), 0
        if self._sum is None or self._sum.shape != probs.shape:
            raise RuntimeError("mask predictor: heads were evaluated out of order")
        self._sum += probs
        self._seen += 1
        if k < self.cfg.heads - 1:
            return
        if self._seen != self.cfg.heads:
            raise RuntimeError(f"mask predictor: {self._seen} of {self.cfg.heads} heads ran in this forward")
        mean = self._sum / self.cfg.heads
        self._sum = None
        chunks_of = transformer_options.get("cond_or_uncond")
        if self.target is not None and chunks_of:
            if self.target not in chunks_of:
                return
            mean = mean.chunk(len(chunks_of))[chunks_of.index(self.target)]
        self.latest = mean.detach()
        self.grid = transformer_options.get(GRID_KEY)
        self.evaluations += 1


class MaskCapturingAudioCrossAttention(torch.nn.Module):
    """Runs the block's (possibly focus-patched) audio cross-attention, then head k on its output.

    Exposes the wrapped module's ``audio_cross_attn`` / ``norm1_audio`` under the same names so weight
    patches (LoRA) and offloading still find them; the wrapped module and the heads are not registered
    as children, so the key paths of the model do not change.
    """

    def __init__(self, inner: torch.nn.Module, k: int, predictor: MaskPredictor, recorder: MaskRecorder) -> None:
        super().__init__()
        self.audio_cross_attn = inner.audio_cross_attn
        self.norm1_audio = inner.norm1_audio
        self._refs = (inner, predictor)
        self.k = k
        self.recorder = recorder

    def forward(self, x: torch.Tensor, audio: torch.Tensor, transformer_options={}) -> torch.Tensor:
        inner, predictor = self._refs
        out = inner(x, audio, transformer_options=transformer_options)
        self.recorder.add(self.k, predictor[self.k](out), transformer_options)
        return out


def apply_mask_capture(model_patcher, recorder: MaskRecorder):
    """A clone of a HuMo MODEL (with heads) that feeds ``recorder``; apply it after any focus patch."""
    predictor = predictor_of(model_patcher)
    if predictor is None:
        raise ValueError("model: this HuMo model has no mask-predictor heads")
    m = model_patcher.clone()
    dm = m.get_model_object("diffusion_model")
    first = predictor.cfg.first_block(len(dm.blocks))
    for k in range(predictor.cfg.heads):
        name = f"diffusion_model.blocks.{first + k}.audio_cross_attn_wrapper"
        m.add_object_patch(name, MaskCapturingAudioCrossAttention(m.get_model_object(name), k, predictor, recorder))
    m.remove_wrappers_with_key(comfy.patcher_extension.WrappersMP.DIFFUSION_MODEL, WRAPPER_KEY)
    m.add_wrapper_with_key(comfy.patcher_extension.WrappersMP.DIFFUSION_MODEL, WRAPPER_KEY, record_grid)
    return m


def tokens_to_mask(
    probs: torch.Tensor, grid: tuple[int, int, int, int], video_latent_frames: int, width: int, height: int
) -> torch.Tensor:
    """Per-token probabilities [B, frames * h * w] -> MASK [B * F, height, width] for F = 4 (T_lat - 1) + 1
    video frames: reference frames dropped, each latent frame spread over the video frames it covers
    (frame 0 alone, then 4 each, as Wan's causal VAE), bilinear up to pixels."""
    frames, h, w, _ = grid
    if probs.ndim != 2 or probs.shape[1] != frames * h * w:
        raise ValueError(f"mask predictor: {tuple(probs.shape)} probabilities do not fit the grid {frames}x{h}x{w}")
    if not 1 <= video_latent_frames <= frames:
        raise ValueError(f"mask predictor: {video_latent_frames} video latent frames, grid has {frames}")
    b = probs.shape[0]
    lat = probs.float().reshape(b, frames, h, w)[:, :video_latent_frames]
    video_frames = VAE_STRIDE_T * (video_latent_frames - 1) + 1
    index = (torch.arange(video_frames, device=lat.device) + VAE_STRIDE_T - 1) // VAE_STRIDE_T
    per_frame = lat[:, index].reshape(b * video_frames, 1, h, w)
    pixels = F.interpolate(per_frame, size=(height, width), mode="bilinear", align_corners=False)
    return pixels[:, 0].clamp(0.0, 1.0)
