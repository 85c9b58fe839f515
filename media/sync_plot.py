"""A picture of lip-sync confidence over time, one panel per speaker track, drawn with Pillow.

Each panel plots the frame-wise SyncNet confidence (median distance minus the distance at the chosen
offset, median-filtered over 9 windows) against the video time; the weakest windows are shaded red so a
user sees where the lips and the voice drift apart.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image, ImageDraw, ImageFont

WIDTH = 960
PANEL_HEIGHT = 220
MARGIN_LEFT, MARGIN_RIGHT, MARGIN_TOP, MARGIN_BOTTOM = 56, 16, 28, 30
WEAK_SHARE = 0.1  # the lowest 10 % of windows (at least one) are marked
WINDOW_CENTRE = 2  # a 5-frame window starting at frame i is drawn at frame i + 2


@dataclass
class Panel:
    title: str
    start_frame: int  # 25 fps frame of the track's first window
    framewise_conf: np.ndarray  # (windows,)
    weak: np.ndarray  # (windows,) bool


def weakest_windows(conf: np.ndarray, share: float = WEAK_SHARE) -> np.ndarray:
    """Boolean mask of the lowest ``share`` of windows (at least one); ties at the cut are all marked."""
    conf = np.asarray(conf, dtype=np.float64)
    if conf.size == 0:
        return np.zeros((0,), bool)
    count = max(1, int(round(share * conf.size)))
    cut = np.sort(conf)[count - 1]
    return conf <= cut


def _font() -> ImageFont.ImageFont:
    try:
        return ImageFont.load_default(size=13)
    except TypeError:  # Pillow without FreeType: the fixed bitmap font
        return ImageFont.load_default()


def draw_panels(panels: Sequence[Panel], total_frames: int, fps: float = 25.0) -> torch.Tensor:
    """IMAGE [1, H, W, 3] with one panel per track over a shared time axis of ``total_frames`` frames."""
    height = PANEL_HEIGHT * max(len(panels), 1)
    img = Image.new("RGB", (WIDTH, height), (255, 255, 255))
    draw = ImageDraw.Draw(img)
    font = _font()
    span = max(total_frames - 1, 1)
    plot_w = WIDTH - MARGIN_LEFT - MARGIN_RIGHT
    for p_index, panel in enumerate(panels):
        top = p_index * PANEL_HEIGHT + MARGIN_TOP
        bottom = (p_index + 1) * PANEL_HEIGHT - MARGIN_BOTTOM
        conf = np.asarray(panel.framewise_conf, dtype=np.float64)
        low, high = (float(conf.min()), float(conf.max())) if conf.size else (0.0, 1.0)
        low, high = min(low, 0.0), max(high, 0.0)
        if high - low < 1e-6:
            high = low + 1.0
        pad = 0.08 * (high - low)
        low, high = low - pad, high + pad

        def to_x(frame: float) -> float:
            return MARGIN_LEFT + plot_w * frame / span

        def to_y(value: float, top=top, bottom=bottom, low=low, high=high) -> float:
            return bottom - (bottom - top) * (value - low) / (high - low)

        frames = panel.start_frame + WINDOW_CENTRE + np.arange(conf.size)
        half = 0.5 * plot_w / span
        for f, is_weak in zip(frames, panel.weak, strict=True):
            if is_weak:
                draw.rectangle([to_x(f) - half, top, to_x(f) + half, bottom], fill=(255, 205, 205))
        draw.rectangle([MARGIN_LEFT, top, WIDTH - MARGIN_RIGHT, bottom], outline=(90, 90, 90))
        draw.line([MARGIN_LEFT, to_y(0.0), WIDTH - MARGIN_RIGHT, to_y(0.0)], fill=(160, 160, 160))
        points = [(to_x(f), to_y(v)) for f, v in zip(frames, conf, strict=True)]
        if len(points) > 1:
            draw.line(points, fill=(30, 90, 200), width=2)
        for (x, y), is_weak in zip(points, panel.weak, strict=True):
            if is_weak:
                draw.ellipse([x - 3, y - 3, x + 3, y + 3], fill=(210, 30, 30))
        draw.text((MARGIN_LEFT, top - 20), panel.title, fill=(0, 0, 0), font=font)
        for value in (high - pad, 0.0, low + pad):
            draw.text((4, to_y(value) - 7), f"{value:6.1f}", fill=(60, 60, 60), font=font)
        seconds = span / fps
        step = max(1, int(np.ceil(seconds / 10)))
        for t in range(0, int(seconds) + 1, step):
            x = to_x(t * fps)
            draw.line([x, bottom, x, bottom + 4], fill=(90, 90, 90))
            draw.text((x - 8, bottom + 6), f"{t}s", fill=(60, 60, 60), font=font)
    return torch.from_numpy(np.asarray(img, dtype=np.float32) / 255.0)[None]
