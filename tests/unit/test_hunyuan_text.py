"""HunyuanVideo-I2V text path: template positions, folder loading, parity of the encode with transformers."""

import comfy.clip_model
import comfy.clip_vision
import comfy.ops
import hv_fixtures.hunyuan as fx
import pytest
import torch
from humanvideo.loaders import hunyuan_text as ht
from humanvideo.models import hunyuan_template as tpl
from humanvideo.samplers import hunyuan_text_encode as te


def test_template_token_positions():
    ids = tpl.template_ids(te.llama_tokenizer(), "A cat walks on the grass, realistic style.")
    assert ids[0] == tpl.BOS_ID and ids[5] == tpl.IMAGE_TOKEN_ID
    assert [i for i, t in enumerate(ids) if t == 271][:3] == [4, 98, 102]
    layout = tpl.layout_from_ids(ids)
    assert layout.prompt_start == 103 and not layout.truncated
    assert ids[layout.prompt_end : layout.tail_start] == [128009, 128006, 78191, 128007]  # eot, assistant header
    assert ids[layout.tail_start :] == [271]
    assert layout.text_token_count == 11  # 10 prompt tokens + the final "\n\n"
    # official context sizes with padding: 144 + 252 (v2) and 288 + 252 (v1)
    assert (layout.context_len(4), layout.context_len(2)) == (396, 540)
    empty = tpl.layout_from_ids(tpl.template_ids(te.llama_tokenizer(), ""))
    assert empty.text_token_count == 1 and empty.prompt_end == empty.prompt_start  # only the final "\n\n"
    long = tpl.layout_from_ids(tpl.template_ids(te.llama_tokenizer(), "word " * 400))
    assert long.truncated and long.text_token_count == 252 and len(long.ids) == 359


def test_clip_ids_match_official_padding():
    ids = tpl.clip_ids(te.clip_tokenizer(), "a (cat:1.5)")
    assert len(ids) == 77 and ids[0] == 49406 and ids[-1] == 49407
    # the weight syntax is plain text to the official encoder (ComfyUI would strip it and re-weight)
    assert te.clip_tokenizer().decode(ids[1:-1], skip_special_tokens=True).replace(" ", "") == "a(cat:1.5)"


def load_hf(module, sd, prefix):
    """Load `prefix`-ed published-layout weights into a transformers module, whatever its nesting."""
    part = {k[len(prefix) :]: v for k, v in sd.items() if k.startswith(prefix)}
    wanted = set(module.state_dict())
    if not wanted & set(part):
        part = {k.split(".", 1)[1]: v for k, v in part.items()}
    module.load_state_dict({k: v for k, v in part.items() if k in wanted or not k.endswith("position_ids")})


@pytest.fixture(scope="module")
def encoders(tmp_path_factory):
    models = tmp_path_factory.mktemp("models")
    fx.gen_text(models)
    root = models / "text_encoders"
    clip, vision = ht.load_text_encoders(str(root / fx.LLAVA_DIR), str(root / fx.CLIP_DIR), dtype=torch.float32)
    return root, clip, vision


def test_folders_load_and_bad_folders_error(encoders, tmp_path):
    root, clip, vision = encoders
    assert clip.cond_stage_model.llama.transformer.num_layers == 4
    with pytest.raises(ValueError, match="llava_folder.*config.json"):
        ht.load_text_encoders(str(tmp_path), str(root / fx.CLIP_DIR))
    with pytest.raises(ValueError, match="vision tower"):
        ht.split_llava({}, {k: v for k, v in fx.tiny_llava_state_dict().items() if k.startswith("language_model.")})


