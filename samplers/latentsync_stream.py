"""LatentSync on a video file of any length: decode, track, sync 16 frames at a time, paste, encode.

The in-memory pipeline (`latentsync_pipeline.lip_sync`) takes an IMAGE batch, which for a long video
cannot exist (10 minutes of 1080p at 25 fps is 187 GB of float32). Here the frames stay in the file:

1. Tracking pass: the video is decoded once, frame by frame, and `FaceTracker` records a few numbers
   per frame (box, landmarks, alignment points). The track is then complete before any frame is
   synced, so the alignment is exactly the in-memory one: the official translation average carries
   its 2-vector from frame to frame, and the Gaussian smoothing sees every neighbour; there are no
   chunk boundaries in the alignment at all. The exact frame count also gives the frame plan
   (`plan_timeline`, the same one the in-memory node uses) before the heavy work starts.
2. Sync pass: the video is decoded again in order. For each 16-frame chunk of the plan the crops are
   VAE-encoded (the same sampled latents, drawn from the same generator in the same order as the
   in-memory pipeline), denoised, decoded and pasted back, and every output frame goes to the sink as
   soon as it is complete. Frames a ping-pong plan shows again in reverse wait in a temporary file on
   disk; a looped video is read again from the top; nothing else is held beyond a few chunks.

Output frames are the source frames as decoded (their planes, not RGB) plus, where pixels change (the
pasted face, the visible AI label), an RGB patch: the sink merges only the changed pixels, so a frame
without a face, and every pixel the paste leaves alone, reach the encoder exactly as decoded. The RGB
values of the patches are those of the in-memory pipeline followed by the save node, bit for bit.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from fractions import Fraction
from typing import Protocol

import comfy.model_management as mm
import torch

from ..media.face_align import as_float
from ..media.face_track import FaceTrack, FaceTracker, check_region_masks, crop_tracked, speaker_region
from ..media.frame_cache import DiskFrameCache, PlannedFrames, dry_run, free_disk_bytes
from ..media.mouth_mask import keep_mask
from ..media.paste_back import paste_face_region
from ..media.video_io import quantize
from ..media.video_stream import FrameEdit, PixelLayout, Planes, VideoReader, align_box
from ..media.watermark import LabelStamp
from ..models.audio_features import LatentSyncAudioWindows
from .latentsync_denoise import DenoiseSettings, denoise_latents, initial_noise
from .latentsync_pipeline import (
    check_lip_sync_inputs,
    chunk_ranges,
    decode_crops,
    encode_sampled,
    grey_masked,
    latent_keep_mask,
    process_track_of,
    run_summary,
    with_new_mouth,
)
from .latentsync_timeline import Timeline, plan_timeline

# Extra room on the disk beyond the frames a ping-pong plan keeps there.
DISK_MARGIN_BYTES = 256 << 20


class FrameSink(Protocol):
    def write(self, planes: Planes, edit: FrameEdit | None) -> None: ...


ProgressCallback = Callable[[str, int, int], None]  # (stage, done, total)


@dataclass(frozen=True)
class StreamedLipSync:
    frames: int
    fps: Fraction
    track: FaceTrack
    timeline: Timeline
    report: str
    track_seconds: float
    sync_seconds: float


def track_video(
    reader: VideoReader,
    tracker: FaceTracker,
    region_masks: torch.Tensor | None = None,
    progress: ProgressCallback | None = None,
) -> FaceTrack:
    """The face track of every frame of the video, decoding it once (a few numbers kept per frame)."""
    layout = reader.info.layout
    if tracker.select == "mask":
        if region_masks is None:
            raise ValueError("speaker_mask: face selection 'mask' needs a speaker mask")
        region_masks = torch.as_tensor(region_masks)
        region_masks = check_region_masks(
            region_masks, int(region_masks.shape[0]) if region_masks.ndim == 3 else 1, layout.height, layout.width
        )
    total = reader.info.estimated_frames or 0
    for i, planes in enumerate(reader.frames()):
        mm.throw_exception_if_processing_interrupted()
        region = speaker_region(region_masks, i) if tracker.select == "mask" else None
        tracker.add(layout.to_rgb(planes), region)
        if progress is not None:
            progress("tracking", i + 1, max(total, i + 1))
    if tracker.select == "mask" and region_masks.shape[0] not in (1, tracker.num_frames):
        raise ValueError(
            f"speaker_mask: {region_masks.shape[0]} masks for {tracker.num_frames} frames; give 1 mask or one per frame"
        )
    return tracker.finish()


def _schedule(timeline: Timeline, chunks: list[range]) -> tuple[list[tuple[str, int]], list[int]]:
    """The sync pass's steps in order, ("crop", processed frame k) / ("out", output frame j), and the
    source frame each step reads: a chunk's crops, then every output frame its new mouths complete."""
    outputs = timeline.output_process
    synced_outputs = next((j for j, k in enumerate(outputs) if k < 0), len(outputs))
    if any(k >= 0 for k in outputs[synced_outputs:]) or any(
        b < a for a, b in zip(outputs[:synced_outputs], outputs[1:synced_outputs], strict=False)
    ):
        raise ValueError("the frame plan must give output frames their processed frames in order")
    steps: list[tuple[str, int]] = []
    j = 0
    for chunk in chunks:
        steps += [("crop", k) for k in chunk]
        while j < synced_outputs and outputs[j] < chunk.stop:
            steps.append(("out", j))
            j += 1
    steps += [("out", j) for j in range(j, len(outputs))]
    sources = [timeline.process_source[i] if kind == "crop" else timeline.output_source[i] for kind, i in steps]
    return steps, sources


