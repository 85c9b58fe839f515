"""HV_FACE_TRACK: one face followed through a video, with its per-frame alignment to the LatentSync crop.

Frames are read one at a time (detection, cropping and paste-back never hold more than one frame
copy), so the track itself stays small: a few floats per frame. Frames where the chosen face is not
found are recorded in ``has_face`` and pass through unchanged on paste-back.

Two ways to steady the crop over time (``stabilize``):
- "official" (default): as bytedance/LatentSync a229c39 `latentsync/utils/image_processor.py:61-67`
  and `affine_transform.py:25-28,136-143`: the three alignment points are rounded to whole pixels, the
  landmarks are not smoothed, and only the translation gets an exponential average (0.2 previous +
  0.8 current) of a small nose offset, carried from frame to frame in the order the frames are aligned.
- "gaussian": the three points are smoothed over time with a centred Gaussian (no lag, no rounding).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np
import torch

from .face_align import FILL_VALUE, alignment_matrix, crop_face, nose_offset, smoothed_offset
from .face_detect import Face, alignment_points
from .paste_back import paste_face

SELECT_MODES = ("largest", "index", "mask")
STABILIZE_MODES = ("official", "gaussian")
# Box overlap with the previous frame's choice above which "largest" keeps following the same person.
FOLLOW_IOU = 0.3


class Detector(Protocol):
    name: str

    def detect(self, frame: np.ndarray) -> list[Face]: ...


@dataclass
class FaceTrack:
    width: int
    height: int
    resolution: int  # square crop size: 256 (LatentSync 1.5) or 512 (1.6)
    boxes: np.ndarray  # (N, 4) float32 x1 y1 x2 y2, NaN where no face
    landmarks: np.ndarray  # (N, K, 2) float32, NaN where no face
    scores: np.ndarray  # (N,) float32, NaN where no face
    points: np.ndarray  # (N, 3, 2) float64 brow/brow/nose points the crops are built from, NaN where no face
    affines: np.ndarray  # (N, 2, 3) float64 frame -> crop, NaN where no face
    has_face: np.ndarray  # (N,) bool
    detector: str = ""
    smoothing: float = 0.0  # Gaussian sigma in frames ("gaussian" only)
    stabilize: str = "official"

    @property
    def num_frames(self) -> int:
        return int(self.has_face.shape[0])

    @property
    def missing_frames(self) -> list[int]:
        return [int(i) for i in np.flatnonzero(~self.has_face)]

    def select(self, indices: Sequence[int]) -> FaceTrack:
        """The track re-indexed (for looping or ping-ponging a video to the audio length)."""
        idx = np.asarray(indices, dtype=np.int64)
        if idx.size and (idx.min() < 0 or idx.max() >= self.num_frames):
            raise ValueError(f"frame indices must be in [0, {self.num_frames}), got {idx.min()}..{idx.max()}")
        return FaceTrack(
            self.width,
            self.height,
            self.resolution,
            self.boxes[idx],
            self.landmarks[idx],
            self.scores[idx],
            self.points[idx],
            self.affines[idx],
            self.has_face[idx],
            self.detector,
            self.smoothing,
            self.stabilize,
        )

    def realign(self, indices: Sequence[int]) -> FaceTrack:
        """The track over the frames `indices` in that order, aligned as if those frames were the video.

        With "official" the translation average runs along the new order (the official code aligns the
        25 fps frames it reads, once each, in order); "gaussian" points are already smoothed over the
        source frames, so the frames are just picked.
        """
        picked = self.select(indices)
        if self.stabilize == "official":
            picked.affines, _ = official_affines(picked.points, picked.has_face, self.resolution)
        return picked

    def summary(self) -> str:
        missing = self.missing_frames
        text = (
            f"face track: {self.num_frames} frames {self.width}x{self.height}, crop {self.resolution}, "
            f"detector {self.detector}, alignment {self.stabilize}, face in {self.num_frames - len(missing)} frames"
        )
        if missing:
            text += f"; no face (passed through unchanged) in {len(missing)}: {_ranges(missing)}"
        return text


def _ranges(frames: list[int]) -> str:
    parts, start = [], None
    for i, f in enumerate(frames):
        if start is None:
            start = f
        if i + 1 == len(frames) or frames[i + 1] != f + 1:
            parts.append(str(start) if start == f else f"{start}-{f}")
            start = None
    return ", ".join(parts)


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    w = max(min(a[2], b[2]) - max(a[0], b[0]), 0.0)
    h = max(min(a[3], b[3]) - max(a[1], b[1]), 0.0)
    inter = w * h
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return float(inter / union) if union > 0 else 0.0


def select_face(
    faces: list[Face],
    mode: str = "largest",
    index: int = 0,
    region: np.ndarray | None = None,
    previous: np.ndarray | None = None,
) -> Face | None:
    """The face to follow in one frame, or None.

    largest: the biggest box, but a face overlapping the previous choice wins, so two people of similar
    size do not swap from frame to frame. index: faces numbered left to right from 0. mask: the face
    whose box has the largest share covered by ``region`` (an (H, W) mask, e.g. the speaker).
    """
    if mode not in SELECT_MODES:
        raise ValueError(f"face selection must be one of {SELECT_MODES}, got {mode!r}")
    if not faces:
        return None
    if mode == "index":
        ordered = sorted(faces, key=lambda f: f.centre[0])
        return ordered[index] if 0 <= index < len(ordered) else None
    if mode == "mask":
        if region is None:
            raise ValueError("face selection 'mask' needs a speaker mask")
        h, w = region.shape
        best, best_cover = None, 0.0
        for f in faces:
            x0, y0 = int(np.clip(np.floor(f.box[0]), 0, w)), int(np.clip(np.floor(f.box[1]), 0, h))
            x1, y1 = int(np.clip(np.ceil(f.box[2]), 0, w)), int(np.clip(np.ceil(f.box[3]), 0, h))
            cover = float(region[y0:y1, x0:x1].mean()) if x1 > x0 and y1 > y0 else 0.0
            if cover > best_cover:
                best, best_cover = f, cover
        return best
    if previous is not None:
        overlaps = [(_iou(f.box, previous), f) for f in faces]
        iou, f = max(overlaps, key=lambda t: t[0])
        if iou >= FOLLOW_IOU:
            return f
    return max(faces, key=lambda f: f.area)


def smooth_points(points: np.ndarray, valid: np.ndarray, sigma: float) -> np.ndarray:
    """Gaussian smoothing over time within each run of consecutive frames with a face.

    Zero-phase (centred window), so the crop does not lag behind a moving head the way an
    exponential filter does; weights are renormalised at the ends of a run.
    """
    out = points.copy()
    if sigma <= 0:
        return out
    radius = max(int(np.ceil(3 * sigma)), 1)
    kernel = np.exp(-0.5 * (np.arange(-radius, radius + 1) / sigma) ** 2)
    n = len(valid)
    i = 0
    while i < n:
        if not valid[i]:
            i += 1
            continue
        j = i
        while j < n and valid[j]:
            j += 1
        run = points[i:j].reshape(j - i, -1)
        for t in range(j - i):
            lo, hi = max(t - radius, 0), min(t + radius + 1, j - i)
            wts = kernel[lo - t + radius : hi - t + radius]
            out[i + t] = (wts[:, None] * run[lo:hi]).sum(0).reshape(points.shape[1:]) / wts.sum()
        i = j
    return out


def official_affines(
    points: np.ndarray, valid: np.ndarray, resolution: int, offset: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray | None]:
    """Crop matrices along a frame sequence with the official translation average, and the average after it.

    ``offset`` is the average carried in from earlier frames (None at the start of a video), so a long
    video can be aligned in pieces. Frames without a face keep their NaN matrix and leave the average as is.
    """
    affines = np.full((len(valid), 2, 3), np.nan, np.float64)
    for i in np.flatnonzero(valid):
        offset = smoothed_offset(offset, nose_offset(points[i]))
        affines[i] = alignment_matrix(points[i], resolution, offset)
    return affines, offset


def frame_uint8(frames, i: int) -> np.ndarray:
    """Frame i of an IMAGE tensor (N, H, W, 3) in [0, 1] or a uint8 array, as (H, W, 3) uint8."""
    frame = frames[i]
    if isinstance(frame, torch.Tensor):
        if frame.dtype == torch.uint8:
            return frame.cpu().numpy()
        return (frame.float().clamp(0, 1) * 255.0).round().to(torch.uint8).cpu().numpy()
    frame = np.asarray(frame)
    if frame.dtype == np.uint8:
        return frame
    return (np.clip(frame.astype(np.float32), 0, 1) * 255.0).round().astype(np.uint8)


def check_images(frames, name: str = "images") -> tuple[int, int, int]:
    """(N, H, W) of a frame batch, or a ValueError naming the input."""
    shape = tuple(frames.shape)
    if len(shape) != 4 or shape[3] != 3:
        raise ValueError(f"{name}: expected an IMAGE batch [frames, height, width, 3], got shape {shape}")
    n, h, w, _ = shape
    if n == 0:
        raise ValueError(f"{name}: the batch has no frames")
    if h < 32 or w < 32:
        raise ValueError(f"{name}: frames of {w}x{h} are too small to hold a detectable face (min 32x32)")
    return n, h, w


def check_region_masks(masks, n: int, h: int, w: int, name: str = "speaker_mask") -> torch.Tensor:
    """A MASK batch as (M, H, W) with M == 1 or n; anything else is a ValueError naming the input."""
    masks = torch.as_tensor(masks)
    if masks.ndim == 2:
        masks = masks[None]
    if masks.ndim != 3:
        raise ValueError(f"{name}: expected a MASK [frames, height, width], got shape {tuple(masks.shape)}")
    if tuple(masks.shape[1:]) != (h, w):
        raise ValueError(f"{name}: mask size {masks.shape[2]}x{masks.shape[1]} does not match the images ({w}x{h})")
    if masks.shape[0] not in (1, n):
        raise ValueError(f"{name}: {masks.shape[0]} masks for {n} frames; give 1 mask or one per frame")
    if not bool((masks > 0).any()):
        raise ValueError(f"{name}: the mask is empty; paint the region of the face to follow")
    return masks


class FaceTracker:
    """Detect, choose and align one face per frame, frames given one at a time (a decoded video stream).

    ``add`` each frame in order, then ``finish`` for the track; :func:`track_faces` does the same for an
    IMAGE batch, so a streamed video and its frames in memory give the same track. ``stabilize`` picks
    the temporal steadying (see the module notes); ``smoothing`` is the Gaussian sigma in frames for
    "gaussian", which runs in ``finish`` over the whole track (only a few numbers per frame are kept).
    """

    def __init__(
        self,
        detector: Detector,
        resolution: int = 256,
        select: str = "largest",
        index: int = 0,
        smoothing: float = 1.0,
        stabilize: str = "official",
    ):
        if select not in SELECT_MODES:
            raise ValueError(f"face selection must be one of {SELECT_MODES}, got {select!r}")
        if stabilize not in STABILIZE_MODES:
            raise ValueError(f"stabilize must be one of {STABILIZE_MODES}, got {stabilize!r}")
        if select == "index" and index < 0:
            raise ValueError(f"face_index must be >= 0, got {index}")
        if smoothing < 0:
            raise ValueError(f"smoothing must be >= 0 frames, got {smoothing}")
        self.detector, self.resolution = detector, resolution
        self.select, self.index, self.smoothing, self.stabilize = select, index, float(smoothing), stabilize
        self.width = self.height = 0
        self._faces: list[Face | None] = []
        self._previous = None

    @property
    def num_frames(self) -> int:
        return len(self._faces)

    def add(self, frame: np.ndarray, region: np.ndarray | None = None) -> bool:
        """One (H, W, 3) uint8 RGB frame (and the speaker region for select=mask); True when the face was found."""
        h, w = frame.shape[:2]
        if not self._faces:
            self.height, self.width = h, w
        elif (w, h) != (self.width, self.height):
            raise ValueError(f"frame {len(self._faces)} is {w}x{h}, the earlier ones {self.width}x{self.height}")
        if self.select == "mask" and region is None:
            raise ValueError("speaker_mask: face selection 'mask' needs a speaker mask")
        faces = self.detector.detect(frame)
        face = select_face(faces, self.select, self.index, region, self._previous)
        self._faces.append(face)
        if face is not None:
            self._previous = face.box
        return face is not None

    def finish(self) -> FaceTrack:
        """The track of every frame added; ValueError when no frame has the chosen face."""
        n, w, h = len(self._faces), self.width, self.height
        found = [i for i, f in enumerate(self._faces) if f is not None]
        if not found:
            how = {"largest": "", "index": f" with index {self.index}", "mask": " inside the speaker mask"}[self.select]
            raise ValueError(
                f"images: no face{how} found in any of the {n} frames ({w}x{h}, detector "
                f"{getattr(self.detector, 'name', '?')}); use a video with a visible frontal face, or "
                f"lower the detector's min_score / raise upsample for small faces"
            )
        boxes = np.full((n, 4), np.nan, np.float32)
        scores = np.full((n,), np.nan, np.float32)
        landmarks = np.full((n,) + self._faces[found[0]].landmarks.shape, np.nan, np.float32)
        points = np.full((n, 3, 2), np.nan, np.float64)
        has_face = np.zeros((n,), bool)
        for i in found:
            face = self._faces[i]
            boxes[i], scores[i], landmarks[i] = face.box, face.score, face.landmarks
            points[i] = alignment_points(face.landmarks)
            if self.stabilize == "official":
                points[i] = np.round(points[i])  # image_processor.py:65 (numpy's round: ties to even)
            has_face[i] = True
        if self.stabilize == "official":
            smoothed = points
            affines, _ = official_affines(points, has_face, self.resolution)
        else:
            smoothed = smooth_points(points, has_face, self.smoothing)
            affines = np.full((n, 2, 3), np.nan, np.float64)
            for i in np.flatnonzero(has_face):
                affines[i] = alignment_matrix(smoothed[i], self.resolution)
        return FaceTrack(
            w,
            h,
            self.resolution,
            boxes,
            landmarks,
            scores,
            smoothed,
            affines,
            has_face,
            getattr(self.detector, "name", ""),
            self.smoothing,
            self.stabilize,
        )


def track_faces(
    frames,
    detector: Detector,
    resolution: int = 256,
    select: str = "largest",
    index: int = 0,
    region_masks: torch.Tensor | None = None,
    smoothing: float = 1.0,
    on_frame: Callable[[int], None] | None = None,
    stabilize: str = "official",
) -> FaceTrack:
    """Detect, choose and align one face per frame of an IMAGE batch (or uint8 array).

    ``stabilize`` picks the temporal steadying (see the module notes); ``smoothing`` is the Gaussian
    sigma in frames for "gaussian". ``on_frame(i)`` runs after each frame (the node's progress bar and
    interrupt check). Raises ValueError when no frame has the chosen face.
    """
    tracker = FaceTracker(detector, resolution, select, index, smoothing, stabilize)
    n, h, w = check_images(frames)
    if select == "mask":
        if region_masks is None:
            raise ValueError("speaker_mask: face selection 'mask' needs a speaker mask")
        region_masks = check_region_masks(region_masks, n, h, w)
    for i in range(n):
        tracker.add(frame_uint8(frames, i), speaker_region(region_masks, i) if select == "mask" else None)
        if on_frame is not None:
            on_frame(i)
    return tracker.finish()


def speaker_region(region_masks: torch.Tensor, i: int) -> np.ndarray:
    """Frame i's (H, W) speaker region from a checked MASK batch of 1 or one mask per frame."""
    if region_masks.shape[0] > 1 and i >= region_masks.shape[0]:
        raise ValueError(f"speaker_mask: {region_masks.shape[0]} masks, but the video has more frames")
    return region_masks[i if region_masks.shape[0] > 1 else 0].float().cpu().numpy()


