"""LatentSync end to end on a face-tracked video: frame plan, VAE, denoising, paste-back.

Work is done chunk by chunk (16 processed frames): only latents (a few KB per frame) are kept for the
whole video, so memory does not grow with its length beyond the output frames themselves.
Official steps (bytedance/LatentSync a229c39 `latentsync/pipelines/lipsync_pipeline.py`, `__call__`
and `latentsync/utils/image_processor.py:73-80`): crops normalised to [-1, 1]; masked = crop * keep-mask,
so the regenerated region is 0, i.e. mid-grey; reference = the same unmasked crop; both VAE-encoded by
sampling and scaled by 0.18215 (masked first, lines 404-422); one noise frame repeated over the video;
DDIM; decoded crop = decoded * (1 - keep) + crop * keep (lines 454-457); the whole crop warped back.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import comfy.model_management as mm
import torch
import torch.nn.functional as F

from ..loaders.sd_vae import SD_VAE_SCALE
from ..media.face_track import FaceTrack, crop_frames, paste_frames
from ..media.frame_rate import OFFICIAL_FPS
from ..media.mouth_mask import keep_mask
from ..models.audio_features import (
    LatentSyncAudioWindows,
    latentsync_audio_windows,
    latentsync_official_frame_count,
)
from .latentsync_denoise import CHUNK_FRAMES, DenoiseSettings, denoise_latents, initial_noise
from .latentsync_timeline import LENGTH_MODES, Timeline, audio_frame_count


def lip_sync_audio_windows(
    audio_features, length: str = "official", lazy: bool = False
) -> torch.Tensor | LatentSyncAudioWindows:
    """One Whisper-tiny window per 25 fps frame the lip sync produces, [frames, 50, 384] (``lazy``: a
    `LatentSyncAudioWindows` that gathers rows on demand, for videos of any length).

    length "official": as many frames as the official code makes windows (floor(T / 2) + 2 for T
    Whisper positions, `latentsync_official_frame_count`); "audio": the speech's duration in whole frames.
    """
    if audio_features.d_model != 384:
        raise ValueError(
            f"audio_features come from {audio_features.model_name} (width {audio_features.d_model}); LatentSync "
            "needs Whisper-tiny features (width 384): load tiny.pt with Load Whisper"
        )
    if length not in LENGTH_MODES:
        raise ValueError(f"length must be one of {list(LENGTH_MODES)}, got {length!r}")
    if length == "official":
        n_audio = latentsync_official_frame_count(audio_features.num_positions, OFFICIAL_FPS)
    else:
        n_audio = audio_frame_count(audio_features.num_samples, audio_features.sample_rate, OFFICIAL_FPS)
    if n_audio < 1 or audio_features.num_positions < 1:
        raise ValueError(f"the audio ({audio_features.duration:.3f} s) is shorter than one 25 fps frame")
    return latentsync_audio_windows(audio_features, OFFICIAL_FPS, n_audio, lazy=lazy)


def grey_masked(crops: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
    """The official masked image in [0, 1] pixels: the regenerated region is mid-grey (0.5), not black.

    Upstream multiplies the crop *after* normalising it to [-1, 1] (image_processor.py:78-79), so the
    masked pixels are 0 in [-1, 1]; in [0, 1] that is crop * keep + 0.5 * (1 - keep), also where the
    mask is fractional. crops: [N, R, R, 3] in [0, 1]; keep: [R, R], 1 = keep.
    """
    k = keep[None, :, :, None].to(crops.dtype)
    return crops * k + 0.5 * (1.0 - k)


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


def decode_crops(vae, latents: torch.Tensor, resolution: int) -> torch.Tensor:
    """Model-space latents -> [N, R, R, 3] face crops in 0..1 at the track's crop size."""
    generated = decode(vae, latents)
    if generated.shape[1] != resolution:
        generated = (
            F.interpolate(generated.movedim(-1, 1), size=(resolution, resolution), mode="bicubic", antialias=True)
            .movedim(1, -1)
            .clamp(0, 1)
        )
    return generated


