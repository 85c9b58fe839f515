"""Video saving node: mp4 with sound, a quality setting, odd sizes handled, synthetic media marked."""

from __future__ import annotations

import json
import os

import folder_paths
import torch
from comfy.cli_args import args
from comfy_api.latest import InputImpl, io, ui

from ..media.audio_io import validate_audio
from ..media.resample import resample
from ..media.video_io import AAC_SAMPLE_RATES, write_mp4
from ..media.watermark import CORNERS, make_label, provenance_metadata
from .progress import CancellableProgress

PACK_NAME = "ComfyUI-HumanVideo"


def quality_input() -> io.Int.Input:
    return io.Int.Input(
        "quality_crf",
        default=19,
        min=0,
        max=51,
        tooltip="x264 constant rate factor: lower is better quality and larger files (17-23 typical).",
    )


def label_inputs() -> list:
    """The visible AI-label settings (the save node's, also on nodes that write their own mp4)."""
    return [
        io.Boolean.Input(
            "ai_label",
            default=True,
            tooltip="Draw a visible 'AI-generated' label. The file is tagged as AI-generated either way.",
        ),
        io.Combo.Input("label_corner", options=list(CORNERS), default="bottom-right", tooltip="Where the label goes."),
        io.Float.Input(
            "label_size",
            default=0.05,
            min=0.01,
            max=0.3,
            step=0.005,
            tooltip="Label text height as a fraction of the frame height.",
        ),
        io.Float.Input(
            "label_opacity", default=0.7, min=0.0, max=1.0, step=0.05, tooltip="0 is invisible, 1 is opaque."
        ),
    ]


def sound_track(audio: dict) -> tuple[torch.Tensor, int]:
    """An AUDIO input as ([C, T] waveform, rate) an mp4 can carry (resampled to 48 kHz if AAC has no such rate)."""
    waveform, rate = validate_audio(audio, "audio")
    waveform = waveform[0]
    if rate not in AAC_SAMPLE_RATES:
        waveform, rate = resample(waveform.unsqueeze(0), rate, 48000)[0], 48000
    return waveform, rate


def output_file(filename_prefix: str, width: int, height: int) -> tuple[str, str, str]:
    """(full path, file name, subfolder) of the next mp4 for ``filename_prefix`` in the output folder."""
    out_dir, name, counter, subfolder, _ = folder_paths.get_save_image_path(
        filename_prefix, folder_paths.get_output_directory(), width, height
    )
    file = f"{name}_{counter:05}_.mp4"
    return os.path.join(out_dir, file), file, subfolder


def container_tags(hidden) -> dict[str, str]:
    """The AI-generated provenance tags, plus the workflow unless ComfyUI runs with --disable-metadata."""
    extra = {}
    if not args.disable_metadata:
        if hidden.prompt is not None:
            extra["prompt"] = hidden.prompt
        if hidden.extra_pnginfo is not None:
            extra.update({k: json.dumps(v) for k, v in hidden.extra_pnginfo.items()})
    return provenance_metadata(PACK_NAME, extra)


def preview(file: str, subfolder: str) -> ui.PreviewVideo:
    return ui.PreviewVideo([ui.SavedResult(file, subfolder, io.FolderType.output)])


class HVSaveVideo(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="HVSaveVideo",
            display_name="Save Video mp4 (HumanVideo)",
            category="HumanVideo/video",
            description=(
                "Writes frames and optional audio to an H.264 / AAC mp4 in the output folder and shows it. "
                "Odd sizes are padded to even, the audio is fitted to the video, and the file is tagged as "
                "AI-generated; a visible label can be drawn too."
            ),
            inputs=[
                io.Image.Input("images", tooltip="Video frames [frames, height, width, channels]."),
                io.Float.Input(
                    "fps",
                    default=25.0,
                    min=0.001,
                    max=240.0,
                    step=0.01,
                    tooltip="Frames per second (HuMo and LatentSync: 25; keep the source fps for lip-sync).",
                ),
                io.String.Input(
                    "filename_prefix",
                    default="HumanVideo/video",
                    tooltip="Output file prefix; may contain sub-folders and %date:yyyy-MM-dd%.",
                ),
                quality_input(),
                io.Combo.Input(
                    "length_from",
                    options=["video", "audio"],
                    default="video",
                    tooltip="video: the audio is cut or padded with silence to the video. audio: a video longer "
                    "than the audio is cut to the audio's length.",
                ),
                *label_inputs(),
                io.Audio.Input("audio", optional=True, tooltip="Sound track (any rate and channel count)."),
            ],
            outputs=[io.Video.Output(display_name="video", tooltip="The written mp4 file, as a core VIDEO.")],
            hidden=[io.Hidden.prompt, io.Hidden.extra_pnginfo],
            is_output_node=True,
        )

    @classmethod
    def execute(
        cls,
        images,
        fps,
        filename_prefix,
        quality_crf,
        length_from,
        ai_label,
        label_corner,
        label_size,
        label_opacity,
        audio=None,
    ) -> io.NodeOutput:
        if images is None or images.ndim != 4 or images.shape[0] == 0:
            raise ValueError("images: the frame batch is empty; nothing to save")
        if fps is None or fps <= 0:
            raise ValueError(f"fps must be greater than 0, got {fps}")
        frames, height, width = images.shape[0], images.shape[1], images.shape[2]

        sound = None
        if audio is not None:
            sound = sound_track(audio)
            if length_from == "audio":
                frames = min(frames, max(1, int(round(sound[0].shape[-1] / sound[1] * fps))))

        label = (
            make_label(height, width, corner=label_corner, size=label_size, opacity=label_opacity) if ai_label else None
        )
        stream = (label.apply(images[i]) if label else images[i] for i in range(frames))
        path, file, subfolder = output_file(filename_prefix, width, height)
        write_mp4(
            path,
            stream,
            frames,
            (height, width),
            fps,
            audio=sound,
            crf=quality_crf,
            metadata=container_tags(cls.hidden),
            on_frame=CancellableProgress(frames),  # Cancel honoured between frames
        )
        return io.NodeOutput(InputImpl.VideoFromFile(path), ui=preview(file, subfolder))


NODES = [HVSaveVideo]
