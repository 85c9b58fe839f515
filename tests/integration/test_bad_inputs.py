"""Bad values for every widget of every pack node, and broken model files for every loader, on a real server.

The cases are generated from /object_info, so a new node or input is covered without editing this file:
NaN, +inf and -inf for every number, values just outside every min / max, an unknown value for every
choice; then empty, truncated, garbage and wrong-family files for every loader. Each prompt must fail
with a message that names the input (or the file) and the problem; afterwards the server still serves and
a valid prompt succeeds.
"""

import math
import re

import pytest
from comfy_harness import VALID_PROMPT, WIDGET_TYPES, failure_text, pack_node_ids, single_node_prompt, widget_default

pytestmark = pytest.mark.integration

NUMBER_PROBLEM = re.compile(r"finite|minimum|maximum|smaller than min|bigger than max|convert")
CHOICE_PROBLEM = re.compile(r"not a valid choice|not in list|is not a file")
FILE_PROBLEM = re.compile(
    r"not a readable|cannot be read|is empty|truncated|damaged|incomplete|not a |no |unknown|does not|expected|"
    r"missing|unexpected",
    re.IGNORECASE,
)
TINY = {
    "whisper": "whisper_tiny_test.pt",
    "sd_vae": "sd-vae-ft-mse-tiny/diffusion_pytorch_model.safetensors",
    "hunyuan_dit": "hunyuan-video-i2v-tiny-v2/mp_rank_00_model_states.pt",
    "llava": "llava-llama-3-tiny",
    "clip": "clip-vit-large-patch14-tiny",
    "unet": "1.5/latentsync_unet.pt",
    "syncnet": "syncnet_v2.model",
}
# loader node -> (models sub-folder, file input): every loader gets the broken files below.
LOADERS = {
    "HVLoadHuMoModel": ("diffusion_models", "model_name"),
    "HVLoadHunyuanDiT": ("diffusion_models", "model_name"),
    "HVLoadWanVAE": ("vae", "vae_name"),
    "HVLoadHunyuanVAE": ("vae", "vae_name"),
    "HVLoadSDVAE": ("vae", "vae_name"),
    "HVLoadUMT5": ("text_encoders", "text_encoder_name"),
    "HVLoadWhisper": ("audio_encoders", "model"),
    "HVLoadLatentSyncUNet": ("latentsync", "unet_name"),
    "HVLoadHunyuanLoRA": ("loras", "lora_name"),
}


def node(object_info: dict, class_type: str, **values) -> dict:
    """An API node with every widget at its default, then ``values`` (links included)."""
    info = object_info[class_type]["input"]
    inputs = {
        name: widget_default(spec)
        for name, spec in (info.get("required") or {}).items()
        if isinstance(spec[0], list) or spec[0] in WIDGET_TYPES
    }
    inputs.update(values)
    return {"class_type": class_type, "inputs": inputs}


def producers(object_info: dict) -> dict:
    """A valid source of every link type a pack node takes (tiny fixtures; core caches them across prompts)."""
    text = node(object_info, "HVLoadHunyuanTextEncoders", llava_folder=TINY["llava"], clip_folder=TINY["clip"])
    image = {"class_type": "LoadImage", "inputs": {"image": "face.png"}}
    audio = node(object_info, "HVLoadAudio", audio="speech.wav", duration_seconds=1.0, sample_rate="16000")
    whisper = node(object_info, "HVLoadWhisper", model=TINY["whisper"])
    return {
        "IMAGE": image,
        "MASK": ({"class_type": "LoadImage", "inputs": {"image": "face.png"}}, 1, {}),
        "AUDIO": audio,
        "MODEL": node(object_info, "HVLoadHunyuanDiT", model_name=TINY["hunyuan_dit"]),
        "VAE": node(object_info, "HVLoadSDVAE", vae_name=TINY["sd_vae"]),
        "CLIP": (text, 0, {}),
        "CLIP_VISION": (text, 1, {}),
        "CONDITIONING": (
            node(
                object_info,
                "HVHunyuanI2VTextEncode",
                clip=["p_text", 0],
                clip_vision=["p_text", 1],
                image=["p_image", 0],
            ),
            0,
            {"p_text": text, "p_image": image},
        ),
        "LATENT": {"class_type": "EmptyLatentImage", "inputs": {"width": 64, "height": 64, "batch_size": 1}},
        "HV_WHISPER": whisper,
        "HV_AUDIO_FEATURES": (
            node(object_info, "HVWhisperFeatures", audio=["p_audio", 0], whisper=["p_whisper", 0]),
            0,
            {"p_audio": audio, "p_whisper": whisper},
        ),
        "HV_FACE_TRACK": (node(object_info, "HVFaceTrack", images=["p_image", 0]), 0, {"p_image": image}),
        "HV_LATENTSYNC_UNET": node(object_info, "HVLoadLatentSyncUNet", unet_name=TINY["unet"]),
        "HV_SYNCNET": node(object_info, "HVLoadSyncNet", syncnet_name=TINY["syncnet"]),
    }


