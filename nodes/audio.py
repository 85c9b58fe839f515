"""Audio loading node (PyAV; no torchaudio)."""

from __future__ import annotations

import os

from comfy_api.latest import io

from .. import paths
from ..media.audio_io import AUDIO_EXTENSIONS, VIDEO_EXTENSIONS, load_audio_clip

SAMPLE_RATES = ["original", "16000", "22050", "24000", "32000", "44100", "48000"]
CHANNELS = ["original", "mono", "stereo"]


def _input_media_files() -> list[str]:
    return paths.input_media_files(AUDIO_EXTENSIONS + VIDEO_EXTENSIONS)


def resolve_media_path(file: str, path: str) -> str:
    """A file from ComfyUI's input folder; `path` (when given) overrides the list and may name another
    folder only when the server operator allowed it (paths.AUDIO_DIRS_ENV)."""
    if isinstance(path, str) and path.strip():
        return paths.resolve_operator_path(path, "path")
    if not file:
        raise ValueError("audio: no audio file chosen: pick a file, upload one, or give a path")
    return paths.resolve_input_file(file, "audio")


class HVLoadAudio(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="HVLoadAudio",
            display_name="Load Audio (HumanVideo)",
            category="HumanVideo/audio",
            description=(
                "Loads the audio track of any audio or video file (wav, mp3, flac, m4a, mp4, mov ...) with PyAV. "
                "Optionally cuts a time range, resamples and downmixes: the models want 16 kHz mono."
            ),
            inputs=[
                io.Combo.Input(
                    "audio",
                    options=_input_media_files(),
                    upload=io.UploadType.audio,
                    tooltip="An audio or video file in ComfyUI's input folder (upload adds one).",
                ),
                io.String.Input(
                    "path",
                    default="",
                    tooltip="Optional file name that overrides the list, relative to the input folder. Other folders "
                    f"only when the server operator lists them in {paths.AUDIO_DIRS_ENV}.",
                ),
                io.Float.Input(
                    "start_seconds",
                    default=0.0,
                    min=0.0,
                    max=1e6,
                    step=0.01,
                    tooltip="Skip this many seconds from the beginning.",
                ),
                io.Float.Input(
                    "duration_seconds",
                    default=0.0,
                    min=0.0,
                    max=1e6,
                    step=0.01,
                    tooltip="Keep this many seconds after the start; 0 keeps everything to the end.",
                ),
                io.Combo.Input(
                    "sample_rate",
                    options=SAMPLE_RATES,
                    default="original",
                    tooltip="Resample to this rate (Hz). HuMo and LatentSync use 16000; their feature nodes "
                    "resample anyway.",
                ),
                io.Combo.Input(
                    "channels",
                    options=CHANNELS,
                    default="original",
                    tooltip="mono averages the channels; stereo duplicates a mono track.",
                ),
            ],
            outputs=[
                io.Audio.Output(display_name="audio", tooltip="Waveform [1, channels, samples] and its sample rate."),
                io.Float.Output(display_name="duration", tooltip="Length of the loaded audio in seconds."),
            ],
        )

    @classmethod
    def execute(cls, audio, path, start_seconds, duration_seconds, sample_rate, channels) -> io.NodeOutput:
        clip = load_audio_clip(resolve_media_path(audio, path), start_seconds, duration_seconds, sample_rate, channels)
        return io.NodeOutput(clip.as_comfy(), clip.duration)

    @classmethod
    def fingerprint_inputs(cls, audio, path, start_seconds, duration_seconds, sample_rate, channels):
        try:
            full = resolve_media_path(audio, path)
            stat = os.stat(full)
            return f"{full}:{stat.st_mtime_ns}:{stat.st_size}"
        except (OSError, ValueError):
            return float("nan")  # never equal to itself: re-run and report the problem

    @classmethod
    def validate_inputs(cls, audio, path):
        # Only these two are checked here: core keeps checking the ranges of the other inputs.
        try:
            resolve_media_path(audio, path)
        except ValueError as e:
            return str(e)
        return True


NODES = [HVLoadAudio]
