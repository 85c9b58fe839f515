"""HuMo Conditioning in the page: a preset size shows its width and height and does not let the user edit
them; "custom" makes them editable. What the node shows is what the page sends (web/js/humanvideo_humo_size.js).

Driven as a user does it: clicking the size combo and picking an entry, clicking the arrows of the width widget.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from comfy_page import check_loaded, close_dialogs, open_workflow
from humanvideo.samplers.humo_conditioning import PRESET_SIZES

pytestmark = [pytest.mark.integration, pytest.mark.browser]

WORKFLOW = Path(__file__).resolve().parents[2] / "workflows" / "humo_17b_tia_720p.json"


def widget_state(page) -> dict:
    return page.evaluate(
        """() => { const n = app.graph.nodes.find(n => n.type === "HVHuMoConditioning");
                   const w = (name) => n.widgets.find(w => w.name === name);
                   return {size: w("size").value, width: w("width").value, height: w("height").value,
                           locked: [!!(w("width").disabled || w("width").computedDisabled),
                                    !!(w("height").disabled || w("height").computedDisabled)]}; }"""
    )


def widget_point(page, name: str, x_fraction: float) -> tuple[float, float]:
    """Screen point on a widget of the node (x as a fraction of the node's width), with the node in view."""
    return tuple(
        page.evaluate(
            """([name, fx]) => {
            const n = app.graph.nodes.find(n => n.type === "HVHuMoConditioning");
            const ds = app.canvas.ds, canvas = app.canvas.canvas;
            ds.scale = 1;
            ds.offset = [canvas.clientWidth / 2 - n.pos[0] - n.size[0] / 2, 80 - n.pos[1]];
            app.canvas.setDirty(true, true);
            app.canvas.draw(true, true);
            const w = n.widgets.find(w => w.name === name);
            const h = w.computedHeight || 20;
            const c = canvas.getBoundingClientRect();
            return [c.left + (n.pos[0] + n.size[0] * fx + ds.offset[0]) * ds.scale,
                    c.top + (n.pos[1] + (w.last_y ?? w.y) + h / 2 + ds.offset[1]) * ds.scale];
        }""",
            [name, x_fraction],
        )
    )


def pick_size(page, value: str) -> None:
    page.mouse.click(*widget_point(page, "size", 0.5))
    entry = page.locator(".litemenu-entry").filter(has_text=re.compile(rf"^\s*{re.escape(value)}\s*$")).first
    entry.click(timeout=10_000)
    page.wait_for_timeout(200)


def click_width_arrow(page) -> None:
    page.mouse.click(*widget_point(page, "width", 0.93))  # the right arrow: one step up
    page.wait_for_timeout(200)


def test_preset_sizes_lock_width_and_height_and_custom_frees_them(page, page_server):
    object_info = page_server.client.object_info()
    open_workflow(page, WORKFLOW)
    check_loaded(page, page_server, WORKFLOW, object_info)
    close_dialogs(page)
    spec = object_info["HVHuMoConditioning"]["input"]["required"]["size"]
    choices = spec[0] if isinstance(spec[0], list) else spec[1]["options"]  # V3 combos: ["COMBO", {options}]
    presets = [s for s in choices if s != "custom"]
    assert sorted(presets) == sorted(PRESET_SIZES)

    # As shipped: the preset's numbers, locked.
    width, height = PRESET_SIZES["720x1280"]
    assert widget_state(page) == {"size": "720x1280", "width": width, "height": height, "locked": [True, True]}
    for preset in presets:
        pick_size(page, preset)
        width, height = PRESET_SIZES[preset]
        assert widget_state(page) == {"size": preset, "width": width, "height": height, "locked": [True, True]}
        click_width_arrow(page)
        assert widget_state(page)["width"] == width, f"{preset}: the locked width changed on a click"
        sent = page.evaluate("async () => (await app.graphToPrompt()).output")
        [inputs] = [n["inputs"] for n in sent.values() if n["class_type"] == "HVHuMoConditioning"]
        assert (inputs["size"], inputs["width"], inputs["height"]) == (preset, width, height)

    pick_size(page, "custom")
    state = widget_state(page)
    assert state["size"] == "custom" and state["locked"] == [False, False]
    before = state["width"]
    click_width_arrow(page)
    assert widget_state(page)["width"] > before, "custom: the width arrow did not change the width"