def _finish_frame(
    layout: PixelLayout,
    planes: Planes,
    rgb: torch.Tensor | None,
    pasted: tuple[tuple[int, int, int, int], torch.Tensor] | None,
    label: LabelStamp | None,
) -> FrameEdit | None:
    """The RGB patch of one output frame: the pasted face and the label, blended in float as the
    in-memory pipeline and the save node do, then rounded to uint8 once."""
    boxes = ([pasted[0]] if pasted is not None else []) + ([label.box] if label is not None else [])
    if not boxes:
        return None
    if rgb is None:
        rgb = torch.from_numpy(layout.to_rgb(planes))
    x0, y0, x1, y1 = align_box(
        layout, (min(b[0] for b in boxes), min(b[1] for b in boxes), max(b[2] for b in boxes), max(b[3] for b in boxes))
    )
    before = rgb[y0:y1, x0:x1]
    work = as_float(before).clone()
    if pasted is not None:
        (px0, py0, px1, py1), roi = pasted
        work[py0 - y0 : py1 - y0, px0 - x0 : px1 - x0] = roi
    if label is not None:
        lx0, ly0, lx1, ly1 = label.box
        region = work[ly0 - y0 : ly1 - y0, lx0 - x0 : lx1 - x0]
        work[ly0 - y0 : ly1 - y0, lx0 - x0 : lx1 - x0] = label.blend(region)
    return FrameEdit((x0, y0, x1, y1), before.numpy(), quantize(work).numpy())


