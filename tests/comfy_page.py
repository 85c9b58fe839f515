"""What a user sees in the ComfyUI page, read the same way on the frontends of both test hosts.

Frontend 1.32 (ComfyUI 0.3.75) reports a missing node type and missing model files in dialogs; 1.49
(ComfyUI 0.33) reports both in an error panel (``data-testid=error-overlay``) and refuses to queue a
workflow whose model files are absent. 1.49 has two buttons named "Run" (the button and its menu); the
one that queues shows the word.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from humanvideo.batch.ui_to_api import convert, find_dangling_links, widget_specs

MISSING_NODES = re.compile(r"missing nodes|missing node:", re.IGNORECASE)
MISSING_MODEL_LINE = re.compile(r"^\s*([\w./-]+) / (\S.*?)\s*$")


def open_workflow(page, path: Path, how: str = "open") -> None:
    """Loads a workflow file through the page's own file handling (Workflow > Open, or a drop)."""
    if how == "open":
        page.set_input_files("#comfy-file-input", str(path))  # the hidden input behind Workflow > Open
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
    page.wait_for_timeout(1_500)  # the dialogs / the error panel open right after configure


def page_messages(page) -> list[str]:
    """Texts of the open dialogs and of the error panel."""
    return page.evaluate(
        """() => Array.from(document.querySelectorAll('[role=dialog], [data-testid=error-overlay]'))
                .filter(e => e.offsetWidth || e.offsetHeight).map(e => e.innerText)"""
    )


def error_details(page) -> list[str]:
    """1.49: the error panel's "View details" list (one entry per kind of error, naming nodes and files);
    empty on frontends without it."""
    button = page.locator("[data-testid=error-overlay] button").filter(has_text="View details")
    if not button.count():
        return []
    button.first.click()
    page.wait_for_timeout(1_000)
    return page.evaluate(
        """() => Array.from(document.querySelectorAll('[data-testid^=error-group]'))
                .filter(e => e.offsetWidth || e.offsetHeight).map(e => e.innerText)"""
    )


def missing_node_messages(page) -> list[str]:
    return [m for m in page_messages(page) if MISSING_NODES.search(m)]


def missing_models(page) -> list[tuple[str, str]]:
    """(folder, file) entries of 1.32's Missing Models dialog."""
    out = []
    for message in page_messages(page):
        if message.strip().startswith("Missing Models"):
            out += [m.groups() for m in map(MISSING_MODEL_LINE.match, message.splitlines()) if m]
    return out


def unseen_by_model_list(server, folder: str, name: str) -> bool:
    """A file the server has but its model list (``/experiment/models``, which 1.32 checks the download hints
    against) does not show: a folder, or a file of an extension the list leaves out (dlib's ``.dat``)."""
    import requests

    on_disk = (server.models_dir / folder / name).exists()
    listed = requests.get(f"{server.url}/experiment/models/{folder}", timeout=30).json()
    return on_disk and name not in {entry["name"] for entry in listed}


def check_loaded(page, server, path: Path, object_info: dict) -> dict:
    """Asserts the user-visible health of a loaded workflow; returns the page's API prompt."""
    assert not missing_node_messages(page), f"{path.name}: missing nodes: {missing_node_messages(page)}"
    # 1.32 lists the download hints it cannot check, even when the files are there (see unseen_by_model_list).
    absent = [(f, n) for f, n in missing_models(page) if not unseen_by_model_list(server, f, n)]
    assert not absent, f"{path.name}: model files reported missing: {absent}"
    panels = [m for m in page_messages(page) if not m.strip().startswith("Missing Models")]
    assert not panels, f"{path.name}: the page reports problems: {panels}"
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
            continue  # frontend-only nodes (notes, Reroute, PrimitiveNode)
        declared = [name for name, _ in widget_specs(info)]
        absent_widgets = [w for w in declared if w not in n["widgets"]]
        assert not absent_widgets, f"{path.name}: node {n['id']} {n['type']} lacks widgets {absent_widgets}"
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


