"""HuMo example workflows: 1.7B and 17B text + image + audio, 17B text + audio, two speakers with focus masks,
and a long-form 17B video that follows a minute of speech.

Every graph is the official pipeline (Phantom-video/HuMo generate.py / generate_1_7B.py) in nodes: official
checkpoints and encoders, the Wan negative prompt, Whisper-large-v3 features, HuMo conditioning, the
official guidance recipe of the model's size, 50 UniPC steps at shift 5, seed 666666, 97 frames at 25 fps.
"""

from __future__ import annotations

from dataclasses import replace

from build_workflows import Guide, Node, Stage, Workflow
from pack_loader import load_pack_file

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

NEGATIVE_PROMPT = load_pack_file("models/humo_spec.py").NEGATIVE_PROMPT  # the official one of both sizes
PROMPT = (
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
            models=[MODELS[model_file]],
        ),
        Node(2, "HVLoadWanVAE", {"vae_name": WAN_VAE, "dtype": "default"}, models=[MODELS[WAN_VAE]]),
        Node(3, "HVLoadUMT5", {"text_encoder_name": UMT5}, models=[MODELS[UMT5], MODELS["spiece.model"]]),
        Node(4, "HVLoadWhisper", {"model": WHISPER, "precision": "auto"}, models=[MODELS[WHISPER]]),
        Node(5, "CLIPTextEncode", {"text": prompt}, links={"clip": (3, 0)}, title="Prompt"),
        Node(
            6,
            "CLIPTextEncode",
            {"text": NEGATIVE_PROMPT},
            links={"clip": (3, 0)},
            title="Negative prompt (official)",
        ),
    ]


def _tail(preset: str, prefix: str, audio: tuple[int, int], first_id: int = 20) -> list[Node]:
    """Guidance preset -> sampler -> VAE decode -> mp4 with the speech."""
    g, s, d, v = first_id, first_id + 1, first_id + 2, first_id + 3
    return [
        Node(g, "HVGuidanceSchedule", {"preset": preset}),
        Node(
            s,
            "HVHuMoSampler",
            OFFICIAL,
            links={"model": (1, 0), "positive": (10, 0), "negative": (10, 1), "latent": (10, 2), "guidance": (g, 0)},
        ),
        Node(d, "VAEDecode", links={"samples": (s, 0), "vae": (2, 0)}),
        Node(
            v,
            "HVSaveVideo",
            {"fps": FPS, "filename_prefix": f"HumanVideo/{prefix}"},
            links={"images": (d, 0), "audio": audio},
        ),
    ]


def preset_dimensions(size: str) -> dict[str, int]:
    """width / height of a preset size named "<height>x<width>": what the page shows for it (web/js)."""
    height, width = (int(v) for v in size.split("x"))
    return {"width": width, "height": height}


