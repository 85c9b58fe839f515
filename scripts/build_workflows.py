"""Build the shipped workflows (UI format in workflows/, API twins in workflows/api/) from compact specs.

Widget values are placed by the node definitions a real server reports (``/object_info``), so the UI
files carry positional ``widgets_values`` exactly as ComfyUI's frontend saves them and the API twins
carry the same values by name. Specs live in ``workflow_specs.py`` beside this file.

Each workflow is laid out from its stages: every stage is a group on the canvas holding columns of nodes,
stacked top to bottom with sizes estimated from the node definitions (at least what the page draws, so
no two nodes overlap when the file is opened), and opens with a "Start here" stage of Markdown notes
rendered from the workflow's guide.

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
WORKFLOW_NAMESPACE = uuid.UUID("6f1c2a4e-9a59-4d0b-8f5e-2d7f3c1b8a10")  # ComfyUI-HumanVideo workflows
NOTE_TYPE = "MarkdownNote"  # drawn by the page only, never sent to the server

# Canvas geometry (LiteGraph units). Heights are upper bounds of what the ComfyUI frontends (1.32 and 1.49)
# draw: a 30-unit title bar above each node, 20 per input/output row, 24 per widget row, plus the media
# previews and text boxes some widgets show. The browser tests check the result on both frontends.
NODE_WIDTH = 340
WIDE_NODE_WIDTH = 440  # video previews
NOTE_WIDTH = 500
TITLE_HEIGHT = 30
SLOT_HEIGHT = 20
WIDGET_HEIGHT = 24
NODE_PADDING = 16
EXTRA_HEIGHT = {"image_upload": 240, "video_upload": 440, "audio_upload": 64, "multiline": 110}
NOTE_LINE_HEIGHT = 18  # per wrapped line of note text, headings included
NOTE_LINE_CHARS = 78  # characters per line at NOTE_WIDTH
GROUP_TITLE_HEIGHT = 40
GROUP_PADDING = 20
NODE_GAP = 30  # between a node's bottom and the next node's title bar
COLUMN_GAP = 50
STAGE_GAP = 70
GROUP_COLOR = "#3f789e"
START_COLOR = "#8a8a3f"


@dataclass
class Node:
    id: int
    type: str
    widgets: dict[str, Any] = field(default_factory=dict)
    links: dict[str, tuple[int, int]] = field(default_factory=dict)  # input name -> (source node id, output slot)
    title: str | None = None
    models: list[dict] = field(default_factory=list)  # properties.models download hints


@dataclass
class Stage:
    """One step of a workflow, framed by a group on the canvas: columns of node ids, each top to bottom."""

    title: str
    columns: list[list[int]]


@dataclass
class Guide:
    """What the workflow's notes tell a user. Every figure in ``cost`` names its source."""

    what: str  # what the workflow does, one paragraph
    steps: list[str]  # numbered: which file goes in which folder, where the photo / voice / video go
    settings: list[str]  # the settings users change most and what they do
    cost: list[str]  # expected time and memory, each with its source

    def notes(self) -> list[tuple[str, str]]:
        """(title, Markdown text) of the notes that open the workflow."""
        steps = "\n".join(f"{i}. {step}" for i, step in enumerate(self.steps, 1))
        settings = "\n".join(f"- {line}" for line in self.settings)
        cost = "\n".join(f"- {line}" for line in self.cost)
        return [
            ("Start here: what this workflow does", f"{self.what}\n\n### Steps\n\n{steps}"),
            (
                "Settings, time and memory",
                f"### Settings you will change\n\n{settings}\n\n### Time and memory\n\n{cost}",
            ),
        ]


@dataclass
class Workflow:
    name: str
    nodes: list[Node]
    stages: list[Stage]
    guide: Guide


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


