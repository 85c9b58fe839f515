"""Workflows loaded in the real ComfyUI page, as a user does it (Workflow > Open, or drag and drop).

For every shipped `workflows/*.json`: no missing-node dialog, every node registered with all the
widgets its schema declares, no dangling links, and the page's own API conversion equal to the batch
client's (`batch/ui_to_api.py`). A core-node workflow made here proves the checks (including a
negative control with an unknown node) and is queued from the page until its preview shows; the
shipped LatentSync workflow is queued the same way with the tiny checkpoints picked in its widgets.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from humanvideo.batch.jobs import validate_prompt
from humanvideo.batch.ui_to_api import convert, find_dangling_links, widget_specs

pytestmark = [pytest.mark.integration, pytest.mark.browser]

PACK_ROOT = Path(__file__).resolve().parents[2]
SHIPPED = sorted((PACK_ROOT / "workflows").glob("*.json"))
MISSING_DIALOG = "missing nodes"


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


def open_workflow(page, path: Path, how: str = "open") -> None:
    """Loads a workflow file through the page's own file handling."""
    if how == "open":
        # The hidden input behind Workflow > Open.
        page.set_input_files("#comfy-file-input", str(path))
    else:
        data = path.read_text()
        page.evaluate(
            """([name, text]) => {
            const dt = new DataTransfer();
            dt.items.add(new File([text], name, {type: "application/json"}));
            const target = document.querySelector("canvas#graph-canvas") || document;
            for (const type of ["dragenter", "dragover", "drop"])
                target.dispatchEvent(new DragEvent(type, {dataTransfer: dt, bubbles: true, cancelable: true}));
        }""",
            [path.name, data],
        )
    expected = len(json.loads(path.read_text())["nodes"])
    page.wait_for_function(f"window.app.graph.nodes.length === {expected}", timeout=30_000)
    page.wait_for_timeout(800)  # the missing-node dialog opens right after configure


def missing_node_dialog(page) -> str | None:
    texts = page.evaluate("Array.from(document.querySelectorAll('[role=dialog]')).map(d => d.innerText)")
    return next((t for t in texts if MISSING_DIALOG in t.lower()), None)


def check_loaded(page, path: Path, object_info: dict) -> dict:
    """Asserts the user-visible health of a loaded workflow; returns the page's API prompt."""
    dialog = missing_node_dialog(page)
    assert dialog is None, f"{path.name}: missing-node dialog: {dialog}"
    nodes = page.evaluate("""() => app.graph.nodes.map(n => ({
        id: n.id, type: n.type, has_errors: !!n.has_errors,
        registered: !!LiteGraph.registered_node_types[n.type],
        widgets: (n.widgets || []).map(w => w.name)}))""")
    saved = json.loads(path.read_text())
    assert sorted(n["type"] for n in nodes) == sorted(n["type"] for n in saved["nodes"])
    for n in nodes:
        assert n["registered"] and not n["has_errors"], f"{path.name}: node {n['id']} {n['type']} failed to load"
        info = object_info.get(n["type"])
        if info is None:
            continue  # frontend-only nodes (Note, Reroute, PrimitiveNode)
        declared = [name for name, _ in widget_specs(info)]
        absent = [w for w in declared if w not in n["widgets"]]
        assert not absent, f"{path.name}: node {n['id']} {n['type']} lacks widgets {absent}"
    assert find_dangling_links(saved) == [], f"{path.name}: dangling links in the file"
    in_page = page.evaluate("() => JSON.parse(JSON.stringify(app.graph.serialize()))")
    assert find_dangling_links(in_page) == [], f"{path.name}: dangling links after loading"
    api = declared_inputs_only(page.evaluate("async () => (await app.graphToPrompt()).output"), object_info)
    assert convert(saved, object_info) == api, f"{path.name}: batch conversion differs from the page's"
    return api


def declared_inputs_only(prompt: dict, object_info: dict) -> dict:
    """The page also sends values of its own display widgets (core's audio player "audioUI", LoadVideo's
    "video-preview"); the server ignores inputs a node does not declare, and so does this comparison."""
    out = {}
    for node_id, node in prompt.items():
        declared = object_info.get(node["class_type"], {}).get("input", {})
        names = {n for section in ("required", "optional") for n in declared.get(section, {})}
        out[node_id] = {**node, "inputs": {k: v for k, v in node["inputs"].items() if not declared or k in names}}
    return out


def press_run(page) -> list[str]:
    """Clicks the page's Run (queue) button, closing notifications that cover it first (they can keep
    arriving, e.g. the missing-models check of a workflow's download hints); returns their texts."""
    seen: list[str] = []
    last_error: list[str] = []
    run = page.get_by_role("button", name="Run", exact=True)
    for _ in range(10):
        seen += page.evaluate("Array.from(document.querySelectorAll('.p-toast-message')).map(t => t.innerText)")
        for close in page.locator(".p-toast-close-button").all():
            if close.is_visible():
                close.click()
        try:
            run.click(timeout=3_000)
            return seen
        except Exception as e:  # covered again by a new notification: close it and retry
            last_error = str(e).splitlines()[-3:]
            page.wait_for_timeout(500)
    raise AssertionError(f"the Run button stayed covered: notifications {seen}; {last_error}")


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


@pytest.fixture(scope="module")
def object_info(page_server):
    return page_server.client.object_info(refresh=True)


