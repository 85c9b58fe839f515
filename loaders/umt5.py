"""Official Wan umT5 encoder (``models_t5_umt5-xxl-enc-bf16.pth``) + ``google/umt5-xxl`` tokenizer -> core CLIP.

The official file stores Wan's own T5 module tree (``token_embedding``, ``blocks.N.attn``,
``blocks.N.ffn.{gate.0,fc1,fc2}``, ``blocks.N.pos_embedding``, ``norm``); core's Wan text encoder
(``comfy.text_encoders.wan``) uses the HF T5 layout. The renaming is one table below. The official
feed-forward is ``fc2(fc1(x) * gelu(gate(x)))`` and HF's gated one is ``wo(gelu(wi_0(x)) * wi_1(x))``,
hence ``gate.0 -> wi_0`` and ``fc1 -> wi_1``. umT5 keeps a relative-position table in every layer
(``shared_pos=False``), which maps to each layer's ``relative_attention_bias``.

Core's umT5 tokenizer is not a file in ComfyUI: the Comfy-Org repacks embed the sentencepiece model
as a ``spiece_model`` tensor. The official ``.pth`` has none, so the tokenizer comes from the
``google/umt5-xxl`` folder (its ``spiece.model``), found next to the checkpoint or chosen explicitly.
The configuration (width, depth, heads, vocabulary) is read off the weights, so every size loads.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import torch

from .checkpoint_files import describe_state_dict, load_state_dict, strip_prefix
from .dtypes import dtype_choices, parse_dtype

SPIECE_FILE = "spiece.model"
NUM_BUCKETS = 32  # core's T5Attention hard-codes 32 buckets / max distance 128, as umT5 uses
HF_KEY_PREFIXES = ("text_encoders.umt5xxl.transformer.", "umt5xxl.transformer.", "transformer.", "model.", "module.")
OFFICIAL_KEY_PREFIXES = ("module.", "model.", "encoder.")
# Folder names under which the tokenizer is looked for when none is chosen.
TOKENIZER_FOLDERS = ("google/umt5-xxl", "umt5-xxl", "umt5_xxl", "tokenizer", "google")

_BLOCK_RENAMES = {
    "norm1.weight": "layer.0.layer_norm.weight",
    "attn.q.weight": "layer.0.SelfAttention.q.weight",
    "attn.k.weight": "layer.0.SelfAttention.k.weight",
    "attn.v.weight": "layer.0.SelfAttention.v.weight",
    "attn.o.weight": "layer.0.SelfAttention.o.weight",
    "pos_embedding.embedding.weight": "layer.0.SelfAttention.relative_attention_bias.weight",
    "norm2.weight": "layer.1.layer_norm.weight",
    "ffn.gate.0.weight": "layer.1.DenseReluDense.wi_0.weight",
    "ffn.fc1.weight": "layer.1.DenseReluDense.wi_1.weight",
    "ffn.fc2.weight": "layer.1.DenseReluDense.wo.weight",
}
_TOP_RENAMES = {"token_embedding.weight": "shared.weight", "norm.weight": "encoder.final_layer_norm.weight"}
_OFFICIAL_BLOCK = re.compile(r"^blocks\.(\d+)\.(.+)$")

UMT5_DTYPES = dtype_choices("default", "bf16", "fp16", "fp32")


def is_official_layout(sd: dict) -> bool:
    return "token_embedding.weight" in sd and "blocks.0.attn.q.weight" in sd


def official_to_core(sd: dict[str, torch.Tensor], source: str = "checkpoint") -> dict[str, torch.Tensor]:
    """Renames an official Wan umT5 encoder state dict to core's (HF T5) key layout."""
    out: dict[str, torch.Tensor] = {}
    for k, v in sd.items():
        if k in _TOP_RENAMES:
            out[_TOP_RENAMES[k]] = v
            continue
        m = _OFFICIAL_BLOCK.match(k)
        if m and m.group(2) in _BLOCK_RENAMES:
            out[f"encoder.block.{m.group(1)}.{_BLOCK_RENAMES[m.group(2)]}"] = v
            continue
        if k.startswith(("decoder.", "head.")):
            continue  # a full encoder-decoder umT5 file: Wan uses the encoder only
        raise ValueError(
            f"{source}: tensor {k!r} is not part of an official Wan umT5 encoder; {describe_state_dict(sd)}"
        )
    return out


