"""Generators of test fixtures: tiny random-weight checkpoints in the real file formats, and test media.

Each model family adds a module here whose generators are registered with ``@register("name")``.
A generator takes the ComfyUI models directory and writes its files into the folder a user would
use (``models/diffusion_models``, ``models/latentsync`` ...), returning the paths it wrote.
Nothing is downloaded: every file is made from a seed.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable
from pathlib import Path

Generator = Callable[[Path], list[Path]]
GENERATORS: dict[str, Generator] = {}


def register(name: str) -> Callable[[Generator], Generator]:
    def wrap(fn: Generator) -> Generator:
        if name in GENERATORS:
            raise ValueError(f"fixture generator {name!r} registered twice")
        GENERATORS[name] = fn
        return fn

    return wrap


def _load_all() -> None:
    for info in pkgutil.iter_modules(__path__):
        importlib.import_module(f".{info.name}", __name__)


def generate(models_dir: Path, names: list[str] | None = None) -> dict[str, list[Path]]:
    """Run the named generators (all when None) into ``models_dir``; returns name -> written files."""
    _load_all()
    models_dir = Path(models_dir)
    wanted = sorted(GENERATORS) if names is None else names
    unknown = [n for n in wanted if n not in GENERATORS]
    if unknown:
        raise KeyError(f"unknown fixture generators {unknown}; known: {sorted(GENERATORS)}")
    return {n: GENERATORS[n](models_dir) for n in wanted}


def available() -> list[str]:
    _load_all()
    return sorted(GENERATORS)