@torch.no_grad()
def sync_video(
    reader: VideoReader,
    track: FaceTrack,
    audio_tokens: torch.Tensor | LatentSyncAudioWindows,
    unet,
    vae,
    settings: DenoiseSettings,
    seed: int,
    timeline: Timeline,
    sink: FrameSink,
    paste_region: str = "face",
    label: LabelStamp | None = None,
    disk_dir: str | None = None,
    progress: ProgressCallback | None = None,
) -> list[str]:
    """The sync pass (see the module notes): every output frame of ``timeline`` to ``sink``, in order.

    A plan that shows frames again in reverse (ping-pong) keeps them in a temporary file in ``disk_dir``
    (checked for space first); other repeats read the file again. Returns report lines.
    """
    check_lip_sync_inputs(track.num_frames, track, audio_tokens, timeline)
    layout = reader.info.layout
    process_track = process_track_of(track, timeline)
    resolution = track.resolution
    keep = keep_mask(resolution)
    latent_keep = latent_keep_mask(keep, resolution)
    noise = initial_noise(seed, resolution // 8, resolution // 8)
    chunks = chunk_ranges(timeline.synced, settings.chunk_frames)
    steps, sources = _schedule(timeline, chunks)
    outputs_of_chunk = [0] * len(chunks)  # output frames each chunk's new mouths complete
    for k in timeline.output_process:
        if k >= 0:
            outputs_of_chunk[k // settings.chunk_frames] += 1
    # Frames needed again within two chunks' steps stay in memory (a chunk's crops until its outputs).
    window = 2 * (settings.chunk_frames + max(outputs_of_chunk)) + 2
    reverse = any(b == a - 1 for a, b in zip(timeline.output_source, timeline.output_source[1:], strict=False))
    plan = dry_run(sources, window, spill_to_disk=reverse)
    lines = []
    disk = None
    if plan.disk_frames:
        need = plan.disk_frames * layout.frame_bytes
        free = free_disk_bytes(disk_dir) if disk_dir else None
        if free is not None and free < need + DISK_MARGIN_BYTES:
            raise ValueError(
                f"short_video=pingpong keeps the {plan.disk_frames} frames shown again in reverse on disk "
                f"({need / 2**30:.1f} GiB) but only {free / 2**30:.1f} GiB are free in {disk_dir}; free some "
                "space or use short_video=loop (reads the file again instead)"
            )
        disk = DiskFrameCache(layout, disk_dir)
        lines.append(
            f"frames shown again in reverse kept on disk: {plan.disk_frames} ({need / 2**20:.0f} MiB, removed after)"
        )
    frames = PlannedFrames(reader.frames, sources, window, disk)
    total = len(timeline.output_source)
    written = 0
    generator = torch.Generator().manual_seed(int(seed))

    def report(done: int) -> None:
        if progress is not None:
            progress("lip sync", done, total)

    def output_frame(position: int, j: int, generated: torch.Tensor | None, first: int) -> None:
        planes = frames.get(position)
        k = timeline.output_process[j]
        pasted, rgb = None, None
        if k >= 0:
            if timeline.output_uses_process_alignment:
                target, index = process_track, k
            else:
                target, index = track, timeline.output_source[j]
            if target.has_face[index]:
                rgb = torch.from_numpy(layout.to_rgb(planes))
                original = crop_tracked(rgb, target, index)
                composed = with_new_mouth(generated[k - first], original, keep)
                pasted = paste_face_region(rgb, composed, target.affines[index], paste_region)
        sink.write(planes, _finish_frame(layout, planes, rgb, pasted, label))

    try:
        position = 0
        for chunk, chunk_outputs in zip(chunks, outputs_of_chunk, strict=True):
            crops = torch.empty((len(chunk), resolution, resolution, 3), dtype=torch.float32)
            for i, k in enumerate(chunk):
                mm.throw_exception_if_processing_interrupted()
                planes = frames.get(position)
                position += 1
                rgb = torch.from_numpy(layout.to_rgb(planes)) if process_track.has_face[k] else None
                crops[i] = crop_tracked(rgb, process_track, k)
            masked = encode_sampled(vae, grey_masked(crops, keep), generator)
            reference = encode_sampled(vae, crops, generator)

            def on_step(done: int, total_steps: int, written=written, chunk_outputs=chunk_outputs) -> None:
                report(written + chunk_outputs * done // total_steps)

            latents = denoise_latents(
                unet,
                masked,
                reference,
                latent_keep,
                audio_tokens[chunk.start : chunk.stop].float(),
                noise,
                settings,
                callback=on_step,
            )
            generated = decode_crops(vae, latents, resolution)
            while position < len(steps) and steps[position][0] == "out":
                j = steps[position][1]
                if timeline.output_process[j] < 0:
                    break
                mm.throw_exception_if_processing_interrupted()
                output_frame(position, j, generated, chunk.start)
                position += 1
                written += 1
                report(written)
        while position < len(steps):  # frames after the audio (long_video = keep): unchanged
            mm.throw_exception_if_processing_interrupted()
            output_frame(position, steps[position][1], None, 0)
            position += 1
            written += 1
            report(written)
    finally:
        frames.close_decoder()
        if disk is not None:
            disk.close()
    stats = frames.stats()
    if stats.restarts:
        lines.append(f"the video was read {stats.restarts + 1} times (short_video repeats it)")
    return lines


def lip_sync_video(
    reader: VideoReader,
    tracker: FaceTracker,
    audio_tokens: torch.Tensor | LatentSyncAudioWindows,
    unet,
    vae,
    settings: DenoiseSettings,
    seed: int,
    open_sink: Callable[[int, Fraction], FrameSink],
    frame_rate: str = "official",
    short_video: str = "pingpong",
    long_video: str = "cut",
    paste_region: str = "face",
    label: LabelStamp | None = None,
    region_masks: torch.Tensor | None = None,
    disk_dir: str | None = None,
    progress: ProgressCallback | None = None,
) -> StreamedLipSync:
    """Both passes: track the video, plan its frames (`plan_timeline`, one 25 fps frame per row of
    ``audio_tokens``, a tensor or the lazy `LatentSyncAudioWindows`, of which one chunk's rows are taken at
    a time), then ``open_sink(output frame count, fps)`` and sync into it."""
    started = time.monotonic()
    track = track_video(reader, tracker, region_masks, progress)
    tracked = time.monotonic()
    timeline = plan_timeline(
        track.num_frames, reader.info.fps, int(audio_tokens.shape[0]), frame_rate, short_video, long_video
    )
    check_lip_sync_inputs(track.num_frames, track, audio_tokens, timeline)
    fps = Fraction(timeline.fps) if timeline.output_uses_process_alignment else reader.info.fps
    sink = open_sink(len(timeline.output_source), fps)
    lines = sync_video(
        reader,
        track,
        audio_tokens,
        unet,
        vae,
        settings,
        seed,
        timeline,
        sink,
        paste_region,
        label,
        disk_dir,
        progress,
    )
    done = time.monotonic()
    summary = run_summary(
        process_track_of(track, timeline),
        timeline,
        len(chunk_ranges(timeline.synced, settings.chunk_frames)),
        len(timeline.output_source),
        settings,
        seed,
        paste_region,
    )
    summary.insert(0, f"video: {reader.info.describe()}; {track.num_frames} frames read")
    summary += lines
    summary.append(
        f"tracking {tracked - started:.1f} s, sync {done - tracked:.1f} s "
        f"({len(timeline.output_source) / max(done - tracked, 1e-9):.2f} output frames/s)"
    )
    return StreamedLipSync(
        len(timeline.output_source), fps, track, timeline, "\n".join(summary), tracked - started, done - tracked
    )