def node_height(node: Node, info: dict | None) -> int:
    """Upper bound of the height the page draws for a node (title bar excluded)."""
    if node.type == NOTE_TYPE:
        text = node.widgets["text"]
        lines = sum(max(1, -(-len(line) // NOTE_LINE_CHARS)) for line in text.splitlines())
        return NODE_PADDING * 2 + NOTE_LINE_HEIGHT * lines
    slots = widgets = extra = 0
    for name, spec, _ in ordered_inputs(info):
        if not is_widget(spec):
            slots += 1
            continue
        # A linked widget keeps its row on the newer frontend and becomes an input slot on the older one.
        slots += name in node.links
        options = spec[1] if len(spec) > 1 else {}
        widgets += 1 + bool(options.get("control_after_generate"))
        for flag in ("image_upload", "video_upload", "audio_upload"):
            if options.get(flag):
                widgets += 1  # the upload button
                extra += EXTRA_HEIGHT[flag]
        if options.get("multiline"):
            extra += EXTRA_HEIGHT["multiline"]
    rows = max(slots, len(info["output"]), 1)
    return NODE_PADDING + SLOT_HEIGHT * rows + WIDGET_HEIGHT * widgets + extra


def node_width(node: Node, info: dict | None) -> int:
    if node.type == NOTE_TYPE:
        return NOTE_WIDTH
    wide = any((s[1] if len(s) > 1 else {}).get("video_upload") for _, s, _ in ordered_inputs(info))
    return WIDE_NODE_WIDTH if wide else NODE_WIDTH


def with_notes(workflow: Workflow) -> tuple[list[Node], list[Stage]]:
    """The workflow's nodes and stages with its guide's notes in a first stage of their own."""
    first = max(n.id for n in workflow.nodes) + 1
    guide_notes = workflow.guide.notes()
    notes = [Node(first + i, NOTE_TYPE, {"text": text}, title=title) for i, (title, text) in enumerate(guide_notes)]
    start = Stage("Start here", [[n.id for n in notes]])
    return workflow.nodes + notes, [start, *workflow.stages]


def layout(
    workflow: Workflow, nodes: list[Node], stages: list[Stage], object_info: dict
) -> tuple[dict[int, tuple[list[int], list[int]]], list[dict]]:
    """(node id -> (pos, size), groups): stages left to right, columns inside them, nodes top to bottom."""
    placed: dict[int, tuple[list[int], list[int]]] = {}
    groups = []
    by_id = {n.id: n for n in nodes}
    listed = [i for stage in stages for column in stage.columns for i in column]
    if sorted(listed) != sorted(by_id):
        twice = sorted({i for i in listed if listed.count(i) > 1})
        raise ValueError(
            f"{workflow.name}: every node must sit in exactly one stage column "
            f"(missing {sorted(set(by_id) - set(listed))}, unknown {sorted(set(listed) - set(by_id))}, twice {twice})"
        )
    x = 0
    for index, stage in enumerate(stages):
        column_x = x + GROUP_PADDING
        bottom = 0
        for column in stage.columns:
            y = GROUP_TITLE_HEIGHT + GROUP_PADDING + TITLE_HEIGHT
            width = 0
            for node_id in column:
                node = by_id[node_id]
                info = object_info.get(node.type)
                size = [node_width(node, info), node_height(node, info)]
                placed[node_id] = ([column_x, y], size)
                y += size[1] + NODE_GAP + TITLE_HEIGHT
                width = max(width, size[0])
            bottom = max(bottom, y - NODE_GAP - TITLE_HEIGHT)
            column_x += width + COLUMN_GAP
        right = column_x - COLUMN_GAP + GROUP_PADDING
        groups.append(
            {
                "id": index + 1,
                "title": f"{index}. {stage.title}" if index else stage.title,
                "bounding": [x, 0, right - x, bottom + GROUP_PADDING],
                "color": START_COLOR if index == 0 else GROUP_COLOR,
                "font_size": 24,
                "flags": {},
            }
        )
        x = right + STAGE_GAP
    return placed, groups


def build(workflow: Workflow, object_info: dict) -> tuple[dict, dict]:
    """Returns (ui_workflow, api_prompt)."""
    nodes, stages = with_notes(workflow)
    unknown = sorted({n.type for n in nodes if n.type != NOTE_TYPE and n.type not in object_info})
    if unknown:
        raise KeyError(f"{workflow.name}: node types {unknown} are not known to the server")
    placed, groups = layout(workflow, nodes, stages, object_info)
    by_id = {n.id: n for n in nodes}
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

    for order, node in enumerate(nodes):
        pos, size = placed[node.id]
        if node.type == NOTE_TYPE:
            ui_nodes.append(
                {
                    "id": node.id,
                    "type": NOTE_TYPE,
                    "pos": pos,
                    "size": size,
                    "flags": {},
                    "order": order,
                    "mode": 0,
                    "inputs": [],
                    "outputs": [],
                    "title": node.title,
                    "properties": {},
                    "widgets_values": [node.widgets["text"]],
                    "color": "#432",
                    "bgcolor": "#653",
                }
            )
            continue
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
            "pos": pos,
            "size": size,
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
        "groups": groups,
        "config": {},
        "extra": {"ds": {"scale": 0.75, "offset": [90, 70]}},
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
