"""Opening checkpoint files of any published layout, and saying what a state dict is.

Three containers reach us: single safetensors files, torch pickles (`.pt/.pth/.ckpt/.bin`, always
opened with ``weights_only=True``) and sharded safetensors sets described by a
``*.safetensors.index.json``. Tensors stay memory-mapped where the format allows, so a 60 GB shard set
is never copied into RAM before the model takes its weights.

Public API (kept small on purpose, other loaders import it):
``load_state_dict(path, return_metadata=False)`` and ``describe_state_dict(sd)``.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

import torch

SAFETENSORS_EXTENSIONS = (".safetensors", ".sft")
PICKLE_EXTENSIONS = (".pt", ".pth", ".ckpt", ".bin", ".pt2")
INDEX_SUFFIX = ".safetensors.index.json"
_SHARD_NAME = re.compile(r"^(?P<base>.+)-(?P<i>\d{5})-of-(?P<n>\d{5})\.safetensors$")

# Wrappers that training code puts around the real state dict ({"state_dict": sd}, {"module": sd} ...).
_CONTAINER_KEYS = ("state_dict", "model_state_dict", "module", "model", "ema", "ema_model", "params")


def find_index_in_folder(folder: str | os.PathLike) -> Path | None:
    """The single ``*.safetensors.index.json`` of a folder, or None when it has none."""
    folder = Path(folder)
    found = sorted(folder.glob("*" + INDEX_SUFFIX))
    if len(found) > 1:
        raise ValueError(
            f"folder {folder} holds several shard indexes ({', '.join(p.name for p in found)}); "
            "choose the index file itself"
        )
    return found[0] if found else None


def _sibling_index_of_shard(path: Path) -> Path | None:
    m = _SHARD_NAME.match(path.name)
    if not m:
        return None
    candidates = [path.parent / f"{m['base']}{INDEX_SUFFIX}"]
    other = find_index_in_folder(path.parent)
    if other is not None:
        candidates.append(other)
    for c in candidates:
        if c.is_file():
            return c
    return None


def read_shard_index(index_path: str | os.PathLike) -> dict[str, list[str]]:
    """Validates a shard index; returns shard file name -> tensor names it must hold."""
    index_path = Path(index_path)
    try:
        index = json.loads(index_path.read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise ValueError(f"shard index {index_path} cannot be read as JSON: {e}") from e
    weight_map = index.get("weight_map") if isinstance(index, dict) else None
    if not isinstance(weight_map, dict) or not weight_map:
        raise ValueError(f"shard index {index_path} has no 'weight_map'; it is not a safetensors shard index")
    shards: dict[str, list[str]] = {}
    for name, shard in weight_map.items():
        # Shards sit beside their index: a name with a folder part could reach outside the model folder.
        if not isinstance(shard, str) or Path(shard).name != shard or shard in ("", ".", ".."):
            raise ValueError(f"shard index {index_path.name} names {shard!r}: shard names must be plain file names")
        shards.setdefault(shard, []).append(name)
    missing = [s for s in sorted(shards) if not (index_path.parent / s).is_file()]
    if missing:
        raise ValueError(
            f"shard set {index_path.name} in {index_path.parent} is incomplete: missing "
            f"{', '.join(missing)} ({len(missing)} of {len(shards)} shards); download every file the index lists"
        )
    return shards


def _load_sharded(index_path: Path, return_metadata: bool) -> tuple[dict[str, torch.Tensor], dict | None]:
    import safetensors

    shards = read_shard_index(index_path)
    sd: dict[str, torch.Tensor] = {}
    metadata: dict[str, str] = {}
    for shard, expected in sorted(shards.items()):
        shard_path = index_path.parent / shard
        try:
            handle = safetensors.safe_open(str(shard_path), framework="pt", device="cpu")
        except Exception as e:  # SafetensorError (truncated, not safetensors) or OSError
            raise ValueError(f"shard {shard} of {index_path.name} is not a readable safetensors file ({e})") from e
        with handle as f:
            present = set(f.keys())
            lacking = [k for k in expected if k not in present]
            if lacking:
                raise ValueError(
                    f"shard {shard} does not hold {len(lacking)} tensors that {index_path.name} places in it "
                    f"(e.g. {lacking[0]}); the shard belongs to another set or is damaged"
                )
            # get_tensor is memory-mapped: one shard after another, never a second full copy.
            for k in expected:
                sd[k] = f.get_tensor(k)
            if return_metadata:
                metadata.update(f.metadata() or {})
    return sd, (metadata or None)


def _load_pickle(path: Path) -> Any:
    try:
        return torch.load(str(path), map_location="cpu", weights_only=True, mmap=True)
    except Exception:
        pass  # mmap needs the zip container of torch >= 1.6; legacy pickles load without it
    try:
        return torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as e:  # UnpicklingError for non-tensor payloads, EOFError for truncated files
        raise ValueError(
            f"{path.name} cannot be read as a plain torch state dict (weights_only=True refuses it or the "
            f"file is damaged): {type(e).__name__}: {e}"
        ) from e


def unwrap_container(obj: Any, source: str = "checkpoint") -> dict[str, torch.Tensor]:
    """Finds the tensor dict inside training wrappers such as ``{"state_dict": sd}``."""
    for _ in range(3):
        if not isinstance(obj, dict):
            break
        if obj and all(torch.is_tensor(v) for v in obj.values()):
            return obj
        inner = [k for k in _CONTAINER_KEYS if isinstance(obj.get(k), dict)]
        if inner:
            obj = obj[inner[0]]
            continue
        dict_values = [v for v in obj.values() if isinstance(v, dict)]
        if len(obj) == 1 and dict_values:
            obj = dict_values[0]
            continue
        tensors = {k: v for k, v in obj.items() if torch.is_tensor(v)}
        if tensors:
            return tensors
        break
    raise ValueError(f"{source} holds no tensors (found {type(obj).__name__}); it is not a model checkpoint")


def resolve_checkpoint_path(path: str | os.PathLike) -> Path:
    """A file, an index json, or a folder with one index -> the file to open (index for shard sets)."""
    path = Path(path)
    if path.is_dir():
        index = find_index_in_folder(path)
        if index is None:
            raise ValueError(f"folder {path} holds no *{INDEX_SUFFIX}; choose a checkpoint file or a shard folder")
        return index
    if not path.is_file():
        raise ValueError(f"checkpoint {path} does not exist")
    if path.name.endswith(INDEX_SUFFIX):
        return path
    m = _SHARD_NAME.match(path.name)
    if m:
        index = _sibling_index_of_shard(path)
        if index is None:
            raise ValueError(
                f"{path.name} is shard {int(m['i'])} of {int(m['n'])} of a sharded checkpoint, but no "
                f"{m['base']}{INDEX_SUFFIX} sits next to it; put the index json and all shards in one folder"
            )
        return index
    return path


def load_state_dict(path: str | os.PathLike, return_metadata: bool = False):
    """Loads any supported checkpoint container into a flat ``{name: tensor}`` dict.

    ``path`` may be a safetensors file, a torch pickle, a shard index json, one shard of an indexed set
    (the whole set is loaded), or a folder holding one shard index. With ``return_metadata`` the
    safetensors header metadata (used by ComfyUI's quantized formats) comes back as well.
    """
    resolved = resolve_checkpoint_path(path)
    metadata = None
    name = resolved.name.lower()
    if name.endswith(INDEX_SUFFIX):
        sd, metadata = _load_sharded(resolved, return_metadata)
    elif name.endswith(SAFETENSORS_EXTENSIONS):
        import safetensors

        try:
            with safetensors.safe_open(str(resolved), framework="pt", device="cpu") as f:
                sd = {k: f.get_tensor(k) for k in f.keys()}
                metadata = f.metadata()
        except Exception as e:  # SafetensorError is not exported under a stable name
            raise ValueError(f"{resolved.name} is not a readable safetensors file: {e}") from e
    elif name.endswith(PICKLE_EXTENSIONS):
        sd = unwrap_container(_load_pickle(resolved), resolved.name)
    else:
        raise ValueError(
            f"{resolved.name}: unsupported checkpoint extension; expected one of "
            f"{', '.join(SAFETENSORS_EXTENSIONS + PICKLE_EXTENSIONS)} or a *{INDEX_SUFFIX}"
        )
    if not sd:
        raise ValueError(f"{resolved.name} holds no tensors")
    return (sd, metadata) if return_metadata else sd


def strip_common_prefix(sd: dict[str, Any], prefixes: tuple[str, ...], anchor: str) -> dict[str, Any]:
    """Removes the first prefix under which ``anchor`` is found (``model.diffusion_model.``, ``module.`` ...).

    Keys outside the prefix (e.g. a top-level ``scaled_fp8`` marker) are kept as they are.
    """
    if anchor in sd:
        return sd
    for p in prefixes:
        if p + anchor in sd:
            return {(k[len(p) :] if k.startswith(p) else k): v for k, v in sd.items()}
    return sd


def _shape(sd: dict[str, Any], key: str) -> tuple[int, ...] | None:
    t = sd.get(key)
    return tuple(t.shape) if t is not None else None


def _count(sd: dict[str, Any], prefix: str) -> int:
    n = 0
    while any(k.startswith(f"{prefix}{n}.") for k in sd):
        n += 1
    return n


def _find_prefix(sd: dict[str, Any], anchor: str) -> str | None:
    for k in sd:
        if k.endswith(anchor):
            return k[: len(k) - len(anchor)]
    return None


def describe_state_dict(sd: dict[str, Any]) -> str:
    """One line saying what a state dict most likely is (model family, size, layout), for error messages."""
    n = len(sd)
    p = _find_prefix(sd, "head.modulation")
    if p is not None:
        dim = _shape(sd, p + "head.modulation")[-1]
        pe = _shape(sd, p + "patch_embedding.weight")
        layers = _count(sd, p + "blocks.")
        in_dim = pe[1] if pe else "?"
        if p + "audio_proj.audio_proj_glob_1.layer.bias" in sd:
            size = {5120: "HuMo-17B", 1536: "HuMo-1.7B"}.get(dim, "HuMo (non-standard size)")
            return f"a {size} DiT (dim {dim}, {layers} blocks, in_dim {in_dim}, {n} tensors)"
        kind = "image-to-video" if p + "img_emb.proj.0.bias" in sd else "text-to-video"
        extra = ""
        for marker, name in (
            ("vace_patch_embedding.weight", "VACE"),
            ("casual_audio_encoder.encoder.final_linear.weight", "S2V"),
            ("face_adapter.fuser_blocks.0.k_norm.weight", "Animate"),
            ("control_adapter.conv.weight", "camera"),
        ):
            if p + marker in sd:
                extra = f" {name}"
        return (
            f"a plain Wan2.1/2.2{extra} {kind} DiT without HuMo audio layers (dim {dim}, {layers} blocks, "
            f"in_dim {in_dim}, {n} tensors)"
        )
    if "decoder.middle.0.residual.0.gamma" in sd:
        if "decoder.upsamples.0.upsamples.0.residual.2.weight" in sd:
            return f"a Wan2.2 VAE (48 latent channels, {n} tensors)"
        return f"a Wan2.1 VAE (dim {_shape(sd, 'decoder.head.0.gamma')[0]}, {n} tensors)"
    if _find_prefix(sd, "decoder.middle.0.residual.0.gamma") is not None:
        return f"a Wan VAE under a prefix ({n} tensors)"
    if "token_embedding.weight" in sd and "blocks.0.attn.q.weight" in sd:
        d = _shape(sd, "token_embedding.weight")
        return (
            f"an official Wan umT5 text encoder (.pth layout, {_count(sd, 'blocks.')} layers, dim {d[1]}, vocab {d[0]})"
        )
    p = _find_prefix(sd, "encoder.block.0.layer.0.SelfAttention.q.weight")
    if p is not None:
        per_layer = p + "encoder.block.1.layer.0.SelfAttention.relative_attention_bias.weight" in sd
        kind = "umT5" if per_layer else "T5"
        return f"a {kind} text encoder in HF/ComfyUI layout ({_count(sd, p + 'encoder.block.')} layers, {n} tensors)"
    if (
        _find_prefix(sd, "encoder.embed_positions.weight") is not None
        and _find_prefix(sd, "encoder.conv1.weight") is not None
    ):
        return f"a Whisper audio encoder ({n} tensors)"
    if any(k.endswith((".lora_down.weight", ".lora_A.weight", ".lora_up.weight", ".lora_B.weight")) for k in sd):
        return f"a LoRA ({n} tensors)"
    if _find_prefix(sd, "double_blocks.0.img_attn.qkv.weight") is not None:
        return f"a HunyuanVideo/Flux-style DiT ({n} tensors)"
    if any("motion_modules" in k for k in sd) and any(k.startswith("down_blocks.") for k in sd):
        return f"a UNet3D with motion modules (LatentSync/AnimateDiff style, {n} tensors)"
    if any(k.startswith(("first_stage_model.", "encoder.down.", "decoder.up.")) for k in sd):
        return f"an image VAE or full SD checkpoint ({n} tensors)"
    if any(k.startswith("vision_model.") for k in sd):
        return f"a CLIP vision encoder ({n} tensors)"
    sample = ", ".join(sorted(sd)[:3])
    return f"an unrecognised checkpoint ({n} tensors, first keys: {sample})"
