"""LatentSync's denoising loop over a whole video, one independent 16-frame chunk at a time.

Per chunk (as `LipsyncPipeline.__call__` upstream): the UNet input is
cat([noisy 4, mask 1, masked-frame latents 4, reference latents 4]) in channels; with guidance > 1 a
second pass with zeroed audio is batched in front and eps = uncond + g * (cond - uncond); DDIM
updates the 4 noisy channels. Only one chunk lives on the device at a time, so memory does not grow
with the length of the video. Latents are in model space (VAE latents times 0.18215), frame-major
(frames, 4, h, w) like ComfyUI image latents.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import comfy.model_management as mm
import comfy.model_patcher
import torch

from ..models.latentsync_unet import DeepCache, LatentSyncUNet3D
from .ddim import DDIMSampler, DDIMSchedule

CHUNK_FRAMES = 16
DEFAULT_SCHEDULE = DDIMSchedule()  # LatentSync's scheduler config (frozen, shared)
ProgressCallback = Callable[[int, int], None]


@dataclass(frozen=True)
class DenoiseSettings:
    steps: int = 20
    guidance: float = 1.5
    deepcache_interval: int = 0  # 0 or 1: off; upstream's DeepCache uses 3
    chunk_frames: int = CHUNK_FRAMES

    def validate(self) -> None:
        if not isinstance(self.steps, int) or self.steps < 1:
            raise ValueError(f"steps must be a positive integer, got {self.steps!r}")
        if not (self.guidance >= 1.0):
            raise ValueError(f"guidance must be >= 1.0 (1.0 = no unconditional pass), got {self.guidance!r}")
        if not isinstance(self.deepcache_interval, int) or self.deepcache_interval < 0:
            raise ValueError(f"deepcache_interval must be an integer >= 0, got {self.deepcache_interval!r}")
        if not isinstance(self.chunk_frames, int) or self.chunk_frames < 1:
            raise ValueError(f"chunk_frames must be a positive integer, got {self.chunk_frames!r}")


def initial_noise(seed: int, height: int, width: int, channels: int = 4) -> torch.Tensor:
    """One (1, channels, h, w) noise frame; upstream repeats a single frame over the whole video."""
    g = torch.Generator(device="cpu").manual_seed(int(seed) & 0xFFFF_FFFF_FFFF_FFFF)
    return torch.randn((1, channels, height, width), generator=g, dtype=torch.float32)


def _check(name: str, t: torch.Tensor, frames: int, channels: int, hw: tuple[int, int], allow_single: bool) -> None:
    if not isinstance(t, torch.Tensor) or t.ndim != 4:
        raise ValueError(f"{name} must be a (frames, {channels}, h, w) tensor, got {getattr(t, 'shape', type(t))}")
    if t.shape[1] != channels or tuple(t.shape[2:]) != hw:
        raise ValueError(f"{name} has shape {tuple(t.shape)}; expected (frames, {channels}, {hw[0]}, {hw[1]})")
    if t.shape[0] != frames and not (allow_single and t.shape[0] == 1):
        raise ValueError(f"{name} has {t.shape[0]} frames; expected {frames}" + (" or 1" if allow_single else ""))


def _frames(t: torch.Tensor, start: int, end: int) -> torch.Tensor:
    return t.expand(end - start, *t.shape[1:]) if t.shape[0] == 1 else t[start:end]


def _resolve(unet: comfy.model_patcher.ModelPatcher | LatentSyncUNet3D) -> tuple[LatentSyncUNet3D, torch.device]:
    if isinstance(unet, comfy.model_patcher.ModelPatcher):
        mm.load_models_gpu([unet])
        return unet.model, unet.load_device
    if isinstance(unet, LatentSyncUNet3D):
        return unet, next(unet.parameters()).device
    raise ValueError(f"unet must be a LatentSync UNet (HV_LATENTSYNC_UNET), got {type(unet).__name__}")


@torch.no_grad()
def denoise_latents(
    unet: comfy.model_patcher.ModelPatcher | LatentSyncUNet3D,
    masked_latents: torch.Tensor,
    reference_latents: torch.Tensor,
    mask: torch.Tensor,
    audio: torch.Tensor,
    noise: torch.Tensor,
    settings: DenoiseSettings = DenoiseSettings(),
    callback: ProgressCallback | None = None,
    schedule: DDIMSchedule = DEFAULT_SCHEDULE,
) -> torch.Tensor:
    """Denoise every frame; returns (frames, 4, h, w) float32 latents on ComfyUI's intermediate device.

    masked_latents, reference_latents: (N, 4, h, w) model-space latents of the masked / reference faces.
    mask: (N or 1, 1, h, w) at latent size, 1 = keep, 0 = regenerate (upstream's fixed mask).
    audio: (N, tokens, d) audio embeddings per video frame (LatentSync: (N, 50, 384)).
    noise: (N or 1, 4, h, w) starting noise (init_noise_sigma is 1 for DDIM).
    callback(done, total) is called after every step of every chunk; ComfyUI interrupts are honoured.
    """
    settings.validate()
    model, device = _resolve(unet)
    cfg = model.config
    latent_ch = cfg.out_channels
    if cfg.in_channels != 3 * latent_ch + 1:
        raise ValueError(f"this UNet takes {cfg.in_channels} input channels; LatentSync needs 3 x {latent_ch} + 1")
    if not isinstance(masked_latents, torch.Tensor) or masked_latents.ndim != 4:
        raise ValueError(f"masked_latents must be a (frames, {latent_ch}, h, w) tensor")
    n = masked_latents.shape[0]
    hw = tuple(masked_latents.shape[2:])
    if n < 1:
        raise ValueError("masked_latents has no frames")
    _check("masked_latents", masked_latents, n, latent_ch, hw, False)
    _check("reference_latents", reference_latents, n, latent_ch, hw, False)
    _check("mask", mask, n, 1, hw, True)
    _check("noise", noise, n, latent_ch, hw, True)
    if not isinstance(audio, torch.Tensor) or audio.ndim != 3 or audio.shape[0] != n:
        raise ValueError(f"audio must be (frames={n}, tokens, dim), got {getattr(audio, 'shape', type(audio))}")
    if cfg.add_audio_layer and audio.shape[-1] != cfg.cross_attention_dim:
        raise ValueError(f"audio features are {audio.shape[-1]}-d but this UNet expects {cfg.cross_attention_dim}-d")
    max_chunk = cfg.motion.max_frames if (cfg.has_motion_modules and cfg.motion.position_encoding) else None
    if max_chunk is not None and settings.chunk_frames > max_chunk:
        raise ValueError(f"chunk_frames={settings.chunk_frames} exceeds the motion modules' {max_chunk} positions")

    sampler = DDIMSampler(settings.steps, schedule)
    use_cfg = settings.guidance > 1.0
    interval = settings.deepcache_interval
    chunks = [(s, min(s + settings.chunk_frames, n)) for s in range(0, n, settings.chunk_frames)]
    total = len(chunks) * len(sampler.timesteps)
    done = 0
    dtype = model.compute_dtype
    out = torch.empty((n, latent_ch) + hw, dtype=torch.float32, device=mm.intermediate_device())

    def to_video(t: torch.Tensor) -> torch.Tensor:  # (f, c, h, w) -> (1, c, f, h, w)
        return t.to(device=device, dtype=dtype).transpose(0, 1).unsqueeze(0)

    for start, end in chunks:
        cond = torch.cat(
            [
                to_video(_frames(mask, start, end)),
                to_video(masked_latents[start:end]),
                to_video(reference_latents[start:end]),
            ],
            dim=1,
        )
        chunk_audio = audio[start:end].to(device=device, dtype=dtype).unsqueeze(0)
        if use_cfg:
            cond = torch.cat([cond, cond])
            chunk_audio = torch.cat([torch.zeros_like(chunk_audio), chunk_audio])
        if not cfg.add_audio_layer:
            chunk_audio = None
        # DDIM math in float32 whatever the UNet runs in.
        x = _frames(noise, start, end).to(device=device, dtype=torch.float32).transpose(0, 1).unsqueeze(0)
        cache = DeepCache() if interval > 1 else None
        for j, t in enumerate(sampler.timesteps):
            mm.throw_exception_if_processing_interrupted()
            x_in = torch.cat([x, x]) if use_cfg else x
            model_in = torch.cat([x_in.to(dtype), cond], dim=1)
            reuse = cache is not None and j % interval != 0
            eps = model(model_in, t, chunk_audio, deep_cache=cache, reuse_cache=reuse).float()
            if use_cfg:
                uncond, audio_cond = eps.chunk(2)
                eps = uncond + settings.guidance * (audio_cond - uncond)
            x = sampler.step(eps, t, x)
            done += 1
            if callback is not None:
                callback(done, total)
        out[start:end] = x[0].transpose(0, 1).to(out.device)
    return out