def with_new_mouth(generated: torch.Tensor, original: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
    """The decoded crop where the mouth mask regenerates, the original crop where it keeps (official
    `decoded * (1 - mask) + crop * mask`). keep: [R, R], 1 = keep; crops [..., R, R, 3]."""
    keep_px = keep[:, :, None]
    return generated * (1 - keep_px) + original * keep_px


def latent_keep_mask(keep: torch.Tensor, resolution: int) -> torch.Tensor:
    """The keep mask at latent size, [1, 1, R / 8, R / 8], as the UNet's mask channel."""
    latent_size = resolution // 8
    return F.interpolate(keep[None, None], size=(latent_size, latent_size), mode="nearest")


def check_lip_sync_inputs(num_frames: int, track: FaceTrack, audio_tokens: torch.Tensor, timeline: Timeline) -> None:
    if num_frames != track.num_frames:
        raise ValueError(
            f"the face track has {track.num_frames} frames but the video has {num_frames}; "
            "track the same frames you lip-sync"
        )
    if track.has_face.sum() == 0:
        raise ValueError("no face was found in any frame of the video")
    if audio_tokens.shape[0] != timeline.synced:
        raise ValueError(f"{audio_tokens.shape[0]} audio windows for {timeline.synced} processed frames")


def process_track_of(track: FaceTrack, timeline: Timeline) -> FaceTrack:
    """The track of the processed (25 fps) frames, one entry per processed frame."""
    if timeline.align_frames is not None:
        # official: the 25 fps frames are aligned once, in order, then looped (lipsync_pipeline.py:281-310)
        return track.realign(timeline.align_frames).select(timeline.process_align)
    return track.select(timeline.process_source)


def chunk_ranges(synced: int, chunk_frames: int = CHUNK_FRAMES) -> list[range]:
    """The UNet's chunks of the processed frames (16 frames, as the official inference)."""
    return [range(s, min(s + chunk_frames, synced)) for s in range(0, synced, chunk_frames)]


def run_summary(
    process_track: FaceTrack,
    timeline: Timeline,
    chunks: int,
    output_frames: int,
    settings: DenoiseSettings,
    seed: int,
    paste_region: str,
) -> list[str]:
    lines = [process_track.summary()]
    if timeline.note:
        lines.append(timeline.note)
    lines.append(
        f"lip-synced {timeline.synced} frames at 25 fps in {chunks} chunks of up to {settings.chunk_frames}; "
        f"{output_frames} output frames at {timeline.fps:g} fps; {settings.steps} DDIM steps, "
        f"guidance {settings.guidance}, seed {seed}, paste {paste_region}"
    )
    return lines


@dataclass(frozen=True)
class LipSyncResult:
    images: torch.Tensor
    fps: float
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
    timeline: Timeline,
    paste_region: str = "face",
    progress: Callable[[int, int], None] | None = None,
) -> LipSyncResult:
    """images: [N, H, W, 3] source video; track: its face track; audio_tokens: [timeline.synced, tokens, d]
    (one 25 fps audio window per processed frame); timeline: from `plan_timeline`."""
    check_lip_sync_inputs(int(images.shape[0]), track, audio_tokens, timeline)
    process_track = process_track_of(track, timeline)
    resolution = track.resolution
    keep = keep_mask(resolution)  # [R, R], 1 = keep
    latent_size = resolution // 8
    chunks = chunk_ranges(timeline.synced, settings.chunk_frames)
    total = len(chunks) * (settings.steps + 2)
    done = 0

    def advance(amount: int = 1) -> None:
        nonlocal done
        done += amount
        if progress is not None:
            progress(done, total)

    def process_crops(idx: list[int]) -> torch.Tensor:
        return crop_frames(images[[timeline.process_source[i] for i in idx]], process_track.select(idx))

    generator = torch.Generator().manual_seed(int(seed))
    masked_latents, reference_latents = [], []
    for chunk in chunks:
        crops = process_crops(list(chunk))
        masked_latents.append(encode_sampled(vae, grey_masked(crops, keep), generator))
        reference_latents.append(encode_sampled(vae, crops, generator))
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
        latent_keep_mask(keep, resolution),
        audio_tokens.float(),
        initial_noise(seed, latent_size, latent_size),
        settings,
        callback=on_step,
    )
    out = torch.empty((len(timeline.output_source), *images.shape[1:]), dtype=torch.float32)
    untouched = [j for j, k in enumerate(timeline.output_process) if k < 0]
    for j in untouched:
        out[j] = images[timeline.output_source[j]].float()
    for chunk in chunks:
        generated = decode_crops(vae, latents[chunk.start : chunk.stop], resolution)
        targets = [j for j, k in enumerate(timeline.output_process) if chunk.start <= k < chunk.stop]
        if targets:
            src = [timeline.output_source[j] for j in targets]
            if timeline.output_uses_process_alignment:
                target_track = process_track.select([timeline.output_process[j] for j in targets])
            else:
                target_track = track.select(src)
            original = crop_frames(images[src], target_track)
            new_mouth = generated[[timeline.output_process[j] - chunk.start for j in targets]]
            composed = with_new_mouth(new_mouth, original, keep)
            out[targets] = paste_frames(images[src], composed, target_track, region=paste_region)
        advance()
    lines = run_summary(process_track, timeline, len(chunks), out.shape[0], settings, seed, paste_region)
    return LipSyncResult(out, timeline.fps, "\n".join(lines))
