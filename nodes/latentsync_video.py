"""LatentSync on a video file: VIDEO in, lip-synced mp4 out, streamed so the video's length does not matter.

One node does the whole chain (face track, lip sync, paste, AI label, encode) because anything passed
between nodes is an IMAGE batch that ComfyUI keeps in memory, and a long video does not fit there.
"""

from __future__ import annotations

import logging
import os
import time

import comfy.utils
import folder_paths
from comfy_api.latest import InputImpl, io

from ..media.face_track import FaceTracker
from ..media.video_io import Mp4Writer
from ..media.video_stream import HeldFrameWriter, VideoReader
from ..media.watermark import make_label
from ..models.audio_features import AudioFeatures, StreamedStates, streamed_audio_features
from ..samplers.latentsync_pipeline import lip_sync_audio_windows
from ..samplers.latentsync_stream import lip_sync_video
from .face import crop_resolution, face_detector, face_track_inputs, speaker_mask_input
from .latentsync import check_release_resolution, denoise_settings, lip_sync_inputs, model_inputs, timeline_modes
from .types import HV_AUDIO_FEATURES, HV_WHISPER
from .video import container_tags, label_inputs, output_file, preview, quality_input, sound_track
from .whisper import DEFAULT_WINDOWS, check_whisper, whisper_speech, window_mode, windows_input


def video_reader(video) -> tuple[VideoReader, str]:
    """A streaming reader of a core VIDEO, and a note when the VIDEO had to be encoded first.

    A file-backed VIDEO (core Load Video) is read straight from its file, within its trim window on
    hosts that have one (ComfyUI 0.33 `VideoFromFile(start_time, duration)`); any other VIDEO gives core's
    own encoded copy (`get_stream_source`).
    """
    note = ""
    if not isinstance(video, InputImpl.VideoFromFile):
        note = f"note: the video came from {type(video).__name__} (frames in memory), encoded by ComfyUI first"
    source = video.get_stream_source()
    trim = getattr(video, "get_active_trim_window", None)
    start, duration = trim() if trim is not None else (0.0, 0.0)
    name = os.path.basename(source) if isinstance(source, str) else "the video"  # no install paths in errors
    return VideoReader(source, start, duration, name=str(name)), note


def _clock(seconds: float) -> str:
    seconds = int(round(seconds))
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"


class StageProgress:
    """Progress bar plus a text line on the node: stage, frames done of total, frames/s and ETA."""

    STAGES = ("tracking", "lip sync")

    def __init__(self, node_id: str | None):
        self.bar = comfy.utils.ProgressBar(1)
        self.node_id = node_id
        self.stage, self.started, self.shown = None, 0.0, 0.0

    def __call__(self, stage: str, done: int, total: int) -> None:
        now = time.monotonic()
        if stage != self.stage:
            self.stage, self.started, self.shown = stage, now, 0.0
        self.bar.update_absolute(done, total)
        if now - self.shown < 1.0 and done < total:
            return
        self.shown = now
        elapsed = now - self.started
        number = self.STAGES.index(stage) + 1 if stage in self.STAGES else 1
        text = f"{number}/{len(self.STAGES)} {stage}: {done}/{total} frames"
        if done and elapsed > 0:
            text += f", {done / elapsed:.2f} frames/s, ETA {_clock(elapsed / done * (total - done))}"
        self.text(text)

    def text(self, text: str) -> None:
        try:
            from server import PromptServer

            PromptServer.instance.send_progress_text(text, self.node_id)
        except (ImportError, AttributeError):  # library use without a running server
            logging.info("HVLatentSyncVideo: %s", text)


def speech_features(audio: dict, sound, whisper, whisper_windows: str, audio_features) -> AudioFeatures:
    """The speech's Whisper features: streamed from `whisper` (a window at a time), or the connected
    `audio_features`, which must be of the same sound as `audio` (`sound` is its sound track)."""
    if (whisper is None) == (audio_features is None):
        raise ValueError(
            "connect exactly one of whisper (Load Whisper, tiny.pt: features computed as the sync goes, for speech "
            "of any length) and audio_features (Whisper Audio Features)"
        )
    if whisper is not None:
        mode = window_mode(whisper_windows, "whisper_windows")
        return streamed_audio_features(check_whisper(whisper), whisper_speech(audio, "audio"), window_mode=mode)
    heard, featured = sound[0].shape[-1] / sound[1], audio_features.duration
    if abs(heard - featured) > 0.1:
        raise ValueError(
            f"audio ({heard:.2f} s) and audio_features ({featured:.2f} s) are different sounds; "
            "connect the audio the features were made from"
        )
    return audio_features


