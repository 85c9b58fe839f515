"""Lip-sync scoring nodes: load the evaluation SyncNet, and score a clip's Sync-C / Sync-D / AV offset."""

from __future__ import annotations

import logging
import os

import comfy.model_management
import comfy.utils
from comfy_api.latest import io, ui

from .. import paths
from ..loaders.syncnet import load_syncnet
from ..media.audio_io import validate_audio
from ..media.face_detect import DETECTORS, LANDMARKS_68, DlibFaceDetector
from ..media.face_track import check_images
from ..media.sync_crop import MIN_FACE_SIZE, MIN_TRACK
from ..models.syncnet import SyncNet
from ..samplers.sync_score import score_video
from .progress import CancellableProgress
from .types import HV_SYNCNET

SYNCNET_FILE = "syncnet_v2.model"


def syncnet_choices() -> list[str]:
    names = paths.list_files("latentsync")
    return [n for n in names if n.endswith(".model") or "syncnet" in os.path.basename(n).lower()]


class HVLoadSyncNet(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        choices = syncnet_choices()
        return io.Schema(
            node_id="HVLoadSyncNet",
            display_name="Load SyncNet (lip-sync scores)",
            category="HumanVideo/loaders",
            description=(
                "Loads syncnet_v2.model, the SyncNet behind the Sync-C / Sync-D lip-sync metrics (syncnet_python's "
                "weights, shipped by LatentSync under auxiliary/), from models/latentsync. Weights only: a file "
                "that would need full unpickling is refused, and every weight is checked by name and shape."
            ),
            inputs=[
                io.Combo.Input(
                    "syncnet_name",
                    options=choices,
                    default=SYNCNET_FILE if SYNCNET_FILE in choices else None,
                    tooltip="syncnet_v2.model in models/latentsync (any sub-folder), e.g. LatentSync's "
                    "auxiliary/syncnet_v2.model.",
                ),
            ],
            outputs=[HV_SYNCNET.Output(display_name="syncnet", tooltip="The evaluation SyncNet.")],
        )

    @classmethod
    def execute(cls, syncnet_name: str) -> io.NodeOutput:
        if not syncnet_name:
            raise ValueError(f"syncnet_name: no file chosen; put {SYNCNET_FILE} into models/latentsync")
        return io.NodeOutput(load_syncnet(paths.resolve_model_path("latentsync", syncnet_name, "syncnet_name", "file")))


def _frames_audio_fps(video, images, audio, fps: float):
    """(IMAGE, AUDIO dict, fps) from a VIDEO, or from IMAGE + AUDIO + fps; errors name the inputs."""
    if video is not None:
        if images is not None or audio is not None:
            raise ValueError("video: connect either a VIDEO, or images + audio + fps, not both")
        parts = video.get_components()
        if parts.audio is None:
            raise ValueError("video: the video has no sound track; lip sync needs the speech")
        return parts.images, parts.audio, float(parts.frame_rate)
    if images is None or audio is None:
        raise ValueError("connect a VIDEO, or images + audio (with fps): nothing to score")
    return images, audio, float(fps)


class HVSyncScore(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        models = paths.face_model_choices() or [LANDMARKS_68]
        return io.Schema(
            node_id="HVSyncScore",
            display_name="Lip-Sync Score (Sync-C / Sync-D)",
            category="HumanVideo/lipsync",
            description=(
                "Scores how well lips follow the speech with SyncNet, as the official evaluation of LatentSync and "
                "HuMo does: Sync-C (confidence, higher is better), Sync-D (distance, lower is better) and the "
                "audio-video offset in frames at 25 fps, for every tracked speaker. Also draws the confidence "
                "over time with the weakest moments marked, and writes a short report."
            ),
            inputs=[
                HV_SYNCNET.Input("syncnet", tooltip="From Load SyncNet."),
                io.Video.Input("video", optional=True, tooltip="A video with its sound track (or use images + audio)."),
                io.Image.Input("images", optional=True, tooltip="Video frames, used with audio and fps."),
                io.Audio.Input("audio", optional=True, tooltip="The speech that goes with the frames."),
                io.Float.Input(
                    "fps",
                    default=25.0,
                    min=1.0,
                    max=240.0,
                    step=0.001,
                    tooltip="Frame rate of images (ignored with a VIDEO, which carries its own). Clips not at "
                    "25 fps are converted to 25 fps first, as the official evaluation does.",
                ),
                io.Combo.Input(
                    "face_model",
                    options=models,
                    default=models[0],
                    tooltip=f"68-point dlib landmark model ({LANDMARKS_68}) in models/face_detection, or the one "
                    "of the face_recognition_models package.",
                ),
                io.Combo.Input(
                    "detector",
                    options=list(DETECTORS),
                    default="hog",
                    tooltip="hog: fast CPU face detector built into dlib. cnn: more robust to angles, slow on CPU; "
                    "needs mmod_human_face_detector.dat in models/face_detection.",
                ),
                io.Int.Input(
                    "min_track",
                    default=MIN_TRACK,
                    min=6,
                    max=10000,
                    tooltip="A speaker is scored when the face is found in more than this many frames (at 25 fps). "
                    "50 (2 s) is LatentSync's evaluation setting, 100 syncnet_python's; lower it for short clips "
                    "(at least 6: the crop smoothing spans 13 frames).",
                ),
                io.Int.Input(
                    "min_face_size",
                    default=int(MIN_FACE_SIZE),
                    min=0,
                    max=4096,
                    tooltip="Faces whose mean box is not larger than this (pixels) are not scored (official: 100).",
                ),
            ],
            outputs=[
                io.Float.Output(display_name="sync_c", tooltip="Sync-C: mean SyncNet confidence over speakers."),
                io.Float.Output(display_name="sync_d", tooltip="Sync-D: mean SyncNet distance at the best offset."),
                io.Int.Output(
                    display_name="av_offset",
                    tooltip="Audio-video offset in 25 fps frames (0 = in sync; negative: the audio is late).",
                ),
                io.Image.Output(display_name="plot", tooltip="Confidence over time per speaker; weakest in red."),
                io.String.Output(display_name="report", tooltip="Scores per speaker and the weakest frames."),
            ],
            is_output_node=True,
        )

    @classmethod
    def execute(
        cls,
        syncnet: SyncNet,
        face_model: str,
        detector: str,
        min_track: int,
        min_face_size: int,
        fps: float = 25.0,
        video=None,
        images=None,
        audio=None,
    ) -> io.NodeOutput:
        frames, audio, fps = _frames_audio_fps(video, images, audio, fps)
        check_images(frames)
        waveform, sample_rate = validate_audio(audio)
        finder = DlibFaceDetector(
            paths.resolve_face_model(face_model, "face_model"),
            detector=detector,
            cnn_model=paths.cnn_detector_file() if detector == "cnn" else None,
        )
        device = comfy.model_management.get_torch_device()
        bar = CancellableProgress(100)
        stages = {"detect": (0, 60)}

        def on_progress(stage: str, done: int, total: int) -> None:
            lo, hi = stages.get(stage, (60, 100))
            bar(lo + (hi - lo) * done / max(total, 1))

        syncnet.to(device)
        try:
            result = score_video(
                frames,
                fps,
                waveform,
                sample_rate,
                syncnet,
                finder.detect,
                min_track=min_track,
                min_face_size=min_face_size,
                device=device,
                on_progress=on_progress,
            )
        finally:
            syncnet.to("cpu")
        report = result.report()
        logging.info("HVSyncScore: %s", report.replace("\n", " | "))
        plot = result.plot()
        shown = ui.PreviewImage(plot, cls=cls).as_dict()
        shown.update(text=[report], hv_sync=[result.as_dict()])
        return io.NodeOutput(result.sync_c, result.sync_d, result.av_offset, plot, report, ui=shown)


NODES = [HVLoadSyncNet, HVSyncScore]