def _check_track(frames, track: FaceTrack) -> None:
    n, h, w = check_images(frames)
    if n != track.num_frames or (w, h) != (track.width, track.height):
        raise ValueError(
            f"images: {n} frames of {w}x{h} do not match the face track "
            f"({track.num_frames} frames of {track.width}x{track.height})"
        )


def crop_frame(frames: torch.Tensor, track: FaceTrack, i: int) -> torch.Tensor:
    """(R, R, 3) float crop of frame i; grey where the track has no face."""
    return crop_tracked(frames[i], track, i)


def crop_tracked(frame: torch.Tensor, track: FaceTrack, i: int) -> torch.Tensor:
    """(R, R, 3) float crop of one (H, W, 3) frame (float, or uint8 as decoded) with entry i of the track;
    grey where the track has no face."""
    if not track.has_face[i]:
        return torch.full((track.resolution, track.resolution, 3), FILL_VALUE, dtype=torch.float32)
    return crop_face(frame if frame.dtype == torch.uint8 else frame.float(), track.affines[i], track.resolution)


def crop_frames(frames: torch.Tensor, track: FaceTrack, on_frame: Callable[[int], None] | None = None) -> torch.Tensor:
    """(N, R, R, 3) float crops of an IMAGE batch along the track."""
    _check_track(frames, track)
    out = torch.empty((track.num_frames, track.resolution, track.resolution, 3), dtype=torch.float32)
    for i in range(track.num_frames):
        out[i] = crop_frame(frames, track, i)
        if on_frame is not None:
            on_frame(i)
    return out


