"""The one checkpoint reader: containers, the prefix stripper and the describer."""

import json

import pytest
import torch
from humanvideo.loaders.checkpoint_files import (
    describe_state_dict,
    identify_state_dict,
    load_state_dict,
    read_checkpoint,
    strip_prefix,
)
from safetensors.torch import save_file


def test_pickle_extras_come_back_beside_the_tensors(tmp_path):
    path = tmp_path / "tiny.pt"
    torch.save({"dims": {"n_audio_head": 6}, "model_state_dict": {"encoder.conv1.weight": torch.ones(2)}}, path)
    ckpt = read_checkpoint(path)
    assert list(ckpt.state_dict) == ["encoder.conv1.weight"]
    assert ckpt.extras == {"dims": {"n_audio_head": 6}} and ckpt.metadata is None


def test_sharded_pickle_set_loads_through_its_index(tmp_path):
    torch.save({"a": torch.zeros(1)}, tmp_path / "pytorch_model-00001-of-00002.bin")
    torch.save({"b": torch.ones(1)}, tmp_path / "pytorch_model-00002-of-00002.bin")
    index = {"weight_map": {"a": "pytorch_model-00001-of-00002.bin", "b": "pytorch_model-00002-of-00002.bin"}}
    (tmp_path / "pytorch_model.bin.index.json").write_text(json.dumps(index))
    sd = load_state_dict(tmp_path / "pytorch_model.bin.index.json")
    assert sorted(sd) == ["a", "b"] and sd["b"].item() == 1.0
    index["weight_map"]["c"] = "pytorch_model-00002-of-00002.bin"
    (tmp_path / "pytorch_model.bin.index.json").write_text(json.dumps(index))
    with pytest.raises(ValueError, match="does not hold 1 tensors"):
        load_state_dict(tmp_path / "pytorch_model.bin.index.json")


def test_safetensors_metadata_and_unknown_extension(tmp_path):
    save_file({"x": torch.zeros(1)}, str(tmp_path / "m.safetensors"), metadata={"k": "v"})
    assert load_state_dict(tmp_path / "m.safetensors", return_metadata=True)[1] == {"k": "v"}
    (tmp_path / "m.onnx").write_bytes(b"x")
    with pytest.raises(ValueError, match="unsupported checkpoint extension"):
        load_state_dict(tmp_path / "m.onnx")


def test_strip_prefix_listed_found_and_confirmed():
    sd = {"model.diffusion_model.a.w": 1, "model.diffusion_model.b.w": 2, "scaled_fp8": 3}
    assert strip_prefix(sd, "a.w", ("diffusion_model.", "model.diffusion_model.")) == {
        "a.w": 1,
        "b.w": 2,
        "scaled_fp8": 3,
    }
    assert strip_prefix(sd, "a.w", ("model.diffusion_model.",), keep_unprefixed=False) == {"a.w": 1, "b.w": 2}
    # without a list: any prefix in front of the anchor, when the second key sits under it too
    assert strip_prefix(sd, "a.w", confirm="b.w") == {"a.w": 1, "b.w": 2, "scaled_fp8": 3}
    assert strip_prefix(sd, "a.w", confirm="c.w") == sd
    assert strip_prefix({"a.w": 1, "x.a.w": 2}, "a.w") == {"a.w": 1, "x.a.w": 2}
    assert strip_prefix({"vae.q": 1, "other": 2}, ("p", "q"), ("vae.",), keep_unprefixed=False) == {"q": 1}


@pytest.mark.parametrize(
    "sd, words",
    [
        ({"dims": {}, "model_state_dict": {}}, "OpenAI Whisper"),
        ({"model.encoder.conv1.weight": torch.zeros(1)}, "Whisper audio encoder"),
        ({"wav2vec2.feature_extractor.conv_layers.0.conv.weight": torch.zeros(1)}, "wav2vec2"),
        ({"audio_encoder.0.w": torch.zeros(1)}, "StableSyncNet"),
        ({"input_blocks.0.0.weight": torch.zeros(1)}, "LDM"),
        (
            {
                "conv_in.weight": torch.zeros(8, 13, 3, 3),
                "conv_out.weight": torch.zeros(4, 8, 3, 3),
                "down_blocks.0": torch.zeros(1),
            },
            "LatentSync UNet",
        ),
        ({"encoder.down_blocks.0.w": torch.zeros(1)}, "VAE"),
        ({"x": "not a tensor"}, "no tensors"),
    ],
)
def test_describer_names_the_families_loaders_confuse(sd, words):
    assert words in describe_state_dict(sd)


def test_unknown_layout_is_described_but_not_identified():
    sd = {"something.else": torch.zeros(1)}
    assert identify_state_dict(sd) is None
    assert "unrecognised" in describe_state_dict(sd) and "something.else" in describe_state_dict(sd)
