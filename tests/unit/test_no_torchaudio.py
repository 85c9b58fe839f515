"""The pack never imports torchaudio (current ComfyUI core does; the pack must not need it on any host):
no source file of the pack names torchaudio in an import statement, ``importlib.import_module``,
``__import__`` or ``find_spec``."""

from __future__ import annotations

import ast
from pathlib import Path

PACK_ROOT = Path(__file__).resolve().parents[2]
NOT_THE_PACK = ("tests", "workflows", ".git", ".artifacts")


def pack_sources() -> list[Path]:
    return sorted(p for p in PACK_ROOT.rglob("*.py") if p.relative_to(PACK_ROOT).parts[0] not in NOT_THE_PACK)


def imported_names(tree: ast.AST) -> set[str]:
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
        elif isinstance(node, ast.Call) and node.args and isinstance(node.args[0], ast.Constant):
            func = node.func
            called = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
            if called in ("import_module", "__import__", "find_spec") and isinstance(node.args[0].value, str):
                names.add(node.args[0].value)
    return names


def test_no_pack_source_imports_torchaudio():
    sources = pack_sources()
    assert len(sources) > 20, "the pack's sources were not found"
    offenders = [
        str(p.relative_to(PACK_ROOT))
        for p in sources
        if any(n.split(".")[0] == "torchaudio" for n in imported_names(ast.parse(p.read_text(), str(p))))
    ]
    assert not offenders, f"these pack files import torchaudio: {offenders}"
