"""Build the shipped workflows (UI format in workflows/, API twins in workflows/api/) from compact specs.

Widget values are placed by the node definitions a real server reports (``/object_info``), so the UI
files carry positional ``widgets_values`` exactly as ComfyUI's frontend saves them and the API twins
carry the same values by name. Specs live in ``workflow_specs.py`` beside this file.

    python scripts/build_workflows.py --url http://127.0.0.1:8188       # a running ComfyUI with the pack
    python scripts/build_workflows.py --object-info object_info.json
"""

from __future__ import annotations

import argparse
import json
import sys
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

PACK_ROOT = Path(__file__).resolve().parents[1]
WIDGET_TYPES = {"INT", "FLOAT", "STRING", "BOOLEAN", "COMBO"}
NODE_WIDTH = 320
WORKFLOW_NAMESPACE = uuid.UUID("6f1c2a4e-9a59-4d0b-8f5e-2d7f3c1b8a10")  # ComfyUI-HumanVideo workflows


@dataclass
class Node:
    id: int
    type: str
    widgets: dict[str, Any] = field(default_factory=dict)
    links: dict[str, tuple[int, int]] = field(default_factory=dict)  # input name -> (source node id, output slot)
    pos: tuple[int, int] = (0, 0)
    title: str | None = None
    models: list[dict] = field(default_factory=list)  # properties.models download hints


@dataclass
class Workflow:
    name: str
    nodes: list[Node]
    note: str = ""


def is_widget(spec: list) -> bool:
    kind = spec[0]
    return isinstance(kind, list) or kind in WIDGET_TYPES


def ordered_inputs(info: dict) -> list[tuple[str, list, bool]]:
    """(name, spec, optional) in the order the frontend creates widgets and slots."""
    order = info.get("input_order") or {k: list(v) for k, v in info["input"].items()}
    out = []
    for section in ("required", "optional"):
        for name in order.get(section, []):
            out.append((name, info["input"][section][name], section == "optional"))
    return out


def default_value(spec: list) -> Any:
    kind, options = spec[0], (spec[1] if len(spec) > 1 else {}) or {}
    if "default" in options:
        return options["default"]
    if isinstance(kind, list):
        return kind[0] if kind else ""
    if kind == "COMBO":
        return (options.get("options") or [""])[0]
    return {"INT": 0, "FLOAT": 0.0, "STRING": "", "BOOLEAN": False}[kind]


def build(workflow: Workflow, object_info: dict) -> tuple[dict, dict]:
    """Returns (ui_workflow, api_prompt)."""
    by_id = {n.id: n for n in workflow.nodes}
    ui_nodes, ui_links, api = [], [], {}
    link_id = 0
    outgoing: dict[tuple[int, int], list[int]] = {}
    incoming: dict[tuple[int, str], int] = {}
    for node in workflow.nodes:
        for name, (src, slot) in node.links.items():
            if src not in by_id:
                raise ValueError(f"{workflow.name}: node {node.id} links to missing node {src}")
            link_id += 1
            src_info = object_info[by_id[src].type]
            ui_links.append([link_id, src, slot, node.id, None, src_info["output"][slot]])
            outgoing.setdefault((src, slot), []).append(link_id)
            incoming[(node.id, name)] = link_id

    for order, node in enumerate(workflow.nodes):
        if node.type not in object_info:
            raise KeyError(f"{workflow.name}: node type {node.type} is not known to the server")
        info = object_info[node.type]
        known = {name for name, _, _ in ordered_inputs(info)}
        unknown = set(node.widgets) | set(node.links)
        unknown -= known
        if unknown:
            raise KeyError(f"{workflow.name}: {node.type} has no inputs {sorted(unknown)}")
        slots, widgets_values, api_inputs = [], [], {}
        for name, spec, optional in ordered_inputs(info):
            if name in node.links:
                link = incoming[(node.id, name)]
                slot = {"name": name, "type": "COMBO" if isinstance(spec[0], list) else spec[0], "link": link}
                if is_widget(spec):
                    slot["widget"] = {"name": name}
                slots.append(slot)
                for entry in ui_links:
                    if entry[0] == link:
                        entry[4] = len(slots) - 1
                api_inputs[name] = [str(node.links[name][0]), node.links[name][1]]
                if is_widget(spec):
                    widgets_values.append(default_value(spec))
                continue
            if not is_widget(spec):
                if not optional:
                    raise ValueError(f"{workflow.name}: required input {node.type}.{name} is not linked")
                slots.append({"name": name, "type": spec[0], "link": None})
                continue
            value = node.widgets.get(name, default_value(spec))
            widgets_values.append(value)
            api_inputs[name] = value
            options = spec[1] if len(spec) > 1 else {}
            if options.get("control_after_generate"):
                widgets_values.append("fixed")
            if options.get("image_upload") or options.get("video_upload"):
                widgets_values.append("image")
        outputs = [
            {
                "name": (info.get("output_name") or info["output"])[i],
                "type": kind,
                "links": outgoing.get((node.id, i), []),
                "slot_index": i,
            }
            for i, kind in enumerate(info["output"])
        ]
        properties: dict[str, Any] = {"Node name for S&R": node.type}
        if node.models:
            properties["models"] = node.models
        ui_node = {
            "id": node.id,
            "type": node.type,
            "pos": list(node.pos),
            "size": [NODE_WIDTH, 60 + 26 * len(widgets_values)],
            "flags": {},
            "order": order,
            "mode": 0,
            "inputs": slots,
            "outputs": outputs,
            "properties": properties,
            "widgets_values": widgets_values,
        }
        if node.title:
            ui_node["title"] = node.title
        ui_nodes.append(ui_node)
        api[str(node.id)] = {
            "class_type": node.type,
            "inputs": api_inputs,
            "_meta": {"title": node.title or info.get("display_name", node.type)},
        }
    ui = {
        # The frontend validates the id as a UUID; a name-based one keeps rebuilds identical.
        "id": str(uuid.uuid5(WORKFLOW_NAMESPACE, workflow.name)),
        "revision": 0,
        "last_node_id": max(by_id),
        "last_link_id": link_id,
        "nodes": ui_nodes,
        "links": ui_links,
        "groups": [],
        "config": {},
        "extra": {"ds": {"scale": 0.8, "offset": [0, 0]}, "humanvideo": {"note": workflow.note}},
        "version": 0.4,
    }
    return ui, api


def write(workflows: list[Workflow], object_info: dict, out_dir: Path = PACK_ROOT / "workflows") -> list[Path]:
    written = []
    (out_dir / "api").mkdir(parents=True, exist_ok=True)
    for workflow in workflows:
        ui, api = build(workflow, object_info)
        for path, data in ((out_dir / f"{workflow.name}.json", ui), (out_dir / "api" / f"{workflow.name}.json", api)):
            path.write_text(json.dumps(data, indent=2) + "\n")
            written.append(path)
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--url", help="a running ComfyUI with the pack loaded")
    source.add_argument("--object-info", type=Path, help="a saved /object_info JSON")
    parser.add_argument("--only", nargs="*", help="names of workflows to build (default: all)")
    args = parser.parse_args(argv)
    if args.url:
        import requests

        object_info = requests.get(args.url.rstrip("/") + "/object_info", timeout=60).json()
    else:
        object_info = json.loads(args.object_info.read_text())
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from workflow_specs import WORKFLOWS

    chosen = [w for w in WORKFLOWS if not args.only or w.name in args.only]
    for path in write(chosen, object_info):
        print(path.relative_to(PACK_ROOT))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
