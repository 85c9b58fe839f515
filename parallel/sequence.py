"""Ulysses sequence parallelism for core's HuMo / Wan and HunyuanVideo networks, on a model clone.

Every rank of a sequence-parallel group runs the same forward on 1/P of the video tokens. Nothing in
core is rewritten; ModelPatcher mechanisms do the work:

- a diffusion-model wrapper gives each forward its own state and puts a block-replace patch in front of
  every transformer block (composed at call time with any block patch already there): the first block
  pads the token sequence to a multiple of P and keeps this rank's shard, RoPE tables and per-token
  modulation ranges are cut the same way, the last block gathers the full sequence again (core's head
  and unpatchify then run as usual);
- self-attention swaps heads for tokens around the attention kernel with two all-to-alls (through
  core's ``optimized_attention_override``, so the kernel core picked, or another override, still runs);
- HuMo's audio cross-attention is frame-local (each latent frame's tokens attend to that frame's 16
  audio tokens), so every rank keeps the whole (small) audio context and its tokens attend to their own
  frames: no exchange is needed, and a shard that starts or ends inside a frame still pairs each token
  with its frame's audio. The official code gathers the audio over the group instead
  (``humo/models/distributed/dit_ulysses_sequence_parallel.py``, ``ulysses_audio_cross_attn_forward``);
  per token the result is the same.
- HunyuanVideo attends jointly over video and text tokens: video tokens are sharded, the text (a few
  hundred tokens) stays whole on every rank and only its heads are split for the attention, as
  xDiT's joint Ulysses attention does for HunyuanVideo's official multi-GPU path. Ulysses alone (no ring
  attention) is that path's own 8-GPU setting (``--ulysses-degree 8 --ring-degree 1``,
  Tencent-Hunyuan/HunyuanVideo-I2V README.md:397 at 1481c1d); the 24 heads allow up to 24 GPUs per group.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass, field

import comfy.patcher_extension
import torch

from ..models.humo_spec import AUDIO_TOKENS
from .collectives import SeqShard, gather_heads, heads_to_seq, local_heads, seq_to_heads

STATE_KEY = "hv_sequence_parallel"
OVERRIDE_KEY = "optimized_attention_override"
WRAPPER_KEY = "humanvideo_sequence_parallel"


@dataclass
class SeqParallelState:
    """Per forward: the group, and once the first block saw the tokens, this rank's shard."""

    group: object
    size: int
    rank: int
    shard: SeqShard | None = None
    pe_cache: tuple = ()
    # HunyuanVideo joint attention
    img_first: bool = True
    txt_len: int = 0
    mask: torch.Tensor | None = None
    extra: dict = field(default_factory=dict)

    def begin(self, length: int) -> SeqShard:
        self.shard = SeqShard(self.group, self.size, self.rank, length)
        return self.shard

    def cached(self, source: torch.Tensor, make):
        if self.pe_cache and self.pe_cache[0] is source:
            return self.pe_cache[1]
        local = make(source)
        self.pe_cache = (source, local)
        return local


# --------------------------------------------------------------------------------- attention overrides
_ATTN_PARAMS = ("q", "k", "v", "heads", "mask", "attn_precision", "skip_reshape", "skip_output_reshape")


def _split_call(args, kwargs) -> tuple[dict, dict]:
    call = dict(zip(_ATTN_PARAMS, args, strict=False))
    call.update({k: kwargs[k] for k in _ATTN_PARAMS if k in kwargs})
    rest = {k: v for k, v in kwargs.items() if k not in _ATTN_PARAMS}
    return call, rest


def _run_kernel(func, previous, call: dict, rest: dict):
    call = dict(call)
    args = (call.pop("q"), call.pop("k"), call.pop("v"), call.pop("heads"))
    if previous is not None:
        return previous(func, *args, **call, **rest)
    return func(*args, **call, **rest)


