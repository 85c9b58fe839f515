"""Whisper front end without torchaudio: log-mel vs transformers' WhisperFeatureExtractor, resampling."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from humanvideo.media.resample import resample, to_mono
from humanvideo.models.log_mel import WINDOW_SAMPLES, log_mel_spectrogram, mel_filterbank
from transformers import WhisperFeatureExtractor


@pytest.mark.parametrize("n_mels", [80, 128])
def test_mel_filterbank_matches_transformers(n_mels):
    ref = WhisperFeatureExtractor(feature_size=n_mels).mel_filters  # [201, n_mels], Slaney norm and scale
    ours = mel_filterbank(n_mels)
    assert ours.shape == (n_mels, 201)
    assert np.abs(ours.numpy().T - ref).max() < 1e-7


@pytest.mark.parametrize("n_mels", [80, 128])
def test_log_mel_matches_whisper_feature_extractor(n_mels):
    rng = np.random.default_rng(n_mels)
    t = np.arange(16000 * 6) / 16000
    audio = (0.3 * np.sin(2 * np.pi * 220 * t) + 0.05 * rng.standard_normal(t.size)).astype(np.float32)
    ref = WhisperFeatureExtractor(feature_size=n_mels)(audio, sampling_rate=16000, return_tensors="pt").input_features[
        0
    ]
    padded = torch.nn.functional.pad(torch.from_numpy(audio), (0, WINDOW_SAMPLES - audio.size))
    ours = log_mel_spectrogram(padded, n_mels)
    assert ours.shape == ref.shape == (n_mels, 3000)
    assert torch.allclose(ours, ref, atol=1e-5)


def test_log_mel_floor_is_per_item_and_silence_is_finite():
    loud = torch.randn(2, 16000)
    loud[1] *= 1e-3
    both = log_mel_spectrogram(loud, 80)
    one = log_mel_spectrogram(loud[1], 80)
    assert torch.allclose(both[1], one, atol=1e-6)  # batch items do not share the max - 8 floor
    silent = log_mel_spectrogram(torch.zeros(16000), 80)
    assert torch.isfinite(silent).all() and torch.allclose(silent, torch.full_like(silent, -1.5))
    assert both.shape == (2, 80, 100)  # T // 160 frames
    with pytest.raises(ValueError, match="too short"):
        log_mel_spectrogram(torch.zeros(100), 80)


def test_to_mono_averages_channels():
    w = torch.stack([torch.ones(10), -3 * torch.ones(10)])[None]  # [1, 2, 10]
    assert to_mono(w).shape == (1, 1, 10) and torch.allclose(to_mono(w), torch.full((1, 1, 10), -1.0))
    with pytest.raises(ValueError, match="batch, channels, samples"):
        to_mono(torch.zeros(10))


@pytest.mark.parametrize("sr_from", [44100, 48000, 22050, 8000])
def test_resample_keeps_a_tone_and_the_duration(sr_from):
    seconds, f = 1.5, 440.0
    n = int(seconds * sr_from)
    x = torch.sin(2 * math.pi * f * torch.arange(n, dtype=torch.float64) / sr_from).float()
    wave = torch.stack([x, 0.5 * x])[None]  # [1, 2, T]
    y = resample(wave, sr_from, 16000)
    assert y.shape == (1, 2, math.ceil(n * 16000 / sr_from)) and y.dtype == torch.float32
    expected = torch.sin(2 * math.pi * f * torch.arange(y.shape[-1], dtype=torch.float64) / 16000).float()
    core = slice(400, y.shape[-1] - 400)  # away from the filter's edge transients
    assert (y[0, 0, core] - expected[core]).abs().max() < 2e-3
    assert (y[0, 1, core] - 0.5 * expected[core]).abs().max() < 1e-3


def test_resample_removes_content_above_the_new_nyquist():
    sr = 48000
    x = torch.sin(2 * math.pi * 12000 * torch.arange(sr) / sr)[None, None]  # 12 kHz > 8 kHz Nyquist at 16 kHz
    y = resample(x, sr, 16000)
    assert y[..., 200:-200].abs().max() < 1e-2


def test_resample_identity_and_errors():
    x = torch.randn(1, 1, 100)
    assert resample(x, 16000, 16000) is x
    with pytest.raises(ValueError, match="positive"):
        resample(x, 0, 16000)
    with pytest.raises(ValueError, match="empty"):
        resample(torch.zeros(1, 1, 0), 44100, 16000)
