"""Regenerate node_list.json (node id -> one-line description) from the pack's node schemas.

ComfyUI-Manager's scanner cannot see V3 node ids, so it reads this file. Run:
    COMFYUI_PATH=... $HV_VENV/bin/python scripts/gen_node_list.py
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

PACK_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(PACK_ROOT / "scripts"))


def load_pack():
    from pack_loader import load_pack as load

    return load(os.environ.get("COMFYUI_PATH", ""), cpu=True)


def node_descriptions(pack) -> dict[str, str]:
    out = {}
    for node in pack.nodes.all_nodes():
        schema = node.GET_SCHEMA()
        # the whole description on one line: cutting at the first ". " split names like "e.g." or "v2."
        out[schema.node_id] = " ".join((schema.description or schema.display_name).split())
    return dict(sorted(out.items()))


if __name__ == "__main__":
    descriptions = node_descriptions(load_pack())
    (PACK_ROOT / "node_list.json").write_text(json.dumps(descriptions, indent=2) + "\n")
    print(f"node_list.json: {len(descriptions)} nodes")
