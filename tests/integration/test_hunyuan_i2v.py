"""HunyuanVideo-I2V in the real server: official-layout tiny files -> loaders -> encode -> conditioning -> sampler
-> mp4."""

from fractions import Fraction

import av
import hv_fixtures.hunyuan as fx
import pytest

pytestmark = pytest.mark.integration


def i2v_prompt(release="v2", text_release="v2 (replace)", with_model=True, lora=True, cfg=1.0):
    model = ["1", 0]
    prompt = {
        "1": {
            "class_type": "HVLoadHunyuanDiT",
            "inputs": {"model_name": f"{fx.DIT_DIR[release]}/mp_rank_00_model_states.pt", "weight_dtype": "default"},
        },
        "3": {"class_type": "HVLoadHunyuanVAE", "inputs": {"vae_name": f"{fx.VAE_DIR}/pytorch_model.pt"}},
        "4": {
            "class_type": "HVLoadHunyuanTextEncoders",
            "inputs": {"llava_folder": fx.LLAVA_DIR, "clip_folder": fx.CLIP_DIR, "dtype": "fp32"},
        },
        "5": {"class_type": "EmptyImage", "inputs": {"width": 80, "height": 45, "batch_size": 1, "color": 0x3366CC}},
    }
    if lora:
        prompt["2"] = {
            "class_type": "HVLoadHunyuanLoRA",
            "inputs": {"model": ["1", 0], "lora_name": fx.LORA_FILE, "strength": 1.0},
        }
        model = ["2", 0]
    encode = {
        "clip": ["4", 0],
        "clip_vision": ["4", 1],
        "image": ["5", 0],
        "prompt": "the water ripples",
        "negative_prompt": "blurry",
        "release": text_release,
    }
    if with_model:
        encode["model"] = model
    prompt["6"] = {"class_type": "HVHunyuanI2VTextEncode", "inputs": encode}
    prompt["7"] = {
        "class_type": "HVHunyuanI2VConditioning",
        "inputs": {
            "model": model,
            "vae": ["3", 0],
            "positive": ["6", 0],
            "negative": ["6", 1],
            "image": ["5", 0],
            "resolution": "360p",
            "length": 9,
            "stability": True,
            "embedded_guidance": 6.0,
        },
    }
    prompt["8"] = {
        "class_type": "HVHunyuanI2VSampler",
        "inputs": {
            "model": model,
            "positive": ["7", 0],
            "negative": ["7", 1],
            "latent": ["7", 2],
            "vae": ["3", 0],
            "seed": 1,
            "steps": 2,
            "flow_shift": 0.0,
            "cfg": cfg,
        },
    }
    prompt["9"] = {
        "class_type": "HVSaveVideo",
        "inputs": {
            "images": ["8", 0],
            "fps": ["8", 2],
            "filename_prefix": "HumanVideo/hunyuan",
            "quality_crf": 18,
            "length_from": "video",
            "ai_label": False,
            "label_corner": "bottom-right",
            "label_size": 0.1,
            "label_opacity": 1.0,
        },
    }
    return prompt


@pytest.mark.parametrize("release,frames,cfg", [("v2", 9, 2.0), ("v1", 5, 1.0)])
def test_i2v_to_mp4(comfy, release, frames, cfg):
    result = comfy.run(i2v_prompt(release, lora=release == "v2", cfg=cfg), timeout=600)
    assert result.ok, (result.error, comfy.log_tail())
    [video] = [f for f in result.files if f.suffix == ".mp4"]
    with av.open(str(video)) as container:
        stream = container.streams.video[0]
        assert stream.average_rate == Fraction(24)
        # a 16:9 image at the 360p bucket: 608x352
        assert (stream.width, stream.height) == (608, 352)
        assert sum(1 for _ in container.decode(video=0)) == frames  # v1 drops the first 4 of 9


def test_v1_model_with_v2_text_settings_is_a_clear_error(comfy):
    result = comfy.run(i2v_prompt("v1", text_release="v2 (replace)", with_model=False, lora=False), timeout=300)
    assert not result.ok
    assert "model is v1 (concat)" in result.error.get("exception_message", ""), result.error
    assert comfy.alive()
