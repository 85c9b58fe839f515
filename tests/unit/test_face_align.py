"""Alignment geometry, warping, mouth mask and feathering, checked against independent code
(scikit-image, kornia, scipy) and against facts of the official LatentSync crop and mask.png."""

import numpy as np
import pytest
import torch
from humanvideo.media import face_align, mouth_mask, paste_back


def _random_similarity(rng):
    angle, scale = rng.uniform(-0.6, 0.6), rng.uniform(0.3, 3.0)
    c, s = np.cos(angle), np.sin(angle)
    return np.array([[scale * c, -scale * s, rng.uniform(-50, 50)], [scale * s, scale * c, rng.uniform(-50, 50)]])


def test_similarity_transform_matches_skimage_on_exact_points():
    from skimage.transform import SimilarityTransform

    rng = np.random.default_rng(0)
    for _ in range(5):
        truth = _random_similarity(rng)
        src = rng.uniform(0, 300, size=(3, 2))
        dst = src @ truth[:, :2].T + truth[:, 2]
        ours = face_align.similarity_transform(src, dst)
        ref = SimilarityTransform.from_estimate(src, dst) if hasattr(SimilarityTransform, "from_estimate") else None
        if ref is None:
            ref = SimilarityTransform()
            assert ref.estimate(src, dst)
        np.testing.assert_allclose(ours, ref.params[:2], atol=1e-8)
        np.testing.assert_allclose(ours, truth, atol=1e-8)


def test_similarity_transform_rejects_degenerate_points():
    with pytest.raises(ValueError, match="same position"):
        face_align.similarity_transform(np.ones((3, 2)), np.zeros((3, 2)))
    with pytest.raises(ValueError, match="NaN"):
        face_align.similarity_transform(np.full((3, 2), np.nan), np.zeros((3, 2)))


@pytest.mark.parametrize("resolution,canvas", [(256, (210, 280)), (512, (420, 560))])
def test_alignment_matrix_places_points_on_the_official_template(resolution, canvas):
    template, size = face_align.canvas_geometry(resolution)
    assert size == canvas  # official face_size (w, h)
    # Points that are an exact similarity image of the template land on the stretched template.
    truth = _random_similarity(np.random.default_rng(1))
    frame_points = template @ truth[:, :2].T + truth[:, 2]
    m = face_align.alignment_matrix(frame_points, resolution)
    mapped = frame_points @ m[:, :2].T + m[:, 2]
    expected = template * np.array([resolution / canvas[0], resolution / canvas[1]])
    np.testing.assert_allclose(mapped, expected, atol=1e-6)
    # Official latentsync/utils/affine_transform.py: brows at y = 56, nose at y = 112 on the 256-scale canvas.
    if resolution == 256:
        np.testing.assert_allclose(template[:, 1], [56.0, 56.0, 112.0])


def test_sample_affine_matches_kornia_warp_affine():
    from kornia.geometry.transform import warp_affine

    rng = np.random.default_rng(2)
    img = torch.rand(3, 37, 53, generator=torch.Generator().manual_seed(0))
    src_to_dst = _random_similarity(rng)
    src_to_dst[:, 2] = [5.0, -3.0]
    ours = face_align.sample_affine(img, face_align.invert_affine(src_to_dst), (41, 29), fill=0.3)
    ref = warp_affine(
        img[None],
        torch.from_numpy(src_to_dst).float()[None],
        (41, 29),
        mode="bilinear",
        padding_mode="fill",
        align_corners=True,
        fill_value=torch.full((3,), 0.3),
    )[0]
    torch.testing.assert_close(ours, ref, atol=2e-5, rtol=0)


