"""HunyuanVideo-I2V example workflows: the official 720p image-to-video, and an official effect LoRA."""

from __future__ import annotations

from build_workflows import Guide, Node, Stage, Workflow

HF = "https://huggingface.co"
I2V = f"{HF}/tencent/HunyuanVideo-I2V/resolve/main/hunyuan-video-i2v-720p"
MODELS = {  # properties.models download hints of the loader nodes
    "dit": {
        "name": "mp_rank_00_model_states.pt",
        "url": f"{I2V}/transformers/mp_rank_00_model_states.pt",
        "directory": "diffusion_models/hunyuan-video-i2v-720p/transformers",
    },
    "vae": {
        "name": "pytorch_model.pt",
        "url": f"{I2V}/vae/pytorch_model.pt",
        "directory": "vae/hunyuan-video-i2v-720p/vae",
    },
    "llava": {
        "name": "llava-llama-3-8b-v1_1-transformers",
        "url": f"{HF}/xtuner/llava-llama-3-8b-v1_1-transformers",
        "directory": "text_encoders",
    },
    "clip": {
        "name": "clip-vit-large-patch14",
        "url": f"{HF}/openai/clip-vit-large-patch14",
        "directory": "text_encoders",
    },
    "lora": {
        "name": "hair_growth_kohaya_weights.safetensors",
        "url": f"{I2V}/lora/hair_growth_kohaya_weights.safetensors",
        "directory": "loras",
    },
}

DIT = "hunyuan-video-i2v-720p/transformers/mp_rank_00_model_states.pt"
VAE = "hunyuan-video-i2v-720p/vae/pytorch_model.pt"
LLAVA = "llava-llama-3-8b-v1_1-transformers"
CLIP = "clip-vit-large-patch14"
LORA = "hair_growth_kohaya_weights.safetensors"

# Real name -> tiny fixture (scripts/hv_fixtures/hunyuan.py).
TEST_FILES = {
    DIT: "hunyuan-video-i2v-tiny-v2/mp_rank_00_model_states.pt",
    VAE: "hunyuan-video-i2v-tiny-vae/pytorch_model.pt",
    LLAVA: "llava-llama-3-tiny",
    CLIP: "clip-vit-large-patch14-tiny",
    LORA: "Hunyuan_video_I2V_lora_tiny_kohaya_weights.safetensors",
}

PROMPT = "An astronaut smiles at the camera, then turns her head slightly and laughs."
LORA_PROMPT = "rapid_hair_growth, The hair of the characters in the video is growing rapidly. " + PROMPT


