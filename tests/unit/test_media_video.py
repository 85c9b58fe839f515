"""mp4 writing: odd sizes, quality, audio fitted to the video, the AI label, provenance tags."""

from fractions import Fraction

import av
import numpy as np
import pytest
import torch
from humanvideo.media.video_io import Mp4Writer, fit_audio, write_mp4
from humanvideo.media.watermark import PROVENANCE_KEY, make_label, provenance_metadata


def gradient_frames(n, h, w):
    y = torch.linspace(0, 1, h)[:, None, None].expand(h, w, 1)
    x = torch.linspace(0, 1, w)[None, :, None].expand(h, w, 1)
    return torch.stack([torch.cat([y, x, torch.full_like(x, i / n)], -1) for i in range(n)])


def test_odd_size_with_audio_is_padded_and_audio_fitted(tmp_path):
    frames = gradient_frames(20, 33, 31)
    audio = torch.sin(torch.linspace(0, 300, 16000 * 2))[None]  # 2 s of audio for 0.8 s of video
    path = str(tmp_path / "v.mp4")
    info = write_mp4(
        path, iter(frames), 20, (33, 31), 25.0, audio=(audio, 16000), crf=18, metadata=provenance_metadata("test")
    )
    assert (info.width, info.height, info.padded) == (32, 34, (1, 1))
    with av.open(path) as c:
        v, a = c.streams.video[0], c.streams.audio[0]
        assert (v.codec_context.name, v.codec_context.pix_fmt) == ("h264", "yuv420p")
        assert v.average_rate == Fraction(25) and (v.width, v.height) == (32, 34)
        assert a.codec_context.name == "aac" and a.rate == 16000
        assert c.metadata.get(PROVENANCE_KEY) == "true"
        decoded = [f.to_ndarray(format="rgb24") for f in c.decode(video=0)]
    assert len(decoded) == 20
    original = (frames[5].numpy() * 255).round()
    assert np.abs(decoded[5][:33, :31].astype(float) - original).mean() < 4.0
    with av.open(path) as c:
        samples = sum(f.samples for f in c.decode(audio=0))
    assert abs(samples / 16000 - 0.8) < 0.07  # AAC priming/padding is at most a frame or two


def test_fit_audio_pads_trims_and_folds_channels():
    six = torch.arange(6.0)[:, None].expand(6, 10)
    out = fit_audio(six, 10, 2.0)
    assert out.shape == (2, 20)
    assert torch.equal(out[:, :10], torch.tensor([[2.0], [3.0]]).expand(2, 10))
    assert torch.count_nonzero(out[:, 10:]) == 0
    assert fit_audio(torch.ones(1, 100), 10, 1.0).shape == (1, 10)


def test_crf_changes_file_size(tmp_path):
    frames = torch.rand(10, 64, 64, 3)
    sizes = []
    for crf in (10, 40):
        path = tmp_path / f"c{crf}.mp4"
        write_mp4(str(path), iter(frames), 10, (64, 64), 25.0, crf=crf)
        sizes.append(path.stat().st_size)
    assert sizes[0] > 2 * sizes[1]


@pytest.mark.parametrize("fps, count, message", [(0.0, 3, "fps"), (-5, 3, "fps"), (25.0, 0, "no frames")])
def test_bad_arguments(tmp_path, fps, count, message):
    with pytest.raises(ValueError, match=message):
        write_mp4(str(tmp_path / "x.mp4"), iter(torch.zeros(3, 8, 8, 3)), count, (8, 8), fps)


def test_label_changes_only_its_corner():
    frame = torch.full((120, 200, 3), 0.5)
    stamp = make_label(120, 200, corner="top-left", size=0.1, opacity=1.0)
    out = stamp.apply(frame)
    h, w = stamp.rgb.shape[:2]
    changed = (out - frame).abs().sum(-1) > 1e-6
    assert changed[stamp.top : stamp.top + h, stamp.left : stamp.left + w].any()
    changed[stamp.top : stamp.top + h, stamp.left : stamp.left + w] = False
    assert not changed.any()
    assert stamp.top < 10 and stamp.left < 10
    assert out.max() > 0.9 and out.min() < 0.3  # white text on a dark box
    with pytest.raises(ValueError, match="corner"):
        make_label(100, 100, corner="middle")


