"""HuMo example workflows: 1.7B and 17B text + image + audio, 17B text + audio, two speakers with focus masks,
and a long-form 17B video that follows a minute of speech.

Every graph is the official pipeline (Phantom-video/HuMo generate.py / generate_1_7B.py) in nodes: official
checkpoints and encoders, the Wan negative prompt, Whisper-large-v3 features, HuMo conditioning, the
official guidance recipe of the model's size, 50 UniPC steps at shift 5, seed 666666, 97 frames at 25 fps.
"""

from __future__ import annotations

from build_workflows import Node, Workflow

HF = "https://huggingface.co"
COMFY_HUMO = f"{HF}/Comfy-Org/HuMo_ComfyUI/resolve/main/split_files"
WAN_T2V = f"{HF}/Wan-AI/Wan2.1-T2V-1.3B/resolve/main"

HUMO_1_7B = "HuMo-1.7B/ema.pth"  # the official release, as downloaded into models/diffusion_models
HUMO_17B = "humo_17B_fp8_e4m3fn.safetensors"  # Comfy-Org repack (the official 17B is 7 fp32 shards, 63 GB)
WAN_VAE = "Wan2.1_VAE.pth"
UMT5 = "models_t5_umt5-xxl-enc-bf16.pth"
WHISPER = "whisper_large_v3_fp16.safetensors"

MODELS = {  # properties.models download hints of the loader nodes
    HUMO_1_7B: {
        "name": "ema.pth",
        "url": f"{HF}/bytedance-research/HuMo/resolve/main/HuMo-1.7B/ema.pth",
        "directory": "diffusion_models/HuMo-1.7B",
    },
    HUMO_17B: {"name": HUMO_17B, "url": f"{COMFY_HUMO}/diffusion_models/{HUMO_17B}", "directory": "diffusion_models"},
    WAN_VAE: {"name": WAN_VAE, "url": f"{WAN_T2V}/{WAN_VAE}", "directory": "vae"},
    UMT5: {"name": UMT5, "url": f"{WAN_T2V}/{UMT5}", "directory": "text_encoders"},
    "spiece.model": {
        "name": "spiece.model",
        "url": f"{WAN_T2V}/google/umt5-xxl/spiece.model",
        "directory": "text_encoders/google/umt5-xxl",
    },
    WHISPER: {"name": WHISPER, "url": f"{COMFY_HUMO}/audio_encoders/{WHISPER}", "directory": "audio_encoders"},
}

# Real file name (as written in the workflows) -> tiny fixture written by scripts/hv_fixtures. The official
# names of the 1.7B DiT, the VAE and umT5 are also the fixtures' names.
TEST_FILES = {
    HUMO_17B: "HuMo-17B/humo.safetensors.index.json",
    WHISPER: "whisper_large_v3_test.safetensors",
}

# Official sample_neg_prompt (the Wan 2.1 default), used by both HuMo sizes.
NEGATIVE_PROMPT = (
    "色调艳丽，过曝，静态，细节模糊不清，字幕，风格，作品，画作，画面，静止，整体发灰，最差质量，低质量，JPEG压缩残留，"
    "丑陋的，残缺的，多余的手指，画得不好的手部，画得不好的脸部，畸形的，毁容的，形态畸形的肢体，手指融合，"
    "静止不动的画面，杂乱的背景，三条腿，背景人很多，倒着走"
)
PROMPT = (
    "An astronaut in a white space suit talks straight to the camera, lips moving clearly with the speech, "
    "natural blinking and small head movements, soft daylight, realistic, sharp details."
)
TWO_SPEAKERS_PROMPT = (
    "Two people sit side by side at a table and talk to each other in turn; the person on the left "
    "speaks first, then the person on the right answers, natural gestures, warm indoor light."
)

OFFICIAL = {"seed": 666666, "steps": 50, "shift": 5.0, "solver": "flow_unipc"}
FPS = 25.0
LENGTH = 97


def _loaders(model_file: str, prompt: str = PROMPT) -> list[Node]:
    return [
        Node(
            1,
            "HVLoadHuMoModel",
            {"model_name": model_file, "weight_dtype": "default"},
            pos=(0, 0),
            models=[MODELS[model_file]],
        ),
        Node(2, "HVLoadWanVAE", {"vae_name": WAN_VAE, "dtype": "default"}, pos=(0, 150), models=[MODELS[WAN_VAE]]),
        Node(3, "HVLoadUMT5", {"text_encoder_name": UMT5}, pos=(0, 300), models=[MODELS[UMT5], MODELS["spiece.model"]]),
        Node(4, "HVLoadWhisper", {"model": WHISPER, "precision": "auto"}, pos=(0, 480), models=[MODELS[WHISPER]]),
        Node(5, "CLIPTextEncode", {"text": prompt}, links={"clip": (3, 0)}, pos=(380, 0), title="Prompt"),
        Node(
            6,
            "CLIPTextEncode",
            {"text": NEGATIVE_PROMPT},
            links={"clip": (3, 0)},
            pos=(380, 220),
            title="Negative prompt (official)",
        ),
    ]