@pytest.mark.parametrize("how", ["open", "drop"])
def test_core_workflow_loads_by_open_and_drop(page, tmp_path, object_info, how):
    path = tmp_path / "core_nodes.json"
    path.write_text(json.dumps(core_workflow()))
    open_workflow(page, path, how)
    api = check_loaded(page, path, object_info)
    assert api["2"]["inputs"] == {
        "upscale_method": "bilinear",
        "width": 64,
        "height": 48,
        "crop": "disabled",
        "image": ["1", 0],
    }


def test_missing_node_dialog_is_detected(page, tmp_path, object_info):
    wf = core_workflow()
    wf["nodes"][1]["type"] = "HVNodeThatDoesNotExist"
    path = tmp_path / "missing.json"
    path.write_text(json.dumps(wf))
    open_workflow(page, path)
    dialog = missing_node_dialog(page)
    assert dialog is not None and "HVNodeThatDoesNotExist" in dialog
    with pytest.raises(AssertionError, match="missing-node dialog"):
        check_loaded(page, path, object_info)


def test_core_workflow_queued_from_the_page_shows_its_preview(page, page_server, tmp_path, object_info):
    path = tmp_path / "core_nodes.json"
    path.write_text(json.dumps(core_workflow()))
    open_workflow(page, path)
    check_loaded(page, path, object_info)
    before = set(page_server.client.history())
    queue_and_wait_for_preview(page, 3, timeout_ms=60_000)
    new = [e for pid, e in page_server.client.history().items() if pid not in before]
    assert len(new) == 1 and new[0]["status"]["status_str"] == "success"
    [img] = new[0]["outputs"]["3"]["images"]
    assert (page_server.output_dir / img["subfolder"] / img["filename"]).is_file()


@pytest.mark.skipif(not SHIPPED, reason="no workflows/*.json shipped yet")
@pytest.mark.parametrize("path", SHIPPED, ids=[p.stem for p in SHIPPED])
def test_shipped_workflow_loads_without_missing_nodes(page, object_info, path):
    open_workflow(page, path)
    check_loaded(page, path, object_info)
    ours = [
        n
        for n in json.loads(path.read_text())["nodes"]
        if "ComfyUI-HumanVideo" in (object_info.get(n["type"], {}).get("python_module") or "")
    ]
    assert ours, f"{path.name} uses no node of the pack"


# What a user would change in the shipped LatentSync workflow to try it on the test server: the tiny
# checkpoints instead of the real ones (same formats), a short clip, a short slice of speech, 1 step.
QUEUED_WORKFLOW = "latentsync_1.5_256"
QUEUED_EDITS = {
    "LoadVideo": {"file": "face_short.mp4"},
    "HVLoadAudio": {"duration_seconds": 0.2},
    "HVLatentSync": {"steps": 1},
}


def test_a_shipped_workflow_queued_from_the_page_shows_its_preview(page, page_server, object_info):
    """The shipped LatentSync workflow, opened in the page, its model files swapped for the tiny ones in
    the widgets (as a user would pick their files), queued with Run: the mp4 preview appears."""
    from workflow_specs import TEST_FILES  # scripts/ is on sys.path (tests/conftest.py)

    path = PACK_ROOT / "workflows" / f"{QUEUED_WORKFLOW}.json"
    open_workflow(page, path)
    check_loaded(page, path, object_info)
    # The real checkpoints are not on the test server, so the page lists them from the loaders'
    # download hints (properties.models); the user closes that dialog and picks their own files.
    missing = page.locator("[role=dialog]").filter(has_text="Missing Models")
    missing.wait_for(timeout=15_000)
    assert "tiny.pt" in missing.inner_text()
    page.keyboard.press("Escape")
    missing.wait_for(state="hidden", timeout=10_000)
    page.evaluate(
        """([files, edits]) => {
        for (const node of app.graph.nodes) {
            for (const w of node.widgets || []) {
                if (typeof w.value === "string" && files[w.value]) w.value = files[w.value];
                const edit = (edits[node.type] || {})[w.name];
                if (edit !== undefined) w.value = edit;
            }
        }
        app.graph.setDirtyCanvas(true, true);
    }""",
        [TEST_FILES, QUEUED_EDITS],
    )
    prompt = page.evaluate("async () => (await app.graphToPrompt()).output")
    assert not validate_prompt(prompt, object_info), validate_prompt(prompt, object_info)
    outputs = [nid for nid, n in prompt.items() if object_info[n["class_type"]].get("output_node")]
    before = set(page_server.client.history())
    press_run(page)
    # The output reached the page, and its preview element (video for animated output) exists.
    page.wait_for_function(
        """(ids) => ids.some(id => {
              const entry = Object.entries(app.nodeOutputs || {}).find(([k]) => String(k) === String(id));
              if (!entry) return false;
              const files = Object.values(entry[1]).flat().filter(f => f && f.filename);
              if (!files.length) return false;
              const n = app.graph.getNodeById(Number(id));
              return (n && n.imgs && n.imgs.length > 0) || document.querySelectorAll("video").length > 0; })""",
        arg=outputs,
        timeout=300_000,
    )
    new = [e for pid, e in page_server.client.history().items() if pid not in before]
    assert len(new) == 1 and new[0]["status"]["status_str"] == "success"
    [video] = [f for out in new[0]["outputs"].values() for f in out.get("images", [])]
    assert video["filename"].endswith(".mp4")
    assert (page_server.output_dir / video["subfolder"] / video["filename"]).is_file()
