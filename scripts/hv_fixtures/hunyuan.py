"""Tiny HunyuanVideo-I2V checkpoints in the official file layouts.

- `models/diffusion_models/hunyuan-video-i2v-tiny-v1/mp_rank_00_model_states.pt` and `...-v2/...`:
  DeepSpeed-style ``{"module": state_dict}`` with the official key names, v1 (33 ch) and v2 (16 ch + guidance);
- `models/vae/hunyuan-video-i2v-tiny-vae/pytorch_model.pt`: the official 884-16c VAE key layout, narrow;
- `models/text_encoders/llava-llama-3-tiny/` (transformers LLaVA folder: Llama LM + CLIP vision tower +
  projector, xtuner's key layout) and `models/text_encoders/clip-vit-large-patch14-tiny/` (transformers
  CLIPModel folder);
- `models/loras/Hunyuan_video_I2V_lora_tiny_kohaya_weights.safetensors`: official kohya-style LoRA for v2.

All weights are random from fixed seeds; only the widths are small (head_dim stays 128 and the Llama
vocabulary stays 128320 because core hard-codes the RoPE split and the tokenizer).
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

from . import register

TINY_HIDDEN = 128  # one 128-wide head: core derives heads = hidden // 128
TINY_TEXT_DIM = 128  # LLaVA hidden size of the tiny text encoder (core fixes head_dim 128)
DIT_DIR = {"v1": "hunyuan-video-i2v-tiny-v1", "v2": "hunyuan-video-i2v-tiny-v2"}
VAE_DIR = "hunyuan-video-i2v-tiny-vae"
LLAVA_DIR = "llava-llama-3-tiny"
CLIP_DIR = "clip-vit-large-patch14-tiny"
LORA_FILE = "Hunyuan_video_I2V_lora_tiny_kohaya_weights.safetensors"
LLAMA_VOCAB = 128320


def _dit_module():
    from humanvideo.loaders import hunyuan_dit

    return hunyuan_dit


def tiny_dit_config(release: str):
    from humanvideo.models.hunyuan_video_spec import HunyuanDiTConfig

    return HunyuanDiTConfig(
        in_channels=33 if release == "v1" else 16,
        hidden_size=TINY_HIDDEN,
        heads=1,
        double_blocks=2,
        single_blocks=2,
        text_dim=TINY_TEXT_DIM,
        guidance_embed=release == "v2",
    )


def tiny_dit_state_dict(release: str, seed: int = 0) -> dict[str, torch.Tensor]:
    """Random official-named weights; norms near 1 and small projections keep activations finite."""
    g = torch.Generator().manual_seed(seed)
    sd = {}
    for key, shape in sorted(_dit_module().official_manifest(tiny_dit_config(release)).items()):
        if "norm" in key and len(shape) == 1:
            sd[key] = 1.0 + 0.1 * torch.randn(shape, generator=g)
        else:
            fan_in = max(1, int(torch.tensor(shape[1:]).prod().item()) if len(shape) > 1 else 1)
            sd[key] = torch.randn(shape, generator=g) / fan_in**0.5
    return sd


def tiny_official_lora(release: str = "v2", rank: int = 4, seed: int = 1) -> dict[str, torch.Tensor]:
    """Every module the official trainer targets, in the official kohya-style key format."""
    from humanvideo.loaders import hunyuan_lora

    cfg = tiny_dit_config(release)
    shapes = hunyuan_lora.official_linear_modules(cfg)
    g = torch.Generator().manual_seed(seed)
    out = {}
    for module in hunyuan_lora.peft_targets(cfg):
        out_f, in_f = shapes[module]
        name = hunyuan_lora.kohya_name(module)
        out[f"{name}.lora_down.weight"] = torch.randn(rank, in_f, generator=g) * 0.1
        out[f"{name}.lora_up.weight"] = torch.randn(out_f, rank, generator=g) * 0.1
        out[f"{name}.alpha"] = torch.tensor(float(rank))
    return out


@register("hunyuan_dit")
def gen_dit(models_dir: Path) -> list[Path]:
    written = []
    for i, release in enumerate(("v1", "v2")):
        path = Path(models_dir) / "diffusion_models" / DIT_DIR[release] / "mp_rank_00_model_states.pt"
        path.parent.mkdir(parents=True, exist_ok=True)
        torch.save({"module": tiny_dit_state_dict(release, seed=10 + i)}, path)
        written.append(path)
    return written


@register("hunyuan_lora")
def gen_lora(models_dir: Path) -> list[Path]:
    from safetensors.torch import save_file

    path = Path(models_dir) / "loras" / LORA_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file(tiny_official_lora("v2"), str(path))
    return [path]


def tiny_llava_config() -> dict:
    """config.json of the tiny LLaVA folder, shaped like xtuner/llava-llama-3-8b-v1_1-transformers'."""
    return {
        "architectures": ["LlavaForConditionalGeneration"],
        "model_type": "llava",
        "image_token_index": 128257,
        "pad_token_id": 128258,
        "projector_hidden_act": "gelu",
        "vision_feature_layer": -2,
        "vision_feature_select_strategy": "default",
        "text_config": {
            "model_type": "llama",
            "vocab_size": LLAMA_VOCAB,
            "hidden_size": TINY_TEXT_DIM,
            "intermediate_size": 256,
            "num_hidden_layers": 4,
            "num_attention_heads": TINY_TEXT_DIM // 128,
            "num_key_value_heads": TINY_TEXT_DIM // 128,
            "head_dim": 128,
            "rms_norm_eps": 1e-5,
            "rope_theta": 500000.0,
            "max_position_embeddings": 8192,
        },
        "vision_config": {
            "model_type": "clip_vision_model",
            "hidden_size": 32,
            "intermediate_size": 64,
            "num_hidden_layers": 3,
            "num_attention_heads": 2,
            "image_size": 336,
            "patch_size": 14,
            "hidden_act": "quick_gelu",
            "layer_norm_eps": 1e-5,
            "projection_dim": 32,
        },
    }