def _tail(preset: str, prefix: str, audio: tuple[int, int], first_id: int = 20) -> list[Node]:
    """Guidance preset -> sampler -> VAE decode -> mp4 with the speech."""
    g, s, d, v = first_id, first_id + 1, first_id + 2, first_id + 3
    return [
        Node(g, "HVGuidanceSchedule", {"preset": preset}, pos=(1160, 420)),
        Node(
            s,
            "HVHuMoSampler",
            OFFICIAL,
            links={"model": (1, 0), "positive": (10, 0), "negative": (10, 1), "latent": (10, 2), "guidance": (g, 0)},
            pos=(1160, 0),
        ),
        Node(d, "VAEDecode", links={"samples": (s, 0), "vae": (2, 0)}, pos=(1540, 0)),
        Node(
            v,
            "HVSaveVideo",
            {"fps": FPS, "filename_prefix": f"HumanVideo/{prefix}"},
            links={"images": (d, 0), "audio": audio},
            pos=(1540, 160),
        ),
    ]


def humo_single(name: str, model_file: str, size: str, image: bool, preset: str, note: str) -> Workflow:
    nodes = _loaders(model_file) + [
        Node(7, "HVLoadAudio", {"audio": "speech.wav"}, pos=(380, 480), title="Speech"),
        Node(8, "HVWhisperFeatures", links={"audio": (7, 0), "whisper": (4, 0)}, pos=(380, 700)),
    ]
    cond_links = {"positive": (5, 0), "negative": (6, 0), "vae": (2, 0), "audio_features": (8, 0)}
    if image:
        nodes.append(Node(9, "LoadImage", {"image": "face.png"}, pos=(760, 480), title="Reference image"))
        cond_links["reference_images"] = (9, 0)
    nodes.append(Node(10, "HVHuMoConditioning", {"size": size, "length": LENGTH}, links=cond_links, pos=(760, 0)))
    nodes += _tail(preset, name, (7, 0))
    return Workflow(name=name, note=note, nodes=nodes)


def humo_two_speakers() -> Workflow:
    """Two voices, each heard only in its half of the frame (left / right masks from core mask nodes)."""
    nodes = _loaders(HUMO_17B, TWO_SPEAKERS_PROMPT) + [
        Node(7, "HVLoadAudio", {"audio": "speech.wav"}, pos=(380, 480), title="Left speaker's voice"),
        Node(8, "HVWhisperFeatures", links={"audio": (7, 0), "whisper": (4, 0)}, pos=(380, 700)),
        Node(11, "HVLoadAudio", {"audio": "speech.wav"}, pos=(380, 900), title="Right speaker's voice"),
        Node(12, "HVWhisperFeatures", links={"audio": (11, 0), "whisper": (4, 0)}, pos=(380, 1120)),
        Node(13, "HVLoadAudio", {"audio": "speech.wav"}, pos=(1540, 420), title="Both voices (sound track)"),
        Node(9, "LoadImage", {"image": "face.png"}, pos=(760, 480), title="Reference image (both people)"),
        Node(14, "SolidMask", {"value": 0.0, "width": 832, "height": 480}, pos=(0, 700), title="Empty frame"),
        Node(15, "SolidMask", {"value": 1.0, "width": 416, "height": 480}, pos=(0, 860), title="Half frame"),
        Node(
            16,
            "MaskComposite",
            {"x": 0, "y": 0, "operation": "add"},
            links={"destination": (14, 0), "source": (15, 0)},
            pos=(0, 1020),
            title="Left half",
        ),
        Node(
            17,
            "MaskComposite",
            {"x": 416, "y": 0, "operation": "add"},
            links={"destination": (14, 0), "source": (15, 0)},
            pos=(0, 1200),
            title="Right half",
        ),
        Node(
            10,
            "HVHuMoConditioning",
            {"size": "480x832", "length": LENGTH, "focus_strength": 1.0},
            links={
                "positive": (5, 0),
                "negative": (6, 0),
                "vae": (2, 0),
                "reference_images": (9, 0),
                "audio_features": (8, 0),
                "focus_mask": (16, 0),
                "audio_features_2": (12, 0),
                "mask_2": (17, 0),
            },
            pos=(760, 0),
        ),
    ]
    nodes.sort(key=lambda n: n.id)
    nodes += _tail("HuMo-17B official", "humo_two_speakers_focus", (13, 0))
    return Workflow(
        name="humo_two_speakers_focus",
        note=(
            "HuMo-17B, two speakers: each voice drives only its region (left / right half here; any MASK works, "
            "e.g. from a face detector or painted). Give each speaker their own track with silence while the other "
            "speaks, and the mixed conversation as the sound track. Reference image: a photo of both people."
        ),
        nodes=nodes,
    )


