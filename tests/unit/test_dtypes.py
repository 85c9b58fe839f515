"""The one dtype-choice table: both spellings of "ComfyUI chooses" work in every loader."""

import pytest
import torch
from humanvideo.loaders import humo_dit, hunyuan_dit, latentsync_unet, umt5, wan_vae, whisper
from humanvideo.loaders.dtypes import dtype_choices, parse_dtype


def test_node_lists_keep_the_spelling_they_shipped_with():
    assert humo_dit.WEIGHT_DTYPES == ["default", "bf16", "fp16", "fp8_e4m3fn"]
    assert hunyuan_dit.WEIGHT_DTYPES[0] == "default" and "fp8_e4m3fn_fast" in hunyuan_dit.WEIGHT_DTYPES
    assert umt5.UMT5_DTYPES == wan_vae.VAE_DTYPES == ["default", "bf16", "fp16", "fp32"]
    assert latentsync_unet.DTYPE_OPTIONS == ["auto", "fp16", "bf16", "fp32"]
    assert whisper.PRECISIONS == ["auto", "fp32", "fp16", "bf16"]


@pytest.mark.parametrize("choices", [humo_dit.WEIGHT_DTYPES, latentsync_unet.DTYPE_OPTIONS, whisper.PRECISIONS])
def test_auto_and_default_mean_the_same(choices):
    assert parse_dtype("auto", choices, "dtype") is None
    assert parse_dtype("default", choices, "dtype") is None
    assert parse_dtype("fp16", choices, "dtype") is torch.float16


def test_names_outside_a_nodes_list_are_refused():
    with pytest.raises(
        ValueError, match=r"weight_dtype 'fp32' is not offered; weight_dtype must be one of \['default', 'bf16'"
    ):
        parse_dtype("fp32", humo_dit.WEIGHT_DTYPES, "weight_dtype")
    with pytest.raises(ValueError, match="not in the dtype table"):
        dtype_choices("auto", "fp64")
