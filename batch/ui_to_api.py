"""UI-format workflow (what the ComfyUI page saves) -> API-format prompt (what ``POST /prompt`` takes).

The UI format stores widget values by position only, so the mapping needs each node's schema from
the server's ``/object_info``. Rules follow the ComfyUI frontend (1.32):
- widgets are the inputs of widget type (INT, FLOAT, STRING, BOOLEAN, combos) without ``forceInput``,
  in ``input_order`` (required, then optional);
- an INT widget with ``control_after_generate`` (or, when that is not given, named ``seed`` /
  ``noise_seed``) and a combo with ``control_after_generate: true`` are followed by one saved
  "control after generate" value that is not an input;
- upload combos (``image_upload`` / ``audio_upload`` / ``video_upload``) are followed by the upload
  button's and preview's placeholders ("image", null ...) that are not inputs either;
- a linked input takes the link; Reroute nodes and bypassed nodes (mode 4) pass links through,
  muted nodes (mode 2) and notes vanish; a PrimitiveNode's value replaces its link.
"""

from __future__ import annotations

from typing import Any

WIDGET_TYPES = {"INT", "FLOAT", "STRING", "BOOLEAN", "COMBO"}
CONTROL_VALUES = {"fixed", "increment", "decrement", "randomize"}
UPLOAD_FLAGS = ("image_upload", "audio_upload", "video_upload", "file_upload")
# Frontend-only nodes: never sent to the server.
VIRTUAL_TYPES = {"Reroute", "PrimitiveNode", "Note", "MarkdownNote"}
MODE_MUTED, MODE_BYPASS = 2, 4


class WorkflowError(ValueError):
    """The workflow cannot be converted; the message names the node and the problem."""


def is_ui_workflow(data: Any) -> bool:
    return isinstance(data, dict) and isinstance(data.get("nodes"), list) and "links" in data


def is_api_prompt(data: Any) -> bool:
    return (
        isinstance(data, dict) and bool(data) and all(isinstance(v, dict) and "class_type" in v for v in data.values())
    )


def widget_specs(node_info: dict) -> list[tuple[str, int]]:
    """(input name, number of saved values) for each widget of a node type, in saved order."""
    inputs = node_info.get("input") or {}
    order = node_info.get("input_order") or {k: list((inputs.get(k) or {}).keys()) for k in ("required", "optional")}
    specs: list[tuple[str, int]] = []
    for section in ("required", "optional"):
        for name in order.get(section) or []:
            spec = (inputs.get(section) or {}).get(name)
            if not spec:
                continue
            kind = spec[0]
            opts = spec[1] if len(spec) > 1 and isinstance(spec[1], dict) else {}
            is_combo = isinstance(kind, list) or kind == "COMBO"
            if not (is_combo or kind in WIDGET_TYPES) or opts.get("forceInput"):
                continue
            extra = 0
            if kind == "INT":
                cag = opts.get("control_after_generate")
                extra += 1 if (cag if cag is not None else name in ("seed", "noise_seed")) else 0
            elif is_combo:
                extra += 1 if opts.get("control_after_generate") else 0
                extra += 1 if any(opts.get(f) for f in UPLOAD_FLAGS) else 0
            specs.append((name, 1 + extra))
    return specs


def map_widget_values(node_type: str, node_info: dict, values: Any, node_label: str = "") -> dict[str, Any]:
    """Positional ``widgets_values`` -> {input name: value}."""
    if isinstance(values, dict):
        return dict(values)  # some packs save named widget values already
    values = list(values or [])
    specs = widget_specs(node_info)
    names = [n for n, _ in specs]
    minimum = len(specs)
    surplus = len(values) - minimum
    out: dict[str, Any] = {}
    i = 0
    for k, (name, count) in enumerate(specs):
        if i >= len(values):
            break
        out[name] = values[i]
        i += 1
        # Extra saved values (control mode, upload placeholders) are skipped while the list is longer
        # than the widgets need, or when the next widget could not take them; so workflows saved by
        # frontends that omit them still map.
        next_name = specs[k + 1][0] if k + 1 < len(specs) else None
        for _ in range(count - 1):
            if i >= len(values) or not _is_extra_value(values[i]):
                break
            if surplus <= 0 and next_name is not None and _accepts(node_info, next_name, values[i]):
                break
            i += 1
            surplus -= 1
    if len(out) < len(names) and values:
        missing = names[len(out) :]
        raise WorkflowError(
            f"{node_label or node_type}: widgets_values has {len(values)} values, too few for the "
            f"widgets {names} (missing {missing}); was the workflow saved with another node version?"
        )
    return out


def _accepts(node_info: dict, name: str, v: Any) -> bool:
    inputs = node_info.get("input") or {}
    spec = (inputs.get("required") or {}).get(name) or (inputs.get("optional") or {}).get(name)
    if not spec:
        return True
    kind = spec[0]
    opts = spec[1] if len(spec) > 1 and isinstance(spec[1], dict) else {}
    if isinstance(kind, list) or kind == "COMBO":
        return v in (kind if isinstance(kind, list) else opts.get("options", []))
    if kind == "STRING":
        return isinstance(v, str)
    if kind in ("INT", "FLOAT"):
        return isinstance(v, (int, float)) and not isinstance(v, bool)
    if kind == "BOOLEAN":
        return isinstance(v, bool)
    return True


def _is_extra_value(v: Any) -> bool:
    return v is None or v in CONTROL_VALUES or v in ("image", "audio", "video", "file", "")


