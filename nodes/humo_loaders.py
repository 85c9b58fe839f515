"""Loader nodes for the official HuMo / Wan checkpoint layouts (they return core MODEL, VAE and CLIP)."""

from __future__ import annotations

import os
import re

from comfy_api.latest import io

from .. import paths
from ..loaders.checkpoint_files import INDEX_SUFFIX
from ..loaders.humo_dit import WEIGHT_DTYPES, load_humo_model
from ..loaders.umt5 import SPIECE_FILE, UMT5_DTYPES, load_umt5
from ..loaders.wan_vae import VAE_DTYPES, load_wan_vae

AUTO_TOKENIZER = "auto (embedded or beside the checkpoint)"
_SHARD = re.compile(r"-\d{5}-of-\d{5}\.safetensors$")


def diffusion_model_choices() -> list[str]:
    """Core's diffusion_models list, plus shard indexes and the folders holding one; loose shards hidden."""
    indexed_dirs: set[str] = set()
    extra: list[str] = []
    for base, root, files in paths.walk("diffusion_models"):
        indexes = [f for f in files if f.endswith(INDEX_SUFFIX)]
        if not indexes:
            continue
        indexed_dirs.add(os.path.normpath(root))
        rel_dir = os.path.relpath(root, base)
        extra += [os.path.normpath(os.path.join(rel_dir, f)) for f in indexes]
        if len(indexes) == 1 and rel_dir != ".":
            extra.append(rel_dir)
    listed = []
    for name in paths.list_files("diffusion_models"):
        if _SHARD.search(name) and any(
            os.path.normpath(os.path.dirname(os.path.join(b, name))) in indexed_dirs
            for b in paths.model_folders("diffusion_models")
        ):
            continue
        listed.append(name)
    return sorted(set(listed + extra))


def tokenizer_choices() -> list[str]:
    return [AUTO_TOKENIZER] + paths.folders_holding("text_encoders", SPIECE_FILE, include_top=True)


class HVLoadHuMoModel(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="HVLoadHuMoModel",
            display_name="Load HuMo Model",
            category="HumanVideo/loaders",
            description=(
                "Loads a HuMo DiT in any published layout as a core MODEL: the official HuMo-17B shard folder "
                "(humo-0000N-of-0000M.safetensors + humo.safetensors.index.json), HuMo-1.7B ema.pth, the Comfy-Org "
                "repacks (fp16 / fp8_e4m3fn) and fp8-scaled repacks. Size and variant are read off the weights. "
                "Works with core LoRA loaders, model patches and samplers."
            ),
            inputs=[
                io.Combo.Input(
                    "model_name",
                    options=diffusion_model_choices(),
                    tooltip="A file, a *.safetensors.index.json, or a folder holding one, in models/diffusion_models.",
                ),
                io.Combo.Input(
                    "weight_dtype",
                    options=list(WEIGHT_DTYPES),
                    default="default",
                    tooltip="Weight storage type. default: ComfyUI picks from the file and the device (fp8 files stay "
                    "fp8). fp8_e4m3fn halves memory against fp16/bf16 at a small quality cost.",
                ),
            ],
            outputs=[io.Model.Output(display_name="MODEL", tooltip="The HuMo DiT (core WAN21_HuMo model).")],
        )

    @classmethod
    def execute(cls, model_name: str, weight_dtype: str) -> io.NodeOutput:
        model, _ = load_humo_model(paths.resolve_model_path("diffusion_models", model_name, "model_name"), weight_dtype)
        return io.NodeOutput(model)


class HVLoadWanVAE(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="HVLoadWanVAE",
            display_name="Load Wan2.1 VAE",
            category="HumanVideo/loaders",
            description=(
                "Loads the Wan2.1 VAE used by HuMo as a core VAE, from the official Wan2.1_VAE.pth (opened safely, "
                "weights only) or a safetensors repack. Other files are refused with a message saying what they are."
            ),
            inputs=[
                io.Combo.Input(
                    "vae_name",
                    options=paths.list_files("vae"),
                    tooltip="Wan2.1_VAE.pth or wan_2.1_vae.safetensors in models/vae.",
                ),
                io.Combo.Input(
                    "dtype",
                    options=list(VAE_DTYPES),
                    default="default",
                    tooltip="Compute/storage type; default lets ComfyUI choose for the device.",
                ),
            ],
            outputs=[io.Vae.Output(display_name="VAE", tooltip="The Wan2.1 video VAE (16 latent channels, 4x8x8).")],
        )

    @classmethod
    def execute(cls, vae_name: str, dtype: str) -> io.NodeOutput:
        return io.NodeOutput(load_wan_vae(paths.resolve_model_path("vae", vae_name, "vae_name", "file"), dtype))


class HVLoadUMT5(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="HVLoadUMT5",
            display_name="Load umT5 Text Encoder (Wan)",
            category="HumanVideo/loaders",
            description=(
                "Loads the umT5-xxl text encoder of Wan/HuMo as a core CLIP (type wan): the official "
                "models_t5_umt5-xxl-enc-bf16.pth with its google/umt5-xxl tokenizer folder, or a Comfy repack "
                "(umt5_xxl_*.safetensors, tokenizer embedded)."
            ),
            inputs=[
                io.Combo.Input(
                    "text_encoder_name",
                    options=paths.list_files("text_encoders"),
                    tooltip="The encoder file in models/text_encoders.",
                ),
                io.Combo.Input(
                    "tokenizer",
                    options=tokenizer_choices(),
                    default=AUTO_TOKENIZER,
                    tooltip="Folder in models/text_encoders holding spiece.model (google/umt5-xxl). "
                    "auto: the tokenizer embedded in a repack, else a google/umt5-xxl folder beside the file "
                    "or in models/text_encoders.",
                ),
                io.Combo.Input(
                    "dtype",
                    options=list(UMT5_DTYPES),
                    default="default",
                    tooltip="Weight type; default keeps the file's (bf16 for the official file).",
                ),
            ],
            outputs=[io.Clip.Output(display_name="CLIP", tooltip="umT5 text encoder for CLIP Text Encode nodes.")],
        )

    @classmethod
    def execute(cls, text_encoder_name: str, tokenizer: str, dtype: str) -> io.NodeOutput:
        path = paths.resolve_model_path("text_encoders", text_encoder_name, "text_encoder_name", "file")
        tok = (
            None
            if tokenizer == AUTO_TOKENIZER
            else paths.resolve_model_path("text_encoders", tokenizer, "tokenizer", "folder")
        )
        clip = load_umt5(path, tok, dtype, tokenizer_roots=paths.model_folders("text_encoders"))
        return io.NodeOutput(clip)


NODES = [HVLoadHuMoModel, HVLoadWanVAE, HVLoadUMT5]
