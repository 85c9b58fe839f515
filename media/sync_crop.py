"""Speaker tracks and SyncNet face crops, following the official evaluation's pre-processing.

Rules from bytedance/LatentSync:eval/syncnet_detect.py (adapted from joonson/syncnet_python:run_pipeline.py):

- the video is converted to 25 fps first (``ffmpeg -r 25``): :func:`indices_at_25fps` picks the same
  source frame for each output frame as ffmpeg's constant-frame-rate conversion;
- faces of consecutive frames join one track while their boxes overlap with IoU > 0.5, across gaps of
  up to 25 frames without a detection (``track_face``, lines 106-148); a track is kept when it has more
  than ``min_track`` detections and its mean box is larger than ``min_face_size`` pixels; the box is
  linearly interpolated over the gaps;
- the crop (``crop_video``, lines 168-204): half-size ``s = max(w, h) / 2`` and the centre, each
  median-filtered over 13 frames; the frame is padded with grey 110, rows ``[y - s, y + 2.8 s)``, columns
  ``[x - 1.4 s, x + 1.4 s)`` (``crop_scale`` 0.4: the face sits in the upper part, with the chin and mouth
  in the middle), resized to 224 x 224; the audio of a track runs from its first frame to the end of
  its last (``-ss start/25 -to (end+1)/25``).

Departures (see README, "Lip-sync scores"): faces come from dlib (:mod:`.face_detect`) instead of S3FD;
the clip is one shot (no scene-cut detection); frames are taken as decoded, without the JPEG and mp4v
re-encodings of the official file-based pipeline; the 224 x 224 resize is bilinear with pixel-centre
alignment as OpenCV's ``INTER_LINEAR`` (values may differ by one 8-bit step through OpenCV's fixed-point
arithmetic).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from scipy.signal import medfilt

from .face_detect import Face

CROP_SIZE = 224
CROP_SCALE = 0.4
PAD_VALUE = 110
SMOOTH_KERNEL = 13
TRACK_IOU = 0.5
MAX_GAP = 25  # num_failed_det
MIN_TRACK = 50  # LatentSync's eval_sync_conf.py (syncnet_python: 100)
MIN_FACE_SIZE = 100  # pixels, mean box width or height


def indices_at_25fps(num_frames: int, fps: float, target_fps: float = 25.0) -> np.ndarray:
    """Source frame index of each output frame when a ``num_frames`` clip at ``fps`` is converted to
    ``target_fps`` the way ``ffmpeg -r 25`` into an mp4 does (constant-frame-rate output, the video sync
    of ffmpeg 4.x / 5.x, fftools/ffmpeg.c ``do_video_out``): source frame k (at k * target / fps output
    frames, lasting round(target / fps) output frames when that is not 0) is written ``round(delta)``
    times when it ends more than 1.1 frames past the next output frame, dropped when it ends more than
    1.1 frames before it, else written once; a frame that starts more than 1.1 frames late first repeats
    the previous one. Checked against ffmpeg 5.1 on clips of 12.5 to 60 fps (tests/unit/test_sync_crop.py)."""
    if not math.isfinite(fps) or fps <= 0:
        raise ValueError(f"fps must be a positive number, got {fps}")
    if abs(fps - target_fps) < 1e-9:
        return np.arange(max(num_frames, 0), dtype=np.int64)
    step = target_fps / fps  # source frame length in output frames
    duration = round(step) if round(step) > 0 else step  # llrintf of the frame duration, when not 0
    out: list[int] = []
    next_out, last = 0, 0
    for k in range(num_frames):
        delta0 = k * step - next_out  # how far this frame starts past the next output frame
        delta = delta0 + duration
        if delta0 < 0 < delta:
            delta0 = 0.0  # a frame that started early but still covers the next output slot
        copies, repeats = 1, 0
        if delta < -1.1:
            copies = 0
        elif delta > 1.1:
            copies = round(delta)
            if delta0 > 1.1:
                repeats = min(round(delta0 - 0.6), copies)
        out += [last] * repeats + [k] * (copies - repeats)
        if copies:
            last = k
        next_out += copies
    return np.asarray(out, dtype=np.int64)


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    """Box overlap as syncnet_detect.py's bounding_box_iou (no +1 pixel convention)."""
    w = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    h = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = w * h
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return float(inter / union) if union > 0 else 0.0


@dataclass
class SpeakerTrack:
    frames: np.ndarray  # (L,) consecutive 25 fps frame indices, first .. last detection
    boxes: np.ndarray  # (L, 4) x1 y1 x2 y2, interpolated over gaps
    detections: int  # frames where the face was actually detected

    @property
    def start(self) -> int:
        return int(self.frames[0])

    @property
    def end(self) -> int:
        return int(self.frames[-1])

    @property
    def mean_size(self) -> float:
        return float(max(np.mean(self.boxes[:, 2] - self.boxes[:, 0]), np.mean(self.boxes[:, 3] - self.boxes[:, 1])))


