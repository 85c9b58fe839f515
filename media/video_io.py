"""mp4 writing with PyAV: H.264 with a quality setting, AAC audio fitted to the video.

Core's ``VideoFromComponents.save_to`` has no quality control, fails on odd sizes and mis-muxes more than
two audio channels; `Mp4Writer` handles all three and takes frames one at a time as they are produced, so
memory stays flat however long the video is.
"""

from __future__ import annotations

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


def quantize(pixels: torch.Tensor) -> torch.Tensor:
    """Float pixels in 0..1 -> uint8 (clamped, rounded to the nearest level)."""
    return (pixels.float().clamp(0, 1) * 255.0).round().to(torch.uint8)


def to_uint8_rgb(frame: torch.Tensor, height: int, width: int) -> np.ndarray:
    """One IMAGE frame [H, W, C] in 0..1 -> uint8 RGB [height, width, 3], edge-padded to the target size."""
    if frame.shape[-1] == 1:
        frame = frame.expand(-1, -1, 3)
    elif frame.shape[-1] == 4:
        frame = frame[..., :3]
    elif frame.shape[-1] != 3:
        raise ValueError(f"images must have 1, 3 or 4 channels, got {frame.shape[-1]}")
    pixels = quantize(frame).cpu().numpy()
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


class Mp4Writer:
    """An H.264 (libx264) mp4 written frame by frame as frames are produced, with AAC audio interleaved.

    Open it with the size (height, width), frame rate and optional audio ([C, T] float, sample rate),
    `write` / `write_rgb` frames as they come, then `close` to finish the file, or `abort` to delete it;
    used as a context manager it closes on success and aborts on an error. The file is written under a
    hidden temporary name in the same folder and renamed to ``path`` only when complete, so an error, a
    Cancel or a killed server never leaves a partial mp4 under the real name.

    Encoder settings: libx264 at constant quality ``crf`` (0 is lossless for 8-bit formats) with
    ``preset``; ``pix_fmt`` yuv420p by default (another x264 format, e.g. the source's, for re-encoded
    videos); the colour tags given (codec-context attributes such as ``colorspace``) are stored in the
    stream. Odd sizes are padded to even by repeating the last row / column (4:2:0 needs even sizes).

    The audio is trimmed or zero-padded to the video's duration, and more than two channels are folded to
    stereo. With ``frame_count`` announced, the sound is muxed about a second ahead of the pictures and
    closing with another count is an error; without it (``None``) the sound follows the pictures and is
    fitted to however many frames were written.
    """

    AUDIO_LEAD_SECONDS = 1.0

    def __init__(
        self,
        path: str,
        frame_count: int | None,
        size: tuple[int, int],
        fps: float | Fraction,
        audio: tuple[torch.Tensor, int] | None = None,
        crf: int = 19,
        preset: str = "medium",
        metadata: dict[str, str] | None = None,
        pix_fmt: str = "yuv420p",
        colour: dict[str, int] | None = None,
    ):
        self.rate = fps if isinstance(fps, Fraction) else frame_rate_fraction(fps)
        if self.rate <= 0:
            raise ValueError(f"fps must be a positive number, got {fps}")
        if frame_count is not None and frame_count <= 0:
            raise ValueError("there are no frames to write (empty image batch)")
        self.path, self.frame_count = path, frame_count
        self.height, self.width = size
        self.out_h, self.out_w = even_size(self.height, self.width)
        self.written = 0
        self.audio_seconds: float | None = None
        self._audio_stream = None
        if audio is not None:
            waveform, sample_rate = audio
            if sample_rate not in AAC_SAMPLE_RATES:
                raise ValueError(f"AAC cannot store {sample_rate} Hz audio; resample to one of {AAC_SAMPLE_RATES}")
            waveform = waveform.float().cpu()
            if frame_count is not None:
                waveform = fit_audio(waveform, sample_rate, frame_count / float(self.rate))
            else:
                waveform = fit_audio(waveform, sample_rate, waveform.shape[-1] / sample_rate)  # only folds
            self._samples = np.ascontiguousarray(waveform.numpy(), dtype=np.float32)
            self._sample_rate = sample_rate
            self._layout = "mono" if waveform.shape[0] == 1 else "stereo"
            self._audio_done = 0
        folder, name = os.path.split(path)
        self._partial = os.path.join(folder, f".{name}.partial")
        self._container = av.open(
            self._partial, mode="w", format="mp4", options={"movflags": "use_metadata_tags+faststart"}
        )
        try:
            for key, value in (metadata or {}).items():
                self._container.metadata[key] = value
            self._video = self._container.add_stream("libx264", rate=self.rate)
            self._video.width, self._video.height = self.out_w, self.out_h
            self._video.pix_fmt = pix_fmt
            self._video.codec_context.time_base = 1 / self.rate  # one tick a frame: pts counts frames
            self._video.options = {"crf": str(int(crf)), "preset": preset}
            for key, value in (colour or {}).items():
                setattr(self._video.codec_context, key, value)
            if audio is not None:
                self._audio_stream = self._container.add_stream("aac", rate=self._sample_rate, layout=self._layout)
        except BaseException:
            self.abort()
            raise

    def __enter__(self) -> Mp4Writer:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()

    def _mux_audio_until(self, samples_end: int) -> None:
        samples_end = min(samples_end, self._samples.shape[1])
        step = 1024 * 16
        while self._audio_done < samples_end:
            end = min(self._audio_done + step, samples_end)
            chunk = av.AudioFrame.from_ndarray(
                np.ascontiguousarray(self._samples[:, self._audio_done : end]), format="fltp", layout=self._layout
            )
            chunk.sample_rate = self._sample_rate
            chunk.pts = self._audio_done
            for packet in self._audio_stream.encode(chunk):
                self._container.mux(packet)
            self._audio_done = end

    def write(self, frame: av.VideoFrame) -> None:
        """One frame of the padded (out_h, out_w) size; other formats are converted by PyAV."""
        if self.written == self.frame_count:
            raise ValueError(f"all {self.frame_count} frames have been written")
        frame.pts = self.written
        frame.time_base = 1 / self.rate
        frame.pict_type = av.video.frame.PictureType.NONE  # the encoder chooses key frames, not the source
        for packet in self._video.encode(frame):
            self._container.mux(packet)
        self.written += 1
        # players read both streams as they go when the sound is stored next to the pictures it goes with
        if self._audio_stream is not None:
            lead = self.AUDIO_LEAD_SECONDS if self.frame_count is not None else 0.0
            self._mux_audio_until(int((self.written / self.rate + lead) * self._sample_rate))

    def write_rgb(self, pixels: np.ndarray) -> None:
        """One uint8 RGB frame, (out_h, out_w, 3)."""
        self.write(av.VideoFrame.from_ndarray(np.ascontiguousarray(pixels), format="rgb24"))

    def write_image(self, frame: torch.Tensor) -> None:
        """One IMAGE frame [height, width, C] in 0..1 (edge-padded to even sizes)."""
        self.write_rgb(to_uint8_rgb(frame, self.out_h, self.out_w))

    def close(self) -> WrittenVideo:
        """Flush the encoders and finish the file. Too few frames is an error, and the file is removed."""
        try:
            if self.written == 0 or (self.frame_count is not None and self.written != self.frame_count):
                raise ValueError(f"expected {self.frame_count or 'some'} frames, got {self.written}")
            for packet in self._video.encode(None):
                self._container.mux(packet)
            if self._audio_stream is not None:
                end = int(round(self.written / float(self.rate) * self._sample_rate))
                if end > self._samples.shape[1]:  # sound shorter than the pictures: silence to the end
                    pad = np.zeros((self._samples.shape[0], end - self._samples.shape[1]), np.float32)
                    self._samples = np.concatenate([self._samples, pad], axis=1)
                self._mux_audio_until(end)
                for packet in self._audio_stream.encode(None):
                    self._container.mux(packet)
                self.audio_seconds = end / self._sample_rate
            self._container.close()
            os.replace(self._partial, self.path)
        except BaseException:
            self.abort()
            raise
        return WrittenVideo(
            self.path,
            self.out_w,
            self.out_h,
            self.written,
            self.rate,
            self.audio_seconds,
            (self.out_w - self.width, self.out_h - self.height),
        )

    def abort(self) -> None:
        """Close and delete the unfinished file (safe to call more than once)."""
        try:
            self._container.close()
        except Exception:  # the muxer may refuse to finish a broken file; it is removed either way
            pass
        if os.path.exists(self._partial):
            os.remove(self._partial)


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
    """Write ``frame_count`` frames ([H, W, C] 0..1 tensors) of ``size`` = (H, W) with optional audio.

    The audio ([C, T] float, sample rate) is trimmed or padded to the video's duration. ``on_frame(i)``
    runs before frame i (progress; it may raise to cancel, and then no file is left behind).
    """
    writer = Mp4Writer(path, frame_count, size, fps, audio, crf, preset, metadata)
    try:
        for frame in frames:
            if writer.written == frame_count:
                break
            if on_frame is not None:
                on_frame(writer.written)
            writer.write_image(frame)
    except BaseException:
        writer.abort()
        raise
    return writer.close()
