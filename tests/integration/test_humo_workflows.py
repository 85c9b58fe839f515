"""Every shipped HuMo workflow runs in the real server with the tiny checkpoints (official layouts) and writes
an mp4 with the requested frames at 25 fps and an AAC track; bad input gives clear errors, not a broken server."""

from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
from comfy_harness import node_of, shipped_api_workflow
from workflow_specs_humo import NEGATIVE_PROMPT, WORKFLOWS

pytestmark = pytest.mark.integration
SIZE, FRAMES, STEPS = 64, 5, 2  # tiny: 2 video latent frames of 4x4 tokens


def shrink(prompt: dict, width: int = SIZE, height: int = SIZE, length: int = FRAMES, steps: int = STEPS) -> dict:
    node_of(prompt, "HVHuMoConditioning")["inputs"].update(size="custom", width=width, height=height, length=length)
    node_of(prompt, "HVHuMoSampler")["inputs"]["steps"] = steps
    node_of(prompt, "HVSaveVideo")["inputs"]["ai_label"] = False
    return prompt


def probe(path: Path) -> tuple[list[np.ndarray], Fraction, str, float, int]:
    with av.open(str(path)) as container:
        fps = container.streams.video[0].average_rate
        frames = [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]
    with av.open(str(path)) as container:
        stream = container.streams.audio[0]
        codec, rate = stream.codec_context.name, stream.rate
        samples = sum(f.samples for f in container.decode(audio=0))
    return frames, fps, codec, samples / rate, rate


@pytest.mark.parametrize("name", [w.name for w in WORKFLOWS])
def test_shipped_workflow_runs_with_tiny_checkpoints(comfy, name):
    prompt = shipped_api_workflow(name)
    conditioning = node_of(prompt, "HVHuMoConditioning")["inputs"]
    sampler = node_of(prompt, "HVHuMoSampler")["inputs"]
    # the shipped settings are the official ones
    assert (conditioning["length"], sampler["steps"], sampler["shift"], sampler["seed"], sampler["solver"]) == (
        97,
        50,
        5.0,
        666666,
        "flow_unipc",
    )
    assert sampler["official_integer_timesteps"] is True and sampler["focus_by_prediction"] is False
    assert conditioning["size"] == ("720x1280" if "720p" in name else "480x832")
    assert ("reference_images" in conditioning) == ("_ta_" not in name)
    assert prompt[conditioning["negative"][0]]["inputs"]["text"] == NEGATIVE_PROMPT
    result = comfy.run(shrink(prompt), timeout=300)
    assert result.ok, result.error
    [mp4] = [f for f in result.files if f.suffix == ".mp4"]
    frames, fps, codec, seconds, rate = probe(mp4)
    assert fps == Fraction(25) and len(frames) == FRAMES
    assert frames[0].shape == (SIZE, SIZE, 3)
    assert codec == "aac" and abs(seconds - FRAMES / 25) <= 1024 / rate  # AAC packs 1024-sample frames
    assert max(float(np.abs(f.astype(int) - frames[0].astype(int)).mean()) for f in frames) > 0  # not a still


def test_size_not_a_multiple_of_16_is_a_clear_error(comfy):
    prompt = shrink(shipped_api_workflow("humo_1.7b_tia_480p"), width=72)
    result = comfy.run(prompt, timeout=300)
    assert not result.ok
    assert result.error["node_type"] == "HVHuMoConditioning"
    assert "width: 72 is not a positive multiple of 16" in result.error["exception_message"]


def test_wrong_audio_encoder_is_a_clear_error(comfy):
    prompt = shrink(shipped_api_workflow("humo_17b_ta_480p"))
    node_of(prompt, "HVLoadWhisper")["inputs"]["model"] = "whisper_tiny_test.pt"  # LatentSync's whisper-tiny
    result = comfy.run(prompt, timeout=300)
    assert not result.ok
    assert result.error["node_type"] == "HVHuMoConditioning"
    message = result.error["exception_message"]
    assert "whisper-large-v3" in message and "384 channels" in message


def test_prompt_linking_the_removed_predicted_mask_is_reported_clearly(comfy):
    """A prompt saved when the sampler still had predicted_mask: the link is dropped with a logged reason, so the
    consumer reports its input missing (not an index error) and an optional consumer just goes without it."""
    from humanvideo.batch.client import PromptRejected

    prompt = shrink(shipped_api_workflow("humo_1.7b_tia_480p"))
    sampler = next(k for k, v in prompt.items() if v["class_type"] == "HVHuMoSampler")
    prompt["90"] = {"class_type": "MaskToImage", "inputs": {"mask": [sampler, 1]}}
    prompt["91"] = {"class_type": "PreviewImage", "inputs": {"images": ["90", 0]}}
    with pytest.raises(PromptRejected) as rejected:
        comfy.client.submit({k: v for k, v in prompt.items() if k in (sampler, "90", "91")})
    [error] = rejected.value.node_errors["90"]["errors"]
    assert error["type"] == "required_input_missing" and error["details"] == "mask"
    assert "removed output 'predicted_mask'" in comfy.log_tail(200) and "focus_by_prediction" in comfy.log_tail(200)


def test_length_is_rounded_to_4n_plus_1_and_reported_server_still_fine(comfy):
    assert comfy.alive()  # after the errors above
    prompt = shrink(shipped_api_workflow("humo_17b_ta_480p"), length=8, steps=1)
    prompt["90"] = {
        "class_type": "PreviewAny",
        "inputs": {"source": [next(k for k, n in prompt.items() if n["class_type"] == "HVHuMoConditioning"), 3]},
    }
    result = comfy.run(prompt, timeout=300)
    assert result.ok, result.error
    [info] = result.outputs["90"]["text"]
    assert "length 8 is not 4n+1: rounded down to 5 frames" in info and "mode TA" in info
    [mp4] = [f for f in result.files if f.suffix == ".mp4"]
    frames, fps, _, _, _ = probe(mp4)
    assert len(frames) == 5 and fps == Fraction(25)
