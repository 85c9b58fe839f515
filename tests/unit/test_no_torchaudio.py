"""The pack never imports torchaudio (current ComfyUI core does; the pack must not need it on any host).

Two checks: no source file of the pack names torchaudio in an import, and importing every module of the
pack in a fresh interpreter makes no import of torchaudio from a pack file (core's own imports of it, on
hosts whose core uses it, are not the pack's).
"""

from __future__ import annotations

import ast
import os
import subprocess
import sys
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


PROBE = r"""
import builtins, importlib, pkgutil, sys
from pathlib import Path

pack_root, comfy_path = Path(sys.argv[1]), sys.argv[2]
comfy_root = Path(comfy_path).resolve()
offenders = []
real_import = builtins.__import__

def watching_import(name, globals=None, locals=None, fromlist=(), level=0):
    if level == 0 and name.split(".")[0] == "torchaudio":
        caller = Path(sys._getframe(1).f_code.co_filename).resolve()
        if caller.is_relative_to(pack_root) and not caller.is_relative_to(comfy_root):
            offenders.append(str(caller))
    return real_import(name, globals, locals, fromlist, level)

builtins.__import__ = watching_import
sys.path.insert(0, str(pack_root / "scripts"))
from pack_loader import load_pack

pack = load_pack(comfy_path, cpu=True)
for info in pkgutil.walk_packages(pack.__path__, pack.__name__ + "."):
    importlib.import_module(info.name)
print("modules", sum(1 for m in sys.modules if m.startswith(pack.__name__ + ".")))
print("offenders", sorted(set(offenders)))
"""


def test_importing_every_pack_module_imports_no_torchaudio():
    out = subprocess.run(
        [sys.executable, "-c", PROBE, str(PACK_ROOT), os.environ["COMFYUI_PATH"]],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    lines = dict(line.split(" ", 1) for line in out.stdout.splitlines() if line.startswith(("modules", "offenders")))
    assert int(lines["modules"]) > 20, out.stdout
    assert lines["offenders"] == "[]", f"pack files import torchaudio: {lines['offenders']}"
