"""Per-speaker face regions of a video: detect faces, assign them to speakers, draw soft dilated masks.

Used by HuMo's focus by prediction: the frames are a decoded x0 estimate taken mid-sampling, and the
masks become the regions that each speaker's audio cross-attention acts on for the remaining steps.

Faces are detected on every ``stride``-th frame (and the last one); boxes in between are interpolated
linearly, and frames before the first / after the last detection hold the nearest box. A speaker is
given at most one face per frame:
- with a hint mask per speaker (the focus masks the user gave, e.g. the left and right halves of the
  frame), the faces are assigned to maximise the total hint coverage of the chosen boxes, and a face
  no hint covers goes to nobody;
- without hints, one speaker gets the largest face, several speakers get the faces from left to right.
A mask is the face box grown by ``dilation`` (a fraction of the box size on every side) with edges
that ramp linearly over ``feather`` (also a fraction of the box size): 1 inside, 0 far outside.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from .face_detect import Face
from .face_track import Detector

DEFAULT_DILATION = 0.25
DEFAULT_FEATHER = 0.15


@dataclass
class SpeakerFaces:
    """boxes: [speakers, frames, 4] float64 x1 y1 x2 y2 in frame pixels, NaN where the speaker has no face."""

    boxes: np.ndarray
    width: int
    height: int
    detected_frames: list[int]

    @property
    def speakers(self) -> int:
        return int(self.boxes.shape[0])

    def found(self, speaker: int) -> bool:
        return bool(np.isfinite(self.boxes[speaker, :, 0]).any())


def _coverage(box: np.ndarray, hint: np.ndarray) -> float:
    """Mean hint value inside a box (hint [H, W] in 0..1, any resolution relative to the frame)."""
    hh, hw = hint.shape
    x1, y1, x2, y2 = box
    c1, c2 = int(np.clip(np.floor(x1 * hw), 0, hw - 1)), int(np.clip(np.ceil(x2 * hw), 1, hw))
    r1, r2 = int(np.clip(np.floor(y1 * hh), 0, hh - 1)), int(np.clip(np.ceil(y2 * hh), 1, hh))
    return float(hint[r1 : max(r2, r1 + 1), c1 : max(c2, c1 + 1)].mean())


def assign_faces(
    faces: Sequence[Face], speakers: int, width: int, height: int, hints: Sequence[np.ndarray | None] | None = None
) -> list[np.ndarray | None]:
    """One box (or None) per speaker for one frame."""
    if not faces:
        return [None] * speakers
    boxes = [np.asarray(f.box, dtype=np.float64) for f in faces]
    if hints is not None and all(h is not None for h in hints):
        unit = [b / np.array([width, height, width, height]) for b in boxes]
        score = np.array([[_coverage(u, np.asarray(h, dtype=np.float64)) for h in hints] for u in unit])
        best, best_total = None, 0.0
        # Every injective choice of faces (or none) for the speakers; a handful of faces and speakers at most.
        options = list(range(len(boxes))) + [None] * speakers
        for pick in set(itertools.permutations(options, speakers)):
            total = sum(score[f, s] for s, f in enumerate(pick) if f is not None)
            if total > best_total + 1e-9:
                best, best_total = pick, total
        if best is None:
            return [None] * speakers
        return [boxes[f] if f is not None and score[f, s] > 0 else None for s, f in enumerate(best)]
    if speakers == 1:
        return [max(boxes, key=lambda b: (b[2] - b[0]) * (b[3] - b[1]))]
    largest = sorted(boxes, key=lambda b: (b[2] - b[0]) * (b[3] - b[1]), reverse=True)[:speakers]
    by_x = sorted(largest, key=lambda b: b[0] + b[2])
    return by_x + [None] * (speakers - len(by_x))


def _fill(boxes: np.ndarray) -> np.ndarray:
    """[frames, 4] with NaN rows -> linear interpolation between known rows, nearest beyond them."""
    known = np.flatnonzero(np.isfinite(boxes[:, 0]))
    if known.size == 0:
        return boxes
    frames = np.arange(boxes.shape[0])
    return np.stack([np.interp(frames, known, boxes[known, k]) for k in range(4)], axis=1)


def _hint_at(hint: np.ndarray | None, frame: int) -> np.ndarray | None:
    """A hint mask for one frame: [H, W] as is, [N, H, W] at the frame (the last one past its end)."""
    if hint is None:
        return None
    hint = np.asarray(hint, dtype=np.float64)
    return hint[min(frame, hint.shape[0] - 1)] if hint.ndim == 3 else hint


def find_speaker_faces(
    frames: Sequence[np.ndarray],
    detector: Detector,
    speakers: int = 1,
    hints: Sequence[np.ndarray | None] | None = None,
    stride: int = 4,
    on_frame=None,
) -> SpeakerFaces:
    """frames: N frames [H, W, 3] uint8 RGB (an array or any sequence that makes them on indexing) -> each
    speaker's face box on every frame (see the module notes). Only every ``stride``-th frame is read.

    ``hints``: per speaker a mask [H, W] or [N, H, W] in 0..1 at any resolution, or None.
    """
    n = len(frames)
    if n == 0:
        raise ValueError("frames: empty")
    if speakers < 1:
        raise ValueError(f"speakers must be at least 1, got {speakers}")
    if stride < 1:
        raise ValueError(f"stride must be at least 1, got {stride}")
    if hints is not None and len(hints) != speakers:
        raise ValueError(f"hints: {len(hints)} masks for {speakers} speakers")
    picked = sorted(set(range(0, n, stride)) | {n - 1})
    boxes = np.full((speakers, n, 4), np.nan)
    height = width = 0
    for i in picked:
        frame = frames[i]
        if frame.ndim != 3 or frame.shape[-1] != 3 or frame.dtype != np.uint8:
            raise ValueError(f"frames must be [H, W, 3] uint8, got {frame.shape} {frame.dtype}")
        height, width = frame.shape[:2]
        frame_hints = None if hints is None else [_hint_at(h, i) for h in hints]
        for s, box in enumerate(assign_faces(detector.detect(frame), speakers, width, height, frame_hints)):
            if box is not None:
                boxes[s, i] = box
        if on_frame is not None:
            on_frame(i)
    return SpeakerFaces(np.stack([_fill(b) for b in boxes]), width, height, picked)


def _profile(lo: float, hi: float, ramp: float, length: float, cells: int, oversample: int = 16) -> np.ndarray:
    """Cell averages over ``cells`` equal cells of [0, length] of the trapezoid: 1 on [lo, hi], linear edges
    ``ramp`` wide centred on lo and hi. Averaging (not point sampling) keeps small faces on coarse grids."""
    xs = (np.arange(cells * oversample) + 0.5) * (length / (cells * oversample))
    inside = np.minimum(xs - lo, hi - xs)
    return np.clip(inside / ramp + 0.5, 0.0, 1.0).reshape(cells, oversample).mean(1)


def soft_box_masks(
    boxes: np.ndarray,
    width: int,
    height: int,
    out_size: tuple[int, int] | None = None,
    dilation: float = DEFAULT_DILATION,
    feather: float = DEFAULT_FEATHER,
) -> np.ndarray:
    """[frames, 4] boxes in frame pixels -> float32 masks [frames, h, w] (``out_size`` (h, w), default the frame's).

    The mask is separable: a trapezoid along x times a trapezoid along y, each 1 over the dilated box and
    falling linearly to 0 over ``feather`` x box size centred on its edge, averaged over each output cell.
    Rows of NaN give empty masks.
    """
    if dilation < 0 or feather < 0:
        raise ValueError(f"dilation and feather must be >= 0, got {dilation}, {feather}")
    oh, ow = out_size or (height, width)
    out = np.zeros((boxes.shape[0], oh, ow), dtype=np.float32)
    for i, (x1, y1, x2, y2) in enumerate(boxes):
        if not np.isfinite(x1):
            continue
        bw, bh = x2 - x1, y2 - y1
        mx = _profile(x1 - dilation * bw, x2 + dilation * bw, max(feather * bw, 1e-6), width, ow)
        my = _profile(y1 - dilation * bh, y2 + dilation * bh, max(feather * bh, 1e-6), height, oh)
        out[i] = (my[:, None] * mx[None, :]).astype(np.float32)
    return out
