"""Sample-rate conversion and down-mixing without torchaudio.

`scipy.signal.resample_poly` does exact rational resampling (up by L, FIR low-pass, down by M) with a
Kaiser-windowed filter; scipy is already a ComfyUI dependency.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from scipy.signal import resample_poly


def to_mono(waveform: torch.Tensor) -> torch.Tensor:
    """[B, C, T] -> [B, 1, T] by averaging the channels (how Whisper front-ends down-mix)."""
    if waveform.ndim != 3:
        raise ValueError(f"waveform must be [batch, channels, samples], got shape {tuple(waveform.shape)}")
    if waveform.shape[1] == 0:
        raise ValueError("waveform has no channels")
    return waveform.mean(dim=1, keepdim=True)


def resample(waveform: torch.Tensor, sr_from: int, sr_to: int) -> torch.Tensor:
    """Resample [..., T] audio from `sr_from` to `sr_to` Hz along the last axis.

    The result has ceil(T * sr_to / sr_from) samples, keeps the input's dtype and device, and is the
    input itself when the rates are equal.
    """
    sr_from, sr_to = int(sr_from), int(sr_to)
    if sr_from <= 0 or sr_to <= 0:
        raise ValueError(f"sample rates must be positive, got {sr_from} -> {sr_to}")
    if sr_from == sr_to:
        return waveform
    if waveform.shape[-1] == 0:
        raise ValueError("cannot resample empty audio (0 samples)")
    g = math.gcd(sr_from, sr_to)
    up, down = sr_to // g, sr_from // g
    # float64 keeps the long polyphase filter exact; the cast back restores the caller's dtype
    data = waveform.detach().to("cpu", torch.float64).numpy()
    out = resample_poly(data, up, down, axis=-1)
    return torch.from_numpy(np.ascontiguousarray(out)).to(device=waveform.device, dtype=waveform.dtype)
