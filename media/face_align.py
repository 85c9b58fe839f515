"""LatentSync face alignment: a similarity transform from three facial points to a fixed template.

The official pipeline maps (left eyebrow centre, right eyebrow centre, nose centre) onto a template
defined on a 75x100 canvas scaled by ``ratio = resolution / 256 * 2.8`` (210x280 px at 256, 420x560
at 512), warps the frame onto that canvas and then stretches it non-uniformly to a square
``resolution`` x ``resolution`` crop. We fold that stretch into the affine matrix, so each frame is
resampled once, directly into the square crop.

Matrices are 2x3 and map frame pixel coordinates to crop pixel coordinates, with pixel centres at
integer coordinates (OpenCV / kornia convention).
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

# Template points (left brow, right brow, nose) on the 75x100 canvas before scaling by `ratio`.
TEMPLATE_POINTS = np.array([[17.0, 20.0], [58.0, 20.0], [37.5, 40.0]], dtype=np.float64)
CANVAS_SIZE = (75, 100)  # (w, h)
# Grey fill for crop pixels that fall outside the frame (127 of 255 in the official code).
FILL_VALUE = 127.0 / 255.0
SUPPORTED_RESOLUTIONS = (256, 512)
# Weight of the previous frame's offset in the official exponential average (affine_transform.py:141).
OFFSET_MEMORY = 0.2


def canvas_geometry(resolution: int) -> tuple[np.ndarray, tuple[int, int]]:
    """Template points (3, 2) and canvas size (w, h) in pixels for a crop resolution."""
    if resolution <= 0 or resolution % 8:
        raise ValueError(f"resolution must be a positive multiple of 8, got {resolution}")
    ratio = resolution / 256 * 2.8
    size = (int(CANVAS_SIZE[0] * ratio), int(CANVAS_SIZE[1] * ratio))
    return TEMPLATE_POINTS * ratio, size


def similarity_transform(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """Rotation + uniform scale + translation taking ``src`` points onto ``dst`` (2x3 matrix).

    As in the official code: both sets are centred and divided by their standard deviation, the
    rotation is the orthogonal Procrustes solution, the scale is the ratio of the spreads and the
    centroids coincide. For exact correspondences this is the unique similarity; with noisy points it
    differs from Umeyama's least-squares scale, and we keep the official choice.
    """
    src = np.asarray(src, dtype=np.float64)
    dst = np.asarray(dst, dtype=np.float64)
    if src.shape != dst.shape or src.ndim != 2 or src.shape[1] != 2 or src.shape[0] < 2:
        raise ValueError(f"points must be matching (N>=2, 2) arrays, got {src.shape} and {dst.shape}")
    if not np.isfinite(src).all():
        raise ValueError("points contain NaN or inf")
    c_src, c_dst = src.mean(0), dst.mean(0)
    s_src, s_dst = (src - c_src).std(), (dst - c_dst).std()
    if s_src < 1e-9:
        raise ValueError("points are all at the same position; no transform exists")
    a, b = (src - c_src) / s_src, (dst - c_dst) / s_dst
    u, _, vt = np.linalg.svd(a.T @ b)
    rot = (u @ vt).T
    if np.linalg.det(rot) < 0:  # a reflection is not a similarity of a face
        vt[-1] *= -1
        rot = (u @ vt).T
    scale = s_dst / s_src
    matrix = np.empty((2, 3), dtype=np.float64)
    matrix[:, :2] = scale * rot
    matrix[:, 2] = c_dst - scale * rot @ c_src
    return matrix


def nose_offset(points3: np.ndarray) -> np.ndarray:
    """The official per-frame translation offset of `transformation_from_points(smooth=True)`.

    bytedance/LatentSync a229c39 `latentsync/utils/affine_transform.py:109-143`: the template's nose
    minus the frame's nose, each after centring its three points and dividing by their spread
    (`torch.std` over all six coordinates, so with the n - 1 divisor). The result is in those
    normalised units (a fraction of a pixel for a real face) and is added to the canvas translation.
    The template is only scaled between resolutions, so its normalised nose is the same for all.
    """
    points3 = np.asarray(points3, dtype=np.float64)
    template = TEMPLATE_POINTS

    def normalised_nose(p: np.ndarray) -> np.ndarray:
        centred = p - p.mean(0)
        return centred[2] / centred.std(ddof=1)

    return normalised_nose(template) - normalised_nose(points3)


def smoothed_offset(previous: np.ndarray | None, current: np.ndarray) -> np.ndarray:
    """One step of the official exponential average: 0.2 previous + 0.8 current (the first frame: current)."""
    if previous is None:
        return np.asarray(current, dtype=np.float64)
    return OFFSET_MEMORY * np.asarray(previous, np.float64) + (1.0 - OFFSET_MEMORY) * np.asarray(current, np.float64)


def alignment_matrix(points3: np.ndarray, resolution: int, offset: np.ndarray | None = None) -> np.ndarray:
    """Frame -> square crop matrix for (left brow, right brow, nose) points, stretch included.

    `offset` (canvas pixels) is added to the translation before the stretch, as the official smoothing
    adds its averaged `nose_offset` to the canvas matrix (affine_transform.py:143).
    """
    template, (canvas_w, canvas_h) = canvas_geometry(resolution)
    to_canvas = similarity_transform(points3, template)
    if offset is not None:
        to_canvas[:, 2] += offset
    stretch = np.diag([resolution / canvas_w, resolution / canvas_h])
    return np.concatenate([stretch @ to_canvas[:, :2], (stretch @ to_canvas[:, 2])[:, None]], axis=1)


def invert_affine(matrix: np.ndarray) -> np.ndarray:
    matrix = np.asarray(matrix, dtype=np.float64)
    lin_inv = np.linalg.inv(matrix[:, :2])
    return np.concatenate([lin_inv, (-lin_inv @ matrix[:, 2])[:, None]], axis=1)


def compose_affine(outer: np.ndarray, inner: np.ndarray) -> np.ndarray:
    """outer(inner(x)) as one 2x3 matrix."""
    outer, inner = np.asarray(outer, np.float64), np.asarray(inner, np.float64)
    return np.concatenate([outer[:, :2] @ inner[:, :2], (outer[:, :2] @ inner[:, 2] + outer[:, 2])[:, None]], 1)


def translation(dx: float, dy: float) -> np.ndarray:
    return np.array([[1.0, 0.0, dx], [0.0, 1.0, dy]])


def sample_affine(
    src: torch.Tensor, dst_to_src: np.ndarray, out_hw: tuple[int, int], fill: float | None = FILL_VALUE
) -> torch.Tensor:
    """Bilinear resampling: output pixel p takes ``src`` at ``dst_to_src @ p``.

    ``src`` is (C, H, W) float. Outside ``src`` the result is ``fill`` (blended at the border the
    way a warped all-ones mask is), or zero when ``fill`` is None.
    """
    if src.ndim != 3:
        raise ValueError(f"expected a (C, H, W) tensor, got shape {tuple(src.shape)}")
    _, h, w = src.shape
    out_h, out_w = out_hw
    # Pixel index i -> normalised -1 + 2 i / (n - 1) (align_corners=True); fold that into the matrix.
    to_norm = np.array([[2.0 / max(w - 1, 1), 0.0, -1.0], [0.0, 2.0 / max(h - 1, 1), -1.0]])
    theta = torch.from_numpy(compose_affine(to_norm, dst_to_src)).to(torch.float32)
    ys, xs = torch.meshgrid(
        torch.arange(out_h, dtype=torch.float32), torch.arange(out_w, dtype=torch.float32), indexing="ij"
    )
    grid = torch.stack([xs, ys, torch.ones_like(xs)], -1) @ theta.T
    grid = grid.to(src.dtype)[None]
    out = F.grid_sample(src[None], grid, mode="bilinear", padding_mode="zeros", align_corners=True)[0]
    if fill is None:
        return out
    inside = F.grid_sample(
        torch.ones_like(src[:1])[None], grid, mode="bilinear", padding_mode="zeros", align_corners=True
    )[0]
    return out + (1.0 - inside) * fill


def as_float(pixels: torch.Tensor) -> torch.Tensor:
    """uint8 pixels -> float32 in [0, 1] (the values an IMAGE batch of the same frame holds); float as is."""
    return pixels.float() / 255.0 if pixels.dtype == torch.uint8 else pixels


def crop_face(frame: torch.Tensor, matrix: np.ndarray, resolution: int) -> torch.Tensor:
    """Warp one (H, W, C) frame into the (resolution, resolution, C) float crop of ``matrix``.

    ``frame`` is float in [0, 1] or uint8 (a decoded video frame); only the frame region the crop can
    see is touched (and, for uint8, converted to float), so a 4K frame costs about as much as a small
    one. A face much larger than the crop is box-filtered first, since bilinear sampling at a step over
    2 px aliases (the official code skips this and shimmers on close-ups).
    """
    h, w, _ = frame.shape
    dtype = torch.float32 if frame.dtype == torch.uint8 else frame.dtype
    crop_to_frame = invert_affine(matrix)
    corners = np.array(
        [[0, 0, 1], [resolution - 1, 0, 1], [0, resolution - 1, 1], [resolution - 1, resolution - 1, 1]],
        dtype=np.float64,
    )
    seen = corners @ crop_to_frame.T
    x0, y0 = (max(int(math.floor(v)) - 2, 0) for v in seen.min(0))
    x1, y1 = min(int(math.ceil(seen[:, 0].max())) + 3, w), min(int(math.ceil(seen[:, 1].max())) + 3, h)
    if x0 >= x1 or y0 >= y1:  # the crop lies entirely outside the frame
        return torch.full((resolution, resolution, frame.shape[2]), FILL_VALUE, dtype=dtype)
    region = as_float(frame[y0:y1, x0:x1]).permute(2, 0, 1)
    dst_to_src = compose_affine(translation(-x0, -y0), crop_to_frame)
    step = math.sqrt(abs(np.linalg.det(crop_to_frame[:, :2])))  # frame px per crop px
    k = int(step)
    if k >= 2:
        # Area-average k x k blocks; block j covers frame pixels [k j, k j + k - 1], centred at k j + (k-1)/2.
        region = F.avg_pool2d(region[None], k, stride=k, ceil_mode=True)[0]
        dst_to_src = compose_affine(
            np.array([[1.0 / k, 0.0, -(k - 1) / (2 * k)], [0.0, 1.0 / k, -(k - 1) / (2 * k)]]), dst_to_src
        )
    return sample_affine(region, dst_to_src, (resolution, resolution)).permute(1, 2, 0)
