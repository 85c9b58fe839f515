"""Audio decoding with PyAV: exact samples, trimming, every container, clear errors."""

import av
import numpy as np
import pytest
import torch
from humanvideo.media.audio_io import AudioDecodeError, decode_audio, validate_audio
from hv_fixtures import media


def write_tone(path, seconds=1.0, rate=16000, channels=1):
    t = np.arange(int(seconds * rate)) / rate
    tone = 0.5 * np.sin(2 * np.pi * 440 * t).astype(np.float32)
    data = np.stack([tone * (c + 1) / channels for c in range(channels)])
    return data


def test_wav_round_trip_is_sample_exact(tmp_path):
    samples = media.synthesized_voice(1.0, 16000)
    media.write_wav(tmp_path / "v.wav", samples, 16000)
    clip = decode_audio(str(tmp_path / "v.wav"))
    assert clip.sample_rate == 16000
    assert clip.waveform.shape == (1, 16000)
    expected = np.round(np.clip(samples, -1, 1) * 32767) / 32768
    assert np.abs(clip.waveform[0].numpy() - expected).max() < 1e-6


def test_start_and_duration_cut_exact_sample_ranges(tmp_path):
    samples = np.linspace(-0.9, 0.9, 48000).astype(np.float32)
    media.write_wav(tmp_path / "ramp.wav", samples, 16000)
    clip = decode_audio(str(tmp_path / "ramp.wav"), start=0.5, duration=1.25)
    assert clip.waveform.shape[-1] == 20000
    expected = np.round(samples[8000:28000] * 32767) / 32768
    assert np.abs(clip.waveform[0].numpy() - expected).max() < 1e-6


def test_stereo_flac_keeps_channels_and_rate(tmp_path):
    data = write_tone(tmp_path, 0.5, 44100, channels=2)
    path = tmp_path / "s.flac"
    with av.open(str(path), "w") as c:
        s = c.add_stream("flac", rate=44100, layout="stereo")
        frame = av.AudioFrame.from_ndarray(
            (data * 32767).astype(np.int16).T.reshape(1, -1), format="s16", layout="stereo"
        )
        frame.sample_rate = 44100
        for p in s.encode(frame):
            c.mux(p)
        for p in s.encode(None):
            c.mux(p)
    clip = decode_audio(str(path))
    assert clip.sample_rate == 44100 and clip.waveform.shape == (2, 22050)
    assert torch.allclose(clip.waveform, torch.from_numpy(data), atol=1e-3)


def test_audio_track_of_a_video(tmp_path):
    speech = media.make_speech(tmp_path / "s.wav", seconds=1.0)
    clip_path = media.make_face_clip(tmp_path / "f.mp4", seconds=1.0, size=64, audio=speech)
    clip = decode_audio(str(clip_path))
    assert clip.sample_rate == 16000
    assert abs(clip.duration - 1.0) < 0.1


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda p: media.write_corrupt_audio(p / "bad.wav"), "bad.wav"),
        (lambda p: media.make_face_clip(p / "silent.mp4", seconds=0.2, size=32), "has no audio stream"),
        (lambda p: media.write_wav(p / "empty.wav", np.zeros(0, np.float32), 16000), "contains no audio samples"),
        (lambda p: p / "missing.wav", "does not exist"),
    ],
)
def test_bad_files_get_clear_errors(tmp_path, make, message):
    path = make(tmp_path)
    with pytest.raises(AudioDecodeError, match=message):
        decode_audio(str(path))


def test_start_beyond_the_end_is_reported(tmp_path):
    media.write_wav(tmp_path / "short.wav", np.zeros(1600, np.float32), 16000)
    with pytest.raises(AudioDecodeError, match="no audio samples after 5.000 s"):
        decode_audio(str(tmp_path / "short.wav"), start=5.0)


def test_validate_audio_rejects_empty_and_malformed():
    with pytest.raises(ValueError, match="empty"):
        validate_audio({"waveform": torch.zeros(1, 1, 0), "sample_rate": 16000})
    with pytest.raises(ValueError, match="expected a ComfyUI AUDIO"):
        validate_audio(torch.zeros(3))
    waveform, rate = validate_audio({"waveform": torch.zeros(2, 5), "sample_rate": 8000})
    assert waveform.shape == (1, 2, 5) and rate == 8000


def test_a_truncated_wav_is_reported(tmp_path):
    media.write_wav(tmp_path / "v.wav", media.synthesized_voice(1.0, 16000), 16000)
    data = (tmp_path / "v.wav").read_bytes()
    (tmp_path / "cut.wav").write_bytes(data[: int(len(data) * 0.99)])
    with pytest.raises(AudioDecodeError, match=r"'cut.wav' is truncated: its header declares 16000 samples"):
        decode_audio(str(tmp_path / "cut.wav"))
    assert decode_audio(str(tmp_path / "v.wav")).waveform.shape == (1, 16000)