def _random_like(module: torch.nn.Module, g: torch.Generator) -> dict[str, torch.Tensor]:
    out = {}
    for k, v in module.state_dict().items():
        if k.endswith("position_ids"):
            continue
        if v.ndim == 0:  # CLIP logit_scale
            out[k] = torch.tensor(4.6052)
        elif "norm" in k and v.ndim == 1:
            out[k] = (1.0 if k.endswith("weight") else 0.0) + 0.05 * torch.randn(v.shape, generator=g)
        else:
            out[k] = torch.randn(v.shape, generator=g) * (0.5 / max(1, v.shape[-1]) ** 0.5)
    return out


def tiny_llava_state_dict(seed: int = 5) -> dict[str, torch.Tensor]:
    """xtuner key layout: language_model.*, vision_tower.*, multi_modal_projector.*"""
    from transformers import CLIPVisionConfig, CLIPVisionModel, LlamaConfig, LlamaForCausalLM

    cfg = tiny_llava_config()
    g = torch.Generator().manual_seed(seed)
    with torch.device("meta"):
        lm = LlamaForCausalLM(LlamaConfig(**{k: v for k, v in cfg["text_config"].items() if k != "model_type"}))
        vt = CLIPVisionModel(CLIPVisionConfig(**{k: v for k, v in cfg["vision_config"].items() if k != "model_type"}))
    sd = {f"language_model.{k}": v for k, v in _random_like(lm, g).items()}
    # transformers 5 dropped the `vision_model.` level from CLIPVisionModel; the published files have it
    sd.update(
        {
            f"vision_tower.{k if k.startswith('vision_model.') else 'vision_model.' + k}": v
            for k, v in _random_like(vt, g).items()
        }
    )
    vh = cfg["vision_config"]["hidden_size"]
    sd["multi_modal_projector.linear_1.weight"] = torch.randn(TINY_TEXT_DIM, vh, generator=g) / vh**0.5
    sd["multi_modal_projector.linear_1.bias"] = torch.zeros(TINY_TEXT_DIM)
    sd["multi_modal_projector.linear_2.weight"] = (
        torch.randn(TINY_TEXT_DIM, TINY_TEXT_DIM, generator=g) / TINY_TEXT_DIM**0.5
    )
    sd["multi_modal_projector.linear_2.bias"] = torch.zeros(TINY_TEXT_DIM)
    return sd


