"""Test media made locally: a speech track and a real face photo animated into a 25 fps clip.

The face is scikit-image's "astronaut" photo (public domain, NASA); the voice is espeak-ng when the
machine has it, otherwise a synthesized voiced signal (pulse train through vowel formants with a
syllable rhythm), so the audio models see speech-like spectra either way.
"""

from __future__ import annotations

import math
import shutil
import subprocess
import wave
from pathlib import Path

import numpy as np

SPEECH_TEXT = "Hello, this is a short test of lip synchronisation, spoken at a steady pace."


def write_wav(path: Path, samples: np.ndarray, sample_rate: int) -> Path:
    """Mono float samples in [-1, 1] -> 16-bit PCM wav."""
    pcm = np.round(np.clip(samples, -1.0, 1.0) * 32767.0).astype("<i2")
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(sample_rate)
        w.writeframes(pcm.tobytes())
    return path


def synthesized_voice(seconds: float, sample_rate: int = 16000, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * sample_rate)) / sample_rate
    f0 = 120.0 + 15.0 * np.sin(2 * np.pi * 0.7 * t)
    phase = np.cumsum(f0 / sample_rate)
    pulses = (np.diff(np.floor(phase), prepend=0.0) > 0).astype(np.float64)
    signal = np.zeros_like(t)
    # Vowel formant pairs, switched per syllable (~4 syllables per second).
    vowels = [(730, 1090), (270, 2290), (300, 870), (530, 1840), (660, 1720)]
    syllable = (t * 4.0).astype(int)
    for index, (f1, f2) in enumerate(vowels):
        part = np.where(syllable % len(vowels) == index, pulses, 0.0)
        for formant, bandwidth in ((f1, 80.0), (f2, 120.0)):
            signal += _resonate(part, formant, bandwidth, sample_rate)
    envelope = np.clip(np.sin(np.pi * (t * 4.0 % 1.0)), 0, 1) ** 0.6
    signal = signal * envelope + 0.01 * rng.standard_normal(t.shape)
    return (0.5 * signal / (np.abs(signal).max() + 1e-9)).astype(np.float32)


def _resonate(x: np.ndarray, freq: float, bandwidth: float, sample_rate: int) -> np.ndarray:
    from scipy.signal import lfilter

    r = math.exp(-math.pi * bandwidth / sample_rate)
    a = [1.0, -2.0 * r * math.cos(2 * math.pi * freq / sample_rate), r * r]
    return lfilter([1.0 - r], a, x)


def make_speech(path: Path, seconds: float = 3.0, sample_rate: int = 16000) -> Path:
    """A speech wav of about ``seconds``: espeak-ng when available, else a synthesized voice."""
    path = Path(path)
    espeak = shutil.which("espeak-ng")
    if espeak:
        raw = path.with_suffix(".espeak.wav")
        result = subprocess.run([espeak, "-s", "150", "-w", str(raw), SPEECH_TEXT], capture_output=True)
        if result.returncode == 0 and raw.is_file():
            samples, rate = _read_wav(raw)
            raw.unlink()
            samples = _fit_length(_resample(samples, rate, sample_rate), int(seconds * sample_rate))
            return write_wav(path, samples, sample_rate)
    return write_wav(path, synthesized_voice(seconds, sample_rate), sample_rate)


def _read_wav(path: Path) -> tuple[np.ndarray, int]:
    with wave.open(str(path), "rb") as w:
        data = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2").astype(np.float32) / 32768.0
        return data.reshape(-1, w.getnchannels()).mean(1), w.getframerate()


def _resample(samples: np.ndarray, rate_from: int, rate_to: int) -> np.ndarray:
    from scipy.signal import resample_poly

    g = math.gcd(rate_from, rate_to)
    return resample_poly(samples, rate_to // g, rate_from // g).astype(np.float32)


def _fit_length(samples: np.ndarray, length: int) -> np.ndarray:
    if samples.shape[0] >= length:
        return samples[:length]
    return np.pad(samples, (0, length - samples.shape[0]))


def face_photo() -> np.ndarray:
    """The astronaut photo, uint8 RGB 512x512."""
    from skimage import data

    return data.astronaut()


def face_clip_frames(frames: int = 50, size: int = 256, fps: float = 25.0, blank: tuple[int, ...] = ()) -> np.ndarray:
    """[frames, size, size, 3] uint8: the astronaut's head with a gentle nod and sway; `blank` frames are grey."""
    from PIL import Image

    photo = Image.fromarray(face_photo())
    centre_x, centre_y, crop = 210.0, 165.0, 290.0  # around the face in the 512x512 photo
    out = np.empty((frames, size, size, 3), dtype=np.uint8)
    for i in range(frames):
        t = i / fps
        angle = 4.0 * math.sin(2 * math.pi * 0.5 * t)
        dx, dy = 8.0 * math.sin(2 * math.pi * 0.3 * t), 5.0 * math.sin(2 * math.pi * 0.8 * t)
        rotated = photo.rotate(angle, resample=Image.BICUBIC, center=(centre_x, centre_y))
        left, top = centre_x + dx - crop / 2, centre_y + dy - crop / 2
        box = (int(left), int(top), int(left + crop), int(top + crop))
        out[i] = np.asarray(rotated.crop(box).resize((size, size), Image.LANCZOS))
    out[list(blank)] = 128
    return out


def make_face_clip(
    path: Path,
    seconds: float = 2.0,
    fps: float = 25.0,
    size: int = 256,
    audio: Path | None = None,
    blank: tuple[int, ...] = (),
) -> Path:
    """An mp4 of the moving face (H.264), with the given wav as AAC audio when provided."""
    import av

    frames = face_clip_frames(int(round(seconds * fps)), size, fps, blank)
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=int(fps) if float(fps).is_integer() else fps)
        stream.width = stream.height = size
        stream.pix_fmt = "yuv420p"
        # Every stream must exist before the first packet is muxed (the header is written then).
        audio_stream = None
        if audio is not None:
            samples, rate = _read_wav(Path(audio))
            samples = _fit_length(samples, int(round(seconds * rate)))
            audio_stream = container.add_stream("aac", rate=rate, layout="mono")
        for frame in frames:
            container.mux(stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
        container.mux(stream.encode(None))
        if audio_stream is not None:
            chunk = av.AudioFrame.from_ndarray(samples[None, :].astype(np.float32), format="fltp", layout="mono")
            chunk.sample_rate, chunk.pts = rate, 0
            container.mux(audio_stream.encode(chunk))
            container.mux(audio_stream.encode(None))
    return Path(path)


def write_corrupt_audio(path: Path) -> Path:
    """A file with an audio extension whose bytes are not audio."""
    Path(path).write_bytes(b"RIFF\x00\x00\x00\x00WAVEfmt " + bytes(range(256)) * 8)
    return Path(path)
