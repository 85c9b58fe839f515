"""Lip-sync scores of a clip: 25 fps conversion, speaker tracks, SyncNet crops, Sync-C / Sync-D per speaker.

The per-clip numbers aggregate the tracks as LatentSync's eval/eval_sync_conf.py:25-41 does: the mean
confidence (Sync-C) over tracks, and the offset ``int(mean)`` (truncated toward zero); Sync-D is averaged
the same way.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from statistics import fmean

import numpy as np
import torch

from ..media.face_detect import Face
from ..media.face_track import frame_uint8
from ..media.resample import resample, to_mono
from ..media.sync_crop import MIN_FACE_SIZE, MIN_TRACK, SpeakerTrack, build_tracks, crop_track, indices_at_25fps
from ..media.sync_plot import Panel, draw_panels, weakest_windows
from ..models.syncnet import SyncNet
from ..models.syncnet_eval import (
    MIN_FRAMES,
    SAMPLE_RATE,
    SAMPLES_PER_FRAME,
    SILENCE_PTP,
    VIDEO_FPS,
    SyncScore,
    pcm16,
    score_clip,
)


@dataclass
class SpeakerScore:
    track: SpeakerTrack
    score: SyncScore
    weak: np.ndarray  # (windows,) bool: the weakest windows

    def weakest_frames(self) -> list[tuple[int, float]]:
        """(25 fps frame at the window centre, confidence) of the marked windows, weakest first."""
        idx = np.flatnonzero(self.weak)
        order = idx[np.argsort(self.score.framewise_conf[idx])]
        return [(self.track.start + int(i) + 2, float(self.score.framewise_conf[i])) for i in order]

    def as_dict(self) -> dict:
        return {
            "frames": [self.track.start, self.track.end],
            "sync_c": round(self.score.sync_c, 4),
            "sync_d": round(self.score.sync_d, 4),
            "av_offset": self.score.av_offset,
            "windows": self.score.windows,
            "weakest_frames": [f for f, _ in self.weakest_frames()],
        }


@dataclass
class ClipScore:
    speakers: list[SpeakerScore]
    frames_25fps: int
    source_frames: int
    source_fps: float
    dropped_tracks: list[str] = field(default_factory=list)

    @property
    def sync_c(self) -> float:
        return fmean(s.score.sync_c for s in self.speakers)

    @property
    def sync_d(self) -> float:
        return fmean(s.score.sync_d for s in self.speakers)

    @property
    def av_offset(self) -> int:
        return int(fmean(s.score.av_offset for s in self.speakers))

    def as_dict(self) -> dict:
        return {
            "sync_c": round(self.sync_c, 4),
            "sync_d": round(self.sync_d, 4),
            "av_offset": self.av_offset,
            "speakers": [s.as_dict() for s in self.speakers],
        }

    def report(self) -> str:
        lines = [
            f"Sync-C {self.sync_c:.3f} (higher is better), Sync-D {self.sync_d:.3f} (lower is better), "
            f"AV offset {self.av_offset:+d} frames, over {len(self.speakers)} speaker track(s)",
            f"video: {self.source_frames} frames at {self.source_fps:g} fps -> {self.frames_25fps} frames at 25 fps",
        ]
        for n, s in enumerate(self.speakers, start=1):
            weak = ", ".join(f"{f} ({c:.1f})" for f, c in s.weakest_frames()[:8])
            lines.append(
                f"speaker {n}: frames {s.track.start}-{s.track.end} ({s.track.detections} detections, face "
                f"{s.track.mean_size:.0f} px): Sync-C {s.score.sync_c:.3f}, Sync-D {s.score.sync_d:.3f}, "
                f"offset {s.score.av_offset:+d}; weakest frames (confidence): {weak}"
            )
        for reason in self.dropped_tracks:
            lines.append(f"track not scored: {reason}")
        return "\n".join(lines)

    def plot(self) -> torch.Tensor:
        panels = [
            Panel(
                f"speaker {n}: Sync-C {s.score.sync_c:.2f}  Sync-D {s.score.sync_d:.2f}  offset {s.score.av_offset:+d}"
                "  (red: weakest)",
                s.track.start,
                s.score.framewise_conf,
                s.weak,
            )
            for n, s in enumerate(self.speakers, start=1)
        ]
        return draw_panels(panels, self.frames_25fps, VIDEO_FPS)


def audio_pcm16k(waveform: torch.Tensor, sample_rate: int) -> np.ndarray:
    """First item of an AUDIO waveform [B, C, T] -> mono 16 kHz int16 values (as float64)."""
    mono = to_mono(waveform[:1].float())[0, 0]
    return pcm16(resample(mono, sample_rate, SAMPLE_RATE))


def score_video(
    frames: torch.Tensor,
    fps: float,
    waveform: torch.Tensor,
    sample_rate: int,
    model: SyncNet,
    detect: Callable[[np.ndarray], list[Face]],
    min_track: int = MIN_TRACK,
    min_face_size: float = MIN_FACE_SIZE,
    device: torch.device | str = "cpu",
    on_progress: Callable[[str, int, int], None] | None = None,
) -> ClipScore:
    """Scores every speaker track of an IMAGE batch [N, H, W, 3] at ``fps`` against its audio.

    ``detect(rgb_uint8) -> faces``; ``on_progress(stage, done, total)`` after each unit of work (and the
    place to honour Cancel). Errors (ValueError) name the problem: too short, silent, no face track.
    """
    progress = on_progress or (lambda stage, done, total: None)
    source_frames = int(frames.shape[0])
    index = indices_at_25fps(source_frames, fps)
    pcm = audio_pcm16k(waveform, sample_rate)
    usable = min(len(index), len(pcm) // SAMPLES_PER_FRAME)
    if usable < MIN_FRAMES:
        raise ValueError(
            f"too short to score: {source_frames} frames at {fps:g} fps ({len(index)} at 25 fps) and "
            f"{len(pcm) / SAMPLE_RATE:.3f} s of audio; SyncNet needs at least {MIN_FRAMES} frames (0.24 s) "
            "of both: one 5-frame (0.2 s) window plus the frame the official evaluation leaves out"
        )
    if np.ptp(pcm[: usable * SAMPLES_PER_FRAME]) <= SILENCE_PTP:
        raise ValueError("audio: the sound track is silent; SyncNet needs speech to measure lip sync")
    if min_track < 6:
        raise ValueError(f"min_track must be at least 6 (the crop smoothing spans 13 frames), got {min_track}")
    if len(index) <= min_track:
        raise ValueError(
            f"too short for min_track={min_track}: {len(index)} frames at 25 fps; a face track must have more "
            f"than min_track detections (lower min_track to score clips under {(min_track + 1) / VIDEO_FPS:.2f} s)"
        )

    detections: dict[int, list[Face]] = {}
    faces_per_frame = []
    for n, src in enumerate(index):
        if int(src) not in detections:  # frames repeated by the 25 fps conversion are detected once
            detections[int(src)] = list(detect(frame_uint8(frames, int(src))))
        faces_per_frame.append(list(detections[int(src)]))
        progress("detect", n + 1, len(index))
    tracks, dropped = build_tracks(faces_per_frame, min_track, min_face_size)
    if not tracks:
        found = sum(1 for faces in faces_per_frame if faces)
        why = "; ".join(dropped) if dropped else "no face detected in any frame"
        raise ValueError(
            f"images: no speaker track to score ({found} of {len(index)} frames at 25 fps have a face): {why}. "
            "Use a clip with a visible frontal face, or lower min_track / min_face_size"
        )

    speakers = []
    for t_index, track in enumerate(tracks):
        crops = crop_track(lambda i: frame_uint8(frames, int(index[i])), track)
        stage, windows = f"score speaker {t_index + 1}", len(track.frames) - 5
        track_pcm = pcm[track.start * SAMPLES_PER_FRAME : (track.end + 1) * SAMPLES_PER_FRAME]
        try:
            score = score_clip(
                model,
                crops,
                track_pcm,
                device=device,
                on_batch=lambda done, stage=stage, n=windows: progress(stage, done, n),
            )
        except ValueError as e:
            raise ValueError(f"speaker track {t_index + 1} (frames {track.start}-{track.end}): {e}") from e
        speakers.append(SpeakerScore(track, score, weakest_windows(score.framewise_conf)))
    return ClipScore(speakers, len(index), source_frames, float(fps), dropped)