FILES_COMMON = (
    "`vae/Wan2.1_VAE.pth` and `text_encoders/models_t5_umt5-xxl-enc-bf16.pth` with "
    "`text_encoders/google/umt5-xxl/spiece.model` (Wan-AI/Wan2.1-T2V-1.3B), and "
    "`audio_encoders/whisper_large_v3_fp16.safetensors` (Comfy-Org/HuMo_ComfyUI, `split_files/audio_encoders`)"
)
FILES_DIT = {
    HUMO_1_7B: "`diffusion_models/HuMo-1.7B/ema.pth` (bytedance-research/HuMo)",
    HUMO_17B: "`diffusion_models/humo_17B_fp8_e4m3fn.safetensors` (Comfy-Org/HuMo_ComfyUI, "
    "`split_files/diffusion_models`; the fp16 repack or the official `HuMo-17B` shard folder load in the same node)",
}
GUIDANCE = {
    "HuMo-1.7B official": "text 7.5 / image 4.0 / audio 7.5",
    "HuMo-17B official": "text 5.0 / audio 5.5, the image kept in the null pass while t > 980",
}
# Published figures: Phantom-video/HuMo README.md:27 (at 17094e9) for 1.7B; the HuMo authors in
# github.com/Phantom-video/HuMo/issues/29 for 17B.
COST = {
    HUMO_1_7B: [
        "The HuMo README: HuMo-1.7B makes a 480p video in **about 8 minutes on a 32 GB GPU** (official code).",
        "No official figure for ComfyUI; memory grows with the size and the length.",
    ],
    HUMO_17B: [
        "The HuMo authors: the official 17B code is not optimised for memory; they recommend **two or more 80 GB "
        "A100 GPUs or one 96 GB GPU** (github.com/Phantom-video/HuMo/issues/29).",
        "No official figure for time, or for ComfyUI (which keeps in RAM what does not fit in GPU memory); "
        "720x1280 costs much more than 480x832.",
    ],
}
SETTINGS = [
    "**size** (HuMo Conditioning): height x width; `480x832` and `720x1280` are the trained sizes, `832x480` and "
    "`1280x720` their portrait twins, and `custom` makes width and height editable.",
    "**length**: frames at 25 fps; 97 (3.9 s) is what HuMo was trained on, -1 follows the speech (longer "
    "videos may degrade).",
    "**seed** / **steps** (HuMo Sampler): another seed gives another take; fewer steps are faster and less detailed.",
    "**scale_t** / **scale_a** (Guidance Schedule): how strongly the prompt and the voice steer; -1 keeps the "
    "official value of the preset.",
]


def humo_guide(model_file: str, size: str, image: bool, preset: str) -> Guide:
    model = "HuMo-1.7B" if model_file == HUMO_1_7B else "HuMo-17B"
    inputs = "a prompt, a photo of a person and a voice" if image else "a prompt and a voice (no photo)"
    steps = [
        "Put the model files into `ComfyUI/models/` (the loaders' download links appear under *Missing Models* "
        f"when a file is absent): {FILES_DIT[model_file]}, {FILES_COMMON}.",
    ]
    if image:
        steps.append(
            "**Reference image**: upload a photo of the person (it is fitted into the frame with white padding; "
            "a face and upper body work best)."
        )
    steps += [
        "**Speech**: upload the voice (any audio file, or a video's sound track).",
        "**Prompt**: describe the person"
        + ("" if image else " (there is no photo, so say what they look like)")
        + ", what they do and the scene.",
        "Press **Run**. The mp4 appears in *Save Video mp4* and in `ComfyUI/output/HumanVideo/`.",
    ]
    return Guide(
        what=(
            f"**{model}** turns {inputs} into a talking video: {LENGTH} frames at 25 fps, {size} (height x width), "
            "with the voice as its sound track. Every setting is the official recipe: "
            f"{GUIDANCE[preset]} guidance, 50 steps, shift 5, seed 666666."
        ),
        steps=steps,
        settings=SETTINGS,
        cost=COST[model_file],
    )


STAGES_SINGLE = [
    Stage("Load the models", [[1, 2, 3, 4]]),
    Stage("Prompt, photo and voice", [[5, 6], [9, 7]]),
    Stage("Conditioning", [[8, 10]]),
    Stage("Sample", [[20, 21]]),
    Stage("Decode and save", [[22, 23]]),
]


def humo_single(name: str, model_file: str, size: str, image: bool, preset: str) -> Workflow:
    nodes = _loaders(model_file) + [
        Node(7, "HVLoadAudio", {"audio": "speech.wav"}, title="Speech"),
        Node(8, "HVWhisperFeatures", links={"audio": (7, 0), "whisper": (4, 0)}),
    ]
    cond_links = {"positive": (5, 0), "negative": (6, 0), "vae": (2, 0), "audio_features": (8, 0)}
    if image:
        nodes.append(Node(9, "LoadImage", {"image": "face.png"}, title="Reference image"))
        cond_links["reference_images"] = (9, 0)
    nodes.append(
        Node(10, "HVHuMoConditioning", {"size": size, **preset_dimensions(size), "length": LENGTH}, links=cond_links)
    )
    nodes += _tail(preset, name, (7, 0))
    stages = [Stage(s.title, [[i for i in column if image or i != 9] for column in s.columns]) for s in STAGES_SINGLE]
    return Workflow(name=name, nodes=nodes, stages=stages, guide=humo_guide(model_file, size, image, preset))


