"""HunyuanVideo-I2V nodes: official-layout loaders, the official text template, buckets, sampler, LoRA."""

from __future__ import annotations

from comfy_api.latest import io

from .. import paths
from ..loaders import hunyuan_dit as hd
from ..loaders import hunyuan_lora as hl
from ..loaders import hunyuan_text as ht
from ..loaders import hunyuan_vae as hv
from ..loaders.dtypes import dtype_choices, parse_dtype
from ..models import hunyuan_template as tpl
from ..models import hunyuan_video_spec as hs
from ..parallel import runtime as parallel_runtime
from ..samplers import hunyuan_i2v as hi
from ..samplers import hunyuan_text_encode as te
from .types import HV_GUIDANCE, HV_PARALLEL

CATEGORY = "HumanVideo/HunyuanVideo-I2V"
LOADERS = "HumanVideo/loaders"
RELEASE_NAMES = [hs.RELEASE_V2.name, hs.RELEASE_V1.name]
TEXT_DTYPES = dtype_choices("default", "fp16", "bf16", "fp32")
OUTPUT_FPS = 24.0


def model_folders(key: str) -> list[str]:
    """Sub-folders of a model key that hold a transformers `config.json` (LLaVA / CLIP folders)."""
    return paths.folders_holding(key, "config.json")


class HVLoadHunyuanDiT(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="HVLoadHunyuanDiT",
            display_name="Load HunyuanVideo-I2V Model",
            category=LOADERS,
            description=(
                "Loads a HunyuanVideo-I2V DiT as a core MODEL: the official mp_rank_00_model_states.pt of either "
                "release (v1 concat, 33 channels; v2 replace, 16 channels + guidance) or a Comfy-Org repack. "
                "The release is detected from the weights and every key is checked before loading."
            ),
            inputs=[
                io.Combo.Input(
                    "model_name",
                    options=paths.list_files("diffusion_models"),
                    tooltip="File in models/diffusion_models (sub-folders allowed), .pt or .safetensors.",
                ),
                io.Combo.Input(
                    "weight_dtype",
                    options=list(hd.WEIGHT_DTYPES),
                    default="default",
                    tooltip="Storage dtype of the weights; fp8 halves memory (fp8_e4m3fn_fast also "
                    "computes in fp8 where the GPU supports it).",
                ),
            ],
            outputs=[
                io.Model.Output(display_name="model", tooltip="Core HunyuanVideo MODEL (works with core nodes too)."),
                io.String.Output(
                    display_name="release", tooltip="The detected release: 'v2 (replace)' or 'v1 (concat)'."
                ),
            ],
        )

    @classmethod
    def execute(cls, model_name: str, weight_dtype: str) -> io.NodeOutput:
        model, release = hd.load_hunyuan_dit(
            paths.resolve_model_path("diffusion_models", model_name, "model_name", "file"), weight_dtype
        )
        return io.NodeOutput(model, release.name)


class HVLoadHunyuanVAE(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="HVLoadHunyuanVAE",
            display_name="Load HunyuanVideo VAE",
            category=LOADERS,
            description=(
                "Loads the HunyuanVideo 884-16c VAE as a core VAE from the official vae/pytorch_model.pt or the "
                "Comfy-Org hunyuan_video_vae_bf16.safetensors, as the official code runs it: frame-causal "
                "mid-block attention, the whole clip in one pass, decode in the official tiles."
            ),
            inputs=[
                io.Combo.Input(
                    "vae_name",
                    options=paths.list_files("vae"),
                    tooltip="File in models/vae (sub-folders allowed).",
                ),
                io.Combo.Input(
                    "decode_tiling",
                    optional=True,  # API prompts saved before this input existed keep working
                    options=list(hv.DECODE_TILINGS),
                    default=hv.TILES_OFFICIAL,
                    tooltip="official tiles (default, as the official --vae-tiling): decode in 256 px x 64-frame "
                    "tiles overlapping by a quarter, blended linearly; memory stays at one tile. off: the whole "
                    "video in one decode (no tile blending, much more memory).",
                ),
                io.Combo.Input(
                    "temporal_pass",
                    optional=True,  # API prompts saved before this input existed keep working
                    options=list(hv.TEMPORAL_PASSES),
                    default=hv.PASS_WHOLE,
                    tooltip="whole clip (official): every layer sees all frames of the clip (or tile) at once. "
                    "rolling chunks: newer ComfyUI's low-memory mode, a few frames at a time with carried "
                    "state; its results differ slightly from the official VAE (not available on ComfyUI 0.3.75).",
                ),
            ],
            outputs=[io.Vae.Output(display_name="vae", tooltip="Core VAE: 16 latent channels, 4x time, 8x space.")],
        )

    @classmethod
    def execute(
        cls, vae_name: str, decode_tiling: str = hv.TILES_OFFICIAL, temporal_pass: str = hv.PASS_WHOLE
    ) -> io.NodeOutput:
        return io.NodeOutput(
            hv.load_hunyuan_vae(
                paths.resolve_model_path("vae", vae_name, "vae_name", "file"), temporal_pass, decode_tiling
            )
        )


