"""Sync-C, Sync-D and the audio-visual offset of one face track, computed as the official evaluation does.

The rules follow joonson/syncnet_python:SyncNetInstance.py (``evaluate``, ``calc_pdist``) and its copy
bytedance/LatentSync:eval/syncnet/syncnet_eval.py:21-158:

- audio: 16 kHz 16-bit PCM -> ``python_speech_features.mfcc`` with its defaults (13 coefficients every
  10 ms, so 4 MFCC frames per 25 fps video frame);
- ``usable = min(video frames, floor(samples / 640))``; windows start at frames 0 .. usable - 6 (the
  official loop stops 5 frames before the end, so the last usable frame is never a window start);
- window i: video frames i .. i+4 (0.2 s) -> lip embedding; MFCC frames 4i .. 4i+19 (0.2 s) -> audio
  embedding; neither is normalised;
- distances: each lip embedding against the audio embeddings shifted by -15 .. +15 frames (zero
  embeddings past either end), Euclidean with ``pairwise_distance``'s eps 1e-6;
- ``mean_dists`` = mean over windows (31 values); Sync-D = its minimum; Sync-C = median - minimum;
  AV offset = 15 - argmin (frames; positive: the audio leads the video);
- frame-wise confidence = median(mean_dists) - the distance at the chosen offset, median-filtered over
  9 windows (computed but not reported upstream; here it draws the confidence plot).
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from scipy.signal import medfilt

from .syncnet import MFCC_PER_WINDOW, WINDOW_FRAMES, SyncNet

SAMPLE_RATE = 16000
VIDEO_FPS = 25
SAMPLES_PER_FRAME = SAMPLE_RATE // VIDEO_FPS  # 640
MFCC_PER_FRAME = 4  # 100 Hz MFCC / 25 fps video
VSHIFT = 15  # offsets searched: -15 .. +15 frames (+-0.6 s)
BATCH_SIZE = 20  # windows per forward pass, as upstream
MIN_FRAMES = WINDOW_FRAMES + 1  # one window needs 6 usable frames (see the module docstring)
FRAMEWISE_KERNEL = 9
SILENCE_PTP = 4  # 16-bit steps: digital silence, or dither of +-2 steps around it


@dataclass
class SyncScore:
    av_offset: int  # frames at 25 fps
    sync_d: float  # minimum of mean_dists (lower is better)
    sync_c: float  # median(mean_dists) - sync_d (higher is better)
    mean_dists: np.ndarray  # (2 * vshift + 1,) mean distance per offset, offset = vshift - index
    dists: np.ndarray  # (windows, 2 * vshift + 1)
    framewise_conf: np.ndarray  # (windows,) median-filtered confidence at the chosen offset
    lip_embeddings: np.ndarray  # (windows, 1024)
    audio_embeddings: np.ndarray  # (windows, 1024)
    vshift: int = VSHIFT

    @property
    def windows(self) -> int:
        return int(self.dists.shape[0])


def pcm16(samples: np.ndarray | torch.Tensor) -> np.ndarray:
    """Float samples in [-1, 1] -> the int16 values ffmpeg's pcm_s16le writes (x * 32768, rounded, clipped),
    as float64 (what python_speech_features computes in)."""
    x = samples.detach().cpu().double().numpy() if isinstance(samples, torch.Tensor) else np.asarray(samples)
    return np.clip(np.rint(x.astype(np.float64) * 32768.0), -32768, 32767)


def mfcc(pcm: np.ndarray, sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    """(13, M) MFCC of 16 kHz PCM values, by ``python_speech_features.mfcc`` with the official (default) settings."""
    try:
        import python_speech_features
    except ImportError as e:
        raise RuntimeError(
            "lip-sync scoring needs the python_speech_features package (pip install python_speech_features)"
        ) from e
    return np.ascontiguousarray(python_speech_features.mfcc(np.asarray(pcm, dtype=np.float64), sample_rate).T)


def usable_frames(num_frames: int, num_samples: int) -> int:
    return min(int(num_frames), int(num_samples) // SAMPLES_PER_FRAME)


@torch.no_grad()
def embed(
    model: SyncNet,
    frames_bgr: torch.Tensor,
    mfcc_13: np.ndarray,
    windows: int,
    device: torch.device | str = "cpu",
    batch_size: int = BATCH_SIZE,
    on_batch: Callable[[int], None] | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Lip and audio embeddings of ``windows`` windows (float32, CPU).

    ``frames_bgr``: (T, 224, 224, 3) BGR values 0..255 (any dtype); ``mfcc_13``: (13, M).
    ``on_batch(n)`` runs after each batch with the windows done so far (progress, Cancel).
    """
    model.eval()
    video = frames_bgr.to(torch.float32).permute(3, 0, 1, 2)  # (3, T, 224, 224)
    cc = torch.from_numpy(np.asarray(mfcc_13)).to(torch.float32)[None]  # (1, 13, M)
    lip, aud = [], []
    for start in range(0, windows, batch_size):
        idx = range(start, min(windows, start + batch_size))
        lip_in = torch.stack([video[:, i : i + WINDOW_FRAMES] for i in idx]).to(device)
        aud_in = torch.stack([cc[:, :, MFCC_PER_FRAME * i : MFCC_PER_FRAME * i + MFCC_PER_WINDOW] for i in idx])
        lip.append(model.forward_lip(lip_in).float().cpu())
        aud.append(model.forward_aud(aud_in.to(device)).float().cpu())
        if on_batch is not None:
            on_batch(idx.stop)
    return torch.cat(lip), torch.cat(aud)


