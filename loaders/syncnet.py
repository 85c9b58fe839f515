"""Loading ``syncnet_v2.model``, the SyncNet weights of the Sync-C / Sync-D evaluation.

The file (syncnet_python's ``data/syncnet_v2.model``, shipped again by LatentSync as
``checkpoints/auxiliary/syncnet_v2.model``) is a plain ``torch.save`` of the network's state dict:
both official loaders iterate over its items and copy them by name
(joonson/syncnet_python:SyncNetInstance.py:201-208, bytedance/LatentSync:eval/syncnet/syncnet_eval.py:212-220,
which reads it with ``weights_only=True``). It is read here with ``weights_only=True`` only (either torch
serialisation: the legacy one of older torch releases or the zip one), so opening it never runs code.
A file that needs full unpickling (a whole pickled module, or any other Python object) is refused with
an explanation rather than unpickled.

The load is strict: every weight the network has must be in the file with its shape, and nothing else.
BatchNorm's ``num_batches_tracked`` counters (absent from files written before torch 0.4.1, and unused
in evaluation) are the only optional entries.
"""

from __future__ import annotations

import os
import pickle
from collections.abc import Mapping

import torch

from ..models.syncnet import EMBED_DIM, SyncNet
from .checkpoint_files import identify_state_dict, key_mismatches, mismatch_report, read_pickle

OPTIONAL_SUFFIX = ".num_batches_tracked"
_LIST_LIMIT = 10


def _read(path: str) -> object:
    name = os.path.basename(path)
    if not os.path.isfile(path):
        raise ValueError(f"syncnet file not found: {path}")
    try:
        return read_pickle(path)
    except ValueError as e:
        cause = e.__cause__ or e
        if isinstance(cause, pickle.UnpicklingError) and ("Unsupported global" in str(cause) or "GLOBAL" in str(cause)):
            raise ValueError(
                f"{name}: holds pickled Python objects (for example a whole pickled network), not a plain state "
                f"dict; weights-only loading refuses it ({str(cause).splitlines()[0][:200]}). Unpickling it fully "
                "could run arbitrary code, so it is not loaded. syncnet_v2.model as released by syncnet_python "
                "and LatentSync is a plain state dict; use that file, or re-save the weights as a state dict "
                "where you trust the file: torch.save(model.state_dict(), 'syncnet_v2.model')"
            ) from e
        lines = str(cause).splitlines() or [""]
        raise ValueError(
            f"{name}: cannot be read as a torch weights file ({type(cause).__name__}: {lines[-1][:200]})"
        ) from e


def state_dict_from(obj: object, name: str) -> dict[str, torch.Tensor]:
    if isinstance(obj, Mapping) and "state_dict" in obj and isinstance(obj["state_dict"], Mapping):
        what = identify_state_dict(obj["state_dict"]) or "a training checkpoint ({'state_dict': ...})"
        raise ValueError(f"{name}: is {what}; choose syncnet_v2.model")
    if not isinstance(obj, Mapping) or not obj or not all(torch.is_tensor(v) for v in obj.values()):
        raise ValueError(f"{name}: holds {type(obj).__name__}, not a state dict of tensors; choose syncnet_v2.model")
    return dict(obj)


def check_strict(sd: Mapping[str, torch.Tensor], model: SyncNet, name: str) -> None:
    expected = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    mismatches = key_mismatches(expected, sd, OPTIONAL_SUFFIX)
    problems = mismatch_report(mismatches, "weights", _LIST_LIMIT)
    if not problems:
        return
    foreign = identify_state_dict(sd)
    if foreign and (len(mismatches["missing"]) > len(expected) // 2):
        raise ValueError(f"{name}: is {foreign}; choose syncnet_v2.model")
    raise ValueError(f"{name}: is not syncnet_v2.model (the SyncNet of syncnet_python): " + "; ".join(problems))


def load_syncnet(path: str) -> SyncNet:
    """The evaluation SyncNet from ``syncnet_v2.model`` (float32, CPU, eval mode)."""
    name = os.path.basename(path)
    sd = state_dict_from(_read(path), name)
    head = sd.get("netfcaud.3.weight")
    embed_dim = int(head.shape[0]) if torch.is_tensor(head) and head.ndim == 2 else EMBED_DIM
    model = SyncNet(embed_dim)
    check_strict(sd, model, name)
    model.load_state_dict({k: v.to(torch.float32) if v.is_floating_point() else v for k, v in sd.items()}, strict=False)
    return model.eval().requires_grad_(False)
