"""LatentSync glue: length planning (official ping-pong), release/crop-size check, end-to-end on tiny models."""

import types

import pytest
import torch
from humanvideo.loaders.latentsync_unet import release_resolution_from_path
from humanvideo.nodes.latentsync import check_release_resolution
from humanvideo.samplers.latentsync_timeline import audio_frame_count, plan_length


def test_pingpong_is_forward_then_reversed_like_the_official_loop_video():
    # official loop_video: concatenate(frames, flip(frames)) repeated, truncated to the audio
    plan = plan_length(4, 11, "pingpong")
    assert plan.source_index == [0, 1, 2, 3, 3, 2, 1, 0, 0, 1, 2]
    assert plan.synced == 11 and "shorter" in plan.note


def test_loop_hold_cut_and_keep():
    assert plan_length(3, 7, "loop").source_index == [0, 1, 2, 0, 1, 2, 0]
    assert plan_length(3, 5, "hold").source_index == [0, 1, 2, 2, 2]
    cut = plan_length(10, 4, long_video="cut")
    assert cut.source_index == [0, 1, 2, 3] and cut.synced == 4
    keep = plan_length(10, 4, long_video="keep")
    assert keep.source_index == list(range(10)) and keep.synced == 4 and "unchanged" in keep.note
    assert plan_length(5, 5).note == ""


@pytest.mark.parametrize(
    "args, message",
    [((0, 5), "no frames"), ((5, 0), "shorter than one video frame"), ((5, 9, "bounce"), "short_video")],
)
def test_bad_lengths(args, message):
    with pytest.raises(ValueError, match=message):
        plan_length(*args)


def test_audio_duration_in_frames():
    assert audio_frame_count(16000 * 2, 16000, 25.0) == 50
    assert audio_frame_count(16000 * 2, 16000, 29.97) == 60
    assert audio_frame_count(100, 16000, 25.0) == 0


@pytest.mark.parametrize(
    "path, expected",
    [
        ("/m/latentsync/1.5/latentsync_unet.pt", 256),
        ("/m/latentsync/1.6/latentsync_unet.pt", 512),
        ("/m/latentsync/latentsync_unet_512.safetensors", 512),
        ("/m/latentsync/latentsync_unet.pt", None),
        ("/m/latentsync/v1.5_and_1.6/latentsync_unet.pt", None),  # says both: do not guess
        ("/m/latentsync/1.55/latentsync_unet.pt", None),
    ],
)
def test_release_from_path(path, expected):
    assert release_resolution_from_path(path) == expected


def test_release_mismatch_is_refused_and_unknown_is_reported():
    unet = types.SimpleNamespace(model=types.SimpleNamespace(release_resolution=256, source_path="1.5/u.pt"))
    assert check_release_resolution(unet, 256) == ""
    with pytest.raises(ValueError, match="LatentSync 1.5, trained on 256 px faces, but Face Track made 512"):
        check_release_resolution(unet, 512)
    unknown = types.SimpleNamespace(model=types.SimpleNamespace(release_resolution=None))
    assert "does not say LatentSync 1.5 or 1.6" in check_release_resolution(unknown, 512)


def test_odd_sized_portrait_60fps_clip_end_to_end(tmp_path):
    """Tiny UNet + tiny SD VAE on a real face: odd portrait frames at 60 fps, audio longer than the video."""
    import hv_fixtures
    import hv_fixtures.media as fixture_media
    from humanvideo.loaders.latentsync_unet import build_unet
    from humanvideo.loaders.sd_vae import load_sd_vae
    from humanvideo.media import face_detect, face_track
    from humanvideo.samplers.latentsync_denoise import DenoiseSettings
    from humanvideo.samplers.latentsync_pipeline import lip_sync
    from humanvideo.samplers.latentsync_timeline import plan_timeline
    from hv_fixtures.latentsync_unet import tiny_state_dict

    frames = fixture_media.face_clip_frames(frames=3, size=256, fps=60.0)[:, :, 37:220]  # 256 x 183, odd width
    images = torch.from_numpy(frames).float() / 255.0
    detector = face_detect.DlibFaceDetector(face_detect.PACKAGE_PREFIX + face_detect.LANDMARKS_68)
    track = face_track.track_faces(images, detector, resolution=256)
    vae = load_sd_vae(str(hv_fixtures.generate(tmp_path, ["sd_vae"])["sd_vae"][0]))
    unet = build_unet(tiny_state_dict(seed=3), dtype="fp32")
    audio = torch.randn(5, 50, 384)  # 5 frames of audio at 25 fps for a 3-frame 60 fps video
    timeline = plan_timeline(3, 60.0, 5, frame_rate="source")  # keep the 60 fps frames: 12 output frames
    assert timeline.output_source == [0, 1, 2, 2, 1, 0, 0, 1, 2, 2, 1, 0]
    result = lip_sync(
        images, track, audio, unet, vae, DenoiseSettings(steps=1, guidance=1.5), 1, timeline, paste_region="mouth"
    )
    assert result.images.shape == (12, 256, 183, 3) and result.fps == 60.0
    assert torch.isfinite(result.images).all()
    assert not result.images.requires_grad
    changed = (result.images[:3] - images).abs().amax(-1)
    box = track.boxes[0]  # x1 y1 x2 y2 of the face (about 63,55 .. 138,131 here)
    eyes_and_above = int(box[1] + 0.35 * (box[3] - box[1]))
    assert changed[:, :eyes_and_above].max() < 1e-6  # nothing above the mouth region moves ('mouth' paste)
    assert changed[:, :, : int(box[0]) - 5].max() < 1e-6  # nor left of the face
    assert changed[:, int(box[1]) :, int(box[0]) : int(box[2])].max() > 0.05  # the lower face was regenerated
    # ping-pong at the source rate: output frames 3 and 4 repeat source frames 2 and 1
    assert torch.equal(result.images[3][:eyes_and_above], images[2][:eyes_and_above])
    assert torch.equal(result.images[4][:eyes_and_above], images[1][:eyes_and_above])
    assert "shorter than the audio" in result.report


def test_lip_sync_audio_windows_count_official_or_by_duration():
    from humanvideo.models.audio_features import AudioFeatures
    from humanvideo.samplers.latentsync_pipeline import lip_sync_audio_windows

    def whisper(positions, width=384, samples=None):
        states = torch.randn(positions, 6, width, generator=torch.Generator().manual_seed(0))
        return AudioFeatures(states, 4, "test", samples if samples is not None else positions * 320, 80)

    feats = whisper(100)  # 2 s of 50 Hz positions
    assert lip_sync_audio_windows(feats).shape == (52, 50, 384)  # official: floor(100 / 2) + 2
    assert lip_sync_audio_windows(feats, "audio").shape == (50, 50, 384)  # 2 s at 25 fps
    lazy = lip_sync_audio_windows(feats, "audio", lazy=True)
    assert lazy.shape[0] == 50 and torch.equal(lazy[3:5], lip_sync_audio_windows(feats, "audio")[3:5])
    with pytest.raises(ValueError, match="length must be one of"):
        lip_sync_audio_windows(feats, "audio + 2 frames")
    with pytest.raises(ValueError, match="Whisper-tiny"):
        lip_sync_audio_windows(whisper(100, width=512))
    with pytest.raises(ValueError, match="shorter than one 25 fps frame"):
        lip_sync_audio_windows(whisper(1, samples=100), "audio")