def humo_two_speakers() -> Workflow:
    """Two voices, each heard only in its half of the frame (left / right masks from core mask nodes)."""
    nodes = _loaders(HUMO_17B, TWO_SPEAKERS_PROMPT) + [
        Node(7, "HVLoadAudio", {"audio": "speech.wav"}, title="Left speaker's voice"),
        Node(8, "HVWhisperFeatures", links={"audio": (7, 0), "whisper": (4, 0)}),
        Node(11, "HVLoadAudio", {"audio": "speech.wav"}, title="Right speaker's voice"),
        Node(12, "HVWhisperFeatures", links={"audio": (11, 0), "whisper": (4, 0)}),
        Node(13, "HVLoadAudio", {"audio": "speech.wav"}, title="Both voices (sound track)"),
        Node(9, "LoadImage", {"image": "face.png"}, title="Reference image (both people)"),
        Node(14, "SolidMask", {"value": 0.0, "width": 832, "height": 480}, title="Empty frame"),
        Node(15, "SolidMask", {"value": 1.0, "width": 416, "height": 480}, title="Half frame"),
        Node(
            16,
            "MaskComposite",
            {"x": 0, "y": 0, "operation": "add"},
            links={"destination": (14, 0), "source": (15, 0)},
            title="Left half",
        ),
        Node(
            17,
            "MaskComposite",
            {"x": 416, "y": 0, "operation": "add"},
            links={"destination": (14, 0), "source": (15, 0)},
            title="Right half",
        ),
        Node(
            10,
            "HVHuMoConditioning",
            {"size": "480x832", **preset_dimensions("480x832"), "length": LENGTH, "focus_strength": 1.0},
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
        ),
    ]
    nodes.sort(key=lambda n: n.id)
    nodes += _tail("HuMo-17B official", "humo_two_speakers_focus", (13, 0))
    official = humo_guide(HUMO_17B, "480x832", True, "HuMo-17B official")
    guide = replace(
        official,
        what=(
            "**HuMo-17B with two speakers**: each voice moves only the lips in its region of the frame (the left "
            "and the right half here), from a prompt and one photo of both people; the mixed conversation is the "
            f"sound track. {LENGTH} frames at 25 fps, 480x832, the official 17B recipe otherwise."
        ),
        steps=[
            official.steps[0],
            "**Reference image (both people)**: upload one photo showing both speakers.",
            "**Left speaker's voice** / **Right speaker's voice**: one track per speaker, silent while the other "
            "speaks; **Both voices (sound track)**: the whole conversation.",
            "**Left half** / **Right half**: where each speaker is. Any MASK works instead (painted, or from a "
            "face detector), one per speaker.",
            *official.steps[-2:],
        ],
    )
    return Workflow(
        name="humo_two_speakers_focus",
        nodes=nodes,
        stages=[
            Stage("Load the models", [[1, 2, 3, 4]]),
            Stage("Prompt, photo and voices", [[5, 6, 9], [7, 11, 13]]),
            Stage("Where each voice acts", [[14, 15], [16, 17]]),
            Stage("Conditioning", [[8, 12], [10]]),
            Stage("Sample", [[20, 21]]),
            Stage("Decode and save", [[22, 23]]),
        ],
        guide=guide,
    )


