"""A visible "AI-generated" label for synthetic people, and the provenance tag for the container.

Videos that show a real person's face speaking words they never said must be recognisable as synthetic;
the label is drawn once into an RGBA stamp and alpha-blended into every frame.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image, ImageDraw, ImageFont

CORNERS = ("bottom-right", "bottom-left", "top-right", "top-left")
PROVENANCE_KEY = "ai_generated"


@dataclass(frozen=True)
class LabelStamp:
    rgb: torch.Tensor  # [h, w, 3] 0..1
    alpha: torch.Tensor  # [h, w, 1] 0..1, already multiplied by the opacity
    top: int
    left: int

    @property
    def box(self) -> tuple[int, int, int, int]:
        """(x0, y0, x1, y1) of the frame pixels the label covers."""
        h, w = self.rgb.shape[:2]
        return self.left, self.top, self.left + w, self.top + h

    def blend(self, region: torch.Tensor) -> torch.Tensor:
        """The label blended into the float pixels under it ([h, w, 3], the frame cut to ``box``)."""
        alpha = self.alpha.to(region)
        return region * (1 - alpha) + self.rgb.to(region) * alpha

    def apply(self, frame: torch.Tensor) -> torch.Tensor:
        """Blend into one [H, W, C>=3] frame; returns a new tensor."""
        out = frame.clone()
        x0, y0, x1, y1 = self.box
        out[y0:y1, x0:x1, :3] = self.blend(out[y0:y1, x0:x1, :3])
        return out


def make_label(
    frame_height: int,
    frame_width: int,
    text: str = "AI-generated",
    corner: str = "bottom-right",
    size: float = 0.05,
    opacity: float = 0.7,
) -> LabelStamp:
    """Render ``text`` with a height of ``size`` x frame height into a stamp placed in ``corner``."""
    if corner not in CORNERS:
        raise ValueError(f"label corner must be one of {CORNERS}, got {corner!r}")
    if not 0.0 <= opacity <= 1.0:
        raise ValueError(f"label opacity must be within 0..1, got {opacity}")
    font_px = max(8, int(round(frame_height * size)))
    font = ImageFont.load_default(size=font_px)
    left, top, right, bottom = font.getbbox(text)
    pad = max(2, font_px // 4)
    box_w = min(frame_width, right - left + 2 * pad)
    box_h = min(frame_height, bottom - top + 2 * pad)
    # Dark box with white text: readable on any background.
    canvas = Image.new("RGBA", (box_w, box_h), (0, 0, 0, 160))
    ImageDraw.Draw(canvas).text((pad - left, pad - top), text, font=font, fill=(255, 255, 255, 255))
    rgba = torch.from_numpy(np.asarray(canvas, dtype=np.float32) / 255.0)
    margin = max(2, frame_height // 50)
    y = margin if corner.startswith("top") else frame_height - box_h - margin
    x = margin if corner.endswith("left") else frame_width - box_w - margin
    return LabelStamp(rgba[..., :3], rgba[..., 3:] * opacity, max(0, y), max(0, x))


def provenance_metadata(generator: str, extra: dict | None = None) -> dict[str, str]:
    """Container tags that mark the file as synthetic, whatever the visible label setting."""
    tags = {
        PROVENANCE_KEY: "true",
        "comment": f"AI-generated video (synthetic media) made with {generator}",
        "encoder_software": generator,
    }
    for key, value in (extra or {}).items():
        tags[key] = value if isinstance(value, str) else json.dumps(value)
    return tags
