"""HunyuanVideo-I2V example workflows: the official 720p image-to-video, and an official effect LoRA."""

from __future__ import annotations

from build_workflows import Node, Workflow

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
        Node(1, "HVHunyuanDiTLoader", {"model_name": DIT}, pos=(0, 0), models=[MODELS["dit"]]),
        Node(3, "HVHunyuanVAELoader", {"vae_name": VAE}, pos=(0, 160), models=[MODELS["vae"]]),
        Node(
            4,
            "HVHunyuanTextEncoderLoader",
            {"llava_folder": LLAVA, "clip_folder": CLIP},
            pos=(0, 300),
            models=[MODELS["llava"], MODELS["clip"]],
        ),
        Node(5, "LoadImage", {"image": "face.png"}, pos=(0, 480), title="Start image"),
        Node(
            6,
            "HVHunyuanI2VTextEncode",
            {"prompt": LORA_PROMPT if lora else PROMPT},
            links={"clip": (4, 0), "clip_vision": (4, 1), "image": (5, 0), "model": model},
            pos=(420, 300),
        ),
        Node(
            7,
            "HVHunyuanI2VConditioning",
            {"resolution": "720p"},
            links={"model": model, "vae": (3, 0), "positive": (6, 0), "negative": (6, 1), "image": (5, 0)},
            pos=(840, 0),
        ),
        Node(
            8,
            "HVHunyuanI2VSampler",
            {"seed": 0, "flow_shift": 5.0} if lora else {"seed": 0},  # scripts/run_sample_image2video_lora.sh
            links={"model": model, "positive": (7, 0), "negative": (7, 1), "latent": (7, 2), "vae": (3, 0)},
            pos=(1240, 0),
        ),
        Node(
            9,
            "HVSaveVideo",
            {"filename_prefix": f"HumanVideo/{name}", "fps": 24.0},
            links={"images": (8, 0), "fps": (8, 2)},
            pos=(1640, 0),
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
                pos=(0, 640),
                models=[MODELS["lora"]],
            ),
        )
    note = (
        "HunyuanVideo-I2V (v2, token replace): 720p bucket, 129 frames, stability mode, embedded guidance 6, "
        "flow shift 7, 50 Euler steps."
    )
    if lora:
        note += (
            " With the official hair_growth effect LoRA at flow shift 5 (as the official LoRA script): keep its "
            "trigger words at the start of the prompt."
        )
    return Workflow(name=name, nodes=nodes, note=note)


WORKFLOWS = [i2v("hunyuan_i2v_720p", lora=False), i2v("hunyuan_i2v_lora_effect", lora=True)]