def infer_umt5_config(sd: dict[str, torch.Tensor], source: str = "checkpoint") -> dict:
    """HF-style config of a core-layout umT5 encoder, read off its weights."""
    try:
        vocab, d_model = sd["shared.weight"].shape
        inner = sd["encoder.block.0.layer.0.SelfAttention.q.weight"].shape[0]
        buckets, heads = sd["encoder.block.0.layer.0.SelfAttention.relative_attention_bias.weight"].shape
        d_ff = sd["encoder.block.0.layer.1.DenseReluDense.wi_0.weight"].shape[0]
    except KeyError as e:
        raise ValueError(f"{source} is {describe_state_dict(sd)}; the umT5 tensor {e.args[0]} is missing") from e
    layers = 0
    while f"encoder.block.{layers}.layer.0.SelfAttention.q.weight" in sd:
        layers += 1
    missing_bias = [
        i for i in range(layers) if f"encoder.block.{i}.layer.0.SelfAttention.relative_attention_bias.weight" not in sd
    ]
    if missing_bias:
        raise ValueError(
            f"{source} is a T5 encoder with one shared position table (T5-XXL, not umT5); "
            "Wan/HuMo need the umT5-xxl encoder (models_t5_umt5-xxl-enc-bf16.pth or umt5_xxl_*.safetensors)"
        )
    if buckets != NUM_BUCKETS:
        raise ValueError(f"{source}: {buckets} relative-position buckets; umT5 (and core's T5) use {NUM_BUCKETS}")
    if inner % heads:
        raise ValueError(f"{source}: attention width {inner} is not divisible by {heads} heads")
    return {
        "vocab_size": int(vocab),
        "d_model": int(d_model),
        "d_kv": int(inner // heads),
        "num_heads": int(heads),
        "d_ff": int(d_ff),
        "num_layers": layers,
        "num_decoder_layers": layers,
    }


def find_tokenizer(checkpoint: str | os.PathLike, extra_roots: list[str] | tuple[str, ...] = ()) -> Path | None:
    """``spiece.model`` next to the checkpoint or in a ``google/umt5-xxl``-like folder beside it or in a root."""
    here = Path(checkpoint).resolve().parent
    roots = [here, *[Path(r) for r in extra_roots]]
    for root in roots:
        for sub in ("", *TOKENIZER_FOLDERS):
            candidate = root / sub / SPIECE_FILE
            if candidate.is_file():
                return candidate
    return None


def read_spiece_model(tokenizer: str | os.PathLike) -> torch.Tensor:
    """The sentencepiece model of a ``google/umt5-xxl`` folder (or the file itself) as core's byte tensor."""
    path = Path(tokenizer)
    if path.is_dir():
        if not (path / SPIECE_FILE).is_file():
            present = ", ".join(sorted(p.name for p in path.iterdir())[:6]) or "nothing"
            raise ValueError(
                f"tokenizer folder {path} has no {SPIECE_FILE} (it holds {present}); use the google/umt5-xxl "
                "tokenizer folder, whose sentencepiece model core's umT5 tokenizer reads"
            )
        path = path / SPIECE_FILE
    if not path.is_file():
        raise ValueError(f"tokenizer {path} does not exist")
    data = path.read_bytes()
    try:
        import sentencepiece

        sentencepiece.SentencePieceProcessor(model_proto=data)
    except Exception as e:
        raise ValueError(f"{path} is not a sentencepiece model: {e}") from e
    return torch.frombuffer(bytearray(data), dtype=torch.uint8)


def to_core_layout(sd: dict[str, torch.Tensor], source: str = "checkpoint") -> dict[str, torch.Tensor]:
    """Any published umT5 encoder layout (official .pth, Comfy repack, HF) -> core's key names."""
    official = strip_prefix(sd, "blocks.0.attn.q.weight", OFFICIAL_KEY_PREFIXES)
    if is_official_layout(official):
        return official_to_core(official, source)
    hf = strip_prefix(sd, "encoder.block.0.layer.0.SelfAttention.q.weight", HF_KEY_PREFIXES)
    if "encoder.block.0.layer.0.SelfAttention.q.weight" in hf:
        if "shared.weight" not in hf and "encoder.embed_tokens.weight" in hf:
            hf = dict(hf)
            hf["shared.weight"] = hf.pop("encoder.embed_tokens.weight")
        return {k: v for k, v in hf.items() if not k.startswith(("decoder.", "lm_head."))}
    raise ValueError(
        f"{source} is {describe_state_dict(sd)}; expected the umT5-xxl text encoder "
        "(models_t5_umt5-xxl-enc-bf16.pth or umt5_xxl_*.safetensors)"
    )


def build_umt5_clip(
    sd: dict[str, torch.Tensor],
    spiece_model: torch.Tensor,
    dtype: torch.dtype | None = None,
    source: str = "checkpoint",
):
    """Core CLIP (type wan) from a core-layout umT5 state dict; the config comes from the weights."""
    import comfy.sd
    import comfy.supported_models_base
    import comfy.text_encoders.sd3_clip
    import comfy.text_encoders.wan
    import comfy.utils

    config = infer_umt5_config(sd, source)
    detected = comfy.text_encoders.sd3_clip.t5_xxl_detect(sd)
    if dtype is not None:
        detected.pop("dtype_t5", None)  # core would otherwise force the file's dtype over the chosen one
    target = comfy.supported_models_base.ClipTarget(
        comfy.text_encoders.wan.WanT5Tokenizer, comfy.text_encoders.wan.te(**detected)
    )
    # Core's umT5 model reads a fixed xxl json; this per-model override makes any width/depth load.
    model_options: dict = {"umt5xxl_model_config": config}
    if dtype is not None:
        model_options["dtype"] = dtype
    clip = comfy.sd.CLIP(
        target,
        parameters=comfy.utils.calculate_parameters(sd),
        tokenizer_data={"spiece_model": spiece_model},
        model_options=model_options,
    )
    missing, unexpected = clip.load_sd(sd)
    missing = [k for k in missing if not k.endswith("scaled_fp8")]
    if missing:
        raise ValueError(f"{source}: umT5 tensors missing after conversion: {', '.join(missing[:4])}")
    return clip


def load_umt5(
    path: str | os.PathLike,
    tokenizer: str | os.PathLike | None = None,
    dtype: str = "default",
    tokenizer_roots: list[str] | tuple[str, ...] = (),
):
    """Loads the umT5 encoder of Wan/HuMo (official .pth or a repack) as a core ``CLIP`` of type wan.

    ``tokenizer``: a ``google/umt5-xxl`` folder or its ``spiece.model``. When None, a sentencepiece
    model embedded in the checkpoint (Comfy repacks) is used, else one found beside the checkpoint or
    under ``tokenizer_roots``.
    """
    torch_dtype = parse_dtype(dtype, UMT5_DTYPES, "dtype")
    source = os.path.basename(os.path.normpath(str(path)))
    sd = load_state_dict(path)
    embedded = sd.pop("spiece_model", None)
    sd = to_core_layout(sd, source)
    if tokenizer is not None:
        spiece = read_spiece_model(tokenizer)
    elif embedded is not None:
        spiece = embedded
    else:
        found = find_tokenizer(path, tokenizer_roots)
        if found is None:
            raise ValueError(
                f"{source} carries no tokenizer and none was found beside it: put the google/umt5-xxl tokenizer "
                f"folder (with {SPIECE_FILE}) into models/text_encoders and choose it as tokenizer"
            )
        spiece = read_spiece_model(found)
    return build_umt5_clip(sd, spiece, torch_dtype, source)
