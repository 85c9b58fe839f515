"""The face pipeline on a real photo with a real detector (dlib HOG + the 68-point predictor shipped by
the face_recognition_models wheel): detection, selection, tracking, crop and paste-back."""

import hv_fixtures.media as fixture_media
import numpy as np
import pytest
import torch
from humanvideo.media import face_align, face_detect, face_track, mouth_mask, paste_back

PACKAGED_68 = face_detect.PACKAGE_PREFIX + face_detect.LANDMARKS_68


@pytest.fixture(scope="module")
def detector():
    return face_detect.DlibFaceDetector(PACKAGED_68)


@pytest.fixture(scope="module")
def photo():
    return fixture_media.face_photo()  # skimage astronaut, 512x512 uint8


def _image(arr: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(arr)).float().div(255.0)


def test_packaged_landmark_model_is_listed():
    from humanvideo import paths

    assert PACKAGED_68 in paths.face_model_choices()
    assert paths.resolve_face_model(PACKAGED_68, "face_model").endswith(face_detect.LANDMARKS_68)
    with pytest.raises(ValueError, match="face_model: 'no_such_model_68.dat' is not a file in models/face_detection"):
        paths.resolve_face_model("no_such_model_68.dat", "face_model")


def test_detector_finds_the_astronaut_with_plausible_landmarks(detector, photo):
    faces = detector.detect(photo)
    assert len(faces) == 1
    face = faces[0]
    x1, y1, x2, y2 = face.box
    assert 150 < x1 < 200 and 50 < y1 < 100 and 70 < x2 - x1 < 120  # her face, around (175, 76)-(266, 167)
    lm = face.landmarks
    brows, eyes, nose, mouth = lm[17:27], lm[36:48], lm[27:36], lm[48:68]
    assert brows[:, 1].mean() < eyes[:, 1].mean() < nose[30 - 27, 1] < mouth[:, 1].mean()
    pts = face_detect.alignment_points(lm)
    assert pts[0, 0] < pts[2, 0] < pts[1, 0]  # nose between the brows, left brow on the image left


def test_alignment_points_for_106_landmarks():
    lm = np.zeros((106, 2))
    lm[[43, 48, 49, 51, 50]] = [10, 20]
    lm[101:106] = [30, 20]
    lm[[74, 77, 83, 86]] = [20, 40]
    np.testing.assert_allclose(face_detect.alignment_points(lm), [[10, 20], [30, 20], [20, 40]])
    with pytest.raises(ValueError, match="68, 2"):
        face_detect.alignment_points(np.zeros((5, 2)))


@pytest.mark.parametrize("resolution", [256, 512])
def test_round_trip_leaves_pixels_outside_the_mouth_region_unchanged(detector, photo, resolution):
    frames = _image(photo)[None]
    track = face_track.track_faces(frames, detector, resolution)
    crops = face_track.crop_frames(frames, track)
    assert crops.shape == (1, resolution, resolution, 3)
    out = face_track.paste_frames(frames, crops, track)
    diff = (out - frames)[0].abs().amax(-1)
    # The mouth region in frame space: the regenerate mask warped back (any coverage at all).
    region = (
        face_align.sample_affine(mouth_mask.regenerate_mask(resolution)[None], track.affines[0], (512, 512), fill=None)[
            0
        ]
        > 0
    )
    assert region.sum() > 1000
    assert diff[~region].max() <= 1 / 255
    # Inside, a crop/uncrop round trip only blurs a little: a misplaced paste would differ a lot.
    assert diff[region].mean() < 0.01
    # The region really is the mouth: every mouth landmark is inside it.
    mouth = np.round(track.landmarks[0, 48:68]).astype(int)
    assert region[mouth[:, 1], mouth[:, 0]].all()
    eyes = np.round(track.landmarks[0, 36:48]).astype(int)
    assert not region[eyes[:, 1], eyes[:, 0]].any()


