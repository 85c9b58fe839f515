"""Opening checkpoint files of any published layout, and saying what a state dict is.

Three containers reach us: single safetensors files, torch pickles (`.pt/.pth/.ckpt/.bin`, always
opened with ``weights_only=True``) and sharded safetensors sets described by a
``*.safetensors.index.json``. Tensors stay memory-mapped where the format allows, so a 60 GB shard set
is never copied into RAM before the model takes its weights.

Every loader of the pack reads its files here and nowhere else:
``read_checkpoint(path)`` (tensors, safetensors metadata and the non-tensor entries of a pickle),
``load_state_dict(path, return_metadata=False)`` (the tensors alone), ``read_pickle(path)`` (a raw
``weights_only`` pickle, for formats that are not a tensor dict), ``strip_prefix(sd, anchor, ...)``
(the one remover of wrapper prefixes such as ``model.diffusion_model.``) and
``describe_state_dict(sd)`` (what a file is, for error messages).
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

SAFETENSORS_EXTENSIONS = (".safetensors", ".sft")
PICKLE_EXTENSIONS = (".pt", ".pth", ".ckpt", ".bin", ".pt2")
INDEX_SUFFIX = ".safetensors.index.json"
# transformers' index of a sharded `pytorch_model-0000N-of-0000M.bin` set (same JSON as the safetensors one)
PICKLE_INDEX_SUFFIX = ".bin.index.json"
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


def _load_sharded(index_path: Path) -> tuple[dict[str, torch.Tensor], dict | None]:
    import safetensors

    shards = read_shard_index(index_path)
    sd: dict[str, torch.Tensor] = {}
    metadata: dict[str, str] = {}
    for shard, expected in sorted(shards.items()):
        shard_path = index_path.parent / shard
        if shard.lower().endswith(PICKLE_EXTENSIONS):
            tensors = unwrap_container(read_pickle(shard_path), shard)
            lacking = [k for k in expected if k not in tensors]
            if lacking:
                raise ValueError(
                    f"shard {shard} does not hold {len(lacking)} tensors that {index_path.name} places in it "
                    f"(e.g. {lacking[0]}); the shard belongs to another set or is damaged"
                )
            sd.update((k, tensors[k]) for k in expected)
            continue
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
            metadata.update(f.metadata() or {})
    return sd, (metadata or None)


def read_pickle(path: str | os.PathLike) -> Any:
    """The object a torch pickle holds, opened with ``weights_only=True`` (never runs code from the file).

    Raises a ValueError naming the file; the error of torch is its ``__cause__``.
    """
    path = Path(path)
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
    if path.name.endswith((INDEX_SUFFIX, PICKLE_INDEX_SUFFIX)):
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


@dataclass(frozen=True)
class Checkpoint:
    """What one checkpoint file (or shard set) holds."""

    state_dict: dict[str, torch.Tensor]
    metadata: dict[str, str] | None = None  # safetensors header metadata (ComfyUI's quantized formats use it)
    # Non-tensor entries a torch pickle keeps beside its weights, e.g. OpenAI Whisper's {"dims": {...}}.
    extras: dict[str, Any] = field(default_factory=dict)


def _pickle_extras(obj: Any) -> dict[str, Any]:
    if not isinstance(obj, dict):
        return {}
    return {k: v for k, v in obj.items() if isinstance(k, str) and k not in _CONTAINER_KEYS and not torch.is_tensor(v)}


def read_checkpoint(path: str | os.PathLike) -> Checkpoint:
    """Reads any supported checkpoint container.

    ``path`` may be a safetensors file, a torch pickle, a shard index json, one shard of an indexed set
    (the whole set is loaded), or a folder holding one shard index.
    """
    resolved = resolve_checkpoint_path(path)
    metadata = None
    extras: dict[str, Any] = {}
    name = resolved.name.lower()
    if name.endswith((INDEX_SUFFIX, PICKLE_INDEX_SUFFIX)):
        sd, metadata = _load_sharded(resolved)
    elif name.endswith(SAFETENSORS_EXTENSIONS):
        import safetensors

        try:
            with safetensors.safe_open(str(resolved), framework="pt", device="cpu") as f:
                sd = {k: f.get_tensor(k) for k in f.keys()}
                metadata = f.metadata()
        except Exception as e:  # SafetensorError is not exported under a stable name
            raise ValueError(f"{resolved.name} is not a readable safetensors file: {e}") from e
    elif name.endswith(PICKLE_EXTENSIONS):
        obj = read_pickle(resolved)
        sd = unwrap_container(obj, resolved.name)
        extras = _pickle_extras(obj)
    else:
        raise ValueError(
            f"{resolved.name}: unsupported checkpoint extension; expected one of "
            f"{', '.join(SAFETENSORS_EXTENSIONS + PICKLE_EXTENSIONS)} or a *{INDEX_SUFFIX}"
        )
    if not sd:
        raise ValueError(f"{resolved.name} holds no tensors")
    return Checkpoint(sd, metadata, extras)


def load_state_dict(path: str | os.PathLike, return_metadata: bool = False):
    """The flat ``{name: tensor}`` dict of any supported checkpoint (see ``read_checkpoint``).

    With ``return_metadata`` the safetensors header metadata comes back as well.
    """
    ckpt = read_checkpoint(path)
    return (ckpt.state_dict, ckpt.metadata) if return_metadata else ckpt.state_dict


def strip_prefix(
    sd: Mapping[str, Any],
    anchor: str | tuple[str, ...],
    prefixes: tuple[str, ...] | None = None,
    *,
    confirm: str | None = None,
    keep_unprefixed: bool = True,
) -> dict[str, Any]:
    """Removes the wrapper prefix (``model.diffusion_model.``, ``module.``, ``vae.`` ...) under which ``anchor``
    (a key, or one of several keys) is found.

    ``prefixes`` are tried in order; without them any prefix found in front of ``anchor`` is taken, and
    ``confirm``, a second key, must then sit under the same prefix. Keys outside the prefix (e.g. a
    top-level ``scaled_fp8`` marker) are kept unless ``keep_unprefixed`` is False. A dict without the
    anchor under any prefix comes back unchanged.
    """
    anchors = (anchor,) if isinstance(anchor, str) else anchor
    if any(a in sd for a in anchors):
        return dict(sd)
    if prefixes is None:
        found = (k[: len(k) - len(a)] for k in sd if isinstance(k, str) for a in anchors if k.endswith("." + a))
        candidates = tuple(dict.fromkeys(p for p in found if confirm is None or p + confirm in sd))
    else:
        candidates = prefixes
    for p in candidates:
        if any(p + a in sd for a in anchors):
            return {
                (k[len(p) :] if k.startswith(p) else k): v
                for k, v in sd.items()
                if keep_unprefixed or (isinstance(k, str) and k.startswith(p))
            }
    return dict(sd)


def key_mismatches(
    expected: Mapping[str, tuple[int, ...]], sd: Mapping[str, Any], optional_suffix: str | None = None
) -> dict[str, list[str]]:
    """What keeps ``sd`` from loading strictly into a network with ``expected`` key -> shape: the
    "missing", "unexpected", "mis-shaped" and "non-float" keys (keys ending in ``optional_suffix`` may be
    absent and hold integers)."""

    def optional(k: str) -> bool:
        return optional_suffix is not None and k.endswith(optional_suffix)

    return {
        "missing": [k for k in expected if k not in sd and not optional(k)],
        "unexpected": [k for k in sd if k not in expected],
        "mis-shaped": [
            f"{k} (file {tuple(sd[k].shape)}, expected {expected[k]})"
            for k in expected
            if k in sd and tuple(sd[k].shape) != expected[k]
        ],
        "non-float": [k for k, v in sd.items() if k in expected and not optional(k) and not v.is_floating_point()],
    }


def mismatch_report(mismatches: Mapping[str, list[str]], noun: str, limit: int) -> list[str]:
    """``"3 missing keys: a, b, c"`` per non-empty kind of ``key_mismatches``, at most ``limit`` names each."""
    report = []
    for kind, items in mismatches.items():
        if items:
            more = f" ... and {len(items) - limit} more" if len(items) > limit else ""
            report.append(f"{len(items)} {kind} {noun}: {', '.join(items[:limit])}{more}")
    return report


def _shape(sd: Mapping[str, Any], key: str) -> tuple[int, ...] | None:
    t = sd.get(key)
    return tuple(t.shape) if t is not None else None


def _count(sd: Mapping[str, Any], prefix: str) -> int:
    n = 0
    while any(k.startswith(f"{prefix}{n}.") for k in sd):
        n += 1
    return n


def _find_prefix(sd: Mapping[str, Any], anchor: str) -> str | None:
    for k in sd:
        if isinstance(k, str) and k.endswith(anchor):
            return k[: len(k) - len(anchor)]
    return None


# Markers of wav2vec2-style audio encoders (HuMo and LatentSync use Whisper; the two are often confused).
_WAV2VEC_MARKERS = (
    "feature_extractor.conv_layers.",
    "encoder.pos_conv_embed.",
    "feature_projection.",
    "masked_spec_embed",
    "quantizer.codevectors",
)


def _describe_unet(sd: Mapping[str, Any], n: int) -> str:
    """A diffusers-layout UNet: LatentSync's (13 = 3 * 4 + 1 input channels) or an image UNet."""
    conv_in, conv_out = sd["conv_in.weight"], sd.get("conv_out.weight")
    in_ch = conv_in.shape[1] if conv_in.ndim >= 2 else "?"
    motion = " with motion modules" if any("motion_modules" in k for k in sd) else ""
    if conv_out is not None and conv_in.ndim == 4 and conv_out.ndim == 4 and in_ch == 3 * conv_out.shape[0] + 1:
        return f"a LatentSync UNet{motion} ({in_ch} input channels, {n} tensors)"
    cross = next((tuple(v.shape)[1] for k, v in sd.items() if k.endswith("attn2.to_k.weight")), None)
    if motion:
        return f"a UNet3D{motion} (AnimateDiff style, {in_ch} input channels, {n} tensors)"
    kind = "a diffusers SD-1.5 UNet" if (in_ch == 4 and cross == 768) else "a diffusers UNet"
    return f"{kind} ({in_ch} input channels, {cross}-d cross-attention)"


