"""HVLoadWhisper -> HVWhisperFeatures in the real server, with the tiny fixtures in both file formats."""

import re

import pytest
import torch
from comfy_harness import load_audio
from safetensors.torch import save_file

pytestmark = pytest.mark.integration


def features_prompt(model: str, audio_node: dict, windows="independent 30 s (official)", convention="auto") -> dict:
    return {
        "1": audio_node,
        "2": {"class_type": "HVLoadWhisper", "inputs": {"model": model, "precision": "auto"}},
        "3": {
            "class_type": "HVWhisperFeatures",
            "inputs": {"audio": ["1", 0], "whisper": ["2", 0], "windows": windows, "convention": convention},
        },
        # core's PreviewAny prints the features' summary: an output node that accepts any type
        "4": {"class_type": "PreviewAny", "inputs": {"source": ["3", 0]}},
    }


def summary(result) -> str:
    return result.outputs["4"]["text"][0]


def test_combo_lists_fixtures_and_types(comfy):
    info = comfy.client.object_info(refresh=True)
    options = info["HVLoadWhisper"]["input"]["required"]["model"]
    names = options[0] if isinstance(options[0], list) else options[1]["options"]
    assert {"whisper_tiny_test.pt", "whisper_large_v3_test.safetensors"} <= set(names)
    assert info["HVLoadWhisper"]["output"] == ["HV_WHISPER"]
    assert info["HVWhisperFeatures"]["output"] == ["HV_AUDIO_FEATURES", "AUDIO_ENCODER_OUTPUT"]
    assert info["HVWhisperFeatures"]["input"]["required"]["whisper"][0] == "HV_WHISPER"
    # official by default: back-to-back 30 s windows; overlapping windows are the option
    windows = info["HVWhisperFeatures"]["input"]["required"]["windows"]
    assert windows[1]["default"] == "independent 30 s (official)"


def test_openai_tiny_features_of_stereo_44k_audio(comfy):
    # the 3 s speech fixture, resampled by the loader to 44.1 kHz stereo; the node brings it back to 16 kHz mono
    result = comfy.run(
        features_prompt("whisper_tiny_test.pt", load_audio(sample_rate="44100", channels="stereo")), timeout=300
    )
    assert result.ok, result.error
    text = summary(result)
    match = re.search(
        r"AudioFeatures\((whisper-custom\(d=384, layers=4, mels=80, ffn=64\)), ([\d.]+) s, "
        r"(\d+) x 6 states x 384, independent/latentsync\)",
        text,
    )
    assert match, text
    assert abs(float(match.group(2)) - 3.0) < 0.01 and int(match.group(3)) == 150


def test_comfy_org_layout_large_v3_features(comfy):
    result = comfy.run(
        features_prompt(
            "whisper_large_v3_test.safetensors", load_audio(duration_seconds=1.0), windows="independent 30 s (official)"
        ),
        timeout=600,
    )
    assert result.ok, result.error
    assert re.search(r"d=1280, layers=4, mels=128.*1\.00 s, 50 x 6 states x 1280, independent/humo", summary(result))


def test_bad_inputs_are_reported_and_the_server_keeps_working(comfy):
    short = comfy.run(features_prompt("whisper_tiny_test.pt", load_audio(duration_seconds=0.01)))
    assert not short.ok and short.error["node_type"] == "HVWhisperFeatures"
    assert "too short for Whisper" in short.error["exception_message"]

    fake = comfy.models_dir / "audio_encoders" / "wav2vec2_test.safetensors"
    save_file(
        {
            "wav2vec2.feature_extractor.conv_layers.0.conv.weight": torch.zeros(2, 1, 3),
            "wav2vec2.encoder.layer_norm.bias": torch.zeros(2),
        },
        str(fake),
    )
    try:
        wrong = comfy.run(features_prompt("wav2vec2_test.safetensors", load_audio()))
    finally:
        fake.unlink()
    assert not wrong.ok and wrong.error["node_type"] == "HVLoadWhisper"
    assert "wav2vec2 audio encoder, not Whisper" in wrong.error["exception_message"]
    assert comfy.alive()
