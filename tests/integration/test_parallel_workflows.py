"""HV Parallel in the real server: the shipped several-GPU workflows, and HV Parallel added to the single-GPU
ones, give the same latents as the same graph without it (2 Ray CPU workers over gloo; the server runs with
--cpu, so its workers do too)."""

import copy

import hv_fixtures.hunyuan as fx
import pytest
import torch
from comfy_harness import node_of, shipped_api_workflow
from safetensors.torch import load_file

pytestmark = pytest.mark.integration
TOLERANCE = 1e-5
SAVE_ID = "99"


def node_id(prompt: dict, class_type: str) -> str:
    [key] = [k for k, n in prompt.items() if n["class_type"] == class_type]
    return key


def shrink_humo(prompt: dict) -> dict:
    # 2 video latent frames + 1 reference frame of 3x3 tokens (the 1-head tiny DiT): 27 tokens, odd
    node_of(prompt, "HVHuMoConditioning")["inputs"].update(size="custom", width=48, height=48, length=5)
    node_of(prompt, "HVHuMoSampler")["inputs"].update(steps=2)
    return prompt


def shrink_hunyuan(prompt: dict, release: str = "v2") -> dict:
    node_of(prompt, "HVHunyuanI2VConditioning")["inputs"].update(resolution="360p", length=5)
    node_of(prompt, "HVHunyuanI2VSampler")["inputs"].update(steps=2)
    node_of(prompt, "HVLoadHunyuanTextEncoders")["inputs"]["dtype"] = "fp32"
    loader = node_of(prompt, "HVLoadHunyuanDiT")["inputs"]
    loader["model_name"] = f"{fx.DIT_DIR[release]}/mp_rank_00_model_states.pt"
    return prompt


def add_parallel(prompt: dict, sampler: str, sp_size: int = 2, cfg_parallel: int = 1, shard: bool = False) -> dict:
    prompt["98"] = {
        "class_type": "HVParallel",
        "inputs": {
            "sp_size": sp_size,
            "cfg_parallel": cfg_parallel,
            "shard_weights": shard,
            "devices": "",
            "ray_address": "",
        },
    }
    node_of(prompt, sampler)["inputs"]["parallel"] = ["98", 0]
    return prompt


def without_parallel(prompt: dict) -> dict:
    prompt = copy.deepcopy(prompt)
    for key in [k for k, n in prompt.items() if n["class_type"] == "HVParallel"]:
        del prompt[key]
    for node in prompt.values():
        node["inputs"].pop("parallel", None)
    return prompt


def saved_latent(comfy, prompt: dict, sampler: str, slot: int, prefix: str) -> torch.Tensor:
    prompt = copy.deepcopy(prompt)
    prompt[SAVE_ID] = {
        "class_type": "SaveLatent",
        "inputs": {"samples": [node_id(prompt, sampler), slot], "filename_prefix": f"parallel_test/{prefix}"},
    }
    result = comfy.run(prompt, timeout=600)
    assert result.ok, result.error
    [path] = sorted((comfy.output_dir / "parallel_test").glob(f"{prefix}_*.latent"))[-1:]
    return load_file(str(path))["latent_tensor"]


def assert_same(comfy, prompt: dict, sampler: str, slot: int, name: str) -> None:
    direct = saved_latent(comfy, without_parallel(prompt), sampler, slot, f"{name}_direct")
    parallel = saved_latent(comfy, prompt, sampler, slot, f"{name}_parallel")
    err = float((direct - parallel).abs().max() / direct.abs().max())
    assert err < TOLERANCE, f"{name}: relative difference {err:.2e}"


def test_shipped_humo_17b_2gpu_workflow_equals_one_process(comfy):
    prompt = shipped_api_workflow("humo_17b_tia_720p_2gpu")
    parallel = node_of(prompt, "HVParallel")["inputs"]
    assert (parallel["sp_size"], parallel["shard_weights"]) == (2, True)  # the official 2 x 24 GB recipe
    assert node_of(prompt, "HVHuMoConditioning")["inputs"]["size"] == "720x1280"
    assert_same(comfy, shrink_humo(prompt), "HVHuMoSampler", 0, "humo_17b")


def test_humo_1_7b_four_passes_sp2_equals_one_process(comfy):
    prompt = add_parallel(shrink_humo(shipped_api_workflow("humo_1.7b_tia_480p")), "HVHuMoSampler")
    assert_same(comfy, prompt, "HVHuMoSampler", 0, "humo_1_7b")


@pytest.mark.parametrize("release", ["v2", "v1"])
def test_hunyuan_i2v_multigpu_workflow_equals_one_process(comfy, release):
    prompt = shrink_hunyuan(shipped_api_workflow("hunyuan_i2v_720p_multigpu"), release)
    assert node_of(prompt, "HVParallel")["inputs"]["sp_size"] == 2
    assert_same(comfy, prompt, "HVHunyuanI2VSampler", 1, f"hunyuan_{release}")


def test_bad_parallel_setting_is_a_clear_error_and_the_server_keeps_serving(comfy):
    prompt = add_parallel(shrink_humo(shipped_api_workflow("humo_1.7b_tia_480p")), "HVHuMoSampler")
    node_of(prompt, "HVParallel")["inputs"]["devices"] = "0"
    result = comfy.run(prompt, timeout=300)
    assert not result.ok
    assert result.error["node_type"] == "HVParallel"
    assert "devices: 1 device(s) for sp_size 2" in result.error["exception_message"]
    assert comfy.alive()