class HVLoadHunyuanTextEncoders(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        folders = model_folders("text_encoders")
        return io.Schema(
            node_id="HVLoadHunyuanTextEncoders",
            display_name="Load HunyuanVideo-I2V Text Encoders",
            category=LOADERS,
            description=(
                "Loads the official text encoder folders: LLaVA-Llama-3-8B (transformers folder with its vision "
                "tower, xtuner/llava-llama-3-8b-v1_1-transformers) and CLIP ViT-L/14 "
                "(openai/clip-vit-large-patch14). Returns core CLIP (Llama + CLIP-L) and CLIP_VISION (vision tower "
                "+ projector) for HV HunyuanVideo-I2V Text Encode."
            ),
            inputs=[
                io.Combo.Input(
                    "llava_folder",
                    options=folders,
                    tooltip="Folder in models/text_encoders holding the LLaVA config.json and weights.",
                ),
                io.Combo.Input(
                    "clip_folder",
                    options=folders,
                    tooltip="Folder in models/text_encoders holding the CLIP-L config.json and weights.",
                ),
                io.Combo.Input(
                    "dtype",
                    options=list(TEXT_DTYPES),
                    default="default",
                    tooltip="Compute/storage dtype of the encoders; default lets ComfyUI choose.",
                ),
            ],
            outputs=[
                io.Clip.Output(display_name="clip", tooltip="Core CLIP: LLaVA-Llama-3 language model + CLIP-L."),
                io.ClipVision.Output(
                    display_name="clip_vision", tooltip="LLaVA vision tower + projector (576 tokens)."
                ),
            ],
        )

    @classmethod
    def execute(cls, llava_folder: str, clip_folder: str, dtype: str) -> io.NodeOutput:
        torch_dtype = parse_dtype(dtype, TEXT_DTYPES, "dtype")
        clip, vision = ht.load_text_encoders(
            paths.resolve_model_path("text_encoders", llava_folder, "llava_folder", "folder"),
            paths.resolve_model_path("text_encoders", clip_folder, "clip_folder", "folder"),
            torch_dtype,
        )
        return io.NodeOutput(clip, vision)


class HVHunyuanI2VTextEncode(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="HVHunyuanI2VTextEncode",
            display_name="HunyuanVideo-I2V Text Encode",
            category=CATEGORY,
            description=(
                "The official I2V text + image encode: template dit-llm-encode-video-i2v (prompt at token 103), "
                "hidden layer -3, the 576 image tokens kept every 4th (v2) or 2nd (v1), the text cut exactly as "
                "official, CLIP-L pooled vector. The negative is the official negative prompt with a black image, "
                "used when cfg > 1."
            ),
            inputs=[
                io.Clip.Input(
                    "clip", tooltip="From Load HunyuanVideo-I2V Text Encoders (or DualCLIPLoader hunyuan_video)."
                ),
                io.ClipVision.Input("clip_vision", tooltip="LLaVA vision tower + projector (llava_llama3_vision)."),
                io.Image.Input("image", tooltip="The reference image (the first of a batch is used)."),
                io.String.Input(
                    "prompt",
                    multiline=True,
                    default="",
                    tooltip="What happens in the video; up to ~250 Llama tokens are used (official limit).",
                ),
                io.String.Input(
                    "negative_prompt",
                    multiline=True,
                    default=tpl.NEGATIVE_PROMPT_I2V,
                    tooltip="Official I2V negative prompt; only used with real CFG (cfg > 1).",
                ),
                io.Combo.Input(
                    "release",
                    options=RELEASE_NAMES,
                    default=hs.RELEASE_V2.name,
                    tooltip="Which checkpoint the embeddings are for (image token interleave 4 for v2, "
                    "2 for v1); ignored when a model is connected.",
                ),
                io.Model.Input("model", optional=True, tooltip="Optional: the I2V model, to pick the release from it."),
            ],
            outputs=[
                io.Conditioning.Output(display_name="positive", tooltip="Prompt + image conditioning."),
                io.Conditioning.Output(display_name="negative", tooltip="Negative prompt + black image conditioning."),
                io.String.Output(display_name="info", tooltip="Token counts and any truncation."),
            ],
        )

    @classmethod
    def execute(
        cls, clip, clip_vision, image, prompt: str, negative_prompt: str, release: str, model=None
    ) -> io.NodeOutput:
        import torch

        if model is not None:
            rel = hs.release_of_model(model)
        elif release in hs.RELEASES:
            rel = hs.RELEASES[release]
        else:
            raise ValueError(f"release: {release!r} is not one of {RELEASE_NAMES}")
        img, notes = hi.normalise_image(image)
        pos = te.encode_i2v(clip, clip_vision, img, prompt, rel.image_interleave)
        neg = te.encode_i2v(clip, clip_vision, torch.zeros_like(img), negative_prompt, rel.image_interleave)
        lines = [
            f"{rel.name}: {pos.image_tokens} image + {pos.text_tokens} text tokens (negative: "
            f"{neg.text_tokens} text tokens)"
        ] + notes
        if pos.truncated:
            lines.append("prompt: longer than the official 256-token window; truncated as official")
        positive = [[c, {**o, hi.INTERLEAVE_KEY: rel.image_interleave}] for c, o in te.to_conditioning(pos)]
        negative = [[c, {**o, hi.INTERLEAVE_KEY: rel.image_interleave}] for c, o in te.to_conditioning(neg)]
        return io.NodeOutput(positive, negative, "\n".join(lines))


class HVHunyuanI2VConditioning(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="HVHunyuanI2VConditioning",
            display_name="HunyuanVideo-I2V Conditioning",
            category=CATEGORY,
            description=(
                "Fits the image to the official resolution bucket (a 16:9 photo at 720p becomes 1248x704), encodes "
                "it with the VAE and builds the release's conditioning, read from the model: v1 concat (image "
                "latent + mask channels) or v2 token replace (clean first latent frame, timestep-0 modulation). "
                "Stability mode starts from 0.999 noise + 0.001 image latent."
            ),
            inputs=[
                io.Model.Input("model", tooltip="The HunyuanVideo-I2V model (decides v1 or v2)."),
                io.Vae.Input("vae", tooltip="HunyuanVideo VAE."),
                io.Conditioning.Input("positive", tooltip="From HunyuanVideo-I2V Text Encode."),
                io.Conditioning.Input("negative", tooltip="From HunyuanVideo-I2V Text Encode."),
                io.Image.Input("image", tooltip="Reference image; greyscale and RGBA are converted to RGB."),
                io.Combo.Input(
                    "resolution",
                    options=list(hi.RESOLUTION_BASES),
                    default="720p",
                    tooltip="Official bucket base: 720p (960^2 px area), 540p (720^2), 360p (480^2).",
                ),
                io.Int.Input(
                    "length",
                    default=hi.DEFAULT_LENGTH,
                    min=1,
                    max=1025,
                    step=4,
                    tooltip="Frames, 4n+1 (others are rounded up); official 129 (5.4 s at 24 fps). Above 192 the "
                    "sampler applies the official RIFLEx RoPE fix against repeating motion.",
                ),
                io.Boolean.Input(
                    "stability",
                    default=True,
                    tooltip="Official --i2v-stability: more faithful to the image, less motion; the "
                    "sampler's automatic shift is 7 with it, 17 without.",
                ),
                io.Float.Input(
                    "embedded_guidance",
                    default=hi.EMBEDDED_GUIDANCE,
                    min=0.0,
                    max=30.0,
                    step=0.1,
                    tooltip="Guidance strength embedded in v2 (official 6.0); v1 has none.",
                ),
            ],
            outputs=[
                io.Conditioning.Output(display_name="positive", tooltip="Positive with the image conditioning."),
                io.Conditioning.Output(display_name="negative", tooltip="Negative with the image conditioning."),
                io.Latent.Output(
                    display_name="latent", tooltip="Empty video latent + image latent and mode, for the sampler."
                ),
                io.String.Output(
                    display_name="info", tooltip="Bucket size, frames, mode and any automatic corrections."
                ),
            ],
        )

    @classmethod
    def execute(
        cls,
        model,
        vae,
        positive,
        negative,
        image,
        resolution: str,
        length: int,
        stability: bool,
        embedded_guidance: float,
    ) -> io.NodeOutput:
        p, n, latent, plan = hi.prepare_i2v(
            model, vae, positive, negative, image, length, resolution, stability, embedded_guidance
        )
        return io.NodeOutput(p, n, latent, plan.describe())


class HVHunyuanI2VSampler(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="HVHunyuanI2VSampler",
            display_name="HunyuanVideo-I2V Sampler",
            category=CATEGORY,
            description=(
                "The official sampler: flow-matching Euler on linspace(1, 0) sigmas with the flow shift (7 with "
                "stability, 17 dynamic), 50 steps, optional real CFG with the negative (cfg > 1), then VAE decode. "
                "v1 output drops the first 4 frames as the official pipeline does. For v2 it keeps the embedded "
                "guidance off the first-frame tokens and the first-frame modulation on the video tokens (as "
                "official; core gets both wrong) and runs real CFG passes one at a time (core's batched v2 token "
                "replace fails). Above 192 frames it applies the official RIFLEx RoPE fix."
            ),
            inputs=[
                io.Model.Input("model", tooltip="HunyuanVideo-I2V model (LoRAs applied)."),
                io.Conditioning.Input("positive", tooltip="From HunyuanVideo-I2V Conditioning."),
                io.Conditioning.Input("negative", tooltip="From HunyuanVideo-I2V Conditioning."),
                io.Latent.Input("latent", tooltip="From HunyuanVideo-I2V Conditioning."),
                io.Vae.Input("vae", tooltip="HunyuanVideo VAE, to decode the frames."),
                io.Int.Input(
                    "seed",
                    default=0,
                    min=0,
                    max=0xFFFFFFFFFFFFFFFF,
                    control_after_generate=True,
                    tooltip="Noise seed (CPU generator: same seed, same video on any GPU).",
                ),
                io.Int.Input("steps", default=hi.DEFAULT_STEPS, min=1, max=200, tooltip="Euler steps; official 50."),
                io.Float.Input(
                    "flow_shift",
                    default=0.0,
                    min=0.0,
                    max=100.0,
                    step=0.1,
                    tooltip="Sigma shift; 0 = official automatic (7 with stability, 17 without).",
                ),
                io.Float.Input(
                    "cfg",
                    default=1.0,
                    min=1.0,
                    max=30.0,
                    step=0.1,
                    tooltip="Real classifier-free guidance; 1 = off (official default, one pass per "
                    "step); > 1 runs the negative too.",
                ),
                HV_GUIDANCE.Input(
                    "guidance",
                    optional=True,
                    tooltip="Optional per-step CFG schedule (overrides cfg); its passes may only be "
                    "null (negative) and full (text + image).",
                ),
                HV_PARALLEL.Input(
                    "parallel",
                    optional=True,
                    tooltip="Optional: HV Parallel, to sample on several GPUs (sequence / CFG parallel, sharded "
                    "weights); decoding stays here.",
                ),
            ],
            outputs=[
                io.Image.Output(display_name="frames", tooltip="Decoded video frames (24 fps)."),
                io.Latent.Output(display_name="latent", tooltip="The sampled latent."),
                io.Float.Output(display_name="fps", tooltip="Official output frame rate: 24."),
                io.String.Output(display_name="info", tooltip="Release, shift and guidance used."),
            ],
        )

    @classmethod
    def execute(
        cls,
        model,
        positive,
        negative,
        latent,
        vae,
        seed: int,
        steps: int,
        flow_shift: float,
        cfg: float,
        guidance=None,
        parallel=None,
    ) -> io.NodeOutput:
        args = (positive, negative, latent, seed, steps, flow_shift or None, cfg, guidance)
        if parallel is not None:  # the same sampler on the workers
            out, release, shift = parallel_runtime.run(parallel, model, hi.sample_i2v, *args)
        else:
            out, release, shift = hi.sample_i2v(model, *args)
        frames = hi.decode_frames(vae, out, release)
        guide = guidance.name if guidance is not None else (f"real CFG {cfg:g}" if cfg > 1 else "no real CFG")
        info = f"{release.name}: {steps} Euler steps, shift {shift:g}, {guide}, {frames.shape[0]} frames"
        k = hi.riflex_index(out[hi.LATENT_KEY]["length"])
        if k is not None:
            info += f", RIFLEx (temporal RoPE frequency {k} stretched, as official above 192 frames)"
        if release.drop_first_frames:
            info += f" (first {release.drop_first_frames} dropped as official)"
        return io.NodeOutput(frames, out, OUTPUT_FPS, info)


class HVLoadHunyuanLoRA(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="HVLoadHunyuanLoRA",
            display_name="Load HunyuanVideo-I2V LoRA",
            category=LOADERS,
            description=(
                "Applies an official HunyuanVideo-I2V effect LoRA (Hunyuan_video_I2V_lora_* keys, e.g. "
                "embrace / hair_growth) that core's LoRA loader cannot read, mapped onto the model's layers; "
                "ComfyUI / diffusion-pipe format HunyuanVideo LoRAs work too. Unmapped keys are an error."
            ),
            inputs=[
                io.Model.Input("model", tooltip="HunyuanVideo-I2V model."),
                io.Combo.Input("lora_name", options=paths.list_files("loras"), tooltip="LoRA file in models/loras."),
                io.Float.Input(
                    "strength",
                    default=1.0,
                    min=-10.0,
                    max=10.0,
                    step=0.01,
                    tooltip="Scale of the LoRA delta (official --lora-scale, default 1.0).",
                ),
            ],
            outputs=[
                io.Model.Output(display_name="model", tooltip="The model with the LoRA patched in."),
                io.String.Output(display_name="info", tooltip="Format detected and number of patched layers."),
            ],
        )

    @classmethod
    def execute(cls, model, lora_name: str, strength: float) -> io.NodeOutput:
        from ..loaders.checkpoint_files import load_state_dict

        path = paths.resolve_model_path("loras", lora_name, "lora_name", "file")
        try:
            patched, n, fmt = hl.apply_hunyuan_lora(model, load_state_dict(path), strength)
        except ValueError as e:
            raise ValueError(f"{lora_name}: {e}") from e
        return io.NodeOutput(patched, f"{lora_name}: {fmt}, {n} layers patched at strength {strength:g}")


def deprecated_id(node: type[io.ComfyNode], old_id: str) -> type[io.ComfyNode]:
    """The same node under the id it shipped with, so saved workflows keep loading; hidden from search."""

    class Alias(node):
        @classmethod
        def define_schema(cls) -> io.Schema:
            schema = node.define_schema()
            schema.node_id = old_id
            schema.display_name = f"{schema.display_name} (old id)"
            schema.is_deprecated = True
            return schema

    Alias.__name__ = Alias.__qualname__ = old_id
    return Alias


NODES = [
    HVLoadHunyuanDiT,
    HVLoadHunyuanVAE,
    HVLoadHunyuanTextEncoders,
    deprecated_id(HVLoadHunyuanDiT, "HVHunyuanDiTLoader"),
    deprecated_id(HVLoadHunyuanVAE, "HVHunyuanVAELoader"),
    deprecated_id(HVLoadHunyuanTextEncoders, "HVHunyuanTextEncoderLoader"),
    HVLoadHunyuanLoRA,
    HVHunyuanI2VTextEncode,
    HVHunyuanI2VConditioning,
    HVHunyuanI2VSampler,
]
