"""LatentSync pipeline steps against the official inference (bytedance/LatentSync a229c39).

Reference numbers were computed by running the official functions outside this repository
(`ImageProcessor.preprocess_fixed_mask_image`, `AlignRestore.transformation_from_points`,
`Audio2Feature.feature2chunks`, `LipsyncPipeline.loop_video`) and ffmpeg 7 (`-r 25`, in
`data/ffmpeg7_rate25_selections.json`); only the numbers are kept here.

- masked image: the regenerated region is mid-grey in [-1, 1] (0), not black;
- 25 fps: frames picked as `ffmpeg -r 25` picks them, length floor(T / 2) + 2, ping-pong, result at 25 fps;
- alignment: rounded points, the translation offset average, whole-crop paste by default;
- numerics: every GroupNorm of the UNet gets a contiguous input.
"""

from __future__ import annotations

import json
from dataclasses import asdict
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
import torch
from humanvideo.media import face_align, face_track
from humanvideo.media.face_detect import Face
from humanvideo.media.frame_rate import (
    FfmpegRateConverter,
    ffmpeg_rate_indices,
    nearest_frame_count,
    nearest_rate_indices,
)
from humanvideo.media.mouth_mask import keep_mask
from humanvideo.models.audio_features import AudioFeatures, latentsync_official_frame_count
from humanvideo.models.latentsync_motion import MotionModule, MotionModuleConfig
from humanvideo.models.latentsync_unet import video_group_norm
from humanvideo.samplers import latentsync_pipeline as pipeline
from humanvideo.samplers.latentsync_denoise import DenoiseSettings
from humanvideo.samplers.latentsync_timeline import loop_index, plan_length, plan_timeline
from hv_fixtures import latentsync_unet as unet_fixture

pytestmark = pytest.mark.usefixtures("one_thread")

DATA = Path(__file__).parent / "data"
PACK_ROOT = Path(__file__).resolve().parents[2]


# ---------------------------------------------------------------- 5. masked image

# `preprocess_fixed_mask_image` on an 8 x 8 crop with pixel values (5 i) mod 256 (i = flat index over
# c, h, w) and a keep mask of 1 on rows 0-2, 0.5 on row 3 and 1 on columns 0-1 of rows 4-7: channel 0.
OFFICIAL_KEEP = [[1.0] * 8] * 3 + [[0.5] * 8] + [[1.0, 1.0] + [0.0] * 6] * 4
OFFICIAL_MASKED_CHANNEL0 = [
    [-1.0, -0.960784, -0.921569, -0.882353, -0.843137, -0.803922, -0.764706, -0.72549],
    [-0.686275, -0.647059, -0.607843, -0.568627, -0.529412, -0.490196, -0.45098, -0.411765],
    [-0.372549, -0.333333, -0.294118, -0.254902, -0.215686, -0.176471, -0.137255, -0.098039],
    [-0.029412, -0.009804, 0.009804, 0.029412, 0.04902, 0.068627, 0.088235, 0.107843],
    [0.254902, 0.294118, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0],
    [0.568627, 0.607843, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0],
    [0.882353, 0.921569, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0],
    [-0.811765, -0.772549, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0],
]
OFFICIAL_MASKED_ROW3_CHANNEL2 = [0.472549, 0.492157, -0.492157, -0.472549, -0.452941, -0.433333, -0.413725, -0.394118]


def test_masked_crop_is_mid_grey_like_the_official_preprocess():
    keep = torch.tensor(OFFICIAL_KEEP)
    crop = (torch.arange(3 * 64, dtype=torch.float32).reshape(3, 8, 8) * 5 % 256).permute(1, 2, 0)[None] / 255
    masked = pipeline.grey_masked(crop, keep)[0] * 2 - 1  # back to the official [-1, 1]
    torch.testing.assert_close(masked[..., 0], torch.tensor(OFFICIAL_MASKED_CHANNEL0), atol=1e-6, rtol=0)
    torch.testing.assert_close(masked[3, :, 2], torch.tensor(OFFICIAL_MASKED_ROW3_CHANNEL2), atol=1e-6, rtol=0)
    assert torch.all(pipeline.grey_masked(crop, keep)[0][keep == 0] == 0.5)  # mid-grey, not black