def i2v(name: str, lora: bool) -> Workflow:
    model = (2, 0) if lora else (1, 0)
    nodes = [
        Node(1, "HVLoadHunyuanDiT", {"model_name": DIT}, models=[MODELS["dit"]]),
        Node(3, "HVLoadHunyuanVAE", {"vae_name": VAE}, models=[MODELS["vae"]]),
        Node(
            4,
            "HVLoadHunyuanTextEncoders",
            {"llava_folder": LLAVA, "clip_folder": CLIP},
            models=[MODELS["llava"], MODELS["clip"]],
        ),
        Node(5, "LoadImage", {"image": "face.png"}, title="Start image"),
        Node(
            6,
            "HVHunyuanI2VTextEncode",
            {"prompt": LORA_PROMPT if lora else PROMPT},
            links={"clip": (4, 0), "clip_vision": (4, 1), "image": (5, 0), "model": model},
        ),
        Node(
            7,
            "HVHunyuanI2VConditioning",
            {"resolution": "720p"},
            links={"model": model, "vae": (3, 0), "positive": (6, 0), "negative": (6, 1), "image": (5, 0)},
        ),
        Node(
            8,
            "HVHunyuanI2VSampler",
            {"seed": 0, "flow_shift": 5.0} if lora else {"seed": 0},  # scripts/run_sample_image2video_lora.sh
            links={"model": model, "positive": (7, 0), "negative": (7, 1), "latent": (7, 2), "vae": (3, 0)},
        ),
        Node(
            9,
            "HVSaveVideo",
            {"filename_prefix": f"HumanVideo/{name}", "fps": 24.0},
            links={"images": (8, 0), "fps": (8, 2)},
        ),
    ]
    if lora:
        nodes.insert(
            1,
            Node(
                2,
                "HVLoadHunyuanLoRA",
                {"lora_name": LORA, "strength": 1.0},
                links={"model": (1, 0)},
                models=[MODELS["lora"]],
            ),
        )
    steps = [
        "Put the model files into `ComfyUI/models/` (the loaders' download links appear under *Missing Models* "
        "when a file is absent): `diffusion_models/hunyuan-video-i2v-720p/transformers/mp_rank_00_model_states.pt` "
        "and `vae/hunyuan-video-i2v-720p/vae/pytorch_model.pt` (tencent/HunyuanVideo-I2V), and the folders "
        "`text_encoders/llava-llama-3-8b-v1_1-transformers` (xtuner/llava-llama-3-8b-v1_1-transformers) and "
        "`text_encoders/clip-vit-large-patch14` (openai/clip-vit-large-patch14)."
        + (
            " The effect LoRA: `loras/hair_growth_kohaya_weights.safetensors` (tencent/HunyuanVideo-I2V, "
            "`hunyuan-video-i2v-720p/lora/`)."
            if lora
            else ""
        ),
        "**Start image**: upload the picture the video starts from.",
        "**prompt** (HunyuanVideo-I2V Text Encode): what happens in the video"
        + (
            "; keep the LoRA's trigger words (`rapid_hair_growth, The hair of the characters in the video is "
            "growing rapidly.`) at its start."
            if lora
            else "."
        ),
        "Press **Run**. The mp4 appears in *Save Video mp4* and in `ComfyUI/output/HumanVideo/`.",
    ]
    guide = Guide(
        what=(
            "**HunyuanVideo-I2V** (v2, token replace) animates a start image as the prompt describes: 129 frames "
            "(5.4 s at 24 fps) at the 720p bucket closest to the image's shape, with the official settings "
            "(stability mode, flow shift 7, 50 Euler steps, embedded guidance 6)"
            + (
                ", plus the official *hair growth* effect LoRA, sampled at flow shift 5 as the official LoRA "
                "script does."
                if lora
                else "."
            )
        ),
        steps=steps,
        settings=[
            "**resolution** (HunyuanVideo-I2V Conditioning): 720p (official), 540p or 360p buckets; smaller is "
            "much faster and lighter.",
            "**length**: frames at 24 fps, 4n+1; 129 is official.",
            "**stability**: on (official) keeps closer to the image with less motion; off allows more motion.",
            "**seed** / **steps** (HunyuanVideo-I2V Sampler): another seed gives another take; 50 steps is official.",
        ]
        + (["**strength** (Load HunyuanVideo-I2V LoRA): how strongly the effect applies."] if lora else []),
        # Tencent-Hunyuan/HunyuanVideo-I2V README.md:135-145 (memory) and README.md:410-429 (latency), at 1481c1d.
        cost=[
            "Memory: the official README gives **60 GB** of GPU memory as the minimum for 720p and recommends 80 GB.",
            "Time: the official README's parallel-inference table gives **1904 s (about 32 min)** for 1280x720, "
            "129 frames, 50 steps on one GPU.",
        ],
    )
    stages = [
        Stage("Load the models", [[1, 3, 4] + ([2] if lora else [])]),
        Stage("Start image and prompt", [[5], [6]]),
        Stage("Conditioning", [[7]]),
        Stage("Sample and decode", [[8]]),
        Stage("Save the mp4", [[9]]),
    ]
    return Workflow(name=name, nodes=nodes, stages=stages, guide=guide)


WORKFLOWS = [i2v("hunyuan_i2v_720p", lora=False), i2v("hunyuan_i2v_lora_effect", lora=True)]
