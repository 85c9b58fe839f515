"""mp4 writing with PyAV: H.264 yuv420p with a quality setting, AAC audio fitted to the video.

Core's ``VideoFromComponents.save_to`` has no quality control, fails on odd sizes and mis-muxes more than
two audio channels; this writer handles all three and streams frames so memory stays flat.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from fractions import Fraction

import av
import numpy as np
import torch

AAC_SAMPLE_RATES = (8000, 11025, 12000, 16000, 22050, 24000, 32000, 44100, 48000, 64000, 88200, 96000)


@dataclass(frozen=True)
class WrittenVideo:
    path: str
    width: int
    height: int
    frames: int
    fps: Fraction
    audio_seconds: float | None
    padded: tuple[int, int]  # pixels added (right, bottom) to reach even sizes


def frame_rate_fraction(fps: float) -> Fraction:
    if not math.isfinite(fps) or fps <= 0:
        raise ValueError(f"fps must be a positive number, got {fps}")
    return Fraction(round(fps * 1000), 1000)


def even_size(height: int, width: int) -> tuple[int, int]:
    return height + height % 2, width + width % 2


def to_uint8_rgb(frame: torch.Tensor, height: int, width: int) -> np.ndarray:
    """One IMAGE frame [H, W, C] in 0..1 -> uint8 RGB [height, width, 3], edge-padded to the target size."""
    if frame.shape[-1] == 1:
        frame = frame.expand(-1, -1, 3)
    elif frame.shape[-1] == 4:
        frame = frame[..., :3]
    elif frame.shape[-1] != 3:
        raise ValueError(f"images must have 1, 3 or 4 channels, got {frame.shape[-1]}")
    pixels = (frame.float().clamp(0, 1) * 255.0).round().to(torch.uint8).cpu().numpy()
    pad_h, pad_w = height - pixels.shape[0], width - pixels.shape[1]
    if pad_h or pad_w:
        pixels = np.pad(pixels, ((0, pad_h), (0, pad_w), (0, 0)), mode="edge")
    return pixels


def fit_audio(waveform: torch.Tensor, sample_rate: int, seconds: float) -> torch.Tensor:
    """[C, T] trimmed or zero-padded to exactly ``seconds``; more than two channels folded to stereo."""
    if waveform.shape[0] > 2:
        waveform = torch.stack([waveform[0::2].mean(0), waveform[1::2].mean(0)])
    target = int(round(seconds * sample_rate))
    if waveform.shape[-1] >= target:
        return waveform[:, :target]
    return torch.nn.functional.pad(waveform, (0, target - waveform.shape[-1]))


def write_mp4(
    path: str,
    frames: Iterable[torch.Tensor],
    frame_count: int,
    size: tuple[int, int],
    fps: float,
    audio: tuple[torch.Tensor, int] | None = None,
    crf: int = 19,
    preset: str = "medium",
    metadata: dict[str, str] | None = None,
    on_frame: Callable[[int], None] | None = None,
) -> WrittenVideo:
    """Write the mp4 under a temporary name in the same folder and rename it to ``path`` once complete:
    a failed or cancelled write (``on_frame`` may raise) leaves no partial file behind.
    See :func:`encode_mp4` for the arguments."""
    folder, name = os.path.split(path)
    partial = os.path.join(folder, f".{name}.partial")
    try:
        written = encode_mp4(partial, frames, frame_count, size, fps, audio, crf, preset, metadata, on_frame)
        os.replace(partial, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.remove(partial)
        raise
    return dataclasses.replace(written, path=path)


def encode_mp4(
    path: str,
    frames: Iterable[torch.Tensor],
    frame_count: int,
    size: tuple[int, int],
    fps: float,
    audio: tuple[torch.Tensor, int] | None = None,
    crf: int = 19,
    preset: str = "medium",
    metadata: dict[str, str] | None = None,
    on_frame: Callable[[int], None] | None = None,
) -> WrittenVideo:
    """Encode ``frame_count`` frames ([H, W, C] 0..1 tensors) of ``size`` = (H, W) with optional audio.

    The audio ([C, T] float, sample rate) is trimmed or padded to the video's duration.
    """
    rate = frame_rate_fraction(fps)
    if frame_count <= 0:
        raise ValueError("there are no frames to write (empty image batch)")
    height, width = size
    out_h, out_w = even_size(height, width)
    seconds = frame_count / float(rate)
    audio_seconds = None
    with av.open(path, mode="w", format="mp4", options={"movflags": "use_metadata_tags+faststart"}) as container:
        for key, value in (metadata or {}).items():
            container.metadata[key] = value
        video = container.add_stream("libx264", rate=rate)
        video.width, video.height = out_w, out_h
        video.pix_fmt = "yuv420p"
        video.options = {"crf": str(int(crf)), "preset": preset}
        audio_stream = None
        if audio is not None:
            waveform, sample_rate = audio
            if sample_rate not in AAC_SAMPLE_RATES:
                raise ValueError(f"AAC cannot store {sample_rate} Hz audio; resample to one of {AAC_SAMPLE_RATES}")
            waveform = fit_audio(waveform.float().cpu(), sample_rate, seconds)
            layout = "mono" if waveform.shape[0] == 1 else "stereo"
            audio_stream = container.add_stream("aac", rate=sample_rate, layout=layout)
            audio_seconds = waveform.shape[-1] / sample_rate

        written = 0
        for frame in frames:
            if written == frame_count:
                break
            if on_frame is not None:
                on_frame(written)  # progress; raises to cancel
            image = av.VideoFrame.from_ndarray(to_uint8_rgb(frame, out_h, out_w), format="rgb24")
            for packet in video.encode(image):
                container.mux(packet)
            written += 1
        for packet in video.encode(None):
            container.mux(packet)
        if written != frame_count:
            raise ValueError(f"expected {frame_count} frames, got {written}")

        if audio_stream is not None:
            samples = np.ascontiguousarray(waveform.numpy(), dtype=np.float32)
            step = 1024 * 64
            for offset in range(0, samples.shape[1], step):
                chunk = av.AudioFrame.from_ndarray(samples[:, offset : offset + step], format="fltp", layout=layout)
                chunk.sample_rate = sample_rate
                chunk.pts = offset
                for packet in audio_stream.encode(chunk):
                    container.mux(packet)
            for packet in audio_stream.encode(None):
                container.mux(packet)
    return WrittenVideo(path, out_w, out_h, frame_count, rate, audio_seconds, (out_w - width, out_h - height))