def token_attention_override(sp: SeqShard, previous=None):
    """Self-attention over a sharded sequence: q, k, v [B, local, H*D] -> all tokens, H/P heads -> back."""

    def override(func, *args, **kwargs):
        call, rest = _split_call(args, kwargs)
        if call.get("skip_reshape") or call.get("skip_output_reshape") or call.get("mask") is not None:
            raise RuntimeError("sequence parallel: unexpected attention call (masked or pre-shaped self-attention)")
        q, heads = call["q"], call["heads"]
        b, s, width = q.shape
        d = width // heads
        parts = [seq_to_heads(call[n].reshape(b, s, heads, d), sp) for n in ("q", "k", "v")]
        hl = parts[0].shape[2]
        call.update({n: t.reshape(b, sp.length, hl * d) for n, t in zip(("q", "k", "v"), parts, strict=True)})
        call["heads"] = hl
        out = _run_kernel(func, previous, call, rest)
        return heads_to_seq(out.reshape(b, sp.length, hl, d), sp, heads).reshape(b, s, heads * d)

    return override


def joint_attention_override(state: SeqParallelState, previous=None):
    """HunyuanVideo joint attention: q, k, v [B, H, local video + text, D] in core's token order."""

    def override(func, *args, **kwargs):
        call, rest = _split_call(args, kwargs)
        if not call.get("skip_reshape"):
            raise RuntimeError("sequence parallel: unexpected HunyuanVideo attention call (expected [B, H, L, D])")
        sp, t_len, heads = state.shard, state.txt_len, call["heads"]

        def split(x: torch.Tensor, dim: int, video_len: int):
            if state.img_first:
                return x.narrow(dim, 0, video_len), x.narrow(dim, video_len, t_len)
            return x.narrow(dim, t_len, video_len), x.narrow(dim, 0, t_len)

        def join(video: torch.Tensor, text: torch.Tensor, dim: int) -> torch.Tensor:
            return torch.cat([video, text] if state.img_first else [text, video], dim=dim)

        for n in ("q", "k", "v"):
            video, text = split(call[n], 2, sp.local)
            video = seq_to_heads(video.transpose(1, 2), sp).transpose(1, 2)
            call[n] = join(video, local_heads(text, sp, dim=1), 2)
        b, hl, _, d = call["q"].shape
        call["heads"] = hl
        call["mask"] = state.mask
        out = _run_kernel(func, previous, call, rest)
        out = out.transpose(1, 2) if call.get("skip_output_reshape") else out.reshape(b, -1, hl, d)
        video, text = split(out, 1, sp.length)
        video = heads_to_seq(video, sp, heads)
        text = gather_heads(text, sp, heads, dim=2)
        out = join(video, text, 1)
        if call.get("skip_output_reshape"):
            return out.transpose(1, 2)
        return out.reshape(b, out.shape[1], heads * d)

    return override


def _with_override(opts: dict, override) -> dict:
    return {**opts, OVERRIDE_KEY: override}


# ------------------------------------------------------------------------------------ HuMo / Wan blocks
class _SharedChildren(torch.nn.Module):
    """Stands in for a core module: same child modules (so weight keys, LoRA patches and FSDP sharding see
    the original parameters), the original kept unregistered to run core's own forward."""

    def __init__(self, inner: torch.nn.Module) -> None:
        super().__init__()
        while isinstance(inner, _SharedChildren):  # another clone's patch may still be applied to the model
            inner = inner.inner
        for name, child in inner.named_children():
            self.add_module(name, child)
        self.__dict__["inner"] = inner
        self.num_heads = inner.num_heads
        self.head_dim = inner.head_dim


class SeqParallelSelfAttention(_SharedChildren):
    """Core's WanSelfAttention with the Ulysses exchange around its attention kernel."""

    def forward(self, x, freqs, transformer_options={}):
        state = transformer_options.get(STATE_KEY)
        if state is None or state.shard is None:
            return self.inner(x, freqs, transformer_options=transformer_options)
        override = token_attention_override(state.shard, transformer_options.get(OVERRIDE_KEY))
        return self.inner(x, freqs, transformer_options=_with_override(transformer_options, override))