def offset_distances(lip: torch.Tensor, aud: torch.Tensor, vshift: int = VSHIFT) -> torch.Tensor:
    """(windows, 2 * vshift + 1): distance of lip window i to audio window i + j - vshift (zero past the ends)."""
    span = 2 * vshift + 1
    padded = torch.nn.functional.pad(aud, (0, 0, vshift, vshift))
    shifted = padded.unfold(0, span, 1)[: lip.shape[0]].transpose(1, 2)  # (windows, span, dim)
    return torch.nn.functional.pairwise_distance(lip[:, None, :].expand_as(shifted), shifted)


def summarise(lip: torch.Tensor, aud: torch.Tensor, vshift: int = VSHIFT) -> SyncScore:
    """Offset, Sync-D, Sync-C and the frame-wise confidence from the embeddings."""
    lip, aud = lip.detach().float().cpu(), aud.detach().float().cpu()
    dists = offset_distances(lip, aud, vshift)
    mean_dists = dists.t().contiguous().mean(1)  # reduced along contiguous rows, as upstream stacks them
    min_dist, min_idx = torch.min(mean_dists, 0)
    median = torch.median(mean_dists)  # the lower middle value for an even count, as torch.median upstream
    conf = median - min_dist
    with warnings.catch_warnings():  # fewer windows than the kernel: zero-padded, as upstream
        warnings.simplefilter("ignore", UserWarning)
        framewise = medfilt((median - dists[:, min_idx]).numpy().astype(np.float64), kernel_size=FRAMEWISE_KERNEL)
    return SyncScore(
        av_offset=int(vshift - int(min_idx)),
        sync_d=float(min_dist),
        sync_c=float(conf),
        mean_dists=mean_dists.numpy(),
        dists=dists.numpy(),
        framewise_conf=framewise.astype(np.float32),
        lip_embeddings=lip.numpy(),
        audio_embeddings=aud.numpy(),
        vshift=vshift,
    )


def score_clip(
    model: SyncNet,
    frames_bgr: torch.Tensor,
    pcm: np.ndarray,
    device: torch.device | str = "cpu",
    vshift: int = VSHIFT,
    batch_size: int = BATCH_SIZE,
    on_batch: Callable[[int], None] | None = None,
) -> SyncScore:
    """Scores one face track: 224x224 BGR crops at 25 fps and its 16 kHz PCM (see :func:`pcm16`).

    Raises ValueError for a clip too short for one window or for silent audio.
    """
    usable = usable_frames(frames_bgr.shape[0], len(pcm))
    if usable < MIN_FRAMES:
        raise ValueError(
            f"too short to score: {frames_bgr.shape[0]} frames and {len(pcm) / SAMPLE_RATE:.3f} s of audio give "
            f"{usable} usable frames at {VIDEO_FPS} fps; SyncNet needs at least {MIN_FRAMES} "
            f"(one {WINDOW_FRAMES}-frame / 0.2 s window, and the official evaluation never starts a window on "
            "the last frame)"
        )
    used = np.asarray(pcm[: usable * SAMPLES_PER_FRAME], dtype=np.float64)
    if np.ptp(used) <= SILENCE_PTP:
        raise ValueError(
            f"the audio is silent where the face is visible (peak-to-peak {np.ptp(used):.0f} of 65535, "
            "about -78 dBFS or quieter); SyncNet needs speech to measure lip sync"
        )
    windows = usable - WINDOW_FRAMES
    lip, aud = embed(model, frames_bgr, mfcc(pcm), windows, device, batch_size, on_batch)
    return summarise(lip, aud, vshift)
