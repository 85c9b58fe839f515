"""The fixed LatentSync mouth mask, regenerated as geometry instead of shipped as an image.

The official ``mask.png`` (256x256, used by every config) keeps the upper face and regenerates the
lower face: two cheek bands beside the nose from row 95, then from row 128 a full-width region whose
bottom is a half-ellipse ending at row 243. The shape below reproduces it to about 1 % of its pixels
at 256 and is evaluated at pixel centres for any crop size, so 512 crops (LatentSync 1.6) get a
sharp mask rather than an upsampled one.
"""

from __future__ import annotations

import torch

# Geometry on the 256-pixel canvas of the official mask (continuous coordinates, pixel i covers [i, i+1)).
CHEEK_TOP = 95.0
FULL_TOP = 128.0
CHEEK_LEFT = (9.0, 78.0)  # the nose column between the bands stays unmasked down to FULL_TOP
CHEEK_RIGHT = (178.0, 247.0)
ELLIPSE_CX, ELLIPSE_A = 128.5, 119.0
ELLIPSE_CY, ELLIPSE_B = 140.0, 103.0  # flat sides down to CY, then a half ellipse to CY + B


def regenerate_mask(resolution: int, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """(resolution, resolution) mask: 1 where LatentSync regenerates the face, 0 where it keeps it.

    This is ComfyUI's MASK convention (1 = the affected area); the official code stores the
    complement (``mask.png`` white = keep), see :func:`keep_mask`.
    """
    if resolution < 8:
        raise ValueError(f"resolution must be >= 8, got {resolution}")
    centres = (torch.arange(resolution, dtype=torch.float64) + 0.5) * (256.0 / resolution)
    y, x = centres[:, None], centres[None, :]
    in_cheeks = (
        (y >= CHEEK_TOP)
        & (y < FULL_TOP)
        & (((x >= CHEEK_LEFT[0]) & (x < CHEEK_LEFT[1])) | ((x >= CHEEK_RIGHT[0]) & (x < CHEEK_RIGHT[1])))
    )
    below = torch.clamp(y - ELLIPSE_CY, min=0.0)
    in_lower = (y >= FULL_TOP) & (((x - ELLIPSE_CX) / ELLIPSE_A) ** 2 + (below / ELLIPSE_B) ** 2 <= 1.0)
    return (in_cheeks | in_lower).to(dtype)


def keep_mask(resolution: int, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """The official convention: 1 = keep the input pixel, 0 = regenerate (``masked = pixels * keep``)."""
    return 1.0 - regenerate_mask(resolution, dtype)