def _links_table(workflow: dict) -> dict[int, tuple[int, int, int, int]]:
    """link id -> (from node, from slot, to node, to slot), for both list and object link forms."""
    table: dict[int, tuple[int, int, int, int]] = {}
    for link in workflow.get("links") or []:
        if isinstance(link, dict):
            table[int(link["id"])] = (
                link["origin_id"],
                int(link["origin_slot"]),
                link["target_id"],
                int(link["target_slot"]),
            )
        elif isinstance(link, list) and len(link) >= 5:
            table[int(link[0])] = (link[1], int(link[2]), link[3], int(link[4]))
    return table


def convert(workflow: dict, object_info: dict) -> dict[str, dict]:
    """Converts a UI-format workflow to an API prompt. Raises WorkflowError naming what is wrong."""
    if not is_ui_workflow(workflow):
        raise WorkflowError("not a UI-format workflow (expected 'nodes' and 'links')")
    if (workflow.get("definitions") or {}).get("subgraphs"):
        raise WorkflowError(
            "workflows with subgraphs are not supported here; export the API format from the page "
            "(Workflow > Export (API)) and use that file"
        )
    nodes = {n["id"]: n for n in workflow["nodes"]}
    links = _links_table(workflow)

    unknown = sorted(
        {
            n.get("type")
            for n in nodes.values()
            if n.get("type") not in object_info
            and n.get("type") not in VIRTUAL_TYPES
            and n.get("mode", 0) != MODE_MUTED
        },
        key=str,
    )
    if unknown:
        raise WorkflowError(
            f"node types not installed on the server: {unknown} (a custom node pack is missing "
            "or failed to import; see the server log)"
        )

    def resolve(link_id: int, seen: frozenset = frozenset()) -> tuple[str, Any] | None:
        """Follows a link to its real source: ('link', [id, slot]), ('value', v) or None (dropped)."""
        if link_id is None or link_id not in links:
            return None
        if link_id in seen:
            raise WorkflowError(f"link {link_id} is part of a cycle through reroutes or bypassed nodes")
        seen = seen | {link_id}
        src_id, src_slot = links[link_id][0], links[link_id][1]
        src = nodes.get(src_id)
        if src is None:
            raise WorkflowError(f"link {link_id} starts at node {src_id}, which is not in the workflow (dangling link)")
        kind, mode = src.get("type"), src.get("mode", 0)
        if kind == "PrimitiveNode":
            vals = src.get("widgets_values") or []
            return ("value", vals[0]) if vals else None
        if kind == "Reroute":
            ins = src.get("inputs") or []
            return resolve(ins[0].get("link"), seen) if ins else None
        if mode == MODE_MUTED:
            return None
        if mode == MODE_BYPASS:
            return _bypass(src, src_slot, seen)
        return ("link", [str(src_id), src_slot])

    def _bypass(node: dict, slot: int, seen: frozenset) -> tuple[str, Any] | None:
        # As the frontend: the output passes through the input of the same type, preferring the same index.
        outs = node.get("outputs") or []
        out_type = outs[slot].get("type") if slot < len(outs) else None
        ins = [i for i in (node.get("inputs") or []) if i.get("link") is not None]
        candidates = [i for i in ins if i.get("type") == out_type]
        if not candidates:
            return None
        same = [i for i in candidates if (node.get("inputs") or []).index(i) == slot]
        return resolve((same or candidates)[0]["link"], seen)

    prompt: dict[str, dict] = {}
    for node_id in sorted(nodes, key=lambda x: (0, int(x)) if str(x).isdigit() else (1, str(x))):
        node = nodes[node_id]
        kind, mode = node.get("type"), node.get("mode", 0)
        if kind in VIRTUAL_TYPES or mode in (MODE_MUTED, MODE_BYPASS):
            continue
        info = object_info[kind]
        label = f"node {node_id} ({node.get('title') or kind})"
        inputs = map_widget_values(kind, info, node.get("widgets_values"), label)
        for inp in node.get("inputs") or []:
            name = inp.get("name")
            if (inp.get("widget") or {}).get("name"):
                name = inp["widget"]["name"]
            if inp.get("link") is None:
                continue
            got = resolve(inp["link"])
            if got is not None:
                inputs[name] = got[1]
            # A widget whose source vanished (muted) keeps its own saved value, as in the page.
        entry = {"class_type": kind, "inputs": inputs}
        entry["_meta"] = {"title": node.get("title") or info.get("display_name") or kind}
        prompt[str(node_id)] = entry
    return prompt


def find_dangling_links(workflow: dict) -> list[str]:
    """Problems of the link table: links that name missing nodes or disagree with the nodes' slots."""
    nodes = {n["id"]: n for n in workflow.get("nodes") or []}
    table = _links_table(workflow)
    problems = []
    for lid, (src, src_slot, dst, dst_slot) in table.items():
        if src not in nodes or dst not in nodes:
            problems.append(f"link {lid}: {src}->{dst} names a node that does not exist")
            continue
        dst_inputs = nodes[dst].get("inputs") or []
        if dst_slot >= len(dst_inputs) or dst_inputs[dst_slot].get("link") != lid:
            problems.append(f"link {lid}: node {dst} input slot {dst_slot} does not point back at it")
        src_outputs = nodes[src].get("outputs") or []
        if src_slot >= len(src_outputs) or lid not in (src_outputs[src_slot].get("links") or []):
            problems.append(f"link {lid}: node {src} output slot {src_slot} does not list it")
    for node in nodes.values():
        for inp in node.get("inputs") or []:
            if inp.get("link") is not None and inp["link"] not in table:
                problems.append(
                    f"node {node['id']} input {inp.get('name')!r} uses link {inp['link']}, which does not exist"
                )
    return problems