def paste_frames(
    frames: torch.Tensor,
    faces: torch.Tensor,
    track: FaceTrack,
    region: str = "mouth",
    on_frame: Callable[[int], None] | None = None,
) -> torch.Tensor:
    """IMAGE batch with each processed crop warped back; frames without a face are returned as they were."""
    _check_track(frames, track)
    if faces.ndim != 4 or faces.shape[0] != track.num_frames or faces.shape[3] != 3:
        raise ValueError(f"faces: expected {track.num_frames} crops [frames, size, size, 3], got {tuple(faces.shape)}")
    if faces.shape[1] != faces.shape[2]:
        raise ValueError(f"faces: crops must be square, got {faces.shape[2]}x{faces.shape[1]}")
    out = torch.empty_like(frames, dtype=torch.float32)
    for i in range(track.num_frames):
        frame = frames[i].float()
        if track.has_face[i]:
            face = faces[i].float()
            matrix = track.affines[i]
            if face.shape[0] != track.resolution:  # crops resized elsewhere: rescale the matrix with them
                s = face.shape[0] / track.resolution
                matrix = matrix * s
                matrix[:, 2] += (s - 1) / 2  # pixel centres: (x + 0.5) s - 0.5
            frame = paste_face(frame, face, matrix, region)
        out[i] = frame
        if on_frame is not None:
            on_frame(i)
    return out