def build_tracks(
    faces_per_frame: list[list[Face]],
    min_track: int = MIN_TRACK,
    min_face_size: float = MIN_FACE_SIZE,
    max_gap: int = MAX_GAP,
) -> tuple[list[SpeakerTrack], list[str]]:
    """Greedy IoU tracking over a shot, as the official ``track_face``: returns the kept tracks (in the
    order they were found) and one line per discarded track saying why."""
    pool = [list(faces) for faces in faces_per_frame]
    kept: list[SpeakerTrack] = []
    dropped: list[str] = []
    while True:
        track: list[tuple[int, np.ndarray]] = []
        for frame, faces in enumerate(pool):
            # Iterates the live list while taking faces out of it, as upstream does (a face right after
            # one that joined is looked at in a later pass).
            for face in faces:
                box = np.asarray(face.box, np.float64)
                if not track:
                    track.append((frame, box))
                    faces.remove(face)
                elif frame - track[-1][0] <= max_gap:
                    if _iou(box, track[-1][1]) > TRACK_IOU:
                        track.append((frame, box))
                        faces.remove(face)
                else:
                    break
        if not track:
            return kept, dropped
        frames = np.array([f for f, _ in track])
        boxes = np.stack([b for _, b in track])
        span = np.arange(frames[0], frames[-1] + 1)
        interp = np.stack([np.interp(span, frames, boxes[:, j]) for j in range(4)], axis=1)
        candidate = SpeakerTrack(span, interp, len(track))
        where = f"frames {candidate.start}-{candidate.end}"
        if len(track) <= min_track:
            dropped.append(f"{where}: {len(track)} detections, not more than min_track={min_track}")
        elif candidate.mean_size <= min_face_size:
            dropped.append(
                f"{where}: face {candidate.mean_size:.0f} px, not larger than min_face_size={min_face_size:g}"
            )
        else:
            kept.append(candidate)


def crop_boxes(track: SpeakerTrack) -> np.ndarray:
    """(L, 3) median-filtered (half-size s, centre y, centre x) per frame, as the official crop_video."""
    b = track.boxes
    s = np.maximum(b[:, 3] - b[:, 1], b[:, 2] - b[:, 0]) / 2
    y = (b[:, 1] + b[:, 3]) / 2
    x = (b[:, 0] + b[:, 2]) / 2
    with warnings.catch_warnings():  # tracks shorter than the kernel are zero-padded, as upstream
        warnings.simplefilter("ignore", UserWarning)
        return np.stack([medfilt(v, kernel_size=SMOOTH_KERNEL) for v in (s, y, x)], axis=1)


def crop_window(s: float, y: float, x: float) -> tuple[int, int, int, int, int]:
    """(pad, top, bottom, left, right) in the padded frame for half-size s and centre (x, y)."""
    pad = int(s * (1 + 2 * CROP_SCALE))
    my, mx = y + pad, x + pad
    return (
        pad,
        int(my - s),
        int(my + s * (1 + 2 * CROP_SCALE)),
        int(mx - s * (1 + CROP_SCALE)),
        int(mx + s * (1 + CROP_SCALE)),
    )


def _resize_bilinear(patch: torch.Tensor, size: int) -> torch.Tensor:
    """(h, w, 3) float -> (size, size, 3), bilinear with half-pixel centres (OpenCV INTER_LINEAR's geometry)."""
    x = patch.permute(2, 0, 1)[None]
    y = torch.nn.functional.interpolate(x, size=(size, size), mode="bilinear", align_corners=False, antialias=False)
    return y[0].permute(1, 2, 0)


def crop_track(
    frame_at: Callable[[int], np.ndarray], track: SpeakerTrack, on_frame: Callable[[int], None] | None = None
) -> torch.Tensor:
    """(L, 224, 224, 3) uint8 BGR SyncNet crops of a track; ``frame_at(i)`` gives 25 fps frame i as RGB uint8."""
    params = crop_boxes(track)
    out = torch.empty((len(track.frames), CROP_SIZE, CROP_SIZE, 3), dtype=torch.uint8)
    for k, frame_index in enumerate(track.frames):
        s, y, x = (float(v) for v in params[k])
        pad, top, bottom, left, right = crop_window(s, y, x)
        rgb = frame_at(int(frame_index))
        bgr = np.ascontiguousarray(rgb[:, :, ::-1])
        padded = np.pad(bgr, ((pad, pad), (pad, pad), (0, 0)), mode="constant", constant_values=PAD_VALUE)
        patch = padded[max(top, 0) : max(bottom, 0), max(left, 0) : max(right, 0)]
        if patch.shape[0] == 0 or patch.shape[1] == 0:
            raise ValueError(f"face crop of frame {frame_index} is empty (box half-size {s:.1f} px)")
        resized = _resize_bilinear(torch.from_numpy(patch).float(), CROP_SIZE)
        out[k] = resized.round().clamp(0, 255).to(torch.uint8)
        if on_frame is not None:
            on_frame(k)
    return out
