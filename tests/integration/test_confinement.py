"""Every file or folder input of every pack node, found from /object_info, refuses names that leave its folder.

A valid checkpoint is planted outside every configured folder and reached by traversal, an absolute path,
``~`` and symlinks placed inside each folder; every such prompt must fail with a message that names the
input, nothing of the outside file may show up in it, and the server must run the next prompt.
"""

import re
import shutil

import pytest
from comfy_harness import VALID_PROMPT, failure_text, link_producers, pack_node_ids, single_node_prompt

pytestmark = pytest.mark.integration

OUTSIDE = "outside_models"
PLANTED = "planted.safetensors"
LINK = "hv_link_out.safetensors"
DIR_LINK = "hv_dir_out"
# Known file/folder inputs: the discovery below must find at least these (it finds new ones by itself).
KNOWN = {
    ("HVLoadHuMoModel", "model_name"),
    ("HVLoadWanVAE", "vae_name"),
    ("HVLoadUMT5", "text_encoder_name"),
    ("HVLoadUMT5", "tokenizer"),
    ("HVLoadWhisper", "model"),
    ("HVLoadAudio", "audio"),
    ("HVLoadAudio", "path"),
    ("HVFaceTrack", "face_model"),
    ("HVLoadSyncNet", "syncnet_name"),
    ("HVSyncScore", "face_model"),
    ("HVLoadHunyuanDiT", "model_name"),
    ("HVLoadHunyuanVAE", "vae_name"),
    ("HVLoadHunyuanTextEncoders", "llava_folder"),
    ("HVLoadHunyuanTextEncoders", "clip_folder"),
    ("HVLoadHunyuanLoRA", "lora_name"),
    ("HVLoadSDVAE", "vae_name"),
    ("HVLoadLatentSyncUNet", "unet_name"),
}
REFUSED = re.compile(
    r"is not a valid choice|is not a name inside|is not a file|is not a folder|are not allowed|not in list"
)


def file_inputs(object_info: dict) -> list[tuple[str, str, str, dict]]:
    """(node id, input name, type, spec) of every input that names a file or folder.

    A file input is a combo or text widget whose tooltip points at a models/ folder or the input folder
    (every pack input has a tooltip, and those of file inputs say where the file comes from), or a combo
    with an upload button.
    """
    found = []
    for node_id in pack_node_ids():
        info = object_info[node_id]["input"]
        for section in ("required", "optional"):
            for name, spec in (info.get(section) or {}).items():
                kind, options = spec[0], (spec[1] if len(spec) > 1 else {})
                if not (kind in ("COMBO", "STRING") or isinstance(kind, list)):
                    continue
                tip = options.get("tooltip", "")
                if (
                    "models/" in tip
                    or "input folder" in tip
                    or options.get("audio_upload")
                    or options.get("image_upload")
                ):
                    found.append((node_id, name, "COMBO" if isinstance(kind, list) else kind, options))
    return found


@pytest.fixture(scope="module")
def planted(comfy):
    """A valid checkpoint outside every folder, and symlinks to it (and its folder) inside every folder."""
    outside = comfy.base / OUTSIDE
    outside.mkdir(exist_ok=True)
    real = next(p for p in sorted(comfy.models_dir.rglob("*.safetensors")) if p.stat().st_size > 0)
    shutil.copyfile(real, outside / PLANTED)
    for marker in ("config.json", "spiece.model"):
        (outside / marker).write_text("{}")
    folders = [p for p in comfy.models_dir.iterdir() if p.is_dir()] + [comfy.input_dir]
    links = []
    for folder in folders:
        for link, target in ((LINK, outside / PLANTED), (DIR_LINK, outside)):
            if not (folder / link).is_symlink():
                (folder / link).symlink_to(target)
                links.append(folder / link)
    yield outside
    for link in links:  # the server is shared with other tests: leave its folders as they were
        link.unlink()


def test_every_file_input_refuses_names_that_leave_its_folder(comfy, planted):
    object_info = comfy.client.object_info(refresh=True)
    producers = link_producers(object_info)
    found = file_inputs(object_info)
    assert KNOWN <= {(n, i) for n, i, _, _ in found}, sorted(KNOWN - {(n, i) for n, i, _, _ in found})
    hostile = [
        f"../../{OUTSIDE}/{PLANTED}",
        f"sub/../../../{OUTSIDE}/{PLANTED}",
        str(planted / PLANTED),
        f"~/{PLANTED}",
        "/etc",
        LINK,
        DIR_LINK,
        f"{DIR_LINK}/{PLANTED}",
    ]
    for node_id, input_name, _, _ in found:
        for value in hostile:
            text = failure_text(comfy, single_node_prompt(object_info, node_id, {input_name: value}, producers))
            assert text is not None, f"{node_id}.{input_name} accepted {value!r}"
            assert input_name in text, f"{node_id}.{input_name} {value!r}: {text}"
            # The value sent may be echoed; no other install path may appear.
            assert str(comfy.base) not in text.replace(value, ""), (
                f"{node_id}.{input_name} {value!r} shows an install path: {text}"
            )
            # Refused by its name, before any file was opened (a parsed file would be described instead).
            assert REFUSED.search(text), f"{node_id}.{input_name} {value!r}: {text}"
    assert comfy.alive()


def test_the_next_prompt_runs_after_refusals(comfy, planted):
    result = comfy.run(VALID_PROMPT, timeout=120)
    assert result.ok, result.error
