"""HunyuanVideo-I2V DiT loading: manifests of the real configuration vs core's network, official vs repack files."""

import math

import comfy.ldm.hunyuan_video.model
import comfy.model_detection
import comfy.ops
import hv_fixtures.hunyuan as fx
import pytest
import torch
from humanvideo.loaders import hunyuan_dit as hd
from humanvideo.models import hunyuan_video_spec as hs


def meta_sd(manifest):
    return {k: torch.empty(s, device="meta", dtype=torch.bfloat16) for k, s in manifest.items()}


def core_network_shapes(official_sd):
    """Build core's own HunyuanVideo from core's own config detection, on the meta device."""
    unet_config = comfy.model_detection.detect_unet_config(official_sd, "")
    net = comfy.ldm.hunyuan_video.model.HunyuanVideo(
        **unet_config, device="meta", dtype=torch.bfloat16, operations=comfy.ops.disable_weight_init
    )
    return {k: tuple(v.shape) for k, v in net.state_dict().items()}


@pytest.mark.parametrize("cfg,core_class", [(hs.REAL_V1, "HunyuanVideoI2V"), (hs.REAL_V2, "HunyuanVideo")])
def test_real_manifest_equals_core_model_keys(cfg, core_class):
    official = meta_sd(hd.official_manifest(cfg))
    renamed = {k: tuple(v.shape) for k, v in hd.to_core_keys(official).items()}
    core = core_network_shapes(official)
    assert sorted(set(core) - set(renamed)) == []  # nothing missing
    assert sorted(set(renamed) - set(core)) == []  # nothing unexpected
    assert renamed == core
    # core picks the model class of each release (v1: concat channels, v2: token replace)
    assert type(comfy.model_detection.model_config_from_unet(official, "")).__name__ == core_class
    # what our config inference reads back from those weights is the real configuration
    assert hd.config_from_state_dict(official) == cfg


def test_real_block_parameter_count_is_12_46_billion():
    m = hd.official_manifest(hs.REAL_V2)
    blocks = sum(math.prod(s) for k, s in m.items() if k.startswith(("double_blocks.", "single_blocks.")))
    assert 12.40e9 < blocks < 12.50e9
    assert m["img_in.proj.weight"] == (3072, 16, 1, 2, 2)
    assert hd.official_manifest(hs.REAL_V1)["img_in.proj.weight"] == (3072, 33, 1, 2, 2)
    assert "guidance_in.mlp.0.weight" in m and "guidance_in.mlp.0.weight" not in hd.official_manifest(hs.REAL_V1)


def test_release_detection():
    assert hs.release_for(33, False) is hs.RELEASE_V1
    assert hs.release_for(16, True) is hs.RELEASE_V2
    assert (hs.RELEASE_V1.image_interleave, hs.RELEASE_V2.image_interleave) == (2, 4)
    with pytest.raises(ValueError, match="SkyReels"):
        hs.release_for(32, False)
    with pytest.raises(ValueError, match="guidance_in"):
        hs.release_for(16, False)


@pytest.mark.parametrize("release", ["v1", "v2"])
def test_official_pt_and_repack_safetensors_load_to_the_same_tensors(tmp_path, release):
    from safetensors.torch import save_file

    sd = fx.tiny_dit_state_dict(release, seed=3)
    official = tmp_path / "mp_rank_00_model_states.pt"
    torch.save({"module": sd}, official)
    repack = tmp_path / "repack.safetensors"
    save_file({f"model.diffusion_model.{k}": v.to(torch.bfloat16) for k, v in sd.items()}, str(repack))

    m1, r1 = hd.load_hunyuan_dit(str(official), "fp32")
    m2, r2 = hd.load_hunyuan_dit(str(repack), "fp32")
    assert r1 is r2 is (hs.RELEASE_V1 if release == "v1" else hs.RELEASE_V2)
    s1 = m1.model.diffusion_model.state_dict()
    s2 = m2.model.diffusion_model.state_dict()
    assert set(s1) == set(s2)
    expected = hd.to_core_keys(sd)
    for k, v in expected.items():
        assert torch.equal(s1[k], v), k
        assert torch.equal(s2[k], v.to(torch.bfloat16).float()), k
    assert hs.release_of_model(m1) is r1


def test_fp8_weight_dtype(tmp_path):
    path = tmp_path / "m.pt"
    torch.save({"module": fx.tiny_dit_state_dict("v2")}, path)
    model, _ = hd.load_hunyuan_dit(str(path), "fp8_e4m3fn")
    assert model.model.diffusion_model.double_blocks[0].img_attn.qkv.weight.dtype == torch.float8_e4m3fn


def test_bad_files_give_clear_errors(tmp_path):
    sd = fx.tiny_dit_state_dict("v2")
    broken = dict(sd)
    broken.pop("double_blocks.1.img_mlp.fc2.weight")
    path = tmp_path / "broken.pt"
    torch.save({"module": broken}, path)
    with pytest.raises(ValueError, match=r"broken\.pt.*missing.*img_mlp\.fc2"):
        hd.load_hunyuan_dit(str(path))

    vae_like = tmp_path / "vae.pt"
    torch.save({"decoder.conv_in.conv.weight": torch.zeros(4, 16, 3, 3, 3)}, vae_like)
    with pytest.raises(ValueError, match="not a HunyuanVideo DiT"):
        hd.load_hunyuan_dit(str(vae_like))

    with pytest.raises(ValueError, match="does not exist"):
        hd.load_hunyuan_dit(str(tmp_path / "nope.pt"))
    with pytest.raises(ValueError, match="weight_dtype"):
        hd.load_state_dict_as_model(sd, "int3")