class SeqParallelAudioAttention(_SharedChildren):
    """HuMo's frame-local audio cross-attention (core WanT2VCrossAttentionGather) on a token shard."""

    def forward(self, x, context, transformer_options={}, **kwargs):
        from comfy.ldm.modules.attention import optimized_attention

        state = transformer_options.get(STATE_KEY)
        if state is None or state.shard is None:
            return self.inner(x, context, transformer_options=transformer_options, **kwargs)
        sp, inner = state.shard, self.inner
        b, n, d = x.shape[0], inner.num_heads, inner.head_dim
        frames = context.shape[1] // AUDIO_TOKENS
        hw = sp.length // frames
        if frames * hw != sp.length:
            raise RuntimeError(f"sequence parallel: {sp.length} tokens are not {frames} frames of audio")
        q = inner.norm_q(inner.q(x))
        k = inner.norm_k(inner.k(context)).view(b, frames, AUDIO_TOKENS, n, d)
        v = inner.v(context).view(b, frames, AUDIO_TOKENS, n, d)
        out = q.new_zeros(b, sp.local, n * d)
        if sp.real:
            # the whole frames this shard touches, with the shard's tokens placed where they belong
            f0, f1 = sp.start // hw, -(-(sp.start + sp.real) // hw)
            offset = sp.start - f0 * hw
            qf = q.new_zeros(b, (f1 - f0) * hw, n * d)
            qf[:, offset : offset + sp.real] = q[:, : sp.real]
            qf = qf.reshape(b * (f1 - f0), hw, n, d).transpose(1, 2)
            kf = k[:, f0:f1].reshape(-1, AUDIO_TOKENS, n, d).transpose(1, 2)
            vf = v[:, f0:f1].reshape(-1, AUDIO_TOKENS, n, d).transpose(1, 2)
            att = optimized_attention(
                qf,
                kf,
                vf,
                heads=n,
                skip_reshape=True,
                skip_output_reshape=True,
                transformer_options=transformer_options,
            )
            att = att.transpose(1, 2).reshape(b, (f1 - f0) * hw, n * d)
            out[:, : sp.real] = att[:, offset : offset + sp.real]
        return inner.o(out)


def _chain(previous, args: dict, extra: dict):
    return previous(args, extra) if previous is not None else extra["original_block"](args)


def _wan_block_patch(index: int, last: bool, previous):
    def block(args, extra):
        state: SeqParallelState = args["transformer_options"][STATE_KEY]
        x = args["img"]
        if state.shard is None:
            x = state.begin(x.shape[1]).shard(x, 1)
        if args["vec"].shape[1] != 1:
            raise ValueError("sequence parallel: per-frame timesteps are not supported by the parallel path")
        sp = state.shard
        pe = args["pe"]
        if pe is not None:
            pe = state.cached(pe, lambda p: sp.shard(p, 1))
        out = _chain(previous, {**args, "img": x, "pe": pe}, extra)
        if last:
            out = {**out, "img": sp.gather(out["img"], 1)}
        return out

    return block


# ------------------------------------------------------------------------------- HunyuanVideo blocks
def _map_ranges(dims, segments):
    """Per-token modulation ranges (start, end, index) over a full token layout -> the local layout.

    ``segments`` lists (global start, global end, local start) of the pieces this rank holds.
    """
    if dims is None:
        return None
    total = max(g1 for _, g1, _ in segments)
    out = []
    for a, b, idx in dims:
        b = total if b is None else b
        for g0, g1, l0 in segments:
            lo, hi = max(a, g0), min(b, g1)
            if hi > lo:
                out.append((l0 + lo - g0, l0 + hi - g0, idx))
    return out


def _video_segments(state: SeqParallelState):
    sp = state.shard
    return [(sp.start, sp.start + sp.real, 0)]


