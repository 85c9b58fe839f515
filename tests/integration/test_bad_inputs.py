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
from comfy_harness import (
    VALID_PROMPT,
    failure_text,
    link_producers,
    pack_node_ids,
    single_node_prompt,
)

pytestmark = pytest.mark.integration

NUMBER_PROBLEM = re.compile(r"finite|minimum|maximum|smaller than min|bigger than max|convert")
CHOICE_PROBLEM = re.compile(r"not a valid choice|not in list|is not a file")
FILE_PROBLEM = re.compile(
    r"not a readable|cannot be read|is empty|truncated|damaged|incomplete|not a |no |unknown|does not|expected|"
    r"missing|unexpected",
    re.IGNORECASE,
)
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
    sources = link_producers(object_info)
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
    sources = link_producers(object_info)
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
