"""Inverse warp of a processed face crop and paste-back into the frame with a feathered mask.

The official restore pastes the whole face crop through an eroded, blurred crop-shaped mask, which
resamples the untouched upper face twice. By default we paste only the regenerated (mouth) region,
eroded and blurred the same way: every pixel outside that region keeps its exact input value, so
eyes, hair and background never soften. ``region="face"`` gives the official whole-crop paste.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

from .face_align import as_float, compose_affine, invert_affine, sample_affine, translation
from .mouth_mask import regenerate_mask

REGIONS = ("mouth", "face")


def erode(mask: torch.Tensor, radius: int) -> torch.Tensor:
    """Minimum over a (2 radius + 1)^2 square; the image border does not erode (as cv2.erode)."""
    if radius <= 0:
        return mask
    padded = F.pad(mask[None, None], (radius,) * 4, mode="replicate")
    return -F.max_pool2d(-padded, 2 * radius + 1, stride=1)[0, 0]


def gaussian_blur(mask: torch.Tensor, size: int, sigma: float) -> torch.Tensor:
    """Separable Gaussian blur of an (H, W) mask, replicate border."""
    if size <= 1:
        return mask
    radius = size // 2
    x = torch.arange(-radius, radius + 1, dtype=mask.dtype)
    kernel = torch.exp(-(x * x) / (2 * sigma * sigma))
    kernel = kernel / kernel.sum()
    out = F.pad(mask[None, None], (radius, radius, 0, 0), mode="replicate")
    out = F.conv2d(out, kernel.view(1, 1, 1, -1))
    out = F.pad(out, (0, 0, radius, radius), mode="replicate")
    return F.conv2d(out, kernel.view(1, 1, -1, 1))[0, 0]


def feather(mask: torch.Tensor) -> torch.Tensor:
    """Official feathering of a warped paste mask, kept strictly inside the mask's support.

    2x2-style erosion to drop the half-covered border pixels, then ``w_edge = int(sqrt(area)) // 20``,
    erosion by ``w_edge`` and a Gaussian of size ``2 w_edge + 1`` with OpenCV's default sigma for that
    size. The erosion radius equals the blur radius, so the blur never reaches past the mask.
    """
    mask = erode(mask, 1)
    w_edge = int(math.sqrt(float(mask.sum()))) // 20
    mask = erode(mask, w_edge)
    size = 2 * w_edge + 1
    sigma = 0.3 * ((size - 1) * 0.5 - 1) + 0.8
    return gaussian_blur(mask, size, sigma).clamp(0.0, 1.0)


def _support_box(
    region: torch.Tensor, crop_to_frame: np.ndarray, frame_hw: tuple[int, int], margin: int = 3
) -> tuple[int, int, int, int] | None:
    rows = torch.nonzero(region.any(1)).flatten()
    cols = torch.nonzero(region.any(0)).flatten()
    if rows.numel() == 0:
        return None
    r0, r1, c0, c1 = int(rows[0]) - 1, int(rows[-1]) + 1, int(cols[0]) - 1, int(cols[-1]) + 1
    corners = np.array([[c0, r0, 1], [c1, r0, 1], [c0, r1, 1], [c1, r1, 1]], dtype=np.float64) @ crop_to_frame.T
    h, w = frame_hw
    x0, y0 = (max(int(math.floor(v)) - margin, 0) for v in corners.min(0))
    x1 = min(int(math.ceil(corners[:, 0].max())) + margin + 1, w)
    y1 = min(int(math.ceil(corners[:, 1].max())) + margin + 1, h)
    return (x0, y0, x1, y1) if x0 < x1 and y0 < y1 else None


def paste_face(
    frame: torch.Tensor,
    face: torch.Tensor,
    matrix: np.ndarray,
    region: str = "mouth",
    region_mask: torch.Tensor | None = None,
) -> torch.Tensor:
    """Frame (H, W, C) with ``face`` (R, R, C), the crop of ``matrix``, warped back and blended in.

    ``region_mask`` (R, R), 1 = paste, overrides the region preset. Returns a new tensor; pixels
    where the feathered mask is 0 are bit-identical to ``frame``.
    """
    out = frame.clone()
    pasted = paste_face_region(frame, face, matrix, region, region_mask)
    if pasted is not None:
        (x0, y0, x1, y1), roi = pasted
        out[y0:y1, x0:x1] = roi
    return out


def paste_face_region(
    frame: torch.Tensor,
    face: torch.Tensor,
    matrix: np.ndarray,
    region: str = "mouth",
    region_mask: torch.Tensor | None = None,
) -> tuple[tuple[int, int, int, int], torch.Tensor] | None:
    """The part of the frame that :func:`paste_face` changes: ((x0, y0, x1, y1), blended float pixels),
    or None when the crop falls outside the frame.

    ``frame`` may be uint8 (a decoded video frame): only the returned box is converted to float, with
    the values an IMAGE batch of the same frame holds, so the result equals :func:`paste_face`'s there.
    """
    if frame.ndim != 3 or face.ndim != 3 or face.shape[0] != face.shape[1] or face.shape[2] != frame.shape[2]:
        raise ValueError(
            f"face {tuple(face.shape)} must be a square crop with the channels of frame {tuple(frame.shape)}"
        )
    if region not in REGIONS:
        raise ValueError(f"region must be one of {REGIONS}, got {region!r}")
    dtype = torch.float32 if frame.dtype == torch.uint8 else frame.dtype
    resolution = face.shape[0]
    if region_mask is None:
        region_mask = regenerate_mask(resolution) if region == "mouth" else torch.ones(resolution, resolution)
    region_mask = region_mask.to(dtype)
    crop_to_frame = invert_affine(matrix)
    box = _support_box(region_mask > 0, crop_to_frame, frame.shape[:2])
    if box is None:
        return None
    x0, y0, x1, y1 = box
    roi_to_crop = compose_affine(matrix, translation(x0, y0))
    size = (y1 - y0, x1 - x0)
    warped_face = sample_affine(face.to(dtype).permute(2, 0, 1), roi_to_crop, size, fill=None)
    soft = feather(sample_affine(region_mask[None], roi_to_crop, size, fill=None)[0])
    roi = as_float(frame[y0:y1, x0:x1])
    # Where soft == 0 the blend below is exactly roi (x * 1 + y * 0), never a resampled value.
    return box, roi * (1.0 - soft[..., None]) + warped_face.permute(1, 2, 0) * soft[..., None]
