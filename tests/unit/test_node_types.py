"""Each of the pack's own types between nodes is declared once, in nodes/types.py."""

from __future__ import annotations

import ast
from pathlib import Path

from humanvideo.nodes import types as node_types

PACK_ROOT = Path(__file__).resolve().parents[2]


def custom_type_declarations() -> list[tuple[str, str]]:
    """(file, type name) of every ``io.Custom("...")`` call in the pack's sources."""
    found = []
    for path in sorted(PACK_ROOT.glob("**/*.py")):
        if any(part in {"tests", "scripts", "benchmarks", ".artifacts"} for part in path.relative_to(PACK_ROOT).parts):
            continue
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Attribute)
                and node.func.attr == "Custom"
                and node.args
                and isinstance(node.args[0], ast.Constant)
            ):
                found.append((str(path.relative_to(PACK_ROOT)), node.args[0].value))
    return found


def test_every_pack_type_is_declared_once_in_nodes_types():
    declarations = custom_type_declarations()
    assert declarations, "no io.Custom declarations found"
    assert {f for f, _ in declarations} == {"nodes/types.py"}, declarations
    names = [name for _, name in declarations]
    assert len(names) == len(set(names)), names
    assert all(name.startswith("HV_") for name in names), names
    assert {getattr(node_types, name).io_type for name in names} == set(names)