def test_encode_matches_transformers_and_official_crop(encoders):
    from transformers import (
        CLIPTextConfig,
        CLIPTextModel,
        CLIPVisionConfig,
        CLIPVisionModel,
        LlamaConfig,
        LlamaForCausalLM,
    )

    root, clip, vision = encoders
    torch.manual_seed(0)
    image = torch.rand(1, 200, 300, 3)
    prompt = "A woman turns her head and smiles."
    emb = te.encode_i2v(clip, vision, image, prompt, interleave=4)

    cfg = fx.tiny_llava_config()
    sd = {k: v.to(torch.bfloat16).float() for k, v in fx.tiny_llava_state_dict().items()}  # as stored
    # vision tower + projector, transformers
    vt = CLIPVisionModel(CLIPVisionConfig(**{k: v for k, v in cfg["vision_config"].items() if k != "model_type"}))
    load_hf(vt, sd, "vision_tower.")
    pixels = comfy.clip_vision.clip_preprocess(image, size=336, crop=True).float()
    feats = vt(pixel_values=pixels, output_hidden_states=True).hidden_states[-2][:, 1:]
    proj = torch.nn.functional.gelu(
        feats @ sd["multi_modal_projector.linear_1.weight"].T + sd["multi_modal_projector.linear_1.bias"]
    )
    proj = proj @ sd["multi_modal_projector.linear_2.weight"].T + sd["multi_modal_projector.linear_2.bias"]
    torch.testing.assert_close(te.semantic_image_tokens(vision, image), proj[0], atol=2e-4, rtol=2e-4)

    # language model, transformers, with the 576 image embeddings expanded in place of <image>
    lm = LlamaForCausalLM(LlamaConfig(**{k: v for k, v in cfg["text_config"].items() if k != "model_type"}))
    load_hf(lm, sd, "language_model.")
    ids = tpl.template_ids(te.llama_tokenizer(), prompt)
    ids_padded = ids + [tpl.PAD_ID] * (tpl.MAX_IDS - len(ids))
    tok = lm.model.embed_tokens(torch.tensor([ids_padded]))
    x = torch.cat([tok[:, :5], proj, tok[:, 6:]], dim=1)
    mask = torch.tensor([[1] * len(ids) + [0] * (tpl.MAX_IDS - len(ids))])  # over the 359 input ids
    expanded = torch.cat([mask[:, :5], torch.ones(1, 576, dtype=mask.dtype), mask[:, 6:]], dim=1)
    h = lm(inputs_embeds=x, attention_mask=expanded, output_hidden_states=True).hidden_states[-3]
    # official crop (hyvideo/text_encoder/__init__.py), written out with its own index arithmetic
    idx = [i for i, t in enumerate(ids_padded) if t == 271][-1]
    text = torch.cat([h[:, 103 - 1 + 576 : idx - 1 + 576 - 4], h[:, idx - 1 + 576 :]], dim=1)
    text_mask = torch.cat([mask[:, 103 : idx - 4], mask[:, idx:]], dim=1)
    official = torch.cat([h[:, 5:581][:, ::4], text], dim=1)
    assert official.shape[1] == 396
    keep = torch.cat([torch.ones(144, dtype=torch.bool), text_mask[0].bool()])
    assert emb.image_tokens == 144 and emb.text_tokens == int(text_mask.sum())
    torch.testing.assert_close(emb.context[0], official[0][keep], atol=2e-4, rtol=2e-4)

    # CLIP-L pooled output (no ComfyUI weight syntax, 77 tokens)
    ccfg = fx.tiny_clip_config()["text_config"]
    ct = CLIPTextModel(CLIPTextConfig(**{k: v for k, v in ccfg.items() if k != "model_type"}))
    csd = {k: v.to(torch.bfloat16).float() for k, v in fx.tiny_clip_state_dict().items()}
    load_hf(ct, {k: v for k, v in csd.items() if k.startswith("text_model.")}, "")
    cids = te.clip_tokenizer()(prompt, padding="max_length", max_length=77, truncation=True, return_tensors="pt")
    torch.testing.assert_close(emb.pooled, ct(input_ids=cids["input_ids"]).pooler_output, atol=2e-4, rtol=2e-4)


def test_v1_interleave_keeps_288_image_tokens(encoders):
    _, clip, vision = encoders
    emb = te.encode_i2v(clip, vision, torch.zeros(1, 64, 64, 3), tpl.NEGATIVE_PROMPT_I2V, interleave=2)
    assert emb.image_tokens == 288
    assert emb.context.shape[-1] == fx.TINY_TEXT_DIM and emb.pooled.shape == (1, 768)