def layout_problems(page) -> dict[str, list]:
    """Overlapping nodes and nodes outside every group, as the page has sized them (title bars included), and
    media players (each <audio>/<video> element, looked at with its node in view at scale 1) that are not
    drawn inside their own node alone; ``players_checked`` counts the players looked at."""
    return page.evaluate(
        """async () => {
        const overlap = (a, b) => a[0] < b[0] + b[2] && b[0] < a[0] + a[2] && a[1] < b[1] + b[3] && b[1] < a[1] + a[3];
        const inside = (a, b) => a[0] >= b[0] - 1 && a[1] >= b[1] - 1 && a[0] + a[2] <= b[0] + b[2] + 1
                                 && a[1] + a[3] <= b[1] + b[3] + 1;
        const nodes = app.graph.nodes.map(n => ({name: `${n.id} ${n.type}`, node: n,
                                                 box: Array.from(n.getBounding())}));
        const overlaps = [];
        for (let i = 0; i < nodes.length; i++)
            for (let j = i + 1; j < nodes.length; j++)
                if (overlap(nodes[i].box, nodes[j].box)) overlaps.push([nodes[i].name, nodes[j].name]);
        const groups = (app.graph._groups || app.graph.groups || []).map(g => Array.from(g._bounding || g.bounding));
        const ungrouped = nodes.filter(n => !groups.some(g => inside(n.box, g))).map(n => n.name);

        const ds = app.canvas.ds, canvas = app.canvas.canvas;
        const frame = () => new Promise(r => requestAnimationFrame(() => requestAnimationFrame(r)));
        const players = [], saved = [ds.scale, [...ds.offset]];
        let checked = 0;
        for (const n of nodes) {
            const media = (n.node.widgets || []).flatMap(w => !w.element ? [] : [
                ...w.element.querySelectorAll("audio, video"),
                ...(w.element.matches?.("audio, video") ? [w.element] : [])]);
            if (!media.length) continue;
            ds.scale = 1;
            ds.offset = [canvas.clientWidth / 2 - n.box[0] - n.box[2] / 2,
                         canvas.clientHeight / 2 - n.box[1] - n.box[3] / 2];
            app.canvas.setDirty(true, true);
            app.canvas.draw(true, true);
            await frame();
            const c = canvas.getBoundingClientRect();
            const screen = (b) => [c.left + (b[0] + ds.offset[0]) * ds.scale, c.top + (b[1] + ds.offset[1]) * ds.scale,
                                   b[2] * ds.scale, b[3] * ds.scale];
            for (const el of media) {
                const r = el.getBoundingClientRect();
                const box = [r.left, r.top, r.width, r.height];
                const hits = nodes.filter(o => overlap(box, screen(o.box))).map(o => o.name);
                checked += 1;
                if (!r.width || !r.height || !inside(box, screen(n.box)) || hits.length !== 1)
                    players.push({node: n.name, element: el.tagName, rect: box.map(Math.round), overlaps: hits});
            }
        }
        [ds.scale, ds.offset] = [saved[0], saved[1]];
        app.canvas.setDirty(true, true);
        return {overlaps, ungrouped, players, players_checked: checked, groups: groups.length};
    }"""
    )


def press_run(page) -> list[str]:
    """Clicks the page's Run (queue) button, closing notifications that cover it first (they can keep
    arriving); returns their texts."""
    seen: list[str] = []
    last_error: list[str] = []
    run = page.locator("button").filter(has_text=re.compile(r"^\s*Run\s*$")).first
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


def close_dialogs(page) -> None:
    """Escape closes the dialogs 1.32 opens on load (the error panel of 1.49 stays out of the way)."""
    for _ in range(3):
        if not page.evaluate("() => !!document.querySelector('[role=dialog]')"):
            return
        page.keyboard.press("Escape")
        page.wait_for_timeout(300)
