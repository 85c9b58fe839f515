"""HuMo DiT loader: official layouts -> core MODEL, manifests of the real sizes, wrong-file errors."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import comfy.model_detection
import comfy.ops
import comfy.sd
import folder_paths
import hv_fixtures
import pytest
import torch
from comfy.ldm.wan.model import HumoWanModel
from humanvideo.loaders import humo_dit
from humanvideo.loaders.checkpoint_files import describe_state_dict, load_state_dict
from humanvideo.nodes import humo_loaders
from safetensors.torch import save_file


def meta_sd(manifest: dict[str, tuple[int, ...]]) -> dict[str, torch.Tensor]:
    return {k: torch.empty(s, device="meta") for k, s in manifest.items()}


@pytest.fixture(scope="module")
def models_dir(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("models")
    hv_fixtures.generate(d, ["humo_1_7b", "humo_17b", "wan21_vae"])
    return d


def model_tensors(patcher) -> dict[str, torch.Tensor]:
    return {k: v.detach().float() for k, v in patcher.model.diffusion_model.state_dict().items()}


def fp8_layer(module: torch.nn.Module) -> tuple[torch.dtype, torch.Tensor]:
    """(stored dtype, dequantized float32 weight) of a scaled-fp8 linear layer as core built it."""
    weight = module.weight
    if hasattr(weight, "storage_dtype") and hasattr(weight, "dequantize"):  # mixed-precision QuantizedTensor
        return weight.storage_dtype, weight.dequantize().float()
    return weight.dtype, weight.float() * module.scale_weight.float()


def assert_same_tensors(a: dict, b: dict) -> None:
    assert sorted(a) == sorted(b)
    for k in a:
        assert torch.equal(a[k], b[k]), k


# --- manifests of the two released configurations -------------------------------------------------


def test_official_manifest_matches_published_key_counts():
    # 1583 / 1193 tensors and the patch embedding shapes are those of the released files.
    m17 = humo_dit.official_key_manifest(humo_dit.HUMO_17B)
    m17s = humo_dit.official_key_manifest(humo_dit.HUMO_1_7B)
    assert len(m17) == 1583 and len(m17s) == 1193
    assert m17["patch_embedding.weight"] == (5120, 36, 1, 2, 2)
    assert m17s["patch_embedding.weight"] == (1536, 16, 1, 2, 2)
    assert m17["audio_proj.audio_proj_glob_1.layer.weight"] == (512, 51200)
    assert m17["blocks.39.audio_cross_attn_wrapper.audio_cross_attn.k.weight"] == (5120, 1536)
    assert not any("img_emb" in k or "k_img" in k for k in m17)


@pytest.mark.parametrize("cfg", [humo_dit.HUMO_17B, humo_dit.HUMO_1_7B], ids=["17B", "1.7B"])
@pytest.mark.parametrize("prefix", ["", "model.diffusion_model.", "module."])
def test_converted_official_layout_equals_core_model_on_meta(cfg, prefix):
    official = meta_sd({prefix + k: v for k, v in humo_dit.official_key_manifest(cfg).items()})
    converted = humo_dit.to_core_layout(official)
    assert humo_dit.check_humo_state_dict(converted, "meta") == cfg
    assert humo_dit.infer_config(converted) == cfg

    # Core infers its own config from the converted keys and picks the HuMo model class.
    unet_config = comfy.model_detection.detect_unet_config(converted, "")
    assert unet_config["model_type"] == "humo"
    assert (
        unet_config["dim"],
        unet_config["ffn_dim"],
        unet_config["num_layers"],
        unet_config["in_dim"],
        unet_config["num_heads"],
    ) == (cfg.dim, cfg.ffn_dim, cfg.num_layers, cfg.in_dim, cfg.num_heads)
    model_config = comfy.model_detection.model_config_from_unet(converted, "")
    assert type(model_config).__name__ == "WAN21_HuMo"

    with torch.device("meta"):
        core = HumoWanModel(
            **{k: v for k, v in unet_config.items() if k != "model_type"}, operations=comfy.ops.disable_weight_init
        )
    core_manifest = {k: tuple(v.shape) for k, v in core.state_dict().items()}
    ours = {k: tuple(v.shape) for k, v in converted.items()}
    assert sorted(set(core_manifest) - set(ours)) == []  # nothing missing
    assert sorted(set(ours) - set(core_manifest)) == []  # nothing unexpected
    assert core_manifest == ours


def test_describe_names_the_sizes():
    assert "HuMo-17B" in describe_state_dict(meta_sd(humo_dit.official_key_manifest(humo_dit.HUMO_17B)))
    assert "HuMo-1.7B" in describe_state_dict(meta_sd(humo_dit.official_key_manifest(humo_dit.HUMO_1_7B)))


# --- tiny official-layout files load like the Comfy repacks ---------------------------------------


def test_ema_pth_loads_like_repack(models_dir, tmp_path):
    # Same tensors in the Comfy-Org repack layout (single unprefixed safetensors), loaded by core's own
    # UNETLoader path with the same weight dtype: every model tensor must be identical.
    ema = models_dir / "diffusion_models" / "HuMo-1.7B" / "ema.pth"
    raw = torch.load(ema, weights_only=True)
    repack = tmp_path / "humo_1.7B.safetensors"
    save_file(raw, str(repack))

    ours, cfg = humo_dit.load_humo_model(ema, "fp16")
    core = comfy.sd.load_diffusion_model(str(repack), model_options={"dtype": torch.float16})
    assert (cfg.in_dim, cfg.dim, cfg.num_layers) == (16, 128, 2)
    assert type(ours.model).__name__ == "WAN21_HuMo"
    assert ours.model.diffusion_model.blocks[0].ffn[0].weight.dtype == torch.float16
    assert_same_tensors(model_tensors(ours), model_tensors(core))


def test_shard_set_loads_like_single_file_repack(models_dir, tmp_path):
    folder = models_dir / "diffusion_models" / "HuMo-17B"
    full = load_state_dict(folder)
    repack = tmp_path / "humo_17B.safetensors"
    save_file({"model.diffusion_model." + k: v for k, v in full.items()}, str(repack))

    core = comfy.sd.load_diffusion_model(str(repack))
    expected = model_tensors(core)
    # the folder, its index json and any one shard name the same set
    for choice in (folder, folder / "humo.safetensors.index.json", folder / "humo-00002-of-00003.safetensors"):
        ours, cfg = humo_dit.load_humo_model(choice)
        assert cfg.in_dim == 36
        assert_same_tensors(model_tensors(ours), expected)


def test_loaded_shard_set_runs_a_humo_forward(models_dir):
    folder = models_dir / "diffusion_models" / "HuMo-17B"
    ours, _ = humo_dit.load_humo_model(folder, "default")
    x = torch.randn(1, 16, 2, 4, 4, generator=torch.Generator().manual_seed(0))
    ref = torch.randn(1, 36, 1, 4, 4, generator=torch.Generator().manual_seed(1))
    context = torch.randn(1, 8, 4096, generator=torch.Generator().manual_seed(2)) * 0.1
    audio = torch.randn(1, 2, 8, 5, 1280, generator=torch.Generator().manual_seed(3)) * 0.1
    c_concat = torch.zeros(1, 20, 2, 4, 4)
    dm = ours.model.diffusion_model
    out = dm(torch.cat([x, c_concat], 1), torch.tensor([500.0]), context, audio_embed=audio, reference_latent=ref)
    assert out.shape == (1, 16, 2, 4, 4) and torch.isfinite(out).all()


def test_fp8_scaled_repack_goes_through_core(models_dir, tmp_path):
    raw = torch.load(models_dir / "diffusion_models" / "HuMo-1.7B" / "ema.pth", weights_only=True)
    scaled = {}
    for k, v in raw.items():
        if k.startswith("blocks.") and k.endswith(".weight") and v.ndim == 2:
            scale = v.abs().amax() / 448.0
            scaled[k] = (v / scale).to(torch.float8_e4m3fn)
            scaled[k[: -len("weight")] + "scale_weight"] = scale.reshape(1)
        else:
            scaled[k] = v.half()
    scaled["scaled_fp8"] = torch.empty(2, dtype=torch.float8_e4m3fn)
    path = tmp_path / "Wan2_1-HuMo-1_3B_fp8_e4m3fn_scaled_KJ.safetensors"
    save_file(scaled, str(path))

    ours, _ = humo_dit.load_humo_model(path)
    core = comfy.sd.load_diffusion_model(str(path))
    # Every scaled layer keeps its fp8 weights and its scale, whatever core's representation of them
    # (0.3.75: fp8 weight + scale_weight; newer cores: a mixed-precision QuantizedTensor).
    for k, v in scaled.items():
        if k.endswith(".scale_weight"):
            layer = k[: -len(".scale_weight")]
            stored_dtype, weight = fp8_layer(ours.model.diffusion_model.get_submodule(layer))
            assert stored_dtype == torch.float8_e4m3fn, layer
            assert torch.equal(weight, scaled[layer + ".weight"].float() * v.float()), layer
    assert_same_tensors(model_tensors(ours), model_tensors(core))


def test_weight_dtype_fp8(models_dir):
    ours, _ = humo_dit.load_humo_model(models_dir / "diffusion_models" / "HuMo-1.7B" / "ema.pth", "fp8_e4m3fn")
    assert ours.model.diffusion_model.blocks[1].ffn[2].weight.dtype == torch.float8_e4m3fn


# --- wrong files ---------------------------------------------------------------------------------


def test_plain_wan_is_refused(models_dir, tmp_path):
    raw = torch.load(models_dir / "diffusion_models" / "HuMo-1.7B" / "ema.pth", weights_only=True)
    plain = {k: v for k, v in raw.items() if "audio" not in k}
    path = tmp_path / "wan2.1_t2v_1.3B.safetensors"
    save_file(plain, str(path))
    with pytest.raises(
        ValueError, match=r"wan2.1_t2v_1.3B.safetensors is a plain Wan2.1.*text-to-video.*expected a HuMo DiT"
    ):
        humo_dit.load_humo_model(path)


def test_vae_is_refused(models_dir):
    with pytest.raises(ValueError, match=r"Wan2.1_VAE.pth is a Wan2.1 VAE.*expected a HuMo DiT"):
        humo_dit.load_humo_model(models_dir / "vae" / "Wan2.1_VAE.pth")


def test_missing_shard_is_named(models_dir, tmp_path):
    folder = tmp_path / "HuMo-17B"
    shutil.copytree(models_dir / "diffusion_models" / "HuMo-17B", folder)
    (folder / "humo-00003-of-00003.safetensors").unlink()
    with pytest.raises(ValueError, match=r"incomplete: missing humo-00003-of-00003.safetensors \(1 of 3 shards\)"):
        humo_dit.load_humo_model(folder)


def test_shard_without_index_is_explained(models_dir, tmp_path):
    shard = tmp_path / "humo-00001-of-00003.safetensors"
    shutil.copy(models_dir / "diffusion_models" / "HuMo-17B" / shard.name, shard)
    with pytest.raises(ValueError, match=r"shard 1 of 3 .* no humo.safetensors.index.json"):
        humo_dit.load_humo_model(shard)


def test_index_of_another_set_is_refused(models_dir, tmp_path):
    # An index whose shards hold only part of the DiT (a shard set mixed from two downloads).
    folder = tmp_path / "mixed"
    folder.mkdir()
    src = models_dir / "diffusion_models" / "HuMo-17B"
    index = json.loads((src / "humo.safetensors.index.json").read_text())
    keep = "humo-00001-of-00003.safetensors"
    index["weight_map"] = {k: v for k, v in index["weight_map"].items() if v == keep}
    shutil.copy(src / keep, folder / keep)
    (folder / "humo.safetensors.index.json").write_text(json.dumps(index))
    with pytest.raises(ValueError, match=r"(incomplete HuMo DiT|is a).*"):
        humo_dit.load_humo_model(folder)

    # a shard that lacks tensors its index places in it
    index2 = json.loads((src / "humo.safetensors.index.json").read_text())
    index2["weight_map"]["blocks.7.extra.weight"] = keep
    folder2 = tmp_path / "bad_index"
    shutil.copytree(src, folder2)
    (folder2 / "humo.safetensors.index.json").write_text(json.dumps(index2))
    with pytest.raises(ValueError, match=r"shard humo-00001-of-00003.safetensors does not hold 1 tensors"):
        humo_dit.load_humo_model(folder2)


def test_truncated_dit_names_missing_tensors(models_dir, tmp_path):
    raw = torch.load(models_dir / "diffusion_models" / "HuMo-1.7B" / "ema.pth", weights_only=True)
    del raw["blocks.1.audio_cross_attn_wrapper.audio_cross_attn.q.weight"]
    path = tmp_path / "ema.pth"
    torch.save(raw, path)
    with pytest.raises(ValueError, match=r"incomplete HuMo DiT .* 1 tensors missing \(blocks.1.audio_cross_attn"):
        humo_dit.load_humo_model(path)


def test_unsafe_pickle_and_junk_are_refused(tmp_path):
    pkl = tmp_path / "evil.pth"
    torch.save({"x": torch.nn.Linear(1, 1)}, pkl)  # a pickled module: arbitrary classes, refused by weights_only
    with pytest.raises(ValueError, match=r"evil.pth cannot be read as a plain torch state dict"):
        humo_dit.load_humo_model(pkl)
    junk = tmp_path / "notes.safetensors"
    junk.write_text("hello")
    with pytest.raises(ValueError, match=r"notes.safetensors is not a readable safetensors file"):
        humo_dit.load_humo_model(junk)
    with pytest.raises(ValueError, match=r"weight_dtype 'int4'"):
        humo_dit.load_humo_model(junk, "int4")


# --- node ------------------------------------------------------------------------------------------


@pytest.fixture
def model_folders(models_dir, monkeypatch):
    for key, sub in (("diffusion_models", "diffusion_models"), ("vae", "vae"), ("text_encoders", "text_encoders")):
        exts = folder_paths.folder_names_and_paths[key][1]
        monkeypatch.setitem(folder_paths.folder_names_and_paths, key, ([str(models_dir / sub)], exts))
    folder_paths.filename_list_cache.clear()
    yield models_dir
    folder_paths.filename_list_cache.clear()


def test_node_lists_shard_sets_and_loads(model_folders):
    choices = humo_loaders.diffusion_model_choices()
    assert "HuMo-17B" in choices
    assert str(Path("HuMo-17B") / "humo.safetensors.index.json") in choices
    assert str(Path("HuMo-1.7B") / "ema.pth") in choices
    assert not any("-of-00003" in c for c in choices)  # loose shards are hidden behind their index

    schema = humo_loaders.HVLoadHuMoModel.GET_SCHEMA()
    assert schema.node_id == "HVLoadHuMoModel" and schema.category == "HumanVideo/loaders"
    assert all(i.tooltip for i in schema.inputs) and all(o.tooltip for o in schema.outputs)
    out = humo_loaders.HVLoadHuMoModel.execute("HuMo-17B", "bf16")
    assert type(out.result[0].model).__name__ == "WAN21_HuMo"
    with pytest.raises(ValueError, match=r"'nope.safetensors' not found in models/diffusion_models"):
        humo_loaders.HVLoadHuMoModel.execute("nope.safetensors", "default")