def tiny_clip_config() -> dict:
    """Text width stays 768: its pooled output feeds the DiT's `vector_in`, which core fixes at 768."""
    return {
        "architectures": ["CLIPModel"],
        "model_type": "clip",
        "projection_dim": 32,
        "text_config": {
            "model_type": "clip_text_model",
            "vocab_size": 49408,
            "hidden_size": 768,
            "intermediate_size": 128,
            "num_hidden_layers": 2,
            "num_attention_heads": 12,
            "max_position_embeddings": 77,
            "hidden_act": "quick_gelu",
            "projection_dim": 32,
            "bos_token_id": 49406,
            "eos_token_id": 49407,
            "pad_token_id": 1,
        },
        "vision_config": {
            "model_type": "clip_vision_model",
            "hidden_size": 32,
            "intermediate_size": 64,
            "num_hidden_layers": 2,
            "num_attention_heads": 2,
            "image_size": 224,
            "patch_size": 32,
            "projection_dim": 32,
        },
    }


def tiny_clip_state_dict(seed: int = 6) -> dict[str, torch.Tensor]:
    from transformers import CLIPConfig, CLIPModel

    cfg = tiny_clip_config()
    with torch.device("meta"):
        model = CLIPModel(
            CLIPConfig(text_config=cfg["text_config"], vision_config=cfg["vision_config"], projection_dim=32)
        )
    return _random_like(model, torch.Generator().manual_seed(seed))


@register("hunyuan_text")
def gen_text(models_dir: Path) -> list[Path]:
    from safetensors.torch import save_file

    root = Path(models_dir) / "text_encoders"
    written = []
    # LLaVA: two shards + index, as the published folder (model-0000N-of-00004.safetensors)
    d = root / LLAVA_DIR
    d.mkdir(parents=True, exist_ok=True)
    (d / "config.json").write_text(json.dumps(tiny_llava_config(), indent=1))
    sd = {k: v.to(torch.bfloat16).contiguous() for k, v in tiny_llava_state_dict().items()}
    shards = {
        "model-00001-of-00002.safetensors": {k: v for k, v in sd.items() if k.startswith("language_model.")},
        "model-00002-of-00002.safetensors": {k: v for k, v in sd.items() if not k.startswith("language_model.")},
    }
    weight_map = {}
    for name, part in shards.items():
        save_file(part, str(d / name))
        weight_map.update({k: name for k in part})
        written.append(d / name)
    (d / "model.safetensors.index.json").write_text(json.dumps({"metadata": {}, "weight_map": weight_map}))
    written += [d / "config.json", d / "model.safetensors.index.json"]
    # CLIP-L: one file, as openai/clip-vit-large-patch14
    d = root / CLIP_DIR
    d.mkdir(parents=True, exist_ok=True)
    (d / "config.json").write_text(json.dumps(tiny_clip_config(), indent=1))
    save_file(
        {k: v.to(torch.bfloat16).contiguous() for k, v in tiny_clip_state_dict().items()}, str(d / "model.safetensors")
    )
    written += [d / "config.json", d / "model.safetensors"]
    return written


TINY_VAE = {"block_out_channels": (32, 32, 32, 32), "layers_per_block": 1, "norm_num_groups": 32}


def tiny_vae_state_dict(seed: int = 7) -> dict[str, torch.Tensor]:
    """Official 884-16c key layout (diffusers' AutoencoderKLHunyuanVideo loads the official file unrenamed).

    Widths are a multiple of 32 because core's VAE GroupNorm uses 32 groups.
    """
    from diffusers import AutoencoderKLHunyuanVideo

    torch.manual_seed(seed)
    return {k: v.detach().clone() for k, v in AutoencoderKLHunyuanVideo(**TINY_VAE).state_dict().items()}


@register("hunyuan_vae")
def gen_vae(models_dir: Path) -> list[Path]:
    path = Path(models_dir) / "vae" / VAE_DIR / "pytorch_model.pt"
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(tiny_vae_state_dict(), path)
    return [path]


# --- an independent reference network for parity tests ------------------------------------------
# official name part -> diffusers name part, applied in order (facts of diffusers'
# scripts/convert_hunyuan_video_to_diffusers.py; its special cases are handled in to_diffusers)
RENAMES = [
    ("img_in", "x_embedder"),
    ("time_in.mlp.0", "time_text_embed.timestep_embedder.linear_1"),
    ("time_in.mlp.2", "time_text_embed.timestep_embedder.linear_2"),
    ("guidance_in.mlp.0", "time_text_embed.guidance_embedder.linear_1"),
    ("guidance_in.mlp.2", "time_text_embed.guidance_embedder.linear_2"),
    ("vector_in.in_layer", "time_text_embed.text_embedder.linear_1"),
    ("vector_in.out_layer", "time_text_embed.text_embedder.linear_2"),
    ("double_blocks", "transformer_blocks"),
    ("img_attn_q_norm", "attn.norm_q"),
    ("img_attn_k_norm", "attn.norm_k"),
    ("img_attn_proj", "attn.to_out.0"),
    ("txt_attn_q_norm", "attn.norm_added_q"),
    ("txt_attn_k_norm", "attn.norm_added_k"),
    ("txt_attn_proj", "attn.to_add_out"),
    ("img_mod.linear", "norm1.linear"),
    ("img_mlp", "ff"),
    ("txt_mod.linear", "norm1_context.linear"),
    ("txt_mlp", "ff_context"),
    ("self_attn_proj", "attn.to_out.0"),
    ("modulation.linear", "norm.linear"),
    ("final_layer.linear", "proj_out"),
    ("fc1", "net.0.proj"),
    ("fc2", "net.2"),
    ("input_embedder", "proj_in"),
]


