"""Both shipped LatentSync workflows run in the real server with tiny checkpoints on the test face clip."""

from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
from comfy_harness import node_of, shipped_api_workflow

pytestmark = pytest.mark.integration


def decode(path: Path) -> tuple[list[np.ndarray], Fraction, float]:
    with av.open(str(path)) as container:
        fps = container.streams.video[0].average_rate
        frames = [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]
    with av.open(str(path)) as container:
        rate = container.streams.audio[0].rate
        samples = sum(f.samples for f in container.decode(audio=0))
    return frames, fps, samples / rate


@pytest.mark.parametrize(
    "name, video, audio_seconds",
    [
        ("latentsync_1.5_256", "face_short.mp4", 0.52),  # 15 frames for the 10-frame (0.4 s) video: ping-pong
        ("latentsync_1.6_512", "face_short.mp4", 0.16),  # 6 frames: the video is cut
    ],
)
def test_shipped_workflow_runs_with_tiny_checkpoints(comfy, name, video, audio_seconds):
    prompt = shipped_api_workflow(name)
    node_of(prompt, "LoadVideo")["inputs"]["file"] = video
    node_of(prompt, "HVLoadAudio")["inputs"]["duration_seconds"] = audio_seconds
    node_of(prompt, "HVLatentSync")["inputs"].update(steps=2, guidance=1.5 if name.endswith("256") else 1.0)
    result = comfy.run(prompt, timeout=600)
    assert result.ok, result.error
    [mp4] = [f for f in result.files if f.suffix == ".mp4"]
    frames, fps, seconds = decode(mp4)
    assert fps == Fraction(25)
    # official length: floor(T / 2) + 2 frames for T Whisper positions (20 ms each)
    assert len(frames) == int(audio_seconds * 16000) // 320 // 2 + 2
    assert abs(seconds - len(frames) / 25) < 0.07
    with av.open(str(comfy.input_dir / video)) as container:
        source = [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]
    # The tiny UNet is random, so the mouth region changes while the top of the frame (hair, background) stays.
    top = slice(0, 40)
    assert np.abs(frames[1][top].astype(int) - source[1][top].astype(int)).mean() < 6
    assert np.abs(frames[1].astype(int) - source[1].astype(int)).max() > 40


def test_frames_without_a_face_pass_through(comfy):
    prompt = shipped_api_workflow("latentsync_1.5_256")
    node_of(prompt, "LoadVideo")["inputs"]["file"] = "face_gaps.mp4"  # frames 3 and 4 are blank grey
    node_of(prompt, "HVLoadAudio")["inputs"]["duration_seconds"] = 0.32
    node_of(prompt, "HVLatentSync")["inputs"].update(steps=1, guidance=1.0)
    node_of(prompt, "HVSaveVideo")["inputs"]["ai_label"] = False
    result = comfy.run(prompt, timeout=600)
    assert result.ok, result.error
    [mp4] = [f for f in result.files if f.suffix == ".mp4"]
    frames, _, _ = decode(mp4)
    assert len(frames) == 10  # 0.32 s of speech: 16 Whisper positions -> 16 // 2 + 2 frames
    for blank in (3, 4):
        assert np.abs(frames[blank].astype(int) - 128).max() < 6


def test_video_without_any_face_is_a_clear_error(comfy):
    prompt = shipped_api_workflow("latentsync_1.5_256")
    blank = {"class_type": "EmptyImage", "inputs": {"width": 128, "height": 128, "batch_size": 4, "color": 0x808080}}
    prompt["90"] = blank
    node_of(prompt, "HVFaceTrack")["inputs"]["images"] = ["90", 0]
    node_of(prompt, "HVLatentSync")["inputs"]["images"] = ["90", 0]
    node_of(prompt, "HVLatentSync")["inputs"]["fps"] = 25.0
    result = comfy.run(prompt, timeout=300)
    assert not result.ok
    assert result.error["node_type"] == "HVFaceTrack"
    assert "face" in result.error["exception_message"].lower()


def test_release_and_crop_size_mismatch_is_refused(comfy):
    prompt = shipped_api_workflow("latentsync_1.6_512")  # the 1.6 UNet ...
    node_of(prompt, "LoadVideo")["inputs"]["file"] = "face_short.mp4"
    node_of(prompt, "HVFaceTrack")["inputs"]["resolution"] = "256 (LatentSync 1.5)"  # ... with 1.5 settings
    result = comfy.run(prompt, timeout=300)
    assert not result.ok
    assert result.error["node_type"] == "HVLatentSync"
    assert "LatentSync 1.6" in result.error["exception_message"]
    assert "set Face Track's resolution to 512" in result.error["exception_message"]


def test_long_video_workflow_streams_a_tagged_mp4(comfy):
    """The streamed node in the real server: a VIDEO from Load Video in, the official frame count out at
    25 fps with the speech, the AI-generated tag and the visible label, and the mouth re-generated."""
    from humanvideo.media.watermark import PROVENANCE_KEY

    prompt = shipped_api_workflow("latentsync_long_video")
    node_of(prompt, "LoadVideo")["inputs"]["file"] = "face_short.mp4"
    node_of(prompt, "HVLoadAudio")["inputs"]["duration_seconds"] = 0.16
    node_of(prompt, "HVLatentSyncVideo")["inputs"].update(steps=1, guidance=1.0)
    result = comfy.run(prompt, timeout=600)
    assert result.ok, result.error
    [mp4] = [f for f in result.files if f.suffix == ".mp4"]
    frames, fps, seconds = decode(mp4)
    assert fps == Fraction(25) and len(frames) == 6  # 8 Whisper positions -> 8 // 2 + 2 frames
    assert abs(seconds - 6 / 25) < 0.07
    with av.open(str(mp4)) as container:
        assert container.metadata.get(PROVENANCE_KEY) == "true"
    with av.open(str(comfy.input_dir / "face_short.mp4")) as container:
        source = [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]
    top = slice(0, 40)
    assert np.abs(frames[1][top].astype(int) - source[1][top].astype(int)).mean() < 6
    assert np.abs(frames[1].astype(int) - source[1].astype(int)).max() > 40