def _joint_segments(state: SeqParallelState):
    sp, t = state.shard, state.txt_len
    if state.img_first:
        return [(sp.start, sp.start + sp.real, 0), (sp.length, sp.length + t, sp.local)]
    return [(0, t, 0), (t + sp.start, t + sp.start + sp.real, t)]


def _joint_pe(state: SeqParallelState, pe: torch.Tensor) -> torch.Tensor:
    """RoPE table [B, 1, full video + text, ...] -> [B, 1, local video + text, ...] (core's order)."""
    sp, t = state.shard, state.txt_len
    if state.img_first:
        return torch.cat([sp.shard(pe.narrow(2, 0, sp.length), 2), pe.narrow(2, sp.length, t)], dim=2)
    return torch.cat([pe.narrow(2, 0, t), sp.shard(pe.narrow(2, t, sp.length), 2)], dim=2)


def _hunyuan_double_patch(index: int, gather: bool, previous, img_first: bool):
    def block(args, extra):
        opts = args["transformer_options"]
        state: SeqParallelState = opts[STATE_KEY]
        img = args["img"]
        if state.shard is None:
            state.img_first = img_first
            state.txt_len = args["txt"].shape[1]
            state.mask = args.get("attention_mask")
            img = state.begin(img.shape[1]).shard(img, 1)
        sub = {
            **args,
            "img": img,
            "pe": state.cached(args["pe"], lambda p: _joint_pe(state, p)),
            "modulation_dims_img": _map_ranges(args.get("modulation_dims_img"), _video_segments(state)),
            "transformer_options": _with_override(opts, joint_attention_override(state, opts.get(OVERRIDE_KEY))),
        }
        out = _chain(previous, sub, extra)
        if gather:
            out = {**out, "img": state.shard.gather(out["img"], 1)}
        return out

    return block


def _hunyuan_single_patch(index: int, last: bool, previous):
    def block(args, extra):
        opts = args["transformer_options"]
        state: SeqParallelState = opts[STATE_KEY]
        if state.shard is None:
            raise RuntimeError("sequence parallel: HunyuanVideo single blocks ran before the double blocks")
        dims = args.get("modulation_dims")
        # a patch that corrects core's ranges (the official token-replace fix on text-first hosts) must see
        # the whole sequence: correct here, before the ranges are cut to this rank's tokens
        full_sequence_dims = getattr(previous, "full_sequence_dims", None)
        if full_sequence_dims is not None:
            dims = full_sequence_dims(dims, opts)
        sub = {
            **args,
            "pe": state.cached(args["pe"], lambda p: _joint_pe(state, p)),
            "modulation_dims": _map_ranges(dims, _joint_segments(state)),
            "transformer_options": _with_override(opts, joint_attention_override(state, opts.get(OVERRIDE_KEY))),
        }
        out = _chain(previous, sub, extra)
        if last:
            sp, t = state.shard, state.txt_len
            x = out["img"]
            if state.img_first:
                video, text = x.narrow(1, 0, sp.local), x.narrow(1, sp.local, t)
                x = torch.cat([sp.gather(video, 1), text], dim=1)
            else:
                text, video = x.narrow(1, 0, t), x.narrow(1, t, sp.local)
                x = torch.cat([text, sp.gather(video, 1)], dim=1)
            out = {**out, "img": x}
        return out

    return block


# ------------------------------------------------------------------------------------------ installation
def model_family(diffusion_model) -> str:
    import comfy.ldm.hunyuan_video.model as hy
    import comfy.ldm.wan.model as wan
    from torch.distributed.fsdp import FSDPModule

    # FSDP2 gives a sharded module a subclass of its own; the network is the first class past it
    cls = next(c for c in type(diffusion_model).__mro__ if not issubclass(c, FSDPModule))
    families = {wan.HumoWanModel: "humo", wan.WanModel: "wan", hy.HunyuanVideo: "hunyuan"}
    if cls not in families:
        raise ValueError(
            f"sequence parallelism supports HuMo, Wan2.1 text-to-video and HunyuanVideo models, not "
            f"{cls.__name__}; use sp_size 1 (cfg_parallel still works)"
        )
    return families[cls]


