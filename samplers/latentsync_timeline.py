"""LatentSync's frame plan: which source frame each processed and each output frame shows.

The UNet's motion modules and the audio windows were trained at 25 fps, and the official pipeline
(bytedance/LatentSync a229c39, `latentsync/pipelines/lipsync_pipeline.py:364-370`) works like this:
1. the video is converted to 25 fps (`ffmpeg -r 25`, see `media/frame_rate.py`);
2. the audio sets the length: `Audio2Feature.feature2chunks` (`latentsync/whisper/audio2feature.py:88-103`)
   yields one window per 25 fps frame up to and including the first past the end of the features,
   floor(T / 2) + 2 windows for T features at 50 Hz (`models.audio_features.latentsync_official_frame_count`);
3. `loop_video` (`lipsync_pipeline.py:281-310`) cuts a longer video to that length, or aligns the
   frames of a shorter one once, in order, and then repeats them forward, backward, forward ...;
4. the result is written at 25 fps with the audio.

`plan_timeline` expresses all of that as index lists (and so do its options): every entry is a pure
function of its index plus, for the ffmpeg rule, a few integers of state, so a streaming
implementation can produce the same plan chunk by chunk.
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction

from ..media.frame_rate import (
    OFFICIAL_FPS,
    exact_rate,
    ffmpeg_rate_indices,
    nearest_rate_indices,
    nearest_source_index,
)

FRAME_RATE_MODES = ("official", "nearest", "source")
LENGTH_MODES = ("official", "audio")
SHORT_VIDEO_MODES = ("pingpong", "loop", "hold")
LONG_VIDEO_MODES = ("cut", "keep")


@dataclass(frozen=True)
class LengthPlan:
    source_index: list[int]  # output frame -> source frame
    synced: int  # the first `synced` output frames get new lips; the rest pass through
    note: str


def loop_index(k: int, frames: int, short_video: str = "pingpong") -> int:
    """Frame shown at position k of a `frames`-frame clip repeated to any length.

    pingpong: forward, then the whole clip reversed (both ends shown twice), as the official `loop_video`
    concatenates `frames` and `frames[::-1]` (lipsync_pipeline.py:290-302); loop: from the start
    again; hold: the last frame.
    """
    if k < frames:
        return k
    if short_video == "pingpong":
        r = k % (2 * frames)
        return r if r < frames else 2 * frames - 1 - r
    if short_video == "loop":
        return k % frames
    return frames - 1


def plan_length(
    video_frames: int, audio_frames: int, short_video: str = "pingpong", long_video: str = "cut"
) -> LengthPlan:
    """Which frame of the video each output frame shows when the audio asks for `audio_frames` frames."""
    if video_frames < 1:
        raise ValueError("the video has no frames")
    if audio_frames < 1:
        raise ValueError("the audio is shorter than one video frame")
    if short_video not in SHORT_VIDEO_MODES:
        raise ValueError(f"short_video must be one of {SHORT_VIDEO_MODES}, got {short_video!r}")
    if long_video not in LONG_VIDEO_MODES:
        raise ValueError(f"long_video must be one of {LONG_VIDEO_MODES}, got {long_video!r}")
    n = video_frames
    if audio_frames <= n:
        total = audio_frames if long_video == "cut" else n
        note = (
            ""
            if audio_frames == n
            else f"video ({n} frames) longer than the audio ({audio_frames}): "
            + ("cut to the audio" if long_video == "cut" else "frames after the audio kept unchanged")
        )
        return LengthPlan(list(range(total)), audio_frames, note)
    index = [loop_index(k, n, short_video) for k in range(audio_frames)]
    return LengthPlan(index, audio_frames, f"video ({n} frames) shorter than the audio ({audio_frames}): {short_video}")


def audio_frame_count(samples: int, sample_rate: int, fps: float) -> int:
    """Frames of `fps` video that the audio lasts, rounded (the length option "audio")."""
    return max(0, int(round(samples / sample_rate * fps)))


@dataclass(frozen=True)
class Timeline:
    """Index lists of one lip-sync run.

    Processed frames are the 25 fps frames the UNet sees (k = 0 .. synced - 1, one audio window each).
    Output frames are what the node returns at `fps`.
    """

    fps: float
    process_source: list[int]  # processed frame k -> source frame
    align_frames: list[int] | None  # source frames aligned once, in this order (official); None: track as is
    process_align: list[int]  # processed frame k -> position in align_frames (or in process_source)
    output_source: list[int]  # output frame j -> source frame shown
    output_process: list[int]  # output frame j -> processed frame whose new mouth it gets; -1: unchanged
    output_uses_process_alignment: bool  # 25 fps: output j is processed frame j; source fps: its own frame
    note: str

    @property
    def synced(self) -> int:
        return len(self.process_source)


def plan_timeline(
    source_frames: int,
    source_fps: float | Fraction,
    synced_frames: int,
    frame_rate: str = "official",
    short_video: str = "pingpong",
    long_video: str = "cut",
) -> Timeline:
    """The frame plan for a `source_frames`-frame video at `source_fps` and `synced_frames` audio windows.

    frame_rate: "official" converts to 25 fps as `ffmpeg -r 25` does and returns 25 fps; "nearest"
    takes the source frame nearest each 25 fps timestamp instead; "source" processes at 25 fps (nearest
    frames) but returns every source frame, each with the new mouth of the nearest processed frame, at
    the source fps. Loop / cut happen on the 25 fps frames (official) or on the source frames ("source").
    """
    if frame_rate not in FRAME_RATE_MODES:
        raise ValueError(f"frame_rate must be one of {FRAME_RATE_MODES}, got {frame_rate!r}")
    rate = exact_rate(source_fps)
    if frame_rate in ("official", "nearest"):
        picked = (ffmpeg_rate_indices if frame_rate == "official" else nearest_rate_indices)(source_frames, rate)
        plan = plan_length(len(picked), synced_frames, short_video, long_video)
        process_align = plan.source_index[: plan.synced]
        aligned = picked[: min(len(picked), synced_frames)]
        how = "as ffmpeg -r 25 does" if frame_rate == "official" else "nearest frames"
        notes = [f"video {float(rate):g} fps, {source_frames} frames -> {len(picked)} frames at 25 fps ({how})"]
        return Timeline(
            fps=float(OFFICIAL_FPS),
            process_source=[aligned[a] for a in process_align],
            align_frames=aligned,
            process_align=process_align,
            output_source=[picked[i] for i in plan.source_index],
            output_process=[j if j < plan.synced else -1 for j in range(len(plan.source_index))],
            output_uses_process_alignment=True,
            note="\n".join(filter(None, [*notes, plan.note])),
        )
    # "source": the output keeps the source frame rate; its length follows the same audio duration.
    output_frames = max(1, round(Fraction(synced_frames) * rate / OFFICIAL_FPS))
    plan = plan_length(source_frames, output_frames, short_video, long_video)
    # processed frame k (at k / 25 s) <- the output frame nearest in time, and output frame j <- the nearest k
    process_source = [plan.source_index[nearest_source_index(k, rate, plan.synced)] for k in range(synced_frames)]
    return Timeline(
        fps=float(rate),
        process_source=process_source,
        align_frames=None,
        process_align=list(range(synced_frames)),
        output_source=plan.source_index,
        output_process=[
            nearest_source_index(j, OFFICIAL_FPS, synced_frames, target=rate) if j < plan.synced else -1
            for j in range(len(plan.source_index))
        ],
        output_uses_process_alignment=False,
        note="\n".join(
            filter(
                None,
                [
                    f"processed at 25 fps ({synced_frames} frames), returned at the source {float(rate):g} fps",
                    plan.note,
                ],
            )
        ),
    )