def test_real_llava_and_clip_manifests_match_core_models():
    """xtuner/llava-llama-3-8b-v1_1-transformers and openai/clip-vit-large-patch14, on the meta device."""
    import json
    import os

    import comfy.clip_vision
    import comfy.text_encoders.llama as core_llama
    from comfy.clip_model import CLIPTextModel as CoreCLIPText
    from transformers import CLIPConfig, CLIPModel, CLIPVisionConfig, CLIPVisionModel, LlamaConfig, LlamaForCausalLM

    text = dict(
        vocab_size=128320,
        hidden_size=4096,
        intermediate_size=14336,
        num_hidden_layers=32,
        num_attention_heads=32,
        num_key_value_heads=8,
        rms_norm_eps=1e-5,
        rope_theta=500000.0,
    )
    # ViT-L/14: LLaVA's vision tower sees 336-px images, CLIP-L's vision half (unused here) 224-px ones
    vit_l14 = dict(
        hidden_size=1024, intermediate_size=4096, num_hidden_layers=24, num_attention_heads=16, patch_size=14
    )
    vision = dict(vit_l14, image_size=336, projection_dim=768)
    with torch.device("meta"):
        lm = LlamaForCausalLM(LlamaConfig(**text))
        vt = CLIPVisionModel(CLIPVisionConfig(**vision))
        clip_l = CLIPModel(
            CLIPConfig(
                text_config=dict(
                    hidden_size=768,
                    intermediate_size=3072,
                    num_hidden_layers=12,
                    num_attention_heads=12,
                    projection_dim=768,
                ),
                vision_config=dict(vit_l14, projection_dim=768),
                projection_dim=768,
            )
        )
    published = {f"language_model.{k}": v for k, v in lm.state_dict().items()}
    published.update(
        {
            f"vision_tower.{k if k.startswith('vision_model.') else 'vision_model.' + k}": v
            for k, v in vt.state_dict().items()
            if not k.endswith("position_ids")
        }
    )
    published["multi_modal_projector.linear_1.weight"] = torch.empty(4096, 1024, device="meta")
    published["multi_modal_projector.linear_1.bias"] = torch.empty(4096, device="meta")
    published["multi_modal_projector.linear_2.weight"] = torch.empty(4096, 4096, device="meta")
    published["multi_modal_projector.linear_2.bias"] = torch.empty(4096, device="meta")
    config = {
        "text_config": {"num_attention_heads": 32, "rms_norm_eps": 1e-5, "rope_theta": 500000.0},
        "vision_config": {"num_attention_heads": 16},
    }
    llama_sd, llama_cfg, vision_sd, vision_cfg = ht.split_llava(config, published)

    # the inferred configuration is core's LLaVA-Llama-3 default, so core's own network takes the weights
    defaults = core_llama.Llama2Config()
    assert all(getattr(defaults, k) == v for k, v in llama_cfg.items())
    with torch.device("meta"):
        core_lm = core_llama.Llama2({}, torch.float16, "meta", comfy.ops.manual_cast)
    core_keys = {k: tuple(v.shape) for k, v in core_lm.state_dict().items()}
    ours = {k: tuple(v.shape) for k, v in llama_sd.items() if k != "lm_head.weight"}
    assert ours == core_keys
    # the vision part: the same numbers as core's llava vision config, and core's vision network's keys
    with open(os.path.join(os.path.dirname(comfy.clip_vision.__file__), "clip_vision_config_vitl_336_llava.json")) as f:
        core_vision = json.load(f)
    assert {k: core_vision[k] for k in vision_cfg} == vision_cfg
    with torch.device("meta"):
        core_vt = comfy.clip_model.CLIPVisionModelProjection(
            {k: v for k, v in core_vision.items() if k != "projection_dim"}, None, "meta", comfy.ops.manual_cast
        )
    assert {k: tuple(v.shape) for k, v in core_vt.state_dict().items()} == {
        k: tuple(v.shape) for k, v in vision_sd.items()
    }

    clip_sd, clip_cfg = ht.split_clip_l({"text_config": {"num_attention_heads": 12}}, dict(clip_l.state_dict()))
    with open(os.path.join(os.path.dirname(comfy.clip_vision.__file__), "sd1_clip_config.json")) as f:
        core_clip = json.load(f)
    assert {k: core_clip[k] for k in clip_cfg} == clip_cfg
    with torch.device("meta"):
        core_text = CoreCLIPText(core_clip, None, "meta", comfy.ops.manual_cast)
    core_text_keys = {k for k in core_text.state_dict() if not k.startswith("text_projection")}
    assert {k for k in clip_sd if not k.endswith("position_ids")} == core_text_keys