def _check_humo_audio(dm) -> None:
    for block in dm.blocks:
        wrapper = getattr(block, "audio_cross_attn_wrapper", None)
        if wrapper is not None and not isinstance(
            getattr(wrapper, "audio_cross_attn", None), SeqParallelAudioAttention
        ):
            raise ValueError(
                "HuMo focus masks and a second speaker replace the audio cross-attention and cannot run with "
                "sequence parallelism (sp_size > 1); use sp_size 1 with cfg_parallel, or no focus mask"
            )


def _block_patches(dm, family: str, patches: dict) -> dict:
    dit = dict(patches)
    if family in ("humo", "wan"):
        n = len(dm.blocks)
        for i in range(n):
            key = ("double_block", i)
            dit[key] = _wan_block_patch(i, i == n - 1, dit.get(key))
        return dit
    doubles, singles = len(dm.double_blocks), len(dm.single_blocks)
    # core 0.3.75 builds HunyuanVideo's blocks with flipped_img_txt=True (video tokens first everywhere);
    # newer core has no such flag and puts the text first in every block
    img_first = bool(getattr(dm.double_blocks[0], "flipped_img_txt", False)) if doubles else False
    for i in range(doubles):
        key = ("double_block", i)
        dit[key] = _hunyuan_double_patch(i, singles == 0 and i == doubles - 1, dit.get(key), img_first)
    for i in range(singles):
        key = ("single_block", i)
        dit[key] = _hunyuan_single_patch(i, i == singles - 1, dit.get(key))
    return dit


def make_forward_wrapper(group, size: int, rank: int):
    """DIFFUSION_MODEL wrapper: per-forward state and the block patches, composed at call time."""

    def wrapper(executor, *args, **kwargs):
        dm = executor.class_obj
        family = model_family(dm)
        if family == "humo":
            _check_humo_audio(dm)
        bound = inspect.signature(dm._forward).bind(*args, **kwargs)
        if family == "hunyuan" and bound.arguments.get("control") is not None:
            raise ValueError("sequence parallelism does not support ControlNet inputs on HunyuanVideo")
        opts = dict(bound.arguments.get("transformer_options") or {})
        replace = dict(opts.get("patches_replace", {}))
        replace["dit"] = _block_patches(dm, family, replace.get("dit", {}))
        opts["patches_replace"] = replace
        opts[STATE_KEY] = SeqParallelState(group, size, rank)
        bound.arguments["transformer_options"] = opts
        return executor(*bound.args, **bound.kwargs)

    return wrapper


def apply_sequence_parallel(model_patcher, group, size: int, rank: int):
    """A clone of ``model_patcher`` whose forwards run sequence-parallel over ``group`` (P = ``size``)."""
    m = model_patcher.clone()
    dm = m.get_model_object("diffusion_model")
    family = model_family(dm)
    if family in ("humo", "wan"):
        for i, block in enumerate(dm.blocks):
            m.add_object_patch(f"diffusion_model.blocks.{i}.self_attn", SeqParallelSelfAttention(block.self_attn))
            wrapper = getattr(block, "audio_cross_attn_wrapper", None)
            if wrapper is not None:
                m.add_object_patch(
                    f"diffusion_model.blocks.{i}.audio_cross_attn_wrapper.audio_cross_attn",
                    SeqParallelAudioAttention(wrapper.audio_cross_attn),
                )
    m.remove_wrappers_with_key(comfy.patcher_extension.WrappersMP.DIFFUSION_MODEL, WRAPPER_KEY)
    m.add_wrapper_with_key(
        comfy.patcher_extension.WrappersMP.DIFFUSION_MODEL, WRAPPER_KEY, make_forward_wrapper(group, size, rank)
    )
    return m