def identify_state_dict(sd: Mapping[str, Any]) -> str | None:
    """What model family a state dict belongs to, or None when no known layout matches."""
    if "dims" in sd and "model_state_dict" in sd:
        return "an OpenAI Whisper checkpoint (audio encoder); load it with the Whisper loader"
    keys = [k for k in sd if isinstance(k, str)]
    n = sum(1 for v in sd.values() if torch.is_tensor(v))
    if n == 0:
        return "a file with no tensors"
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
    if any(marker in k for k in keys for marker in _WAV2VEC_MARKERS):
        return f"a wav2vec2 audio encoder, not Whisper ({n} tensors)"
    if _find_prefix(sd, "encoder.conv1.weight") is not None or any(
        "encoder.layers." in k and "self_attn" in k for k in keys
    ):
        return f"a Whisper audio encoder ({n} tensors); load it with the Whisper loader"
    if any(k.endswith((".lora_down.weight", ".lora_A.weight", ".lora_up.weight", ".lora_B.weight")) for k in keys):
        return f"a LoRA ({n} tensors)"
    if _find_prefix(sd, "double_blocks.0.img_attn.qkv.weight") is not None:
        return f"a HunyuanVideo/Flux-style DiT ({n} tensors)"
    if any("input_blocks.0.0.weight" in k for k in keys):
        return (
            "a UNet in the original Stable Diffusion (LDM) layout (input_blocks / output_blocks); "
            "use ComfyUI's checkpoint loaders"
        )
    if any(k.startswith(("audio_encoder.", "visual_encoder.")) for k in keys):
        return (
            "LatentSync's StableSyncNet (stable_syncnet.pt, the SyncNet used to train the UNet), not the "
            "evaluation SyncNet syncnet_v2.model"
        )
    if any(k.startswith("__S__.") for k in keys):
        return "a SyncNetInstance wrapper's state dict ('__S__.' prefix); the official loaders expect the bare network"
    if torch.is_tensor(sd.get("conv_in.weight")) and any(k.startswith("down_blocks.") for k in keys):
        return _describe_unet(sd, n)
    if any("motion_modules." in k and "temporal_transformer" in k for k in keys):
        return "an AnimateDiff-style motion-module file (no conv_in / resnets), not a full UNet"
    if any(k.startswith(("encoder.down_blocks.", "decoder.up_blocks.")) for k in keys):
        return f"a VAE in diffusers layout ({n} tensors)"
    if any(k.startswith(("first_stage_model.", "encoder.down.", "decoder.up.")) for k in keys):
        return f"an image VAE or full SD checkpoint ({n} tensors)"
    if any(k.startswith("vision_model.") for k in keys):
        return f"a CLIP vision encoder ({n} tensors)"
    return None


def describe_state_dict(sd: Mapping[str, Any]) -> str:
    """One line saying what a state dict most likely is (model family, size, layout), for error messages."""
    found = identify_state_dict(sd)
    if found is not None:
        return found
    sample = ", ".join(sorted(k for k in sd if isinstance(k, str))[:3])
    return f"an unrecognised checkpoint ({len(sd)} tensors, first keys: {sample})"
