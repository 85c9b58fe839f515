"""Workflows loaded in the real ComfyUI page, as a user does it (Workflow > Open, or drag and drop).

For every shipped `workflows/*.json`, with the (tiny) model files it names present on the server: no
missing node or model and no error reported by the page, every node registered with all the widgets its
schema declares, no dangling links, the page's own API conversion equal to the batch client's
(`batch/ui_to_api.py`), no two nodes overlapping, every node inside a group and every media player inside
its own node. A core-node workflow made here proves the checks (with negative controls: an unknown node,
an absent model file) and is queued from the page until its preview shows; the shipped LatentSync workflow
is queued the same way and makes its mp4. Checks read both frontends (see tests/comfy_page.py).
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from comfy_page import (
    check_loaded,
    close_dialogs,
    error_details,
    layout_problems,
    missing_node_messages,
    open_workflow,
    page_messages,
    press_run,
)
from humanvideo.batch.jobs import validate_prompt

pytestmark = [pytest.mark.integration, pytest.mark.browser]

PACK_ROOT = Path(__file__).resolve().parents[2]
SHIPPED = sorted((PACK_ROOT / "workflows").glob("*.json"))


def core_workflow() -> dict:
    """LoadImage -> ImageScale -> SaveImage, saved as the page saves it."""
    return {
        "last_node_id": 3,
        "last_link_id": 2,
        "version": 0.4,
        "groups": [],
        "config": {},
        "extra": {},
        "links": [[1, 1, 0, 2, 0, "IMAGE"], [2, 2, 0, 3, 0, "IMAGE"]],
        "nodes": [
            {
                "id": 1,
                "type": "LoadImage",
                "pos": [0, 0],
                "size": [300, 320],
                "mode": 0,
                "order": 0,
                "inputs": [],
                "outputs": [
                    {"name": "IMAGE", "type": "IMAGE", "links": [1]},
                    {"name": "MASK", "type": "MASK", "links": []},
                ],
                "properties": {},
                "widgets_values": ["face.png", "image"],
            },
            {
                "id": 2,
                "type": "ImageScale",
                "pos": [350, 0],
                "size": [300, 150],
                "mode": 0,
                "order": 1,
                "inputs": [{"name": "image", "type": "IMAGE", "link": 1}],
                "outputs": [{"name": "IMAGE", "type": "IMAGE", "links": [2]}],
                "properties": {},
                "widgets_values": ["bilinear", 64, 48, "disabled"],
            },
            {
                "id": 3,
                "type": "SaveImage",
                "pos": [700, 0],
                "size": [300, 300],
                "mode": 0,
                "order": 2,
                "inputs": [{"name": "images", "type": "IMAGE", "link": 2}],
                "outputs": [],
                "properties": {},
                "widgets_values": ["browser/core"],
            },
        ],
    }


def queue_and_wait_for_preview(page, save_node_id: int, timeout_ms: int) -> None:
    press_run(page)
    page.wait_for_function(
        """(id) => { const n = app.graph.getNodeById(id);
                     const out = app.nodeOutputs
                         && Object.entries(app.nodeOutputs).find(([k]) => String(k) === String(id));
                     const imgs = (n && n.imgs) || [];
                     return !!out && imgs.length > 0 && imgs.every(i => i.complete && i.naturalWidth > 0); }""",
        arg=save_node_id,
        timeout=timeout_ms,
    )


# What a user would change in the shipped LatentSync workflow to try it quickly on the test server: a short
# clip, a short slice of speech, 1 step. The model files it names are there (tiny ones under the real names).
QUEUED_WORKFLOW = "latentsync_1.5_256"
QUEUED_EDITS = {
    "LoadVideo": {"file": "face_short.mp4"},
    "HVLoadAudio": {"duration_seconds": 0.2},
    "HVLatentSync": {"steps": 1},
}


def wait_until_idle(server, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        queue = server.client.queue()
        if not queue["queue_running"] and not queue["queue_pending"]:
            return
        time.sleep(1)
    raise AssertionError(f"the server was still busy after {timeout:.0f} s")


def set_widgets(page, edits: dict[str, dict]) -> None:
    """Sets widget values by node type and widget name, as a user types them in."""
    page.evaluate(
        """(edits) => {
        for (const node of app.graph.nodes)
            for (const w of node.widgets || []) {
                const edit = (edits[node.type] || {})[w.name];
                if (edit !== undefined) w.value = edit;
            }
        app.graph.setDirtyCanvas(true, true);
    }""",
        edits,
    )


@pytest.fixture(scope="module")
def object_info(page_server):
    return page_server.client.object_info(refresh=True)


@pytest.mark.parametrize("how", ["open", "drop"])
def test_core_workflow_loads_by_open_and_drop(page, page_server, tmp_path, object_info, how):
    path = tmp_path / "core_nodes.json"
    path.write_text(json.dumps(core_workflow()))
    open_workflow(page, path, how)
    api = check_loaded(page, page_server, path, object_info)
    assert api["2"]["inputs"] == {
        "upscale_method": "bilinear",
        "width": 64,
        "height": 48,
        "crop": "disabled",
        "image": ["1", 0],
    }


def test_a_missing_node_is_detected(page, page_server, tmp_path, object_info):
    wf = core_workflow()
    wf["nodes"][1]["type"] = "HVNodeThatDoesNotExist"
    path = tmp_path / "missing.json"
    path.write_text(json.dumps(wf))
    open_workflow(page, path)
    messages = missing_node_messages(page)
    assert messages and "HVNodeThatDoesNotExist" in "\n".join(messages), page_messages(page)
    with pytest.raises(AssertionError, match="missing nodes"):
        check_loaded(page, page_server, path, object_info)


def test_an_absent_model_file_is_named_and_not_run(page, page_server, tmp_path, object_info):
    """The shipped LatentSync workflow with its Whisper file renamed to one the server lacks (download hint
    included): the page names the file, and Run makes no video. Frontend 1.49 refuses to queue it; 1.32
    queues it, and the run stops at the loader with an error naming the file."""
    wf = json.loads((PACK_ROOT / "workflows" / f"{QUEUED_WORKFLOW}.json").read_text())
    [loader] = [n for n in wf["nodes"] if n["type"] == "HVLoadWhisper"]
    loader["widgets_values"][0] = loader["properties"]["models"][0]["name"] = "tiny_absent.pt"
    path = tmp_path / "absent_model.json"
    path.write_text(json.dumps(wf))
    open_workflow(page, path)
    with pytest.raises(AssertionError):
        check_loaded(page, page_server, path, object_info)
    reported = "\n".join(page_messages(page) + error_details(page))
    assert "tiny_absent.pt" in reported, reported
    close_dialogs(page)
    set_widgets(page, QUEUED_EDITS)  # if it runs at all, it gets to the loader quickly
    before = set(page_server.client.history())
    press_run(page)
    page.wait_for_timeout(2_000)
    wait_until_idle(page_server, timeout=300)
    ran = [e for pid, e in page_server.client.history().items() if pid not in before]
    assert all(e["status"]["status_str"] == "error" for e in ran), [e["status"] for e in ran]
    assert all("tiny_absent.pt" in json.dumps(e["status"]["messages"]) for e in ran), [e["status"] for e in ran]


def test_core_workflow_queued_from_the_page_shows_its_preview(page, page_server, tmp_path, object_info):
    path = tmp_path / "core_nodes.json"
    path.write_text(json.dumps(core_workflow()))
    open_workflow(page, path)
    check_loaded(page, page_server, path, object_info)
    before = set(page_server.client.history())
    queue_and_wait_for_preview(page, 3, timeout_ms=60_000)
    new = [e for pid, e in page_server.client.history().items() if pid not in before]
    assert len(new) == 1 and new[0]["status"]["status_str"] == "success"
    [img] = new[0]["outputs"]["3"]["images"]
    assert (page_server.output_dir / img["subfolder"] / img["filename"]).is_file()


@pytest.mark.skipif(not SHIPPED, reason="no workflows/*.json shipped yet")
@pytest.mark.parametrize("path", SHIPPED, ids=[p.stem for p in SHIPPED])
def test_shipped_workflow_opens_cleanly_and_readably(page, page_server, object_info, path):
    open_workflow(page, path)
    check_loaded(page, page_server, path, object_info)
    saved = json.loads(path.read_text())
    ours = [
        n for n in saved["nodes"] if "ComfyUI-HumanVideo" in (object_info.get(n["type"], {}).get("python_module") or "")
    ]
    assert ours, f"{path.name} uses no node of the pack"
    layout = layout_problems(page)
    assert layout["groups"] == len(saved["groups"]) > 1
    assert not layout["overlaps"], f"{path.name}: overlapping nodes {layout['overlaps']}"
    assert not layout["ungrouped"], f"{path.name}: nodes outside every group {layout['ungrouped']}"
    assert not layout["players"], f"{path.name}: media players outside their node {layout['players']}"
    audio_loaders = sum(n["type"] == "HVLoadAudio" for n in saved["nodes"])
    assert layout["players_checked"] >= audio_loaders, f"{path.name}: audio players not found: {layout}"
    notes = [n for n in saved["nodes"] if n["type"] == "MarkdownNote"]
    assert notes and all(n["widgets_values"][0].strip() for n in notes), f"{path.name}: no notes"
    assert not page.errors, f"{path.name}: errors thrown in the page: {page.errors}"


def test_a_shipped_workflow_queued_from_the_page_makes_its_mp4(page, page_server, object_info):
    """The shipped LatentSync workflow, opened in the page, a shorter input picked in its widgets, queued with
    Run: the run succeeds, the mp4 is written and its preview reaches the page."""
    path = PACK_ROOT / "workflows" / f"{QUEUED_WORKFLOW}.json"
    open_workflow(page, path)
    check_loaded(page, page_server, path, object_info)
    close_dialogs(page)
    set_widgets(page, QUEUED_EDITS)
    prompt = page.evaluate("async () => (await app.graphToPrompt()).output")
    assert not validate_prompt(prompt, object_info), validate_prompt(prompt, object_info)
    outputs = [nid for nid, n in prompt.items() if object_info[n["class_type"]].get("output_node")]
    before = set(page_server.client.history())
    press_run(page)
    # The output reached the page, with the file it names.
    page.wait_for_function(
        """(ids) => ids.some(id => {
              const entry = Object.entries(app.nodeOutputs || {}).find(([k]) => String(k) === String(id));
              const files = entry ? Object.values(entry[1]).flat() : [];
              return files.some(f => f && String(f.filename).endsWith(".mp4")); })""",
        arg=outputs,
        timeout=300_000,
    )
    new = [e for pid, e in page_server.client.history().items() if pid not in before]
    assert len(new) == 1 and new[0]["status"]["status_str"] == "success"
    [video] = [f for out in new[0]["outputs"].values() for f in out.get("images", [])]
    assert video["filename"].endswith(".mp4")
    assert (page_server.output_dir / video["subfolder"] / video["filename"]).is_file()
