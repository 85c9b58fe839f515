"""Audio decoding with PyAV (bundled FFmpeg), so the pack never needs torchaudio.

Returns core ComfyUI ``AUDIO`` dictionaries: ``{"waveform": Tensor[B, C, T] float32 in [-1, 1],
"sample_rate": int}``.
"""

from __future__ import annotations

import os
import wave
from dataclasses import dataclass

import av
import numpy as np
import torch

from .resample import resample, to_mono

AUDIO_EXTENSIONS = (".wav", ".mp3", ".flac", ".ogg", ".opus", ".m4a", ".aac", ".wma", ".aif", ".aiff", ".webm")
VIDEO_EXTENSIONS = (".mp4", ".mov", ".mkv", ".avi", ".webm", ".m4v", ".gif")


class AudioDecodeError(ValueError):
    """A file that cannot give audio samples; the message names the file and the reason."""


@dataclass(frozen=True)
class AudioClip:
    waveform: torch.Tensor  # [C, T] float32
    sample_rate: int

    @property
    def duration(self) -> float:
        return self.waveform.shape[-1] / self.sample_rate

    def as_comfy(self) -> dict:
        return {"waveform": self.waveform.unsqueeze(0).contiguous(), "sample_rate": int(self.sample_rate)}


def decode_audio(path: str, start: float = 0.0, duration: float | None = None) -> AudioClip:
    """Decode the first audio stream of any audio or video file, optionally only [start, start+duration) s."""
    name = os.path.basename(path)
    if start < 0:
        raise AudioDecodeError(f"start must be >= 0 seconds, got {start}")
    if duration is not None and duration <= 0:
        raise AudioDecodeError(f"duration must be > 0 seconds (or empty for the whole file), got {duration}")
    if not os.path.isfile(path):
        raise AudioDecodeError(f"audio file '{name}' does not exist ({path})")
    try:
        container = av.open(path)
    except av.error.FFmpegError as e:
        raise AudioDecodeError(f"cannot read '{name}': not a readable audio or video file ({e})") from e
    with container:
        if not container.streams.audio:
            raise AudioDecodeError(f"'{name}' has no audio stream")
        stream = container.streams.audio[0]
        sample_rate = stream.codec_context.sample_rate or stream.rate
        if not sample_rate:
            raise AudioDecodeError(f"'{name}': the audio stream reports no sample rate")
        _check_wav_complete(path, stream, name)
        first_sample = int(round(start * sample_rate))
        last_sample = None if duration is None else first_sample + int(round(duration * sample_rate))
        if start > 0:
            # Seek lands on a packet at or before the target; exact trimming happens below by timestamps.
            container.seek(int(start / stream.time_base), stream=stream, backward=True, any_frame=False)
        chunks: list[np.ndarray] = []
        position = None  # index (in samples) of the next decoded sample
        try:
            for frame in container.decode(stream):
                if position is None or frame.pts is not None:
                    position = (
                        int(round(float(frame.pts * frame.time_base) * sample_rate)) if frame.pts is not None else 0
                    )
                data = _frame_to_planar_float(frame)
                frame_start, frame_end = position, position + data.shape[1]
                position = frame_end
                if frame_end <= first_sample:
                    continue
                lo = max(0, first_sample - frame_start)
                hi = data.shape[1] if last_sample is None else min(data.shape[1], last_sample - frame_start)
                if hi > lo:
                    chunks.append(data[:, lo:hi])
                if last_sample is not None and frame_end >= last_sample:
                    break
        except av.error.FFmpegError as e:
            raise AudioDecodeError(f"cannot decode the audio of '{name}': the file is corrupt ({e})") from e
    if not chunks:
        where = "" if start == 0 else f" after {start:.3f} s"
        raise AudioDecodeError(f"'{name}' contains no audio samples{where}")
    channels = min(c.shape[0] for c in chunks)
    waveform = torch.from_numpy(np.concatenate([c[:channels] for c in chunks], axis=1))
    return AudioClip(waveform=waveform.float().clamp_(-1.0, 1.0), sample_rate=int(sample_rate))