def test_crop_face_box_filters_large_faces_without_shifting_them():
    # A linear ramp stays exactly linear under block averaging and bilinear sampling, so the crop of a
    # 3x-too-large face must equal the ramp evaluated at the mapped pixel centres.
    h, w = 400, 500
    ys, xs = torch.meshgrid(torch.arange(h, dtype=torch.float64), torch.arange(w, dtype=torch.float64), indexing="ij")
    frame = torch.stack([xs / w, ys / h, (xs + ys) / (w + h)], -1)
    m = np.array([[1 / 3.2, 0.0, -20.0], [0.0, 1 / 3.2, -10.0]])  # 3.2 frame px per crop px -> k = 3
    crop = face_align.crop_face(frame, m, 64)
    inv = face_align.invert_affine(m)
    v, u = np.mgrid[0:64, 0:64]
    fx = inv[0, 0] * u + inv[0, 1] * v + inv[0, 2]
    fy = inv[1, 0] * u + inv[1, 1] * v + inv[1, 2]
    expected = np.stack([fx / w, fy / h, (fx + fy) / (w + h)], -1)
    inside = (fx > 3) & (fx < w - 4) & (fy > 3) & (fy < h - 4)
    np.testing.assert_allclose(crop.numpy()[inside], expected[inside], atol=1e-6)


def test_crop_face_outside_the_frame_is_grey():
    frame = torch.rand(50, 60, 3)
    crop = face_align.crop_face(frame, face_align.translation(-1000, -1000), 32)
    assert torch.allclose(crop, torch.full_like(crop, face_align.FILL_VALUE))


# Facts of the official latentsync/utils/mask.png (256x256, black = regenerate): rows 95-127 are two
# cheek bands at columns 9-77 and 178-246; below, a full-width region with a rounded bottom. Sampled
# rows: (row, first black column, last black column).
OFFICIAL_MASK_ROWS = [
    (130, 9, 247),
    (150, 11, 245),
    (170, 12, 243),
    (180, 18, 238),
    (190, 24, 231),
    (200, 33, 223),
    (210, 43, 214),
    (220, 57, 202),
    (230, 76, 185),
    (236, 90, 171),
    (240, 104, 160),
]
OFFICIAL_MASK_AREA = 26673  # black pixels (40.7 %)


def test_regenerate_mask_reproduces_the_official_mask_shape():
    m = mouth_mask.regenerate_mask(256)
    assert set(torch.unique(m).tolist()) == {0.0, 1.0}
    assert abs(int(m.sum()) - OFFICIAL_MASK_AREA) < 0.01 * OFFICIAL_MASK_AREA
    rows = torch.nonzero(m.any(1)).flatten()
    assert int(rows[0]) == 95 and 241 <= int(rows[-1]) <= 243
    band = torch.nonzero(m[100]).flatten().tolist()
    assert band == list(range(9, 78)) + list(range(178, 247))  # the nose column stays
    for row, first, last in OFFICIAL_MASK_ROWS:
        cols = torch.nonzero(m[row]).flatten()
        assert abs(int(cols[0]) - first) <= 6 and abs(int(cols[-1]) - last) <= 6, row  # bottom tip is asymmetric
    assert m[:95].sum() == 0 and m[244:].sum() == 0  # eyes and brows are never regenerated
    torch.testing.assert_close(mouth_mask.keep_mask(256), 1 - m)


def test_regenerate_mask_at_512_is_the_same_shape():
    m256, m512 = mouth_mask.regenerate_mask(256), mouth_mask.regenerate_mask(512)
    down = torch.nn.functional.avg_pool2d(m512[None, None], 2)[0, 0]
    assert (down.round() != m256).float().mean() < 0.005


def test_erode_and_blur_match_scipy():
    from scipy import ndimage

    rng = np.random.default_rng(3)
    mask = (rng.random((40, 50)) > 0.3).astype(np.float32)
    mask[10:30, 10:40] = 1
    t = torch.from_numpy(mask)
    np.testing.assert_array_equal(paste_back.erode(t, 2).numpy(), ndimage.minimum_filter(mask, size=5, mode="nearest"))
    ref = ndimage.gaussian_filter(mask.astype(np.float64), sigma=1.7, mode="nearest", radius=3)
    np.testing.assert_allclose(paste_back.gaussian_blur(t.double(), 7, 1.7).numpy(), ref, atol=1e-10)


def test_feather_stays_inside_the_mask_and_reaches_one():
    mask = torch.zeros(200, 200)
    mask[40:160, 50:170] = 1
    soft = paste_back.feather(mask)
    assert soft[mask == 0].abs().max() == 0
    assert soft[100, 110] == pytest.approx(1.0, abs=1e-6)
    assert 0 < soft[40:160, 50:170].mean() < 1