def test_paste_puts_new_mouth_pixels_in_place(detector, photo):
    frames = _image(photo)[None]
    track = face_track.track_faces(frames, detector, 256)
    crops = face_track.crop_frames(frames, track)
    red = crops.clone()
    red[..., 0], red[..., 1:] = 1.0, 0.0
    out = face_track.paste_frames(frames, red, track)[0]
    lips = np.round(track.landmarks[0, 60:68]).astype(int)  # inner lip contour
    assert torch.all(out[lips[:, 1], lips[:, 0], 0] > 0.95) and torch.all(out[lips[:, 1], lips[:, 0], 1:] < 0.05)
    # "face" pastes the whole crop (official behaviour): the eyes change too, the far background does not.
    whole = face_track.paste_frames(frames, red, track, region="face")[0]
    eye = np.round(track.landmarks[0, 37]).astype(int)
    assert whole[eye[1], eye[0], 0] > 0.95 and torch.equal(out[eye[1], eye[0]], frames[0, eye[1], eye[0]])
    assert torch.equal(whole[450:, :100], frames[0, 450:, :100])


def test_crop_puts_the_face_where_latentsync_expects_it(detector, photo):
    frames = _image(photo)[None]
    track = face_track.track_faces(frames, detector, 256, smoothing=0, stabilize="gaussian")  # the plain fit
    m = track.affines[0]
    pts = track.points[0] @ m[:, :2].T + m[:, 2]
    template, (cw, ch) = face_align.canvas_geometry(256)
    expected = template * [256 / cw, 256 / ch]  # brows (58, 51.2) / (198, 51.2), nose (128, 102.4)
    # A similarity cannot fit three points of a real face exactly, but it matches their centroid and
    # leaves only a few pixels of residual (face proportions differ from the template's).
    np.testing.assert_allclose(pts.mean(0), expected.mean(0), atol=1e-6)
    assert np.abs(pts - expected).max() < 10


def _two_faces(photo):
    return np.concatenate([photo, photo[:, ::-1]], axis=1)  # 512 x 1024: her and her mirror image


def test_selection_largest_index_and_mask(detector, photo):
    pair = _image(_two_faces(photo))[None]
    faces = detector.detect(_two_faces(photo))
    assert len(faces) == 2
    left = face_track.track_faces(pair, detector, select="index", index=0)
    right = face_track.track_faces(pair, detector, select="index", index=1)
    assert left.boxes[0, 0] < 512 <= right.boxes[0, 0]
    mask = torch.zeros(1, 512, 1024)
    mask[:, :, 600:] = 1
    by_mask = face_track.track_faces(pair, detector, select="mask", region_masks=mask)
    np.testing.assert_array_equal(by_mask.boxes, right.boxes)
    largest = face_track.track_faces(pair, detector)
    assert largest.has_face.all()
    with pytest.raises(ValueError, match="no face with index 2"):
        face_track.track_faces(pair, detector, select="index", index=2)
    with pytest.raises(ValueError, match="speaker_mask"):
        face_track.track_faces(pair, detector, select="mask")
    with pytest.raises(ValueError, match="does not match the images"):
        face_track.track_faces(pair, detector, select="mask", region_masks=torch.ones(1, 64, 64))


def test_largest_follows_the_same_person():
    a = face_detect.Face(np.array([0, 0, 100, 100], np.float32), np.zeros((68, 2), np.float32), 1.0)
    b = face_detect.Face(np.array([300, 0, 402, 102], np.float32), np.zeros((68, 2), np.float32), 1.0)
    assert face_track.select_face([a, b]) is b
    assert face_track.select_face([a, b], previous=np.array([5, 2, 104, 101])) is a