def load_audio_clip(full_path: str, start: float, duration: float, sample_rate: str, channels: str) -> AudioClip:
    """Decode [start, start + duration) s of a file (duration 0: to the end), then downmix / upmix and resample.

    ``sample_rate`` is a rate in Hz as text or "original"; ``channels`` is "original", "mono" or "stereo".
    """
    clip = decode_audio(full_path, start=start, duration=duration if duration > 0 else None)
    waveform, rate = clip.waveform, clip.sample_rate
    if channels == "mono":
        waveform = to_mono(waveform.unsqueeze(0))[0]
    elif channels == "stereo" and waveform.shape[0] == 1:
        waveform = waveform.expand(2, -1).clone()
    elif channels == "stereo" and waveform.shape[0] > 2:
        waveform = waveform[:2]
    if sample_rate != "original" and int(sample_rate) != rate:
        waveform = resample(waveform.unsqueeze(0), rate, int(sample_rate))[0]
        rate = int(sample_rate)
    return AudioClip(waveform=waveform.contiguous(), sample_rate=rate)


def _check_wav_complete(path: str, stream: av.audio.stream.AudioStream, name: str) -> None:
    """A PCM WAV whose header declares more samples than the file holds was cut short (FFmpeg then just
    decodes what is there, so the loss would pass unnoticed)."""
    if not path.lower().endswith(".wav") or stream.duration is None or stream.time_base is None:
        return
    try:
        with wave.open(path, "rb") as w:
            declared, rate = w.getnframes(), w.getframerate()
    except (wave.Error, EOFError, OSError):
        return  # not plain PCM (float, extensible ...): FFmpeg's checks are all there is
    present = int(round(float(stream.duration * stream.time_base) * rate))
    if declared > present + 1:
        raise AudioDecodeError(
            f"'{name}' is truncated: its header declares {declared} samples, the file holds {present}"
        )


def _frame_to_planar_float(frame: av.AudioFrame) -> np.ndarray:
    """[C, n] float32 in [-1, 1] for any sample format FFmpeg decodes to."""
    array = frame.to_ndarray()
    fmt = frame.format
    channels = len(frame.layout.channels)
    if not fmt.is_planar:
        array = array.reshape(-1, channels).T
    if np.issubdtype(array.dtype, np.integer):
        info = np.iinfo(array.dtype)
        if info.min == 0:  # unsigned 8-bit PCM is offset binary
            array = (array.astype(np.float32) - (info.max + 1) / 2) / ((info.max + 1) / 2)
        else:
            array = array.astype(np.float32) / float(-info.min)
    return np.ascontiguousarray(array, dtype=np.float32)


def validate_audio(audio: dict, what: str = "audio") -> tuple[torch.Tensor, int]:
    """Check a core AUDIO dict and return (waveform [B, C, T], sample_rate) with a clear error otherwise."""
    if not isinstance(audio, dict) or "waveform" not in audio or "sample_rate" not in audio:
        raise ValueError(f"{what}: expected a ComfyUI AUDIO (waveform + sample_rate), got {type(audio).__name__}")
    waveform, sample_rate = audio["waveform"], int(audio["sample_rate"])
    if waveform.ndim == 2:
        waveform = waveform.unsqueeze(0)
    if waveform.ndim != 3:
        raise ValueError(f"{what}: waveform must be [batch, channels, samples], got shape {tuple(waveform.shape)}")
    if sample_rate <= 0:
        raise ValueError(f"{what}: sample rate must be positive, got {sample_rate}")
    if waveform.shape[-1] == 0:
        raise ValueError(f"{what}: the audio is empty (0 samples)")
    if waveform.is_floating_point() and not bool(torch.isfinite(waveform).all()):
        raise ValueError(f"{what}: the waveform holds NaN or infinite samples")
    return waveform, sample_rate
