"""How a MODEL was loaded: the loader, the file and the options, recorded on the ModelPatcher.

Worker processes (several GPUs, see ``parallel/``) build their own copy of a model by running the same
loader on the same file, memory-mapped, instead of receiving gigabytes of pickled weights. The record
travels as a ModelPatcher attachment, so every clone (LoRA loaders, model patches) keeps it.
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

ATTACHMENT_KEY = "humanvideo_load_recipe"


@dataclass(frozen=True)
class LoadRecipe:
    """``loader`` is ``<module in loaders/>.<function>``; the function takes (path, **options)."""

    loader: str
    path: str
    options: tuple[tuple[str, Any], ...] = ()
    stamp: tuple[int, int] = (0, 0)  # size and mtime of the file when it was loaded

    def describe(self) -> str:
        opts = ", ".join(f"{k}={v!r}" for k, v in self.options)
        return f"{self.loader}({os.path.basename(self.path)!r}{', ' + opts if opts else ''})"

    def build(self, package: str):
        """Runs the loader (in any process that imported this pack as ``package``); returns the MODEL."""
        module_name, fn_name = self.loader.rsplit(".", 1)
        module = importlib.import_module(f"{package}.loaders.{module_name}")
        result = getattr(module, fn_name)(self.path, **dict(self.options))
        return result[0] if isinstance(result, tuple) else result


def file_stamp(path: str) -> tuple[int, int]:
    """Size and mtime of a file, or of the files in a folder (a shard set, also when named by its index)."""
    if path.endswith(".index.json"):
        path = os.path.dirname(path)
    if os.path.isdir(path):
        stats = [os.stat(os.path.join(path, f)) for f in sorted(os.listdir(path))]
        return (sum(s.st_size for s in stats), max((s.st_mtime_ns for s in stats), default=0))
    st = os.stat(path)
    return (st.st_size, st.st_mtime_ns)


def record(model, loader: Callable, path: str | os.PathLike, **options: Any):
    """Attaches the recipe of ``loader(path, **options)`` to ``model`` (a ModelPatcher); returns it."""
    module = loader.__module__.rsplit(".", 1)[-1]
    path = os.path.abspath(os.fspath(path))
    recipe = LoadRecipe(f"{module}.{loader.__name__}", path, tuple(sorted(options.items())), file_stamp(path))
    model.set_attachments(ATTACHMENT_KEY, recipe)
    return model


def recipe_of(model) -> LoadRecipe | None:
    get = getattr(model, "get_attachment", None)
    return get(ATTACHMENT_KEY) if get is not None else None