def test_clip_with_a_faceless_frame_is_tracked_and_passed_through(detector):
    clip = fixture_media.face_clip_frames(frames=6, size=256)
    clip[3] = 30  # a cutaway: no face
    frames = _image(clip)
    seen = []
    track = face_track.track_faces(frames, detector, 256, smoothing=1.0, on_frame=seen.append)
    assert seen == list(range(6))
    assert track.missing_frames == [3]
    assert "no face (passed through unchanged) in 1: 3" in track.summary()
    crops = face_track.crop_frames(frames, track)
    assert torch.allclose(crops[3], torch.full_like(crops[3], face_align.FILL_VALUE))
    out = face_track.paste_frames(frames, torch.rand_like(crops), track)
    assert torch.equal(out[3], frames[3])
    assert not torch.equal(out[0], frames[0])
    # The head moves: the track's crops follow it, so the nose stays put in the crop.
    noses = np.array([track.affines[i] @ np.append(track.points[i, 2], 1) for i in (0, 1, 2, 4, 5)])
    assert np.ptp(noses, axis=0).max() < 3
    assert np.ptp(track.points[[0, 1, 2, 4, 5], 2], axis=0).max() > 3
    looped = track.select([0, 1, 2, 2, 1])
    assert looped.num_frames == 5 and looped.has_face.all()


def test_no_face_anywhere_is_a_clear_error(detector):
    blank = torch.full((2, 128, 96, 3), 0.5)
    with pytest.raises(ValueError, match="no face found in any of the 2 frames"):
        face_track.track_faces(blank, detector)


def test_odd_sized_portrait_frames(detector, photo):
    portrait = _image(photo[:511, 100:401])[None]  # 301 x 511
    track = face_track.track_faces(portrait, detector, 256)
    crops = face_track.crop_frames(portrait, track)
    out = face_track.paste_frames(portrait, crops, track)
    assert out.shape == portrait.shape and track.has_face.all()


def test_bad_inputs_name_the_input(detector):
    with pytest.raises(ValueError, match="images: expected an IMAGE batch"):
        face_track.track_faces(torch.zeros(1, 64, 64, 4), detector)
    with pytest.raises(ValueError, match="too small"):
        face_track.track_faces(torch.zeros(1, 16, 64, 3), detector)
    with pytest.raises(ValueError, match="face selection"):
        face_track.track_faces(torch.zeros(1, 64, 64, 3), detector, select="biggest")


def test_paste_accepts_crops_resized_elsewhere(detector, photo):
    frames = _image(photo)[None]
    track = face_track.track_faces(frames, detector, 256)
    crops = face_track.crop_frames(frames, track)
    big = torch.nn.functional.interpolate(
        crops.permute(0, 3, 1, 2), size=512, mode="bilinear", align_corners=False
    ).permute(0, 2, 3, 1)
    out = face_track.paste_frames(frames, big, track)
    ref = face_track.paste_frames(frames, crops, track)
    assert (out - ref).abs().mean() < 2e-4 and (out - frames).abs().max() > 0


def test_smoothing_is_zero_phase_and_respects_gaps():
    t = np.arange(20, dtype=np.float64)
    pts = np.stack([np.stack([t, 2 * t], -1)] * 3, 1)  # linear motion
    valid = np.ones(20, bool)
    valid[10] = False
    noisy = pts + np.random.default_rng(0).normal(0, 1, pts.shape)
    out = face_track.smooth_points(pts, valid, 1.0)
    np.testing.assert_allclose(out[4:7], pts[4:7], atol=1e-9)  # no lag in the interior of a run
    assert np.isclose(out[9, 0, 0], pts[9, 0, 0], atol=1.0) and np.isclose(out[11, 0, 0], pts[11, 0, 0], atol=1.0)
    sm = face_track.smooth_points(noisy, valid, 2.0)
    assert np.abs(sm[3:8] - pts[3:8]).mean() < 0.6 * np.abs(noisy[3:8] - pts[3:8]).mean()
    np.testing.assert_array_equal(face_track.smooth_points(noisy, valid, 0), noisy)


def test_paste_face_rejects_mismatched_crops():
    with pytest.raises(ValueError, match="square crop"):
        paste_back.paste_face(torch.zeros(64, 64, 3), torch.zeros(32, 16, 3), np.eye(2, 3))
    with pytest.raises(ValueError, match="region"):
        paste_back.paste_face(torch.zeros(64, 64, 3), torch.zeros(32, 32, 3), np.eye(2, 3), region="lips")