class HVLatentSyncVideo(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="HVLatentSyncVideo",
            display_name="LatentSync Lip Sync (video file)",
            category="HumanVideo/lipsync",
            description=(
                "LatentSync for videos of any length: takes a VIDEO (Load Video) and the new speech, and writes the "
                "lip-synced mp4 with the speech as its sound track, frame by frame, so memory does not grow with "
                "the video. Face Track, Lip Sync and Save Video mp4 in one node, with their settings and results "
                "(the same frames as those nodes give for the same video and seed). Untouched pixels keep their "
                "decoded values and the source's pixel format; the file is tagged as AI-generated."
            ),
            inputs=[
                *model_inputs(),
                io.Video.Input(
                    "video",
                    tooltip="The video to re-sync, from Load Video (read from its file in pieces; any length, "
                    "size and frame rate).",
                ),
                io.Audio.Input(
                    "audio",
                    tooltip="The new speech: the sound track of the result (the same audio the features are from).",
                ),
                HV_WHISPER.Input(
                    "whisper",
                    optional=True,
                    tooltip="Whisper-tiny from Load Whisper: the speech's features are computed here, one 30 s "
                    "window at a time as the sync reaches it, so memory stays flat for speech of any length "
                    "(the same numbers as Whisper Audio Features). Connect this or audio_features.",
                ),
                windows_input("whisper_windows", optional=True),
                HV_AUDIO_FEATURES.Input(
                    "audio_features",
                    optional=True,
                    tooltip="Whisper-tiny features of the new speech, from Whisper Audio Features (held whole: "
                    "about 0.5 MB per second of speech). Connect this or whisper.",
                ),
                *face_track_inputs(),
                *lip_sync_inputs(),
                io.String.Input(
                    "filename_prefix",
                    default="HumanVideo/latentsync",
                    tooltip="Output file prefix; may contain sub-folders and %date:yyyy-MM-dd%.",
                ),
                quality_input(),
                *label_inputs(),
                speaker_mask_input(),
            ],
            outputs=[
                io.Video.Output(display_name="video", tooltip="The written mp4 file, as a core VIDEO."),
                io.Float.Output(display_name="fps", tooltip="The frame rate of the result (25, or the source's)."),
                io.String.Output(display_name="report", tooltip="The video, faces found, length handling, timing."),
            ],
            hidden=[io.Hidden.prompt, io.Hidden.extra_pnginfo, io.Hidden.unique_id],
            is_output_node=True,
        )

    @classmethod
    def execute(
        cls,
        unet,
        vae,
        video,
        audio,
        face_model,
        resolution,
        select,
        face_index,
        smoothing,
        detector,
        upsample,
        min_score,
        steps,
        guidance,
        seed,
        deepcache_interval,
        short_video,
        long_video,
        paste,
        filename_prefix,
        quality_crf,
        ai_label,
        label_corner,
        label_size,
        label_opacity,
        stabilize="official",
        frame_rate="25 fps (official)",
        length="official (audio + 2 frames)",
        speaker_mask=None,
        whisper=None,
        whisper_windows=DEFAULT_WINDOWS,
        audio_features=None,
    ) -> io.NodeOutput:
        size = crop_resolution(resolution)
        rate_mode, length_mode = timeline_modes(frame_rate, length)
        sound = sound_track(audio)
        features = speech_features(audio, sound, whisper, whisper_windows, audio_features)
        tokens = lip_sync_audio_windows(features, length_mode, lazy=True)  # a chunk's rows at a time
        release_note = check_release_resolution(unet, size)
        settings = denoise_settings(steps, guidance, deepcache_interval)
        reader, source_note = video_reader(video)
        layout = reader.info.layout
        tracker = FaceTracker(
            face_detector(face_model, detector, upsample, min_score),
            size,
            select,
            face_index,
            smoothing,
            stabilize,
        )
        label = (
            make_label(layout.height, layout.width, corner=label_corner, size=label_size, opacity=label_opacity)
            if ai_label
            else None
        )
        path, file, subfolder = output_file(filename_prefix, layout.width, layout.height)
        writers: list[Mp4Writer] = []

        def open_sink(frame_count, fps):
            writer = Mp4Writer(
                path,
                frame_count,
                (layout.height, layout.width),
                fps,
                audio=sound,
                crf=quality_crf,
                metadata=container_tags(cls.hidden),
                pix_fmt=layout.format,
                colour=layout.colour_tags,
            )
            writers.append(writer)
            return HeldFrameWriter(writer, layout)

        try:
            result = lip_sync_video(
                reader,
                tracker,
                tokens,
                unet,
                vae,
                settings,
                seed,
                open_sink,
                frame_rate=rate_mode,
                short_video=short_video,
                long_video=long_video,
                paste_region=paste,
                label=label,
                region_masks=speaker_mask,
                disk_dir=folder_paths.get_temp_directory(),
                progress=StageProgress(cls.hidden.unique_id),
            )
            written = writers[0].close()
        except BaseException:
            for writer in writers:
                writer.abort()
            raise
        lines = [release_note, source_note, result.report]
        if isinstance(tokens.states, StreamedStates):
            encoded = tokens.states.encodes
            lines.append(f"speech features: {features.model_name}, {encoded} 30 s windows encoded during the sync")
        if written.padded != (0, 0):
            lines.append(f"odd size: padded by {written.padded[0]} x {written.padded[1]} px to even for H.264")
        report = "\n".join(filter(None, lines))
        if result.track.missing_frames:
            logging.warning("HVLatentSyncVideo: %s", result.track.summary())
        return io.NodeOutput(InputImpl.VideoFromFile(path), float(result.fps), report, ui=preview(file, subfolder))


NODES = [HVLatentSyncVideo]
