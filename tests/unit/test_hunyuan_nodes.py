"""HunyuanVideo-I2V nodes run in-process on the tiny official-layout fixtures, as a workflow would chain them."""

import folder_paths
import hv_fixtures.hunyuan as fx
import pytest
import torch
from humanvideo.models import hunyuan_video_spec as hs
from humanvideo.nodes import hunyuan_i2v as nodes
from humanvideo.samplers import guidance as gd
from humanvideo.samplers import hunyuan_i2v as hi


@pytest.fixture(scope="module")
def models_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("models")
    for gen in (fx.gen_dit, fx.gen_vae, fx.gen_text, fx.gen_lora):
        gen(d)
    return d


@pytest.fixture
def folders(models_dir, monkeypatch):
    for key in ("diffusion_models", "vae", "text_encoders", "loras"):
        monkeypatch.setitem(
            folder_paths.folder_names_and_paths,
            key,
            ([str(models_dir / key)], set(folder_paths.supported_pt_extensions)),
        )
    folder_paths.filename_list_cache.clear()
    monkeypatch.setitem(hi.RESOLUTION_BASES, "360p", 96)  # tiny buckets keep the CPU run short
    yield models_dir
    folder_paths.filename_list_cache.clear()


def test_schemas_list_the_fixture_files(folders):
    inputs = {i.id: i for i in nodes.HVLoadHunyuanDiT.GET_SCHEMA().inputs}
    assert f"{fx.DIT_DIR['v2']}/mp_rank_00_model_states.pt" in inputs["model_name"].options
    te = {i.id: i for i in nodes.HVLoadHunyuanTextEncoders.GET_SCHEMA().inputs}
    assert te["llava_folder"].options == sorted([fx.CLIP_DIR, fx.LLAVA_DIR])


@pytest.mark.parametrize("release", ["v2", "v1"])
def test_full_chain(folders, release):
    model, rel_name = nodes.HVLoadHunyuanDiT.execute(
        f"{fx.DIT_DIR[release]}/mp_rank_00_model_states.pt", "default"
    ).result
    assert rel_name == (hs.RELEASE_V2.name if release == "v2" else hs.RELEASE_V1.name)
    if release == "v2":
        model, info = nodes.HVLoadHunyuanLoRA.execute(model, fx.LORA_FILE, 0.8).result
        assert "official" in info
    vae = nodes.HVLoadHunyuanVAE.execute(f"{fx.VAE_DIR}/pytorch_model.pt").result[0]
    clip, vision = nodes.HVLoadHunyuanTextEncoders.execute(fx.LLAVA_DIR, fx.CLIP_DIR, "fp32").result
    image = torch.rand(1, 48, 80, 4)  # RGBA: converted, and said so
    pos, neg, info = nodes.HVHunyuanI2VTextEncode.execute(
        clip, vision, image, "a dog runs", "bad", "v2 (replace)", model=model
    ).result
    assert ("144 image" in info) == (release == "v2") and "RGBA" in info
    pos, neg, latent, info = nodes.HVHunyuanI2VConditioning.execute(
        model, vae, pos, neg, image, "360p", 6, True, 6.0
    ).result
    assert "9 frames" in info and "not 4n+1" in info
    plan = gd.plain_cfg_plan(3.0, (gd.TEXT, gd.IMAGE)) if release == "v1" else None
    frames, out, fps, info = nodes.HVHunyuanI2VSampler.execute(
        model, pos, neg, latent, vae, 3, 2, 0.0, 1.0, guidance=plan
    ).result
    assert fps == 24.0 and frames.shape[-1] == 3
    assert frames.shape[0] == (9 if release == "v2" else 5)
    assert torch.isfinite(frames).all()


def test_lora_for_the_wrong_model_errors(folders):
    model, _ = nodes.HVLoadHunyuanDiT.execute(f"{fx.DIT_DIR['v1']}/mp_rank_00_model_states.pt", "default").result
    # the v2 LoRA targets the same modules, but a LoRA for a larger model does not fit
    from safetensors.torch import save_file

    lora = fx.tiny_official_lora("v2")
    lora["Hunyuan_video_I2V_lora_single_blocks_9_linear1.lora_down.weight"] = torch.zeros(4, 128)
    save_file(lora, str(folders / "loras" / "other.safetensors"))
    folder_paths.filename_list_cache.clear()
    with pytest.raises(ValueError, match=r"other\.safetensors.*single_blocks_9_linear1"):
        nodes.HVLoadHunyuanLoRA.execute(model, "other.safetensors", 1.0)


def test_scheduled_guidance_equals_plain_cfg(folders):
    """An HV_GUIDANCE chain 0 -> TI:s is the same formula as real CFG s."""
    model, _ = nodes.HVLoadHunyuanDiT.execute(f"{fx.DIT_DIR['v2']}/mp_rank_00_model_states.pt", "default").result
    vae = nodes.HVLoadHunyuanVAE.execute(f"{fx.VAE_DIR}/pytorch_model.pt").result[0]
    g = torch.Generator().manual_seed(0)
    cond = lambda: [
        [torch.randn(1, 7, fx.TINY_TEXT_DIM, generator=g), {"pooled_output": torch.randn(1, 768, generator=g)}]
    ]
    pos, neg = cond(), cond()
    p, n, latent, _ = hi.prepare_i2v(model, vae, pos, neg, torch.rand(1, 40, 40, 3), 5, "360p", False)
    a, _, _ = hi.sample_i2v(model, p, n, latent, seed=1, steps=2, cfg=2.5, progress=False)
    b, _, _ = hi.sample_i2v(
        model,
        p,
        n,
        latent,
        seed=1,
        steps=2,
        cfg=1.0,
        progress=False,
        guidance_plan=gd.plain_cfg_plan(2.5, (gd.TEXT, gd.IMAGE)),
    )
    torch.testing.assert_close(a["samples"], b["samples"], atol=1e-5, rtol=1e-5)
    with pytest.raises(ValueError, match="only the null pass"):
        hi.sample_i2v(model, p, n, latent, seed=1, steps=1, progress=False, guidance_plan=gd.humo_1_7b_plan())