def to_diffusers(sd: dict, hidden: int) -> dict:
    """Official DiT keys -> diffusers HunyuanVideoTransformer3DModel keys (q/k/v split, final shift/scale swap)."""
    out = {}
    for key, w in sd.items():
        k = key
        for a, b in RENAMES:
            k = k.replace(a, b)
        if "txt_in" in k:
            k = (
                k.replace("individual_token_refiner.blocks", "token_refiner.refiner_blocks")
                .replace("adaLN_modulation.1", "norm_out.linear")
                .replace("txt_in", "context_embedder")
                .replace("t_embedder.mlp.0", "time_text_embed.timestep_embedder.linear_1")
                .replace("t_embedder.mlp.2", "time_text_embed.timestep_embedder.linear_2")
                .replace("c_embedder", "time_text_embed.text_embedder")
                .replace("mlp", "ff")
            )
            if "self_attn_qkv" in k:
                for part, t in zip(("to_q", "to_k", "to_v"), w.chunk(3), strict=True):
                    out[k.replace("self_attn_qkv", f"attn.{part}")] = t
                continue
        elif "img_attn_qkv" in k or "txt_attn_qkv" in k:
            names = ("to_q", "to_k", "to_v") if "img_attn_qkv" in k else ("add_q_proj", "add_k_proj", "add_v_proj")
            src = "img_attn_qkv" if "img_attn_qkv" in k else "txt_attn_qkv"
            for part, t in zip(names, w.chunk(3), strict=True):
                out[k.replace(src, f"attn.{part}")] = t
            continue
        elif "single_blocks" in k:
            k = k.replace("single_blocks", "single_transformer_blocks")
            if ".linear1." in k:
                q, kk, v, mlp = torch.split(w, (hidden, hidden, hidden, w.shape[0] - 3 * hidden))
                base, kind = k.split(".linear1.")
                for name, t in (("attn.to_q", q), ("attn.to_k", kk), ("attn.to_v", v), ("proj_mlp", mlp)):
                    out[f"{base}.{name}.{kind}"] = t
                continue
            k = k.replace("linear2", "proj_out").replace("q_norm", "attn.norm_q").replace("k_norm", "attn.norm_k")
        elif "final_layer.adaLN_modulation.1" in k:
            shift, scale = w.chunk(2)  # official order (shift, scale); diffusers (scale, shift)
            out[k.replace("final_layer.adaLN_modulation.1", "norm_out.linear")] = torch.cat([scale, shift])
            continue
        out[k] = w
    return out


def diffusers_reference(release: str, sd: dict):
    """diffusers' HunyuanVideoTransformer3DModel with the tiny official weights `sd` (fp32, eval)."""
    from diffusers import HunyuanVideoTransformer3DModel

    cfg = tiny_dit_config(release)
    ref = HunyuanVideoTransformer3DModel(
        in_channels=cfg.in_channels,
        out_channels=16,
        num_attention_heads=cfg.heads,
        attention_head_dim=128,
        num_layers=cfg.double_blocks,
        num_single_layers=cfg.single_blocks,
        num_refiner_layers=cfg.refiner_blocks,
        mlp_ratio=4.0,
        patch_size=2,
        patch_size_t=1,
        qk_norm="rms_norm",
        guidance_embeds=cfg.guidance_embed,
        text_embed_dim=cfg.text_dim,
        pooled_projection_dim=768,
        rope_theta=256.0,
        rope_axes_dim=(16, 56, 56),
        image_condition_type="token_replace" if release == "v2" else "latent_concat",
    )
    ref.load_state_dict(to_diffusers(sd, cfg.hidden_size), strict=True)
    return ref.eval()