def test_a_failed_write_leaves_no_file(tmp_path):
    target = tmp_path / "out.mp4"
    with pytest.raises(ValueError, match="expected 5 frames, got 3"):
        write_mp4(str(target), iter(torch.zeros(3, 8, 8, 3)), 5, (8, 8), 25.0)
    assert list(tmp_path.iterdir()) == []


def test_cancel_between_frames_leaves_no_file(tmp_path):
    class Cancelled(Exception):
        pass

    def on_frame(done: int) -> None:
        if done == 2:
            raise Cancelled

    with pytest.raises(Cancelled):
        write_mp4(str(tmp_path / "out.mp4"), iter(torch.zeros(6, 8, 8, 3)), 6, (8, 8), 25.0, on_frame=on_frame)
    assert list(tmp_path.iterdir()) == []
    done = write_mp4(str(tmp_path / "out.mp4"), iter(torch.zeros(6, 8, 8, 3)), 6, (8, 8), 25.0, on_frame=lambda _: None)
    assert done.path == str(tmp_path / "out.mp4") and [p.name for p in tmp_path.iterdir()] == ["out.mp4"]


def test_non_finite_audio_is_refused():
    from humanvideo.media.audio_io import validate_audio

    bad = torch.zeros(1, 1, 100)
    bad[0, 0, 5] = float("nan")
    with pytest.raises(ValueError, match="sound: the waveform holds NaN or infinite samples"):
        validate_audio({"waveform": bad, "sample_rate": 16000}, "sound")


@pytest.mark.parametrize("announced", [True, False])
def test_streaming_writer_takes_frames_as_they_come(tmp_path, announced):
    """Frames written one by one (announced count or not): sound fitted to the frames written, tags kept."""
    frames = gradient_frames(12, 32, 48)
    audio = torch.sin(torch.linspace(0, 300, 16000))[None].expand(2, -1)  # 1 s for 0.48 s of video
    path = str(tmp_path / "s.mp4")
    with Mp4Writer(
        path, 12 if announced else None, (32, 48), 25.0, audio=(audio, 16000), metadata=provenance_metadata("t")
    ) as writer:
        for frame in frames:
            writer.write_image(frame)
    with av.open(path) as c:
        assert c.metadata.get(PROVENANCE_KEY) == "true"
        assert c.streams.audio[0].channels == 2
        assert len(list(c.decode(video=0))) == 12
    with av.open(path) as c:
        samples = sum(f.samples for f in c.decode(audio=0))
    assert abs(samples / 16000 - 0.48) < 0.07


def test_streaming_writer_pads_short_sound_with_silence(tmp_path):
    audio = torch.full((1, 1600), 0.5)  # 0.1 s of sound for 0.4 s of video
    path = str(tmp_path / "q.mp4")
    writer = Mp4Writer(path, None, (16, 16), 25.0, audio=(audio, 16000))
    for frame in gradient_frames(10, 16, 16):
        writer.write_image(frame)
    info = writer.close()
    assert info.frames == 10 and info.audio_seconds == pytest.approx(0.4)


def test_streaming_writer_leaves_no_partial_file(tmp_path):
    path = tmp_path / "a.mp4"
    with pytest.raises(RuntimeError, match="stop"), Mp4Writer(str(path), 5, (16, 16), 25.0) as writer:
        writer.write_image(torch.zeros(16, 16, 3))
        raise RuntimeError("stop")
    assert not path.exists()
    writer = Mp4Writer(str(path), 5, (16, 16), 25.0)
    writer.write_image(torch.zeros(16, 16, 3))
    with pytest.raises(ValueError, match="expected 5 frames, got 1"):
        writer.close()  # fewer frames than announced
    assert not path.exists()
    writer = Mp4Writer(str(path), 1, (16, 16), 25.0)
    writer.write_image(torch.zeros(16, 16, 3))
    with pytest.raises(ValueError, match="all 1 frames"):
        writer.write_image(torch.zeros(16, 16, 3))
    writer.abort()
    assert not path.exists()
    with pytest.raises(ValueError, match="AAC cannot store"):
        Mp4Writer(str(path), 1, (16, 16), 25.0, audio=(torch.zeros(1, 10), 12345))
    assert not path.exists()
