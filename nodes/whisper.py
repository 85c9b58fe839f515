"""Whisper loading and audio-feature nodes (no torchaudio)."""

from __future__ import annotations

import torch
from comfy_api.latest import io

from .. import paths
from ..loaders.whisper import PRECISIONS, load_whisper
from ..media.audio_io import validate_audio
from ..media.resample import resample, to_mono
from ..models.audio_features import extract_audio_features, to_audio_encoder_output
from ..models.log_mel import SAMPLE_RATE
from ..models.whisper_encoder import WhisperModel
from .progress import CancellableProgress
from .types import HV_AUDIO_FEATURES, HV_WHISPER

FOLDER = "audio_encoders"

WINDOW_CHOICES = {
    "independent 30 s (official)": "independent",
    "overlapping (no seams)": "overlap",
}
DEFAULT_WINDOWS = "independent 30 s (official)"
CONVENTION_CHOICES = {
    "auto": "auto",
    "HuMo (per-window mel)": "humo",
    "LatentSync (whole-clip mel)": "latentsync",
}


def whisper_choices() -> list[str]:
    """Files in the audio_encoders folders, and their sub-folders holding a Hugging Face config.json."""
    return sorted(set(paths.list_files(FOLDER)) | set(paths.folders_holding(FOLDER, "config.json")))


def resolve_whisper(name: str) -> str:
    """A choice of :func:`whisper_choices` as a path confined to the audio_encoders folders."""
    if name in paths.folders_holding(FOLDER, "config.json"):
        return paths.resolve_model_path(FOLDER, name, "model", "folder")
    return paths.resolve_model_path(FOLDER, name, "model", "file")


def whisper_speech(audio: dict, name: str) -> torch.Tensor:
    """One clip of a ComfyUI AUDIO as Whisper hears it: 16 kHz mono samples [T] (input `name` in errors)."""
    waveform, rate = validate_audio(audio, name)
    if waveform.shape[0] != 1:
        raise ValueError(f"{name}: a batch of {waveform.shape[0]} clips; Whisper encodes one clip at a time")
    return resample(to_mono(waveform.float()), rate, SAMPLE_RATE)[0, 0]


def check_whisper(whisper, name: str = "whisper") -> WhisperModel:
    if not isinstance(whisper, WhisperModel):
        raise ValueError(f"{name}: expected a model from Load Whisper, got {type(whisper).__name__}")
    return whisper


def windows_input(name: str = "windows", optional: bool = False) -> io.Combo.Input:
    return io.Combo.Input(
        name,
        options=list(WINDOW_CHOICES),
        default=DEFAULT_WINDOWS,
        optional=optional,
        tooltip="independent (official): back-to-back 30 s windows as the official code (the features jump at "
        "every 30 s boundary). overlapping: 30 s windows overlapping by 10 s, each moment taken where it has at "
        "least 5 s of context. Identical for audio up to 30 s.",
    )


def window_mode(choice: str, name: str = "windows") -> str:
    if choice not in WINDOW_CHOICES:
        raise ValueError(f"{name}: unknown choice {choice!r}; one of {list(WINDOW_CHOICES)}")
    return WINDOW_CHOICES[choice]


class HVLoadWhisper(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="HVLoadWhisper",
            display_name="Load Whisper (HumanVideo)",
            category="HumanVideo/audio",
            description=(
                "Loads a Whisper audio encoder without torchaudio: OpenAI .pt (tiny ... large-v3, LatentSync's "
                "whisper/tiny.pt), a Hugging Face folder or safetensors, or Comfy-Org whisper_large_v3_fp16. "
                "HuMo needs large-v3, LatentSync needs tiny. The size is read from the weights."
            ),
            inputs=[
                io.Combo.Input(
                    "model",
                    options=whisper_choices(),
                    tooltip="A file in models/audio_encoders, or a sub-folder holding a Hugging Face "
                    "config.json with model.safetensors / pytorch_model.bin.",
                ),
                io.Combo.Input(
                    "precision",
                    options=PRECISIONS,
                    default="auto",
                    tooltip="Weight and compute dtype. auto: fp16 on a GPU (ComfyUI's text-encoder "
                    "dtype), fp32 on the CPU.",
                ),
            ],
            outputs=[
                HV_WHISPER.Output(
                    display_name="whisper", tooltip="The Whisper encoder (loaded to the GPU only while it runs)."
                )
            ],
        )

    @classmethod
    def execute(cls, model: str, precision: str) -> io.NodeOutput:
        return io.NodeOutput(load_whisper(resolve_whisper(model), precision))


class HVWhisperFeatures(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="HVWhisperFeatures",
            display_name="Whisper Audio Features (HumanVideo)",
            category="HumanVideo/audio",
            description=(
                "Encodes audio of any length into Whisper features at 50 per second (all layers), for HuMo "
                "(whisper-large-v3) or LatentSync (whisper-tiny). The audio is downmixed and resampled to "
                "16 kHz. Long audio is encoded in back-to-back 30 s windows as the official code does; the "
                "overlapping option avoids the jumps those windows make every 30 s. Up to 30 s both give identical "
                "results."
            ),
            inputs=[
                io.Audio.Input("audio", tooltip="The voice track (any sample rate and channel count, one clip)."),
                HV_WHISPER.Input("whisper", tooltip="From Load Whisper: large-v3 for HuMo, tiny for LatentSync."),
                windows_input(),
                io.Combo.Input(
                    "convention",
                    options=list(CONVENTION_CHOICES),
                    default="auto",
                    tooltip="How a 30 s window is prepared, as each official pipeline does. auto: "
                    "LatentSync's for whisper-tiny, HuMo's for every other size.",
                ),
            ],
            outputs=[
                HV_AUDIO_FEATURES.Output(
                    display_name="audio_features",
                    tooltip="Whisper states at 50 Hz for the whole audio; HuMo and "
                    "LatentSync nodes cut their per-frame windows from it.",
                ),
                io.AudioEncoderOutput.Output(
                    display_name="audio_encoder_output",
                    tooltip="The same features as core's AUDIO_ENCODER_OUTPUT (all "
                    "hidden states), e.g. for core's WanHuMoImageToVideo "
                    "with whisper-large-v3.",
                ),
            ],
        )

    @classmethod
    def execute(cls, audio: dict, whisper: WhisperModel, windows: str, convention: str) -> io.NodeOutput:
        check_whisper(whisper)
        mode = window_mode(windows)
        if convention not in CONVENTION_CHOICES:
            raise ValueError(f"convention: unknown choice {convention!r}; one of {list(CONVENTION_CHOICES)}")
        features = extract_audio_features(
            whisper,
            whisper_speech(audio, "audio"),
            window_mode=mode,
            convention=CONVENTION_CHOICES[convention],
            on_window=CancellableProgress(),
        )
        return io.NodeOutput(features, to_audio_encoder_output(features))


NODES = [HVLoadWhisper, HVWhisperFeatures]
