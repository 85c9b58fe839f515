"""Which source frame each frame of a 25 fps timeline shows: the official `ffmpeg -r 25` rule, or nearest.

The official LatentSync pipeline re-encodes every input with `ffmpeg -i in -r 25 -crf 18 out.mp4` before it
reads the frames (bytedance/LatentSync a229c39, `latentsync/utils/util.py:46-56`; `lipsync_pipeline.py:368`
calls it with the default `change_fps=True`), because its motion modules and audio windows assume 25 fps.
`-r` on an output is ffmpeg's constant-frame-rate "video sync" in `fftools` (not the `fps` filter): each
decoded frame is placed on the output grid, dropped when it falls more than 1.1 output frames behind the
frames already written, and repeated when the gap ahead exceeds 1.1 frames. So it is not a nearest-timestamp
pick: the frame shown in an output slot is often older than the slot, by up to 60-80 ms for 30-60 fps
sources (more at low rates), and a clip gets an extra frame or two at the start. `FfmpegRateConverter`
follows the rule of ffmpeg 7 and later (`fftools/ffmpeg_filter.c: video_sync_process`), the version the
official setup installs from conda-forge (`setup_env.sh`); ffmpeg 4-6 compute the frame duration
differently and choose differently at some rates (30, 24, 12, 20, 48 fps). The tests hold selections
recorded from real ffmpeg 7.0 runs.

Both rules are pure functions of frame indices plus a few integers of state, so a streaming reader can
convert a video chunk by chunk: feed `FfmpegRateConverter.push` the source indices as they are decoded and
call `finish` at the end of the stream; `nearest_source_index` needs no state at all.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from fractions import Fraction

import numpy as np

OFFICIAL_FPS = 25
# Output frames a decoded frame may fall behind (dropped) or ahead (duplicated) before ffmpeg reacts.
_DROP_BELOW, _DUPLICATE_ABOVE = -1.1, 1.1
# ffmpeg keeps sub-frame timestamps with 16 extra bits and nudges non-integers off exact midpoints.
_TS_BITS = 16


def exact_rate(fps: float | Fraction) -> Fraction:
    """A frame rate as an exact fraction: 29.97002997 -> 30000/1001, 29.97 -> 2997/100, 12.5 -> 25/2."""
    if isinstance(fps, Fraction):
        rate = fps
    else:
        value = float(fps)
        if not math.isfinite(value) or value <= 0:
            raise ValueError(f"fps must be a positive number, got {fps}")
        rate = Fraction(value).limit_denominator(1001)
    if rate <= 0:
        raise ValueError(f"fps must be a positive number, got {fps}")
    return rate


def _llrintf(x: float) -> int:
    """C's llrintf: round a float32 to the nearest integer, ties to even."""
    return int(np.rint(np.float32(x)))


@dataclass
class FfmpegRateConverter:
    """`ffmpeg -r <target>` frame selection for a constant-frame-rate source (source frame i at i / fps).

    State between calls: the next output timestamp, the last three "repeat the previous frame" counts
    (ffmpeg's median guess at end of stream) and the last source frame seen.
    """

    fps: float | Fraction
    target: int = OFFICIAL_FPS
    next_pts: int = 0
    previous_repeats: list[int] = field(default_factory=lambda: [0, 0, 0])
    last_source: int | None = None

    def __post_init__(self) -> None:
        self.fps = exact_rate(self.fps)
        # one source frame lasts this many output frames
        self._duration = float(Fraction(self.target) / self.fps)

    def _output_time(self, index: int) -> float:
        """Source frame `index`'s timestamp in output frames, as ffmpeg rounds it (`adjust_frame_pts_to_encoder_tb`)."""
        exact = Fraction(index) * self.target / self.fps
        t = Fraction(round(exact * (1 << _TS_BITS)), 1 << _TS_BITS)
        if t.denominator != 1:
            t += Fraction(1, 1 << (_TS_BITS + 1))
        return float(t)

    def push(self, index: int) -> list[int]:
        """Decoded source frame `index` (0, 1, 2, ... in order): the source indices of the output frames it ends."""
        ahead = self._output_time(index) - self.next_pts  # ffmpeg's delta0
        gap = ahead + self._duration  # delta
        repeats, count = 0, 1
        if ahead < 0 < gap:  # the frame started in the past: clip it to the current output slot
            ahead = 0.0
        if gap < _DROP_BELOW:
            count = 0
        elif gap > _DUPLICATE_ABOVE:
            count = _llrintf(gap)
            if ahead > _DUPLICATE_ABOVE:
                repeats = _llrintf(ahead - 0.6)
        out = [self.last_source if (k < repeats and self.last_source is not None) else index for k in range(count)]
        self.next_pts += count
        self.previous_repeats = [repeats] + self.previous_repeats[:2]
        self.last_source = index
        return out

    def finish(self) -> list[int]:
        """End of stream: ffmpeg repeats the last frame the median of the last three repeat counts."""
        count = sorted(self.previous_repeats)[1]
        if self.last_source is None or count <= 0:
            return []
        self.next_pts += count
        return [self.last_source] * count


def ffmpeg_rate_indices(num_frames: int, fps: float | Fraction, target: int = OFFICIAL_FPS) -> list[int]:
    """The source frame of every output frame of `ffmpeg -i clip -r target` for a `num_frames`-frame clip."""
    if num_frames < 1:
        raise ValueError("the video has no frames")
    converter = FfmpegRateConverter(fps, target)
    out: list[int] = []
    for i in range(num_frames):
        out += converter.push(i)
    return out + converter.finish()


def nearest_frame_count(num_frames: int, fps: float | Fraction, target: int = OFFICIAL_FPS) -> int:
    """Output frames whose timestamp k / target lies inside the clip (before num_frames / fps)."""
    if num_frames < 1:
        raise ValueError("the video has no frames")
    return max(1, math.ceil(Fraction(num_frames) * target / exact_rate(fps)))


def nearest_source_index(
    k: int, fps: float | Fraction, num_frames: int | None = None, target: int | Fraction = OFFICIAL_FPS
) -> int:
    """The frame of an `fps` clip nearest in time to frame k of a `target` fps one (ties to the later frame),
    clamped to the clip's `num_frames`."""
    index = math.floor(Fraction(k) * exact_rate(fps) / target + Fraction(1, 2))
    return index if num_frames is None else min(index, num_frames - 1)


def nearest_rate_indices(num_frames: int, fps: float | Fraction, target: int = OFFICIAL_FPS) -> list[int]:
    """The source frame nearest to each `target` fps timestamp that lies inside the clip."""
    rate = exact_rate(fps)
    return [
        nearest_source_index(k, rate, num_frames, target) for k in range(nearest_frame_count(num_frames, rate, target))
    ]
