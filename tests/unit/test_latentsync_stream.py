"""Streaming LatentSync (video file in, mp4 out) against the in-memory pipeline on short clips.

The reference is what the IMAGE path gives for the same decoded frames and seed: Face Track on the
frames, `plan_timeline`, `lip_sync`, then the save node's label and rounding to uint8. The streamed
frames must equal it exactly, frame for frame.
"""

import av
import numpy as np
import pytest
import torch
from humanvideo.media import face_detect, face_track
from humanvideo.media.video_io import Mp4Writer, to_uint8_rgb
from humanvideo.media.video_stream import HeldFrameWriter, VideoReader
from humanvideo.media.watermark import PROVENANCE_KEY, make_label, provenance_metadata
from humanvideo.samplers.latentsync_denoise import DenoiseSettings
from humanvideo.samplers.latentsync_pipeline import lip_sync
from humanvideo.samplers.latentsync_stream import lip_sync_video
from humanvideo.samplers.latentsync_timeline import plan_timeline

# 64 px face crops instead of LatentSync's 256: every step (alignment, mouth mask, VAE, UNet, paste)
# takes the crop size as a parameter, and the equality of the two paths does not depend on it; the
# VAE and the UNet then work on 16 times fewer pixels.
CROP = 64


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """The tiny networks' ops are too small to gain from a second thread, and on a CPU shared with other
    jobs two threads waiting for each other made them several times slower."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    import hv_fixtures
    from humanvideo.loaders.latentsync_unet import build_unet
    from humanvideo.loaders.sd_vae import load_sd_vae
    from hv_fixtures.latentsync_unet import tiny_state_dict

    vae_file = hv_fixtures.generate(tmp_path_factory.mktemp("vae"), ["sd_vae"])["sd_vae"][0]
    return build_unet(tiny_state_dict(seed=3), dtype="fp32"), load_sd_vae(str(vae_file))


def detector():
    return face_detect.DlibFaceDetector(face_detect.PACKAGE_PREFIX + face_detect.LANDMARKS_68)


def clip(path, frames, fps, blank=(), size=160):
    from hv_fixtures.media import face_clip_frames

    pictures = face_clip_frames(frames=frames, size=size, fps=fps, blank=blank)
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.width = stream.height = size
        stream.pix_fmt = "yuv420p"
        for picture in pictures:
            container.mux(stream.encode(av.VideoFrame.from_ndarray(picture, format="rgb24")))
        container.mux(stream.encode(None))
    return str(path)


class RecordingSink:
    """Keeps every output frame as RGB (the decoded frame with its edit) and the held planes."""

    def __init__(self, layout):
        self.layout, self.rgb, self.planes, self.edits = layout, [], [], []

    def write(self, planes, edit):
        rgb = self.layout.to_rgb(planes)
        if edit is not None:
            x0, y0, x1, y1 = edit.box
            assert np.array_equal(rgb[y0:y1, x0:x1], edit.before)
            rgb[y0:y1, x0:x1] = edit.after
        self.rgb.append(rgb)
        self.planes.append(planes)
        self.edits.append(edit)


def in_memory(reader, tokens, unet, vae, settings, seed, frame_rate, short, long, paste, label, stabilize):
    frames = torch.from_numpy(np.stack([reader.info.layout.to_rgb(p) for p in reader.frames()])).float() / 255.0
    track = face_track.track_faces(frames, detector(), resolution=CROP, stabilize=stabilize)
    timeline = plan_timeline(frames.shape[0], reader.info.fps, tokens.shape[0], frame_rate, short, long)
    result = lip_sync(frames, track, tokens, unet, vae, settings, seed, timeline, paste)
    out = [label.apply(f) if label is not None else f for f in result.images]
    return [to_uint8_rgb(f, f.shape[0], f.shape[1]) for f in out], track, timeline


# Chunks of 4 frames instead of the official 16 keep the clips short while still crossing chunk
# boundaries (the generator's draws, the noise and the output order must carry over exactly).
@pytest.mark.parametrize(
    "fps, frames, blank, audio_frames, frame_rate, short, long, paste, stabilize, ai_label, guidance",
    [
        # 30 fps: ffmpeg's -r 25 choice drops a frame; 5 frames at 25 fps for 7 audio frames: ping-pong
        (30, 6, (3,), 7, "official", "pingpong", "cut", "face", "official", True, 1.0),
        # source fps, a shorter video looped, Gaussian alignment, mouth paste, guidance (unconditional pass)
        (20, 4, (), 6, "source", "loop", "cut", "mouth", "gaussian", False, 1.5),
        # longer than the audio, the rest kept unchanged
        (25, 5, (2,), 3, "nearest", "hold", "keep", "face", "official", True, 1.0),
    ],
)
def test_streamed_frames_equal_the_in_memory_pipeline(
    tmp_path, models, fps, frames, blank, audio_frames, frame_rate, short, long, paste, stabilize, ai_label, guidance
):
    unet, vae = models
    reader = VideoReader(clip(tmp_path / "in.mp4", frames, fps, blank))
    layout = reader.info.layout
    tokens = torch.randn(audio_frames, 50, 384, generator=torch.Generator().manual_seed(5))
    settings = DenoiseSettings(steps=1, guidance=guidance, chunk_frames=4)
    label = make_label(layout.height, layout.width, size=0.1) if ai_label else None
    expected, track, timeline = in_memory(
        reader, tokens, unet, vae, settings, 11, frame_rate, short, long, paste, label, stabilize
    )

    sinks, stages = [], []

    def open_sink(count, rate):
        assert count == len(timeline.output_source)
        sinks.append(RecordingSink(layout))
        return sinks[0]

    result = lip_sync_video(
        reader,
        face_track.FaceTracker(detector(), CROP, stabilize=stabilize),
        tokens,
        unet,
        vae,
        settings,
        11,
        open_sink,
        frame_rate=frame_rate,
        short_video=short,
        long_video=long,
        paste_region=paste,
        label=label,
        disk_dir=str(tmp_path),
        progress=lambda stage, done, total: stages.append((stage, done, total)),
    )
    got = sinks[0].rgb
    assert len(got) == len(expected) == result.frames
    for j, (a, b) in enumerate(zip(got, expected, strict=True)):
        assert np.array_equal(a, b), f"output frame {j} differs"
    np.testing.assert_array_equal(result.track.affines, track.affines)
    assert result.timeline == timeline
    # frames shown without a face (and, unlabelled, with no new mouth) keep their decoded planes untouched
    for j, edit in enumerate(sinks[0].edits):
        if edit is None:
            src = timeline.output_source[j]
            assert not track.has_face[src] or timeline.output_process[j] < 0
    assert stages[-1] == ("lip sync", len(expected), len(expected))
    assert ("tracking", frames, frames) in stages


def test_streamed_mp4_keeps_untouched_samples_and_carries_sound_and_tags(tmp_path, models):
    """Lossless encode (crf 0): a frame without a face comes back with exactly its decoded planes, and
    every sample of a synced frame outside the pasted face too; the speech and the tags are in the file."""
    unet, vae = models
    reader = VideoReader(clip(tmp_path / "in.mp4", 4, 25, blank=(1,)))
    layout = reader.info.layout
    tokens = torch.randn(4, 50, 384, generator=torch.Generator().manual_seed(1))
    speech = torch.sin(torch.linspace(0, 900, 16000))[None] * 0.3  # 1 s for 0.16 s of video: cut to fit
    out = str(tmp_path / "out.mp4")
    written = {}

    def open_sink(count, rate):
        writer = Mp4Writer(
            out,
            count,
            (layout.height, layout.width),
            rate,
            audio=(speech, 16000),
            crf=0,
            metadata=provenance_metadata("test"),
            pix_fmt=layout.format,
            colour=layout.colour_tags,
        )
        written["writer"] = writer
        return HeldFrameWriter(writer, layout)

    result = lip_sync_video(
        reader,
        face_track.FaceTracker(detector(), CROP),
        tokens,
        unet,
        vae,
        DenoiseSettings(steps=1, guidance=1.0),
        3,
        open_sink,
        paste_region="mouth",
    )
    info = written["writer"].close()
    assert info.frames == result.frames == 4
    source = list(reader.frames())
    with av.open(out) as container:
        assert container.metadata.get(PROVENANCE_KEY) == "true"
        video = container.streams.video[0]
        assert video.codec_context.pix_fmt == "yuv420p" and video.average_rate == 25
        decoded = [reader._held(f) for f in container.decode(video=0)]  # the same planes a reader gives
    with av.open(out) as container:
        samples = sum(f.samples for f in container.decode(audio=0))
    assert abs(samples / 16000 - 4 / 25) < 0.07
    assert len(decoded) == 4
    for plane_out, plane_in in zip(decoded[1], source[1], strict=True):
        np.testing.assert_array_equal(plane_out, plane_in)  # no face: the decoded samples, exactly
    luma_changed = decoded[3][0] != source[3][0]
    assert luma_changed.any()
    rows, cols = np.nonzero(luma_changed)
    box = result.track.boxes[3]
    assert rows.min() > box[1] + 0.3 * (box[3] - box[1])  # only the lower face (mouth paste) changed
    assert np.array_equal(decoded[3][0][: rows.min()], source[3][0][: rows.min()])


def test_bad_inputs_are_named(tmp_path, models):
    unet, vae = models
    with pytest.raises(ValueError, match="cannot read"):
        VideoReader(str(tmp_path / "missing.mp4"))
    reader = VideoReader(clip(tmp_path / "blank.mp4", 3, 25, blank=(0, 1, 2)))
    with pytest.raises(ValueError, match="no face"):
        lip_sync_video(
            reader,
            face_track.FaceTracker(detector(), CROP),
            torch.zeros(3, 50, 384),
            unet,
            vae,
            DenoiseSettings(steps=1),
            0,
            lambda count, rate: pytest.fail("nothing may be written"),
        )


def test_speech_features_come_from_exactly_one_input(tmp_path):
    """The video node's speech: streamed from a Whisper model (the same windows as Whisper Audio Features
    gives), or the features connected, which must be of the connected sound."""
    import hv_fixtures
    from humanvideo.loaders.whisper import load_whisper
    from humanvideo.models.audio_features import StreamedAudioFeatures, latentsync_audio_windows
    from humanvideo.nodes.latentsync_video import speech_features
    from humanvideo.nodes.video import sound_track
    from humanvideo.nodes.whisper import HVWhisperFeatures

    [path] = hv_fixtures.generate(tmp_path, ["whisper_tiny"])["whisper_tiny"]
    whisper = load_whisper(str(path), "fp32")
    t = torch.arange(2 * 44100) / 44100
    audio = {"waveform": (0.3 * torch.sin(2 * torch.pi * 220 * t)).expand(1, 2, -1).clone(), "sample_rate": 44100}
    sound = sound_track(audio)
    official = "independent 30 s (official)"
    whole = HVWhisperFeatures.execute(audio, whisper, official, "auto").result[0]
    streamed = speech_features(audio, sound, whisper, official, None)
    assert isinstance(streamed, StreamedAudioFeatures) and streamed.num_samples == whole.num_samples
    lazy = latentsync_audio_windows(streamed, 25, lazy=True)
    assert torch.equal(lazy[:], latentsync_audio_windows(whole, 25))
    assert speech_features(audio, sound, None, official, whole) is whole
    with pytest.raises(ValueError, match="exactly one of whisper"):
        speech_features(audio, sound, None, official, None)
    with pytest.raises(ValueError, match="exactly one of whisper"):
        speech_features(audio, sound, whisper, official, whole)
    with pytest.raises(ValueError, match="whisper_windows: unknown choice"):
        speech_features(audio, sound, whisper, "sliding", None)
    shorter = {"waveform": audio["waveform"][..., :44100], "sample_rate": 44100}
    with pytest.raises(ValueError, match="different sounds"):
        speech_features(shorter, sound_track(shorter), None, official, whole)
