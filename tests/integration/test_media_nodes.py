"""HVLoadAudio -> HVSaveVideo in the real server, and bad input that must not take the server down."""

from fractions import Fraction

import av
import numpy as np
import pytest
from comfy_harness import load_audio

pytestmark = pytest.mark.integration


def save_video(images, audio=None, **overrides):
    inputs = {
        "images": images,
        "fps": 25.0,
        "filename_prefix": "HumanVideo/test",
        "quality_crf": 18,
        "length_from": "video",
        "ai_label": True,
        "label_corner": "bottom-right",
        "label_size": 0.1,
        "label_opacity": 1.0,
    }
    if audio is not None:
        inputs["audio"] = audio
    inputs.update(overrides)
    return {"class_type": "HVSaveVideo", "inputs": inputs}


def blank_frames(width=97, height=65, count=30, color=0x3366CC):
    return {
        "class_type": "EmptyImage",
        "inputs": {"width": width, "height": height, "batch_size": count, "color": color},
    }


def test_audio_and_frames_to_mp4(comfy):
    prompt = {
        "1": load_audio(sample_rate="16000", channels="mono"),
        "2": blank_frames(),
        "3": save_video(["2", 0], ["1", 0]),
    }
    result = comfy.run(prompt, timeout=120)
    assert result.ok, result.error
    [video] = [f for f in result.files if f.suffix == ".mp4"]
    assert video.is_file()
    with av.open(str(video)) as container:
        stream = container.streams.video[0]
        assert stream.average_rate == Fraction(25)
        assert (stream.width, stream.height) == (98, 66)  # odd sizes padded to even
        audio = container.streams.audio[0]
        assert audio.codec_context.name == "aac" and audio.rate == 16000
        assert container.metadata.get("ai_generated") == "true"
        frames = [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]
    assert len(frames) == 30
    with av.open(str(video)) as container:
        samples = sum(f.samples for f in container.decode(audio=0))
    assert abs(samples / 16000 - 30 / 25) < 0.07  # 3 s of speech cut to the 1.2 s video
    blue = np.array([0x33, 0x66, 0xCC])
    last = frames[-1][:65, :97].astype(int)
    assert np.abs(last[:20, :20] - blue).max() < 12  # untouched corner keeps the colour
    corner = last[-25:, -60:]
    assert (corner.min(-1) > 200).any(), "white label text expected in the bottom-right corner"
    assert (corner.max(-1) < 60).any(), "dark label box expected in the bottom-right corner"


def test_label_off_and_video_cut_to_audio(comfy):
    prompt = {
        "1": load_audio(duration_seconds=0.8),
        "2": blank_frames(width=64, height=48, count=50),
        "3": save_video(["2", 0], ["1", 0], ai_label=False, length_from="audio"),
    }
    result = comfy.run(prompt, timeout=120)
    assert result.ok, result.error
    [video] = result.files
    with av.open(str(video)) as container:
        frames = [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]
    assert len(frames) == 20  # 0.8 s at 25 fps
    assert np.abs(frames[-1].astype(int) - np.array([0x33, 0x66, 0xCC])).max() < 12  # no label


def test_corrupt_audio_is_reported_and_the_server_keeps_working(comfy):
    bad = comfy.run({"1": load_audio("corrupt.wav"), "2": blank_frames(count=2), "3": save_video(["2", 0], ["1", 0])})
    assert not bad.ok
    assert bad.error["node_type"] == "HVLoadAudio"
    assert "corrupt.wav" in bad.error["exception_message"]
    good = comfy.run({"1": load_audio(), "2": blank_frames(count=2), "3": save_video(["2", 0], ["1", 0])})
    assert good.ok, good.error


def test_video_file_without_audio_and_missing_path_are_clear(comfy):
    silent_clip = comfy.input_dir / "face.mp4"
    assert silent_clip.is_file()
    from humanvideo.batch.client import PromptRejected

    with pytest.raises(PromptRejected, match="path: 'does/not/exist.wav' is not a file in the input folder"):
        comfy.run(
            {
                "1": load_audio(path="does/not/exist.wav"),
                "2": blank_frames(count=2),
                "3": save_video(["2", 0], ["1", 0]),
            }
        )
    from_video = comfy.run(
        {"1": load_audio("face.mp4"), "2": blank_frames(count=2), "3": save_video(["2", 0], ["1", 0])}
    )
    assert from_video.ok, from_video.error


def test_uploaded_audio_is_listed_and_loads(comfy, tmp_path):
    from hv_fixtures import media

    name = comfy.upload(media.make_speech(tmp_path / "uploaded voice.wav", seconds=1.0))
    info = comfy.client.object_info(refresh=True)["HVLoadAudio"]["input"]["required"]["audio"]
    assert info[0] == "COMBO" and name in info[1]["options"]
    assert info[1].get("audio_upload") is True  # the upload button of core's audio loaders
    result = comfy.run({"1": load_audio(name), "2": blank_frames(count=3), "3": save_video(["2", 0], ["1", 0])})
    assert result.ok, result.error