def humo_long_form() -> Workflow:
    """A minute of speech -> one continuous 17B video, made in 97-frame chunks with the official recipe per chunk."""
    size = "480x832"
    nodes = _loaders(HUMO_17B) + [
        Node(7, "HVLoadAudio", {"audio": "speech.wav"}, title="Speech (e.g. 60 s)"),
        Node(8, "HVWhisperFeatures", links={"audio": (7, 0), "whisper": (4, 0)}),
        Node(9, "LoadImage", {"image": "face.png"}, title="Reference image"),
        Node(20, "HVGuidanceSchedule", {"preset": "HuMo-17B official"}),
        Node(
            21,
            "HVHuMoLongForm",
            {**OFFICIAL, "size": size, **preset_dimensions(size), "filename_prefix": "HumanVideo/humo_long_form"},
            links={
                "model": (1, 0),
                "vae": (2, 0),
                "positive": (5, 0),
                "negative": (6, 0),
                "audio": (7, 0),
                "audio_features": (8, 0),
                "reference_images": (9, 0),
                "guidance": (20, 0),
                "clip": (3, 0),
            },
        ),
    ]
    single = humo_guide(HUMO_17B, size, True, "HuMo-17B official")
    guide = Guide(
        what=(
            "**HuMo-17B long-form**: a prompt, a photo and a speech of any length (e.g. a minute) become one "
            "continuous talking video as long as the speech (round(seconds x 25) frames; 60 s -> 1500 frames in 17 "
            "chunks) at 480x832. Each chunk is the official 17B recipe (97 frames, 50 FlowUniPC steps, shift 5, "
            "text 5.0 / audio 5.5 guidance with the t > 980 switch, seed 666666 + 2 x chunk) and continues from "
            "the previous chunk's last 3 latent frames (9 video frames, held to them while sampling); the overlaps "
            "are cross-faded. HuMo was trained on 97-frame clips and has no official long mode: this is a "
            "training-free extension."
        ),
        steps=[
            single.steps[0],
            "**Reference image**: upload a photo of the person.",
            "**Speech**: upload the voice, as long as you like; the video follows its length.",
            "**Prompt**: describe the person, what they do and the scene.",
            "Press **Run**. The mp4 is written chunk by chunk and appears in *HuMo Long-Form Video* and in "
            "`ComfyUI/output/HumanVideo/`. After a crash or Cancel, press Run again: finished chunks are cached "
            "and the run resumes at the next one.",
        ],
        settings=[
            "**chunk_frames** (HuMo Long-Form Video): keep 97, the length HuMo was trained on; longer chunks drift.",
            "**overlap_latent_frames**: latent frames shared with the previous chunk (3 = 9 video frames); more "
            "gives smoother seams and fewer new frames per chunk.",
            "**continuation**: `latent` (default) holds the overlap latents to the previous chunk's; the 17B "
            "`conditioning` option feeds them through the image channels instead.",
            "**colour_anchor**: on if colours or brightness drift over minutes.",
            "**seed** / **steps**: as in a single clip; chunk i uses seed + 2i.",
            "**prompt_schedule**: optional, one prompt per time range as `start_s: prompt` lines (e.g. `0: a man "
            "talks calmly` and `30: he laughs`); each chunk takes the line that covers its first frame, encoded "
            "with the text encoder linked to clip. Empty: the Prompt node for the whole video.",
            "**focus_by_prediction** / **track_faces**: off (official); on, the audio is confined to the face "
            "found in each chunk's prediction, or the focus masks follow the faces found at the end of the "
            "previous chunk (both need dlib's face model in models/face_detection).",
        ],
        cost=[
            *single.cost,
            "Long-form: memory stays that of one 97-frame chunk (frames go to the mp4 as they are made); time is "
            "about the time of one 97-frame clip per chunk (17 chunks per minute of speech at the default overlap).",
        ],
    )
    stages = [
        Stage("Load the models", [[1, 2, 3, 4]]),
        Stage("Prompt, photo and voice", [[5, 6], [9, 7]]),
        Stage("Speech features and guidance", [[8, 20]]),
        Stage("Sample chunk by chunk and save", [[21]]),
    ]
    return Workflow(name="humo_long_form", nodes=nodes, stages=stages, guide=guide)


LONG_FORM = humo_long_form()
WORKFLOWS = [
    humo_single("humo_1.7b_tia_480p", HUMO_1_7B, "480x832", True, "HuMo-1.7B official"),
    humo_single("humo_17b_tia_720p", HUMO_17B, "720x1280", True, "HuMo-17B official"),
    humo_single("humo_17b_ta_480p", HUMO_17B, "480x832", False, "HuMo-17B official"),
    humo_two_speakers(),
    LONG_FORM,
]
