"""Whisper's log-mel spectrogram in plain torch (no torchaudio, no librosa).

Whisper was trained on 16 kHz audio, a 25 ms Hann window (400 samples) every 10 ms (160 samples),
a Slaney-style mel filterbank from 0 to 8 kHz (80 mels up to large-v2, 128 for large-v3), log10
power, a dynamic-range floor 8 decades below the loudest bin and the affine map (x + 4) / 4.
One 30 s window is 480 000 samples = 3000 mel frames = 1500 encoder positions.
"""

from __future__ import annotations

import functools
import math

import torch

SAMPLE_RATE = 16000
N_FFT = 400
HOP_LENGTH = 160
WINDOW_SECONDS = 30
WINDOW_SAMPLES = WINDOW_SECONDS * SAMPLE_RATE  # 480 000
WINDOW_MEL_FRAMES = WINDOW_SAMPLES // HOP_LENGTH  # 3000
# conv2 has stride 2: one encoder position per two mel frames (20 ms, 50 per second)
SAMPLES_PER_POSITION = 2 * HOP_LENGTH  # 320
POSITIONS_PER_SECOND = SAMPLE_RATE // SAMPLES_PER_POSITION  # 50
WINDOW_POSITIONS = WINDOW_MEL_FRAMES // 2  # 1500


def _hz_to_mel(hz: torch.Tensor) -> torch.Tensor:
    # Slaney scale: linear below 1 kHz (3 mels per 200 Hz), logarithmic above (27 mels per factor 6.4).
    linear = 3.0 * hz / 200.0
    log_part = 15.0 + torch.log(torch.clamp(hz, min=1e-10) / 1000.0) * (27.0 / math.log(6.4))
    return torch.where(hz >= 1000.0, log_part, linear)


def _mel_to_hz(mel: torch.Tensor) -> torch.Tensor:
    linear = 200.0 * mel / 3.0
    log_part = 1000.0 * torch.exp((mel - 15.0) * (math.log(6.4) / 27.0))
    return torch.where(mel >= 15.0, log_part, linear)


@functools.lru_cache(maxsize=8)
def mel_filterbank(
    n_mels: int, n_fft: int = N_FFT, sample_rate: int = SAMPLE_RATE, f_min: float = 0.0, f_max: float = 8000.0
) -> torch.Tensor:
    """Triangular Slaney-normalised mel filters, shape [n_mels, n_fft // 2 + 1], float32.

    Computed in float64 so that 80- and 128-band banks match the published filter files to float32
    rounding; each triangle is scaled by 2 / bandwidth so every filter has unit area in Hz.
    """
    if n_mels <= 0:
        raise ValueError(f"n_mels must be positive, got {n_mels}")
    fft_hz = torch.linspace(0.0, sample_rate / 2.0, n_fft // 2 + 1, dtype=torch.float64)
    mel_edges = torch.linspace(
        float(_hz_to_mel(torch.tensor(f_min, dtype=torch.float64))),
        float(_hz_to_mel(torch.tensor(f_max, dtype=torch.float64))),
        n_mels + 2,
        dtype=torch.float64,
    )
    hz_edges = _mel_to_hz(mel_edges)
    lower, centre, upper = hz_edges[:-2, None], hz_edges[1:-1, None], hz_edges[2:, None]
    rising = (fft_hz[None, :] - lower) / (centre - lower)
    falling = (upper - fft_hz[None, :]) / (upper - centre)
    triangles = torch.clamp(torch.minimum(rising, falling), min=0.0)
    triangles = triangles * (2.0 / (upper - lower))
    return triangles.to(torch.float32)


def power_spectrogram(audio: torch.Tensor) -> torch.Tensor:
    """|STFT|^2 of [..., T] audio at 16 kHz -> [..., 201, T // 160].

    The STFT is centred (reflect padding) like Whisper's; its last frame is dropped so that a 30 s
    window gives exactly 3000 frames.
    """
    if audio.shape[-1] <= N_FFT // 2:
        raise ValueError(
            f"audio too short for a spectrogram: {audio.shape[-1]} samples at 16 kHz, need more than {N_FFT // 2}"
        )
    lead = audio.shape[:-1]
    flat = audio.reshape(-1, audio.shape[-1]).to(torch.float32)
    window = torch.hann_window(N_FFT, device=flat.device, dtype=flat.dtype)
    spec = torch.stft(flat, N_FFT, HOP_LENGTH, window=window, center=True, pad_mode="reflect", return_complex=True)
    power = spec[..., :-1].abs() ** 2
    return power.reshape(*lead, *power.shape[-2:])


def log_mel_spectrogram(audio: torch.Tensor, n_mels: int) -> torch.Tensor:
    """Whisper input features of 16 kHz audio [T] or [B, T] -> [n_mels, T // 160] or [B, n_mels, T // 160].

    The dynamic-range floor (max - 8) is taken per batch item over all of its frames, as Whisper does,
    so the caller decides the span it applies to (one 30 s window, or a whole clip).
    """
    power = power_spectrogram(audio)
    filters = mel_filterbank(n_mels).to(power.device)
    mel = torch.matmul(filters, power)
    log_spec = torch.clamp(mel, min=1e-10).log10()
    peak = log_spec.amax(dim=(-2, -1), keepdim=True)
    log_spec = torch.maximum(log_spec, peak - 8.0)
    return (log_spec + 4.0) / 4.0