class StubDetector:
    """One 68-point face per frame whose brow / brow / nose centres are given (exercises the real tracker)."""

    name = "stub"

    def __init__(self, points_per_frame: np.ndarray):
        self.points = np.asarray(points_per_frame, dtype=np.float64)
        self.calls = 0

    def detect(self, frame: np.ndarray) -> list[Face]:
        brow_l, brow_r, nose = self.points[self.calls % len(self.points)]
        self.calls += 1
        lm = np.zeros((68, 2), np.float32)
        lm[17:22], lm[22:27], lm[27:36] = brow_l, brow_r, nose
        lm[36:] = nose + [0.0, 20.0]
        box = np.array([brow_l[0] - 20, brow_l[1] - 30, brow_r[0] + 20, nose[1] + 60], np.float32)
        return [Face(box, lm, 1.0)]


def _synthetic_video(frames: int, size: int = 96, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    smooth = torch.nn.functional.interpolate(torch.rand(frames, 3, 12, 12, generator=g), size=(size, size))
    return smooth.permute(0, 2, 3, 1).contiguous()


def _track(frames: int, stabilize: str = "official", size: int = 96) -> face_track.FaceTrack:
    base = np.array([[30.3, 35.6], [65.5, 34.9], [48.2, 55.5]])
    moves = np.stack([base + [0.7 * i, -0.4 * i] for i in range(frames)])
    return face_track.track_faces(_synthetic_video(frames, size), StubDetector(moves), 256, stabilize=stabilize)


@pytest.fixture(scope="module")
def tiny_vae(tmp_path_factory):
    import hv_fixtures
    from humanvideo.loaders.sd_vae import load_sd_vae

    path = hv_fixtures.generate(tmp_path_factory.mktemp("vae"), ["sd_vae"])["sd_vae"][0]
    return load_sd_vae(str(path))


def test_masked_image_latent_is_the_encoding_of_the_grey_filled_crop(tiny_vae, monkeypatch):
    images = _synthetic_video(2)
    track = _track(2)
    seen = {}

    def spy(unet, masked_latents, reference_latents, mask, audio, noise, settings, callback=None):
        seen.update(masked=masked_latents, reference=reference_latents, mask=mask)
        return torch.zeros_like(masked_latents)

    monkeypatch.setattr(pipeline, "denoise_latents", spy)
    timeline = plan_timeline(2, 25.0, 2)
    pipeline.lip_sync(images, track, torch.zeros(2, 50, 384), None, tiny_vae, DenoiseSettings(), 7, timeline)

    keep = keep_mask(256)
    crops = face_track.crop_frames(images, track.realign([0, 1]))
    grey = crops.clone()
    grey[:, keep == 0] = 0.5
    generator = torch.Generator().manual_seed(7)  # masked first, then reference (lipsync_pipeline.py:404-422)
    torch.testing.assert_close(seen["masked"], pipeline.encode_sampled(tiny_vae, grey, generator), rtol=0, atol=0)
    torch.testing.assert_close(seen["reference"], pipeline.encode_sampled(tiny_vae, crops, generator), rtol=0, atol=0)
    # the UNet's mask channel is the keep mask (1 = keep) at latent size, as `prepare_mask_latents`
    assert seen["mask"].shape == (1, 1, 32, 32) and seen["mask"][0, 0, 0, 0] == 1 and seen["mask"][0, 0, -8, 16] == 0
    black = crops * keep[None, :, :, None]
    black_latent = pipeline.encode_sampled(tiny_vae, black, torch.Generator().manual_seed(7))
    assert (black_latent - seen["masked"]).abs().max() > 1e-2  # black fill would be a different input


# ---------------------------------------------------------------- 6. 25 fps, length, loop

FFMPEG = json.loads((DATA / "ffmpeg7_rate25_selections.json").read_text())


@pytest.mark.parametrize("key", sorted(FFMPEG["ffmpeg_7"]))
def test_25fps_selection_equals_ffmpeg_r25(key):
    rate, frames = key.split(":")
    fps = float(Fraction(rate))  # the node gets a float fps: 29.97002997 -> 30000/1001 again
    assert ffmpeg_rate_indices(int(frames), fps) == FFMPEG["ffmpeg_7"][key]


def test_ffmpeg_5_chose_differently():
    for key, older in FFMPEG["ffmpeg_5"].items():
        rate, frames = key.split(":")
        assert ffmpeg_rate_indices(int(frames), Fraction(rate)) != older


def test_ffmpeg_rule_runs_in_chunks_with_a_small_carried_state():
    whole = ffmpeg_rate_indices(601, Fraction(60000, 1001))
    out, state = [], None
    for start in range(0, 601, 37):  # a fresh converter per chunk, continued from the last one's state
        conv = FfmpegRateConverter(**state) if state else FfmpegRateConverter(Fraction(60000, 1001))
        for i in range(start, min(start + 37, 601)):
            out += conv.push(i)
        state = asdict(conv)
    assert out + conv.finish() == whole == FFMPEG["ffmpeg_7"]["60000/1001:601"]


def test_nearest_selection_is_the_closest_timestamp():
    picked = nearest_rate_indices(61, 60.0)
    assert len(picked) == nearest_frame_count(61, 60.0) == 26  # 0 .. 1.0 s inside a 1.0167 s clip
    assert picked[:6] == [0, 2, 5, 7, 10, 12] and picked[-1] == 60
    assert all(abs(i / 60 - k / 25) <= 0.5 / 60 + 1e-12 for k, i in enumerate(picked))
    assert nearest_rate_indices(10, 25.0) == list(range(10))


# `Audio2Feature.feature2chunks(features, fps=25)`: windows for T Whisper positions.
OFFICIAL_CHUNKS = {
    1: 2,
    2: 3,
    3: 3,
    4: 4,
    5: 4,
    10: 7,
    11: 7,
    37: 20,
    499: 251,
    500: 252,
    501: 252,
    1500: 752,
    1501: 752,
}


@pytest.mark.parametrize("positions, windows", sorted(OFFICIAL_CHUNKS.items()))
def test_frame_count_is_the_official_window_count(positions, windows):
    assert latentsync_official_frame_count(positions, 25) == windows == positions // 2 + 2


# `LipsyncPipeline.loop_video(chunks, frames)`: the frame shown at each output position.
OFFICIAL_LOOPS = {
    (4, 11): [0, 1, 2, 3, 3, 2, 1, 0, 0, 1, 2],
    (3, 3): [0, 1, 2],
    (5, 2): [0, 1],
    (1, 4): [0, 0, 0, 0],
    (6, 20): [0, 1, 2, 3, 4, 5, 5, 4, 3, 2, 1, 0, 0, 1, 2, 3, 4, 5, 5, 4],
    (7, 7): [0, 1, 2, 3, 4, 5, 6],
}


@pytest.mark.parametrize("frames, windows", sorted(OFFICIAL_LOOPS))
def test_length_plan_is_the_official_loop_video(frames, windows):
    expected = OFFICIAL_LOOPS[(frames, windows)]
    assert plan_length(frames, windows).source_index == expected
    assert [loop_index(k, frames) for k in range(windows)] == expected  # per index, for streaming


def test_official_timeline_converts_first_aligns_once_and_loops():
    picked = FFMPEG["ffmpeg_7"]["60:61"]  # 27 frames at 25 fps
    t = plan_timeline(61, 60.0, 30)
    assert t.fps == 25.0 and t.synced == 30 and t.output_uses_process_alignment
    assert t.align_frames == picked  # aligned once, in order (the translation average runs along them)
    assert t.process_align == _pingpong(27, 30)
    assert t.process_source == t.output_source == [picked[i] for i in t.process_align]
    assert t.output_process == list(range(30))
    cut = plan_timeline(61, 60.0, 10)
    assert cut.align_frames == picked[:10] and cut.output_source == picked[:10]
    kept = plan_timeline(61, 60.0, 10, long_video="keep")
    assert kept.output_source == picked and kept.output_process == list(range(10)) + [-1] * 17


def _pingpong(frames: int, windows: int) -> list[int]:
    """`loop_video`'s concatenation spelled out: frames, frames reversed, frames, ..."""
    cycle = list(range(frames)) + list(range(frames))[::-1]
    return [cycle[k % (2 * frames)] for k in range(windows)]


def test_source_fps_timeline_keeps_every_frame_and_maps_to_nearest_processed():
    t = plan_timeline(20, 50.0, 10, frame_rate="source")
    assert t.fps == 50.0 and t.synced == 10 and t.align_frames is None and not t.output_uses_process_alignment
    assert t.output_source == list(range(20))
    assert t.output_process == [min((j + 1) // 2, 9) for j in range(20)]  # nearest 25 fps instant
    assert t.process_source == [2 * k for k in range(10)]
    short = plan_timeline(4, 50.0, 5, frame_rate="source")  # 10 output frames from a 4-frame clip
    assert short.output_source == [0, 1, 2, 3, 3, 2, 1, 0, 0, 1]


def test_node_defaults_are_official_and_the_workflows_save_at_its_fps():
    from humanvideo.nodes.face import HVFacePaste, HVFaceTrack
    from humanvideo.nodes.latentsync import HVLatentSync

    inputs = {i.id: i for i in HVLatentSync.define_schema().inputs}
    assert inputs["frame_rate"].default == "25 fps (official)" and inputs["length"].default.startswith("official")
    assert inputs["paste"].default == "face" and inputs["short_video"].default == "pingpong"
    assert inputs["long_video"].default == "cut" and inputs["guidance"].default == 1.5
    assert {i.id: i for i in HVFaceTrack.define_schema().inputs}["stabilize"].default == "official"
    assert {i.id: i for i in HVFacePaste.define_schema().inputs}["region"].default == "face"
    for name in ("latentsync_1.5_256", "latentsync_1.6_512"):
        prompt = json.loads((PACK_ROOT / "workflows" / "api" / f"{name}.json").read_text())
        [sync_id] = [k for k, v in prompt.items() if v["class_type"] == "HVLatentSync"]
        [save] = [v for v in prompt.values() if v["class_type"] == "HVSaveVideo"]
        assert save["inputs"]["fps"] == [sync_id, 1]  # the lip-sync node's output fps (25), not the source's
        assert prompt[sync_id]["inputs"]["frame_rate"] == "25 fps (official)"


def _features(seconds: float, seed: int = 0) -> AudioFeatures:
    samples = int(seconds * 16000)
    g = torch.Generator().manual_seed(seed)
    states = torch.randn(samples // 320, 6, 384, generator=g)
    return AudioFeatures(states, 4, "tiny", samples, convention="latentsync")


def test_node_returns_25fps_official_length_and_source_fps_on_request(monkeypatch):
    """The node's plan and wiring; the networks are stood in for (the end-to-end run is in
    test_latentsync_pipeline.py), so every output pixel says which source frame it came from."""
    from humanvideo.nodes.latentsync import HVLatentSync

    grey = 0.25
    monkeypatch.setattr(pipeline, "encode_sampled", lambda vae, px, g: torch.zeros(px.shape[0], 4, 32, 32))
    monkeypatch.setattr(pipeline, "decode", lambda vae, z: torch.full((z.shape[0], 256, 256, 3), grey))
    monkeypatch.setattr(pipeline, "denoise_latents", lambda unet, masked, *a, **k: torch.zeros_like(masked))
    images = _synthetic_video(6)  # 6 frames at 50 fps = 0.12 s
    track = _track(6)
    args = dict(
        unet=None,
        vae=None,
        images=images,
        face_track=track,
        audio_features=_features(0.2),  # T = 10 positions -> 7 frames at 25 fps
        fps=50.0,
        steps=1,
        guidance=1.0,
        seed=1,
        deepcache_interval=0,
        short_video="pingpong",
        long_video="cut",
        paste="face",
    )
    out, fps, report = HVLatentSync.execute(**args).result
    picked = ffmpeg_rate_indices(6, 50.0)
    assert fps == 25.0 and out.shape[0] == 7 and "25 fps" in report
    corner = (slice(0, 3), slice(0, 3))  # outside the face crop: the source frame's own pixels
    for k in range(7):
        assert torch.equal(out[k][corner], images[picked[loop_index(k, len(picked))]][corner])
        assert (out[k][72:80, 42:54] - grey).abs().max() < 0.05  # the new (stand-in) mouth
    out_src, fps_src, _ = HVLatentSync.execute(**args, frame_rate="source fps").result
    assert fps_src == 50.0 and out_src.shape[0] == 14  # 7 frames at 25 fps = 14 at 50 fps (ping-pong past 6)
    for j, src in enumerate([0, 1, 2, 3, 4, 5, 5, 4, 3, 2, 1, 0, 0, 1]):
        assert torch.equal(out_src[j][corner], images[src][corner])
    _, _, exact = HVLatentSync.execute(**args, length="audio duration").result
    assert "lip-synced 5 frames" in exact


# ---------------------------------------------------------------- 7. alignment and paste

# Rounded (brow, brow, nose) points of six frames and `transformation_from_points(points, template,
# smooth=True, p_bias)` with p_bias carried from frame to frame (canvas matrices), then smooth=False.
POINTS = [
    [[212.0, 181.0], [329.0, 174.0], [269.0, 260.0]],
    [[212.0, 173.0], [337.0, 175.0], [270.0, 261.0]],
    [[213.0, 173.0], [344.0, 171.0], [279.0, 258.0]],
    [[218.0, 170.0], [349.0, 168.0], [282.0, 257.0]],
    [[218.0, 169.0], [348.0, 163.0], [287.0, 253.0]],
    [[218.0, 168.0], [360.0, 156.0], [295.0, 256.0]],
]
OFFICIAL_AFFINES = {
    256: {
        "smoothed": [
            [[0.871745, -0.030773, -124.041626], [0.030773, 0.871745, -112.605209]],
            [[0.82082, 0.022271, -123.553345], [-0.022271, 0.82082, -86.128578]],
            [[0.801401, -0.009968, -116.318184], [0.009968, 0.801401, -89.140755]],
            [[0.79462, -0.004324, -119.003487], [0.004324, 0.79462, -84.378044]],
            [[0.800277, -0.036893, -115.38903], [0.036893, 0.800277, -92.096809]],
            [[0.732737, -0.057361, -97.200478], [0.057361, 0.732737, -83.899368]],
        ],
        "plain": [
            [[0.871745, -0.030773, -124.062561], [0.030773, 0.871745, -112.349785]],
            [[0.82082, 0.022271, -123.604828], [-0.022271, 0.82082, -85.87989]],
            [[0.801401, -0.009968, -116.323349], [0.009968, 0.801401, -88.92556]],
            [[0.79462, -0.004324, -119.019775], [0.004324, 0.79462, -84.156731]],
            [[0.800277, -0.036893, -115.351273], [0.036893, 0.800277, -91.877205]],
            [[0.732737, -0.057361, -97.136475], [0.057361, 0.732737, -83.68792]],
        ],
    },
    512: {
        "smoothed": [
            [[1.74349, -0.061547, -248.104187], [0.061547, 1.74349, -224.955002]],
            [[1.64164, 0.044542, -247.158173], [-0.044542, 1.64164, -172.008469]],
            [[1.602801, -0.019937, -232.641525], [0.019937, 1.602801, -178.066315]],
            [[1.58924, -0.008649, -238.023254], [0.008649, 1.58924, -168.534775]],
            [[1.600554, -0.073786, -230.740311], [0.073786, 1.600554, -183.974014]],
            [[1.465473, -0.114723, -194.336945], [0.114723, 1.465473, -167.587296]],
        ],
        "plain": [
            [[1.74349, -0.061547, -248.125122], [0.061547, 1.74349, -224.69957]],
            [[1.64164, 0.044542, -247.209656], [-0.044542, 1.64164, -171.759781]],
            [[1.602801, -0.019937, -232.646698], [0.019937, 1.602801, -177.85112]],
            [[1.58924, -0.008649, -238.039551], [0.008649, 1.58924, -168.313461]],
            [[1.600554, -0.073786, -230.702545], [0.073786, 1.600554, -183.75441]],
            [[1.465473, -0.114723, -194.272949], [0.114723, 1.465473, -167.375839]],
        ],
    },
}


def _to_canvas(crop_matrices: np.ndarray, resolution: int) -> np.ndarray:
    """Undo the square stretch our crop matrices include: back to the official 75 x 100 canvas matrices."""
    _, (w, h) = face_align.canvas_geometry(resolution)
    return np.diag([w / resolution, h / resolution]) @ crop_matrices


def _assert_affines(ours: np.ndarray, official: list) -> None:
    official = np.asarray(official)
    np.testing.assert_allclose(ours[..., :2], official[..., :2], atol=2e-6)  # 6 decimals, float32 upstream
    np.testing.assert_allclose(ours[..., 2], official[..., 2], atol=1e-4)


@pytest.mark.parametrize("resolution", [256, 512])
def test_official_alignment_equals_transformation_from_points(resolution):
    points = np.asarray(POINTS)
    valid = np.ones(len(points), bool)
    smoothed, last = face_track.official_affines(points, valid, resolution)
    _assert_affines(_to_canvas(smoothed, resolution), OFFICIAL_AFFINES[resolution]["smoothed"])
    plain = np.stack([face_align.alignment_matrix(p, resolution) for p in points])
    _assert_affines(_to_canvas(plain, resolution), OFFICIAL_AFFINES[resolution]["plain"])
    # carried in pieces (as a streaming reader would), the same matrices
    first, carry = face_track.official_affines(points[:4], valid[:4], resolution)
    rest, carry = face_track.official_affines(points[4:], valid[4:], resolution, carry)
    np.testing.assert_allclose(np.concatenate([first, rest]), smoothed, atol=1e-12)
    np.testing.assert_allclose(carry, last, atol=1e-12)


def test_official_track_rounds_points_and_averages_along_the_order_it_is_given():
    track = _track(5)
    assert track.stabilize == "official" and np.array_equal(track.points, np.round(track.points))
    expected, _ = face_track.official_affines(track.points, track.has_face, 256)
    np.testing.assert_allclose(track.affines, expected, atol=1e-12)
    order = [4, 3, 2, 1, 0]
    reversed_track = track.realign(order)
    again, _ = face_track.official_affines(track.points[order], track.has_face[order], 256)
    np.testing.assert_allclose(reversed_track.affines, again, atol=1e-12)
    assert not np.allclose(reversed_track.affines, track.select(order).affines, atol=1e-6)
    gaussian = _track(5, stabilize="gaussian")
    assert not np.array_equal(gaussian.points, np.round(gaussian.points))  # no rounding in our option
    with pytest.raises(ValueError, match="stabilize"):
        face_track.track_faces(_synthetic_video(1), StubDetector(np.asarray(POINTS[:1])), stabilize="ema")


# ---------------------------------------------------------------- 8. GroupNorm numerics


def test_every_unet_groupnorm_gets_a_contiguous_input():
    unet = unet_fixture.tiny_unet(seed=4).eval()
    inputs = []
    hooks = [
        m.register_forward_pre_hook(lambda mod, args, name=name: inputs.append((name, args[0].is_contiguous())))
        for name, m in unet.named_modules()
        if isinstance(m, torch.nn.GroupNorm)
    ]
    x = torch.randn(1, unet.config.in_channels, 3, 8, 8)
    with torch.no_grad():
        unet(x, torch.tensor([500.0]), torch.randn(1, 3, 50, unet.config.cross_attention_dim))
    for h in hooks:
        h.remove()
    assert len(inputs) > 30 and any("motion_modules" in n for n, _ in inputs)
    assert [n for n, ok in inputs if not ok] == []


def _float64_group_norm(norm: torch.nn.GroupNorm, v: torch.Tensor) -> torch.Tensor:
    return torch.nn.functional.group_norm(
        v.double(), norm.num_groups, norm.weight.double(), norm.bias.double(), norm.eps
    ).float()


def test_groupnorms_are_float32_accurate_on_strided_activations():
    """A channels-last activation with a large mean on a 1 x 1 latent (the deepest blocks): the strided
    CPU kernel is off by about 3e-2 here; the contiguous one matches float64 to 1e-4."""
    torch.manual_seed(0)
    norm = torch.nn.GroupNorm(32, 64, eps=1e-5)
    torch.nn.init.normal_(norm.weight)
    torch.nn.init.normal_(norm.bias)
    frames = 2
    x = (torch.randn(2 * frames, 64, 1, 1) + 30.0).to(memory_format=torch.channels_last)
    with torch.no_grad():
        got = video_group_norm(norm, x, frames)
        v = x.reshape(2, frames, 64, 1).transpose(1, 2)
        expected = _float64_group_norm(norm, v).transpose(1, 2).reshape_as(x)
    torch.testing.assert_close(got, expected, atol=5e-4, rtol=0)
    # the motion module normalises a contiguous copy of a strided input and hands on a contiguous output
    module = unet_fixture.randomize(MotionModule(64, MotionModuleConfig()), seed=5).eval()
    seen = []
    hook = module.temporal_transformer.norm.register_forward_pre_hook(
        lambda mod, args: seen.append(args[0].is_contiguous())
    )
    with torch.no_grad():
        y = module(torch.randn(2 * frames, 64, 2, 2).to(memory_format=torch.channels_last), frames)
    hook.remove()
    assert seen == [True] and y.is_contiguous()