def widget_cases(object_info: dict) -> list[tuple[str, str, object, re.Pattern]]:
    """(node, input, bad value, expected problem) for every number and choice of every pack node."""
    cases = []
    for node_id in pack_node_ids():
        info = object_info[node_id]["input"]
        for section in ("required", "optional"):
            for name, spec in (info.get(section) or {}).items():
                kind, options = spec[0], (spec[1] if len(spec) > 1 else {})
                if kind in ("INT", "FLOAT"):
                    # As text: JSON has no NaN, and core turns "nan" / "inf" into floats (float("nan")).
                    for bad in ("NaN", "inf", "-inf"):
                        cases.append((node_id, name, bad, NUMBER_PROBLEM))
                    if isinstance(options.get("min"), (int, float)) and math.isfinite(options["min"]):
                        cases.append((node_id, name, options["min"] - 1, NUMBER_PROBLEM))
                    if isinstance(options.get("max"), (int, float)) and math.isfinite(options["max"]):
                        cases.append((node_id, name, options["max"] + 1, NUMBER_PROBLEM))
                elif kind == "COMBO" or isinstance(kind, list):
                    cases.append((node_id, name, "no such choice ∅", CHOICE_PROBLEM))
    return cases


@pytest.fixture(scope="module")
def broken_files(comfy):
    """Empty, truncated, garbage and wrong-family files in every loader's folder (removed afterwards)."""
    real = sorted(p for p in comfy.models_dir.rglob("*.safetensors") if p.stat().st_size > 4096)[0]
    made = []
    for folder in {sub for sub, _ in LOADERS.values()}:
        root = comfy.models_dir / folder
        root.mkdir(exist_ok=True)
        files = {
            "hv_empty.safetensors": b"",
            "hv_truncated.safetensors": real.read_bytes()[: real.stat().st_size // 2],
            "hv_garbage.pt": bytes(range(256)) * 8,
            "hv_text.safetensors": b"this is not a checkpoint\n" * 10,
        }
        for name, data in files.items():
            (root / name).write_bytes(data)
            made.append(root / name)
    yield [n for n in files]
    for path in made:
        path.unlink()


def test_every_bad_widget_value_is_a_clear_error(comfy):
    object_info = comfy.client.object_info(refresh=True)
    sources = producers(object_info)
    cases = widget_cases(object_info)
    assert len(cases) >= 150, len(cases)
    unclear = []
    for node_id, name, value, problem in cases:
        text = failure_text(comfy, single_node_prompt(object_info, node_id, {name: value}, sources))
        if text is None:
            unclear.append(f"{node_id}.{name}={value!r}: accepted")
        elif name not in text or not problem.search(text):
            unclear.append(f"{node_id}.{name}={value!r}: {text[:300]}")
    assert not unclear, "\n".join(unclear)
    assert comfy.alive()


def test_every_loader_names_a_broken_file_and_what_is_wrong(comfy, broken_files):
    object_info = comfy.client.object_info(refresh=True)
    sources = producers(object_info)
    unclear = []
    count = 0
    for node_id, (_, name) in LOADERS.items():
        for file_name in broken_files:
            count += 1
            text = failure_text(comfy, single_node_prompt(object_info, node_id, {name: file_name}, sources))
            if text is None:
                unclear.append(f"{node_id} {file_name}: accepted")
            elif file_name not in text or not FILE_PROBLEM.search(text) or str(comfy.base) in text:
                unclear.append(f"{node_id} {file_name}: {text[:300]}")
    assert count >= 30
    assert not unclear, "\n".join(unclear)


def test_a_valid_prompt_runs_after_all_bad_ones(comfy):
    result = comfy.run(VALID_PROMPT, timeout=120)
    assert result.ok, result.error
