"""LatentSync end to end on a face-tracked video: length alignment, VAE, denoising, paste-back.

Work is done chunk by chunk (16 output frames): only latents (a few KB per frame) are kept for the whole
video, so memory does not grow with its length beyond the output frames themselves.
Official steps (LipsyncPipeline.__call__): crops normalised to [-1, 1]; masked = crop * keep-mask;
reference = the same unmasked crop; both VAE-encoded by sampling and scaled by 0.18215; one noise frame
repeated over the video; DDIM; decoded crop = decoded * (1 - keep) + crop * keep; inverse warp.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import comfy.model_management as mm
import torch
import torch.nn.functional as F

from ..media.face_track import FaceTrack, crop_frames, paste_frames
from ..media.mouth_mask import keep_mask
from .latentsync_denoise import CHUNK_FRAMES, DenoiseSettings, denoise_latents, initial_noise

SD_VAE_SCALE = 0.18215
SHORT_VIDEO_MODES = ("pingpong", "loop", "hold")
LONG_VIDEO_MODES = ("cut", "keep")


@dataclass(frozen=True)
class LengthPlan:
    source_index: list[int]  # output frame -> source frame
    synced: int  # the first `synced` output frames get new lips; the rest pass through
    note: str


def plan_length(
    video_frames: int, audio_frames: int, short_video: str = "pingpong", long_video: str = "cut"
) -> LengthPlan:
    """Which source frame each output frame shows, as in the official `loop_video` for ping-pong."""
    if video_frames < 1:
        raise ValueError("the video has no frames")
    if audio_frames < 1:
        raise ValueError("the audio is shorter than one video frame")
    if short_video not in SHORT_VIDEO_MODES:
        raise ValueError(f"short_video must be one of {SHORT_VIDEO_MODES}, got {short_video!r}")
    if long_video not in LONG_VIDEO_MODES:
        raise ValueError(f"long_video must be one of {LONG_VIDEO_MODES}, got {long_video!r}")
    n = video_frames
    if audio_frames <= n:
        total = audio_frames if long_video == "cut" else n
        note = (
            ""
            if audio_frames == n
            else f"video ({n} frames) longer than the audio ({audio_frames}): "
            + ("cut to the audio" if long_video == "cut" else "frames after the audio kept unchanged")
        )
        return LengthPlan(list(range(total)), audio_frames, note)
    if short_video == "pingpong":
        # forward, then the whole clip reversed, repeated (the official loop_video)
        index = [(i % (2 * n)) if (i % (2 * n)) < n else 2 * n - 1 - (i % (2 * n)) for i in range(audio_frames)]
    elif short_video == "loop":
        index = [i % n for i in range(audio_frames)]
    else:
        index = [min(i, n - 1) for i in range(audio_frames)]
    return LengthPlan(index, audio_frames, f"video ({n} frames) shorter than the audio ({audio_frames}): {short_video}")


def audio_frame_count(samples: int, sample_rate: int, fps: float) -> int:
    return max(0, int(round(samples / sample_rate * fps)))


def _vae_moments_encoder(vae):
    """The SD VAE's encoder up to the Gaussian moments, when core's model exposes it (for official sampling)."""
    model = vae.first_stage_model
    encoder, quant_conv = getattr(model, "encoder", None), getattr(model, "quant_conv", None)
    if encoder is None:
        return None
    return lambda x: quant_conv(encoder(x)) if quant_conv is not None else encoder(x)


def encode_sampled(vae, pixels: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """SD-VAE latents sampled from the posterior (official), scaled to model space. pixels: [N, H, W, 3] 0..1."""
    moments_of = _vae_moments_encoder(vae)
    if moments_of is None:
        return vae.encode(pixels)[:, :4].float() * SD_VAE_SCALE
    mm.load_models_gpu([vae.patcher])
    x = (pixels.movedim(-1, 1) * 2.0 - 1.0).to(device=vae.device, dtype=vae.vae_dtype)
    with torch.no_grad():
        moments = moments_of(x).float().cpu()
    mean, logvar = moments.chunk(2, dim=1)
    std = torch.exp(0.5 * logvar.clamp(-30.0, 20.0))
    noise = torch.randn(mean.shape, generator=generator, dtype=mean.dtype)
    return (mean + std * noise) * SD_VAE_SCALE


def decode(vae, latents: torch.Tensor) -> torch.Tensor:
    """Model-space latents -> [N, H, W, 3] 0..1."""
    images = vae.decode(latents / SD_VAE_SCALE)
    return images.reshape(-1, *images.shape[-3:])[..., :3].float().clamp(0, 1)


@dataclass(frozen=True)
class LipSyncResult:
    images: torch.Tensor
    report: str


@torch.no_grad()
def lip_sync(
    images: torch.Tensor,
    track: FaceTrack,
    audio_tokens: torch.Tensor,
    unet,
    vae,
    settings: DenoiseSettings,
    seed: int,
    short_video: str = "pingpong",
    long_video: str = "cut",
    paste_region: str = "mouth",
    progress: Callable[[int, int], None] | None = None,
) -> LipSyncResult:
    """images: [N, H, W, 3] video; track: its face track; audio_tokens: [n_audio_frames, tokens, d]."""
    if images.shape[0] != track.num_frames:
        raise ValueError(
            f"the face track has {track.num_frames} frames but the video has {images.shape[0]}; "
            "track the same frames you lip-sync"
        )
    if track.has_face.sum() == 0:
        raise ValueError("no face was found in any frame of the video")
    plan = plan_length(images.shape[0], audio_tokens.shape[0], short_video, long_video)
    synced_index = plan.source_index[: plan.synced]
    synced_track = track.select(synced_index)
    resolution = track.resolution
    keep = keep_mask(resolution)  # [R, R], 1 = keep
    latent_size = resolution // 8
    latent_keep = F.interpolate(keep[None, None], size=(latent_size, latent_size), mode="nearest")

    chunks = [range(s, min(s + CHUNK_FRAMES, plan.synced)) for s in range(0, plan.synced, CHUNK_FRAMES)]
    total = len(chunks) * (settings.steps + 2)
    done = 0

    def advance(amount: int = 1) -> None:
        nonlocal done
        done += amount
        if progress is not None:
            progress(done, total)

    generator = torch.Generator().manual_seed(int(seed))
    masked_latents, reference_latents = [], []
    for chunk in chunks:
        idx = list(chunk)
        crops = crop_frames(images[[synced_index[i] for i in idx]], synced_track.select(idx))
        reference_latents.append(encode_sampled(vae, crops, generator))
        masked_latents.append(encode_sampled(vae, crops * keep[None, :, :, None], generator))
        advance()

    steps_seen = 0

    def on_step(step_done: int, step_total: int) -> None:
        nonlocal steps_seen
        advance(step_done - steps_seen)
        steps_seen = step_done

    latents = denoise_latents(
        unet,
        torch.cat(masked_latents),
        torch.cat(reference_latents),
        latent_keep,
        audio_tokens[: plan.synced].float(),
        initial_noise(seed, latent_size, latent_size),
        settings,
        callback=on_step,
    )
    out = images[plan.source_index].clone() if plan.source_index != list(range(images.shape[0])) else images.clone()
    for chunk in chunks:
        idx = list(chunk)
        src = [synced_index[i] for i in idx]
        chunk_track = synced_track.select(idx)
        original = crop_frames(images[src], chunk_track)
        generated = decode(vae, latents[idx[0] : idx[-1] + 1])
        if generated.shape[1] != resolution:
            generated = (
                F.interpolate(generated.movedim(-1, 1), size=(resolution, resolution), mode="bicubic", antialias=True)
                .movedim(1, -1)
                .clamp(0, 1)
            )
        composed = generated * (1 - keep[None, :, :, None]) + original * keep[None, :, :, None]
        out[idx[0] : idx[-1] + 1] = paste_frames(images[src], composed, chunk_track, region=paste_region)
        advance()
    lines = [synced_track.summary()]
    if plan.note:
        lines.append(plan.note)
    lines.append(
        f"lip-synced {plan.synced} of {out.shape[0]} output frames in {len(chunks)} chunks of up to "
        f"{CHUNK_FRAMES}; {settings.steps} DDIM steps, guidance {settings.guidance}, seed {seed}"
    )
    return LipSyncResult(out, "\n".join(lines))
