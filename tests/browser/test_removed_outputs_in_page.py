"""A workflow saved while HuMo Sampler still had its predicted_mask output, opened in the real page: the stale
output and its link are dropped, the user is told why, and the rest of the graph stays as saved."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

pytestmark = [pytest.mark.integration, pytest.mark.browser]

PACK_ROOT = Path(__file__).resolve().parents[2]


def saved_with_predicted_mask() -> dict:
    """The shipped 1.7B workflow as the page saved it before the removal, predicted_mask -> MaskToImage -> preview."""
    wf = json.loads((PACK_ROOT / "workflows" / "humo_1.7b_tia_480p.json").read_text())
    sampler = next(n for n in wf["nodes"] if n["type"] == "HVHuMoSampler")
    mask_link, image_link = wf["last_link_id"] + 1, wf["last_link_id"] + 2
    to_image, preview = wf["last_node_id"] + 1, wf["last_node_id"] + 2
    sampler["outputs"].append({"name": "predicted_mask", "type": "MASK", "links": [mask_link], "slot_index": 1})
    wf["links"] += [[mask_link, sampler["id"], 1, to_image, 0, "MASK"], [image_link, to_image, 0, preview, 0, "IMAGE"]]
    wf["nodes"] += [
        {
            "id": to_image,
            "type": "MaskToImage",
            "pos": [1900, 400],
            "size": [300, 60],
            "flags": {},
            "order": len(wf["nodes"]),
            "mode": 0,
            "inputs": [{"name": "mask", "type": "MASK", "link": mask_link}],
            "outputs": [{"name": "IMAGE", "type": "IMAGE", "links": [image_link], "slot_index": 0}],
            "properties": {},
            "widgets_values": [],
        },
        {
            "id": preview,
            "type": "PreviewImage",
            "pos": [1900, 500],
            "size": [300, 300],
            "flags": {},
            "order": len(wf["nodes"]) + 1,
            "mode": 0,
            "inputs": [{"name": "images", "type": "IMAGE", "link": image_link}],
            "outputs": [],
            "properties": {},
            "widgets_values": [],
        },
    ]
    wf["last_link_id"], wf["last_node_id"] = image_link, preview
    return wf


def test_saved_link_to_the_removed_predicted_mask_is_dropped_with_a_message(page, tmp_path):
    wf = saved_with_predicted_mask()
    path = tmp_path / "saved_before_removal.json"
    path.write_text(json.dumps(wf))
    page.set_input_files("#comfy-file-input", str(path))
    page.wait_for_function(f"window.app.graph.nodes.length === {len(wf['nodes'])}", timeout=30_000)
    page.wait_for_function(
        "Array.from(document.querySelectorAll('.p-toast-message')).some(t => t.innerText.includes('predicted_mask'))",
        timeout=15_000,
    )
    state = page.evaluate("""() => {
        const sampler = app.graph.nodes.find(n => n.type === 'HVHuMoSampler');
        const toImage = app.graph.nodes.find(n => n.type === 'MaskToImage');
        return {outputs: sampler.outputs.map(o => o.name), latentLinks: (sampler.outputs[0].links || []).length,
                maskLink: toImage.inputs[0].link, links: Object.keys(app.graph.links || {}).length,
                toasts: Array.from(document.querySelectorAll('.p-toast-message')).map(t => t.innerText)}
    }""")
    assert state["outputs"] == ["latent"] and state["latentLinks"] == 1
    assert state["maskLink"] is None and state["links"] == len(wf["links"]) - 1
    [toast] = [t for t in state["toasts"] if "predicted_mask" in t]
    assert "focus_by_prediction" in toast and "1 link(s) removed" in toast
    assert not page.errors
