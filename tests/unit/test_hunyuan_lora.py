"""Official kohya-style HunyuanVideo-I2V LoRAs: key mapping on the real configuration, merge numerics."""

import comfy.ldm.hunyuan_video.model
import comfy.model_detection
import comfy.ops
import hv_fixtures.hunyuan as fx
import pytest
import torch
from humanvideo.loaders import hunyuan_dit as hd
from humanvideo.loaders import hunyuan_lora as hl
from humanvideo.models import hunyuan_video_spec as hs


@pytest.mark.parametrize("cfg", [hs.REAL_V1, hs.REAL_V2])
def test_every_official_target_module_maps_to_a_core_model_key(cfg):
    official = {k: torch.empty(s, device="meta") for k, s in hd.official_manifest(cfg).items()}
    net = comfy.ldm.hunyuan_video.model.HunyuanVideo(
        **comfy.model_detection.detect_unet_config(official, ""),
        device="meta",
        operations=comfy.ops.disable_weight_init,
    )
    core = {k: tuple(v.shape) for k, v in net.state_dict().items()}
    targets = hl.peft_targets(cfg)
    # PEFT suffix matching hits: 20 x 2 x 5 double-block linears, 40 x 3 single, 2 x 2 refiner MLPs, final linear
    assert len(targets) == cfg.double_blocks * 10 + cfg.single_blocks * 3 + cfg.refiner_blocks * 2 + 1
    assert "double_blocks.0.img_mod.linear" in targets and "txt_in.individual_token_refiner.blocks.1.mlp.fc2" in targets
    shapes = hl.official_linear_modules(cfg)
    synthetic = {}
    for m in targets:
        out_f, in_f = shapes[m]
        synthetic[f"{hl.kohya_name(m)}.lora_down.weight"] = torch.empty(8, in_f, device="meta")
        synthetic[f"{hl.kohya_name(m)}.lora_up.weight"] = torch.empty(out_f, 8, device="meta")
        synthetic[f"{hl.kohya_name(m)}.alpha"] = torch.empty((), device="meta")
    converted = hl.convert_official_lora(synthetic, cfg)
    assert len(converted) == 2 * len(targets)
    for key, value in converted.items():
        module = key[len("diffusion_model.") :].rsplit(".lora_", 1)[0]
        weight = core[module + ".weight"]
        assert (value.shape[0] if key.endswith("up.weight") else value.shape[1]) == (
            weight[0] if key.endswith("up.weight") else weight[1]
        )
    assert hl.kohya_name("double_blocks.0.img_attn_qkv") == "Hunyuan_video_I2V_lora_double_blocks_0_img_attn_qkv"


def tiny_model(release="v2"):
    model, _ = hd.load_state_dict_as_model(fx.tiny_dit_state_dict(release), "fp32")
    return model


def test_lora_merge_equals_official_formula():
    model = tiny_model()
    lora = fx.tiny_official_lora("v2", rank=4)
    # a stored alpha different from the rank must not change the result: the official loader ignores it
    lora = {k: (torch.tensor(1.0) if k.endswith(".alpha") else v) for k, v in lora.items()}
    patched, n, fmt = hl.apply_hunyuan_lora(model, lora, 0.7)
    assert n == len(hl.peft_targets(fx.tiny_dit_config("v2"))) and fmt.startswith("official")
    patched.patch_model()
    try:
        dm = patched.model.diffusion_model
        base = hd.to_core_keys(fx.tiny_dit_state_dict("v2"))
        name = "Hunyuan_video_I2V_lora_double_blocks_1_txt_mlp_fc1"
        expected = base["double_blocks.1.txt_mlp.0.weight"] + 0.7 * (
            lora[f"{name}.lora_up.weight"] @ lora[f"{name}.lora_down.weight"]
        )
        torch.testing.assert_close(dm.double_blocks[1].txt_mlp[0].weight, expected)
        name = "Hunyuan_video_I2V_lora_single_blocks_0_modulation_linear"
        expected = base["single_blocks.0.modulation.lin.weight"] + 0.7 * (
            lora[f"{name}.lora_up.weight"] @ lora[f"{name}.lora_down.weight"]
        )
        torch.testing.assert_close(dm.single_blocks[0].modulation.lin.weight, expected)
        # unpatched layers stay as loaded
        torch.testing.assert_close(dm.img_in.proj.weight, base["img_in.proj.weight"])
    finally:
        patched.unpatch_model()


def test_foreign_lora_lists_unmapped_keys():
    model = tiny_model()
    wan_lora = {
        "diffusion_model.blocks.0.self_attn.q.lora_down.weight": torch.zeros(4, 128),
        "diffusion_model.blocks.0.self_attn.q.lora_up.weight": torch.zeros(128, 4),
    }
    with pytest.raises(ValueError, match=r"blocks\.0\.self_attn\.q"):
        hl.apply_hunyuan_lora(model, wan_lora, 1.0)
    stray = dict(fx.tiny_official_lora("v2"))
    stray["Hunyuan_video_I2V_lora_double_blocks_7_img_attn_qkv.lora_down.weight"] = torch.zeros(4, 128)
    with pytest.raises(ValueError, match="double_blocks_7_img_attn_qkv"):
        hl.apply_hunyuan_lora(model, stray, 1.0)


def test_lora_of_other_size_is_rejected():
    model = tiny_model()
    lora = fx.tiny_official_lora("v2")
    k = "Hunyuan_video_I2V_lora_double_blocks_0_img_attn_qkv.lora_down.weight"
    lora[k] = torch.zeros(4, 3072)
    with pytest.raises(ValueError, match="do not fit"):
        hl.apply_hunyuan_lora(model, lora, 1.0)


def test_core_format_lora_passes_through():
    model = tiny_model()
    lora = {
        "diffusion_model.double_blocks.0.img_attn_qkv.lora_down.weight": torch.randn(2, 128),
        "diffusion_model.double_blocks.0.img_attn_qkv.lora_up.weight": torch.randn(384, 2),
    }
    _, n, fmt = hl.apply_hunyuan_lora(model, lora, 1.0)
    assert n == 1 and fmt.startswith("ComfyUI")
