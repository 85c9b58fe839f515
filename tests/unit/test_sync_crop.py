"""SyncNet pre-processing: 25 fps conversion, speaker tracks, crop geometry, and the scoring node end to end
on a real photo with dlib's detector (random SyncNet weights: the numbers are not meaningful, the path is)."""

import json
from pathlib import Path

import hv_fixtures.media as fixture_media
import numpy as np
import pytest
import torch
from humanvideo.media import sync_crop
from humanvideo.media.face_detect import LANDMARKS_68, PACKAGE_PREFIX, DlibFaceDetector, Face
from humanvideo.models.syncnet import SyncNet
from humanvideo.nodes.syncnet import HVSyncScore
from humanvideo.samplers.sync_score import score_video

PACKAGED_68 = PACKAGE_PREFIX + LANDMARKS_68


# Source frame shown in each output frame of `ffmpeg -i in.mkv -qscale:v 2 -async 1 -r 25 out.mp4` (ffmpeg 5.1,
# Debian 12; the official evaluation's conversion), for numbered clips of N frames at the given fps.
FFMPEG_R25 = json.loads((Path(__file__).parent / "data" / "ffmpeg_r25.json").read_text())


def test_frame_rate_conversion_picks_frames_as_ffmpeg_r25():
    for key, expected in FFMPEG_R25.items():
        if key == "source":
            continue
        fps, n = key.split("_")
        assert sync_crop.indices_at_25fps(int(n), float(fps)).tolist() == expected, key
    assert sync_crop.indices_at_25fps(10, 25.0).tolist() == list(range(10))
    with pytest.raises(ValueError, match="fps"):
        sync_crop.indices_at_25fps(10, 0.0)


def _face(x, y, size):
    return Face(
        box=np.array([x, y, x + size, y + size], np.float32), landmarks=np.zeros((68, 2), np.float32), score=1.0
    )


def test_tracks_follow_overlapping_boxes_across_gaps_and_drop_short_or_small_ones():
    frames = []
    for t in range(60):
        faces = [_face(100 + t, 50, 120)]  # speaker A moves slowly right
        if 10 <= t < 40:
            faces.append(_face(400, 60, 80))  # a small face, 30 frames
        if t in (20, 21, 22):
            faces = [f for f in faces if f.box[0] > 300]  # A missed for 3 frames
        frames.append(faces)
    tracks, dropped = sync_crop.build_tracks(frames, min_track=20, min_face_size=100)
    assert len(tracks) == 1
    a = tracks[0]
    assert (a.start, a.end, a.detections) == (0, 59, 57)
    np.testing.assert_allclose(a.boxes[21], [121, 50, 241, 170])  # interpolated over the gap
    assert len(dropped) == 1 and "min_face_size=100" in dropped[0]
    tracks, dropped = sync_crop.build_tracks(frames, min_track=57, min_face_size=50)
    assert len(tracks) == 0 and len(dropped) == 2  # both faces too rarely seen
    assert "frames 0-59: 57 detections, not more than min_track=57" in dropped


def test_crop_window_is_the_official_geometry():
    # s = 50, centre (200, 150): pad int(50 * 1.8) = 90; in the padded frame rows [y-s, y+2.8s), cols [x-1.4s, x+1.4s)
    assert sync_crop.crop_window(50.0, 150.0, 200.0) == (90, 190, 330, 220, 360)
    # a face near the left edge: s = 50, centre (60, 200); columns start 10 px left of the frame
    track = sync_crop.SpeakerTrack(np.arange(13), np.array([[10.0, 150.0, 110.0, 250.0]] * 13), 13)
    frame = np.zeros((300, 400, 3), np.uint8)
    frame[..., 0] = 255  # pure red RGB -> BGR (0, 0, 255)
    crops = sync_crop.crop_track(lambda i: frame, track)
    assert crops.shape == (13, 224, 224, 3) and crops.dtype == torch.uint8
    assert crops[6, 112, 112].tolist() == [0, 0, 255]
    assert crops[6, 112, 0].tolist() == [110, 110, 110]  # the official grey padding
    assert crops[6, 112, 12].tolist() == [110, 110, 110] and crops[6, 112, 20].tolist() == [0, 0, 255]


@pytest.fixture(scope="module")
def face_clip():
    frames = fixture_media.face_clip_frames(frames=12, size=256)
    images = torch.from_numpy(frames).float() / 255.0
    voice = fixture_media.synthesized_voice(12 / 25.0, 16000)
    return images, {"waveform": torch.from_numpy(voice)[None, None], "sample_rate": 16000}


def test_bad_inputs_give_clear_errors(face_clip):
    images, audio = face_clip
    detector = DlibFaceDetector(PACKAGED_68)
    model = SyncNet().eval()
    grey = torch.full_like(images, 0.5)
    with pytest.raises(ValueError, match="no speaker track.*no face detected"):
        score_video(grey, 25.0, audio["waveform"], 16000, model, detector.detect, min_track=6)
    with pytest.raises(ValueError, match="too short"):
        score_video(images[:5], 25.0, audio["waveform"], 16000, model, detector.detect, min_track=6)
    with pytest.raises(ValueError, match="too short for min_track=50"):
        score_video(images, 25.0, audio["waveform"], 16000, model, detector.detect)
    silent = torch.zeros_like(audio["waveform"])
    with pytest.raises(ValueError, match="silent"):
        score_video(images, 25.0, silent, 16000, model, detector.detect, min_track=6)


def test_node_takes_images_audio_fps_and_reports(face_clip):
    images, audio = face_clip
    # 50 fps input: converted to 25 fps first as ffmpeg does (24 frames -> 14: it keeps 4 frames at the start)
    doubled = images.repeat_interleave(2, dim=0)
    out = HVSyncScore.execute(
        SyncNet().eval(), PACKAGED_68, "hog", min_track=6, min_face_size=0, fps=50.0, images=doubled, audio=audio
    )
    sync_c, sync_d, offset, plot, report = out.args
    assert np.isfinite(sync_c) and np.isfinite(sync_d) and isinstance(offset, int) and -15 <= offset <= 15
    assert "24 frames at 50 fps -> 14 frames at 25 fps" in report and "speaker 1: frames 0-13" in report
    assert plot.shape[0] == 1 and plot.shape[3] == 3 and plot.shape[2] == 960
    assert (plot[0, :, :, 0] > 0.8).logical_and(plot[0, :, :, 1] < 0.2).any()  # weakest windows marked red
    assert out.ui["hv_sync"][0]["speakers"][0]["frames"] == [0, 13] and out.ui["text"] == [report]
    with pytest.raises(ValueError, match="connect a VIDEO, or images"):
        HVSyncScore.execute(SyncNet(), PACKAGED_68, "hog", 6, 0, images=images)
