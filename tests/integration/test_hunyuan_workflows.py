"""Both shipped HunyuanVideo-I2V workflows run in the real server with the tiny official-layout files."""

from fractions import Fraction

import av
import pytest
from comfy_harness import node_of, shipped_api_workflow

pytestmark = pytest.mark.integration


@pytest.mark.parametrize("name", ["hunyuan_i2v_720p", "hunyuan_i2v_lora_effect"])
def test_shipped_workflow_runs_with_tiny_checkpoints(comfy, name):
    prompt = shipped_api_workflow(name)
    assert node_of(prompt, "HVHunyuanI2VConditioning")["inputs"]["length"] == 129  # the official default
    node_of(prompt, "HVHunyuanI2VConditioning")["inputs"].update(resolution="360p", length=5)
    node_of(prompt, "HVHunyuanI2VSampler")["inputs"].update(steps=2)
    node_of(prompt, "HVLoadHunyuanTextEncoders")["inputs"]["dtype"] = "fp32"
    result = comfy.run(prompt, timeout=600)
    assert result.ok, result.error
    [mp4] = [f for f in result.files if f.suffix == ".mp4"]
    with av.open(str(mp4)) as container:
        stream = container.streams.video[0]
        assert stream.average_rate == Fraction(24)
        assert stream.width == stream.height  # the square photo gets the square 360p bucket
        assert sum(1 for _ in container.decode(video=0)) == 5