def humo_long_form() -> Workflow:
    """A minute of speech -> one continuous 17B video, made in 97-frame chunks with the official recipe per chunk."""
    nodes = _loaders(HUMO_17B) + [
        Node(7, "HVLoadAudio", {"audio": "speech.wav"}, pos=(380, 480), title="Speech (e.g. 60 s)"),
        Node(8, "HVWhisperFeatures", links={"audio": (7, 0), "whisper": (4, 0)}, pos=(380, 700)),
        Node(9, "LoadImage", {"image": "face.png"}, pos=(760, 480), title="Reference image"),
        Node(20, "HVGuidanceSchedule", {"preset": "HuMo-17B official"}, pos=(760, 860)),
        Node(
            21,
            "HVHuMoLongForm",
            {**OFFICIAL, "size": "480x832", "filename_prefix": "HumanVideo/humo_long_form"},
            links={
                "model": (1, 0),
                "vae": (2, 0),
                "positive": (5, 0),
                "negative": (6, 0),
                "audio": (7, 0),
                "audio_features": (8, 0),
                "reference_images": (9, 0),
                "guidance": (20, 0),
            },
            pos=(1160, 0),
        ),
    ]
    return Workflow(
        name="humo_long_form",
        note=(
            "HuMo-17B long-form at 480x832: the video is as long as the speech (round(seconds x 25) frames; "
            "60 s -> 1500 frames in 17 chunks). Each chunk is the official 17B recipe (97 frames, 50 UniPC "
            "steps, shift 5, text 5.0 / audio 5.5 guidance with the t > 980 switch, seed 666666 + 2 x chunk) and "
            "continues from the previous chunk's last 3 latent frames (9 video frames, held to them while "
            "sampling); the overlaps are cross-faded. The mp4 is written chunk by chunk, so RAM stays flat; "
            "finished chunks are cached, so queueing again after a crash or Cancel resumes. Keep chunk_frames at "
            "97 (the trained length). Turn colour_anchor on if colours drift over minutes. Expect roughly 17x "
            "the time of one 97-frame clip per minute of speech."
        ),
        nodes=nodes,
    )


LONG_FORM = humo_long_form()
NOTE_TIA = (
    "{size}: text + reference image + speech -> a talking video (official recipe: 97 frames at 25 fps, 50 "
    "UniPC steps, shift 5, seed 666666, {guidance}). Replace the photo, the prompt and the speech; the video "
    "takes 97 frames (3.9 s), set length -1 to follow the audio (longer than 97 frames may degrade)."
)
WORKFLOWS = [
    humo_single(
        "humo_1.7b_tia_480p",
        HUMO_1_7B,
        "480x832",
        True,
        "HuMo-1.7B official",
        NOTE_TIA.format(size="HuMo-1.7B at 480x832", guidance="text 7.5 / image 4.0 / audio 7.5 guidance"),
    ),
    humo_single(
        "humo_17b_tia_720p",
        HUMO_17B,
        "720x1280",
        True,
        "HuMo-17B official",
        NOTE_TIA.format(
            size="HuMo-17B at 720x1280",
            guidance="text 5.0 / audio 5.5 guidance, image kept in the null pass while t > 980",
        )
        + " fp8 weights; the fp16 repack "
        "(humo_17B_fp16.safetensors) or the official shard folder (HuMo-17B) load in the same node.",
    ),
    humo_single(
        "humo_17b_ta_480p",
        HUMO_17B,
        "480x832",
        False,
        "HuMo-17B official",
        "HuMo-17B at 480x832, text + speech only (no reference image, official TA mode: text 5.0 / audio 5.5 "
        "guidance, 97 frames at 25 fps, 50 UniPC steps, shift 5, seed 666666). Describe the person in the "
        "prompt.",
    ),
    humo_two_speakers(),
    LONG_FORM,
]
