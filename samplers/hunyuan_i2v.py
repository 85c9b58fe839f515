"""HunyuanVideo-I2V: resolution buckets, conditioning assembly and the official flow-matching sampler.

Official pipeline (`hyvideo/inference.py`, `pipeline_hunyuan_video.py`), on core's network:
- the reference image is fitted to a resolution bucket (720p / 540p / 360p bases on a 32-px grid,
  aspect match, short-side resize + centre crop) and VAE-encoded as one frame (`mode()`);
- v1 "concat": model input = [noisy latent, image latent at frame 0 (zeros elsewhere), mask 1 at frame 0];
  v2 "replace": latent frame 0 is the clean image latent at every step and its tokens are modulated with
  the timestep-0 embedding (core: `guiding_frame_index` + a noise mask that keeps frame 0 clean);
- `--i2v-stability`: the initial latent is 0.999 noise + 0.001 image latent (repeated over time);
- Euler on sigmas linspace(1, 0, steps + 1) shifted by shift*s / (1 + (shift - 1) s); timestep = 1000 s;
  embedded guidance 6.0 (v2), real CFG only when cfg > 1 (negative prompt + black image);
- v1 output drops the first 4 decoded frames.

Deviations of core's v2 path are corrected on our model clone: core also adds the embedded guidance to
the first-frame (token replace) modulation; core 0.33 puts the text before the video tokens in the
single-stream blocks but keeps the first-frame modulation range at position 0; and 0.3.75 crashes when
cond and uncond are batched (real CFG); see `official_token_replace` and `one_sample_per_forward`.
Past 192 frames the official inference stretches one temporal RoPE frequency (RIFLEx); `with_riflex`.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field

import comfy.model_management
import comfy.samplers
import torch

from ..models.hunyuan_video_spec import RELEASE_V1, RELEASE_V2, HunyuanI2VRelease, release_of_model
from . import guidance as gd
from .chain_guider import ChainGuider

log = logging.getLogger(__name__)

RESOLUTION_BASES = {"720p": 960, "540p": 720, "360p": 480}
BUCKET_GRID = 32
MAX_ASPECT = 4.0
STABILITY_NOISE = 0.999
SHIFT_STABILITY = 7.0
SHIFT_DYNAMIC = 17.0
DEFAULT_STEPS = 50
DEFAULT_LENGTH = 129
EMBEDDED_GUIDANCE = 6.0
LATENT_CHANNELS = 16
LATENT_KEY = "hv_hunyuan_i2v"  # our extra entry in the LATENT dict
INTERLEAVE_KEY = "hv_image_interleave"  # entry in the conditioning dict written by the text encode


# ----------------------------------------------------------------------------------------------- buckets
def bucket_list(base: int, grid: int = BUCKET_GRID, max_ratio: float = MAX_ASPECT) -> list[tuple[int, int]]:
    """All (h, w) on the grid with h*w <= base^2 (in grid cells) and aspect <= max_ratio, official order."""
    cells = round((base / grid) ** 2)
    out = []
    a, b = cells, 1
    while a > 0:
        if max(a, b) / min(a, b) <= max_ratio:
            out.append((a * grid, b * grid))
        if (b + 1) * a <= cells:
            b += 1
        else:
            a -= 1
    return out


def closest_bucket(height: int, width: int, resolution: str = "720p") -> tuple[int, int]:
    """Official one-sided choice: landscape picks the nearest bucket with a larger h/w, portrait a smaller-or-equal one.

    That way the short-side resize always covers the bucket and only the long side is cropped.
    """
    if resolution not in RESOLUTION_BASES:
        raise ValueError(f"resolution: {resolution!r} is not one of {sorted(RESOLUTION_BASES)}")
    buckets = bucket_list(RESOLUTION_BASES[resolution])
    aspect = height / width
    ratios = [round(h / w, 5) for h, w in buckets]
    if aspect >= 1:
        cands = [(i, r - aspect) for i, r in enumerate(ratios) if r - aspect <= 0]
    else:
        cands = [(i, r - aspect) for i, r in enumerate(ratios) if r - aspect > 0]
    best = min(cands, key=lambda p: abs(p[1]))[0]
    return buckets[best]


def fit_to_bucket(image: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """[B,H,W,C] -> [B,height,width,C]: short side resized to min(height, width), then centre crop."""
    _, h, w, _ = image.shape
    short = min(height, width)
    if h <= w:
        new_h, new_w = short, int(short * w / h)
    else:
        new_h, new_w = int(short * h / w), short
    x = image.movedim(-1, 1).float()
    x = torch.nn.functional.interpolate(x, size=(new_h, new_w), mode="bilinear", align_corners=False, antialias=True)
    top = int(round((new_h - height) / 2.0))
    left = int(round((new_w - width) / 2.0))
    if top < 0 or left < 0:  # a bucket wider than the resized image (ties); pad-free fallback
        x = torch.nn.functional.interpolate(
            x, size=(height, width), mode="bilinear", align_corners=False, antialias=True
        )
        top = left = 0
    return x[:, :, top : top + height, left : left + width].movedim(1, -1).clamp(0, 1)


# ------------------------------------------------------------------------------------------ input checks
def normalise_image(image: torch.Tensor) -> tuple[torch.Tensor, list[str]]:
    """First image as RGB; greyscale / grey+alpha / RGBA are converted (and reported), others refused."""
    notes: list[str] = []
    if not isinstance(image, torch.Tensor) or image.ndim != 4:
        raise ValueError("image: expected an IMAGE batch [B, H, W, C]")
    if image.shape[0] > 1:
        notes.append(f"image: {image.shape[0]} images given, the first is used")
    img = image[:1]
    c = img.shape[-1]
    if c == 1:
        img = img.expand(-1, -1, -1, 3)
        notes.append("image: greyscale converted to RGB")
    elif c == 2:
        img = img[..., :1].expand(-1, -1, -1, 3)
        notes.append("image: greyscale+alpha converted to RGB (alpha dropped)")
    elif c == 4:
        img = img[..., :3]
        notes.append("image: RGBA converted to RGB (alpha dropped, as the official PIL convert('RGB'))")
    elif c != 3:
        raise ValueError(f"image: {c} channels; expected 1 (grey), 3 (RGB) or 4 (RGBA)")
    if min(img.shape[1], img.shape[2]) < 16:
        raise ValueError(f"image: {img.shape[2]}x{img.shape[1]} is too small (at least 16 px per side)")
    aspect = max(img.shape[1], img.shape[2]) / min(img.shape[1], img.shape[2])
    if aspect > MAX_ASPECT:
        notes.append(f"image: aspect {aspect:.1f}:1 exceeds the 4:1 bucket limit; it is centre-cropped to 4:1")
    return img.float().clamp(0, 1), notes


def normalise_length(length: int, release: HunyuanI2VRelease) -> tuple[int, list[str]]:
    """Frame count of the form 4n+1 (rounded up); v1 needs more than the 4 frames it drops."""
    if length < 1:
        raise ValueError(f"length: {length} frames; must be at least 1")
    fixed = ((length - 1 + 3) // 4) * 4 + 1
    notes = [] if fixed == length else [f"length: {length} is not 4n+1; using {fixed}"]
    if release is RELEASE_V1 and fixed <= release.drop_first_frames:
        fixed = release.drop_first_frames + 1
        notes.append(f"length: v1 drops the first {release.drop_first_frames} frames; using {fixed}")
    return fixed, notes


# --------------------------------------------------------------------------------------- conditioning
@dataclass
class I2VPlan:
    release: HunyuanI2VRelease
    height: int
    width: int
    length: int
    latent_frames: int
    stability: bool
    image_latent: torch.Tensor  # [1, 16, 1, h/8, w/8], raw VAE space
    notes: list[str] = field(default_factory=list)

    def describe(self) -> str:
        mode = "stability" if self.stability else "dynamic"
        lines = [f"HunyuanVideo-I2V {self.release.name}: {self.width}x{self.height}, {self.length} frames, {mode}"]
        return "\n".join(lines + self.notes)


def _set_values(conditioning: list, values: dict) -> list:
    out = []
    for t in conditioning:
        d = dict(t[1])
        d.update(values)
        out.append([t[0], d])
    return out


def check_text_conditioning(conditioning: list, release: HunyuanI2VRelease, model, name: str) -> None:
    if not isinstance(conditioning, list) or not conditioning:
        raise ValueError(f"{name}: empty conditioning")
    want_dim = model.model.diffusion_model.params.context_in_dim
    for t in conditioning:
        if t[0].shape[-1] != want_dim:
            raise ValueError(
                f"{name}: text embeddings are {t[0].shape[-1]}-wide but the model expects {want_dim}; "
                "encode with the LLaVA text encoder that belongs to this model"
            )
        if "pooled_output" not in t[1] or t[1]["pooled_output"] is None:
            raise ValueError(f"{name}: no CLIP-L pooled output; encode with HV HunyuanVideo-I2V Text Encode")
        interleave = t[1].get(INTERLEAVE_KEY)
        if interleave is not None and interleave != release.image_interleave:
            other = RELEASE_V1 if release is RELEASE_V2 else RELEASE_V2
            encoded_for = other.name if interleave == other.image_interleave else f"interleave {interleave}"
            raise ValueError(
                f"{name}: encoded for {encoded_for} "
                f"(image interleave {interleave}) but the model is {release.name} (interleave "
                f"{release.image_interleave}); set the text encode's release to match the model"
            )


def prepare_i2v(
    model,
    vae,
    positive: list,
    negative: list,
    image: torch.Tensor,
    length: int = DEFAULT_LENGTH,
    resolution: str = "720p",
    stability: bool = True,
    embedded_guidance: float = EMBEDDED_GUIDANCE,
):
    """-> (positive, negative, LATENT dict, I2VPlan): the official I2V inputs for core's sampler."""
    release = release_of_model(model)
    check_text_conditioning(positive, release, model, "positive")
    check_text_conditioning(negative, release, model, "negative")
    img, notes = normalise_image(image)
    length, more = normalise_length(length, release)
    notes += more
    height, width = closest_bucket(img.shape[1], img.shape[2], resolution)
    fitted = fit_to_bucket(img, height, width)
    image_latent = vae.encode(fitted)  # one frame -> [1, 16, 1, h/8, w/8]
    if image_latent.ndim != 5 or image_latent.shape[1] != LATENT_CHANNELS:
        raise ValueError("vae: not a HunyuanVideo video VAE (expected 16-channel 3-D latents)")
    image_latent = image_latent[:, :, :1].float().cpu()
    positive, negative, out_latent = assemble_i2v(
        release, positive, negative, image_latent, length, stability, embedded_guidance
    )
    plan = I2VPlan(release, height, width, length, out_latent["samples"].shape[2], stability, image_latent, notes)
    for n in notes:
        log.info("HunyuanVideo-I2V: %s", n)
    return positive, negative, out_latent, plan


def assemble_i2v(
    release: HunyuanI2VRelease,
    positive: list,
    negative: list,
    image_latent: torch.Tensor,
    length: int,
    stability: bool,
    embedded_guidance: float = EMBEDDED_GUIDANCE,
):
    """Conditioning + LATENT for an already encoded image latent [1, 16, 1, h, w] (raw VAE space)."""
    frames = (length - 1) // 4 + 1
    lh, lw = image_latent.shape[-2:]
    latent = torch.zeros(1, LATENT_CHANNELS, frames, lh, lw)
    mask = torch.ones(1, 1, frames, lh, lw)
    mask[:, :, :1] = 0.0
    out_latent: dict = {}
    if release is RELEASE_V1:
        concat = torch.zeros_like(latent)
        concat[:, :, :1] = image_latent
        # core feeds 1 - mask: 1 on the image frame, as the official mask_concat
        values: dict = {"concat_latent_image": concat, "concat_mask": mask}
    else:
        latent[:, :, :1] = image_latent
        out_latent["noise_mask"] = mask  # frame 0 stays the clean image latent at every step
        values = {"guiding_frame_index": 0, "guidance": embedded_guidance}
    out_latent["samples"] = latent
    out_latent[LATENT_KEY] = {
        "release": release.name,
        "stability": stability,
        "image_latent": image_latent,
        "length": length,
    }
    return _set_values(positive, values), _set_values(negative, values), out_latent


# ----------------------------------------------------------------------------------------------- sampling
def flow_sigmas(steps: int, shift: float) -> torch.Tensor:
    """Official FlowMatchDiscreteScheduler: linspace(1, 0, steps + 1) with the SD3 time shift."""
    if steps < 1:
        raise ValueError(f"steps: {steps}; must be at least 1")
    if not (shift > 0 and math.isfinite(shift)):
        raise ValueError(f"flow_shift: {shift}; must be a positive number")
    s = torch.linspace(1.0, 0.0, steps + 1, dtype=torch.float64)
    return (shift * s / (1.0 + (shift - 1.0) * s)).float()


def default_shift(stability: bool) -> float:
    return SHIFT_STABILITY if stability else SHIFT_DYNAMIC


def initial_noise(
    latent: torch.Tensor, seed: int, stability: bool, image_latent: torch.Tensor | None, process_latent_in
) -> torch.Tensor:
    """Seeded noise; with stability 0.999 noise + 0.001 image latent (model space, over every frame)."""
    import comfy.sample

    noise = comfy.sample.prepare_noise(latent, seed)
    if stability and image_latent is not None:
        img = process_latent_in(image_latent.to(noise.dtype)).expand(-1, -1, noise.shape[2], -1, -1)
        noise = STABILITY_NOISE * noise + (1.0 - STABILITY_NOISE) * img
    return noise


def with_flow_shift(model, shift: float):
    """Clone with the discrete-flow model sampling at `shift` (what core's ModelSamplingSD3 does)."""
    import comfy.model_sampling

    class FlowSampling(comfy.model_sampling.ModelSamplingDiscreteFlow, comfy.model_sampling.CONST):
        pass

    ms = FlowSampling(model.model.model_config)
    ms.set_parameters(shift=shift, multiplier=1000)
    m = model.clone()
    m.add_object_patch("model_sampling", ms)
    return m


def one_sample_per_forward(model):
    """Clone whose forwards run one batch entry at a time.

    Core 0.3.75's token-replace modulation (`modulation_dims` with a per-sample [B, 2, D] vector) only
    broadcasts for batch 1, so batching cond and uncond for real CFG (or batch > 1) crashes in
    `comfy/ldm/flux/layers.py apply_mod`. Splitting the batch gives exactly the per-sample results.
    """
    previous = model.model_options.get("model_function_wrapper")

    def split(apply_model, args):
        x, t, c = args["input"], args["timestep"], args["c"]
        b = x.shape[0]
        if b == 1:
            return previous(apply_model, args) if previous else apply_model(x, t, **c)
        outs = []
        for i in range(b):
            ci = {
                k: (v[i : i + 1] if isinstance(v, torch.Tensor) and v.ndim > 0 and v.shape[0] == b else v)
                for k, v in c.items()
            }
            sub = {
                **args,
                "input": x[i : i + 1],
                "timestep": t[i : i + 1],
                "c": ci,
                "cond_or_uncond": args.get("cond_or_uncond", [])[i : i + 1],
            }
            outs.append(previous(apply_model, sub) if previous else apply_model(sub["input"], sub["timestep"], **ci))
        return torch.cat(outs)

    m = model.clone()
    m.set_model_unet_function_wrapper(split)
    return m


class GuidanceOnVideoTokens(torch.nn.Module):
    """`guidance_in` for the token-replace path: its embedding goes to the video tokens' modulation only.

    Official v2 (`models.py`): vec = time_in(t) + vector_in(clip) + guidance_in(g), but the first-frame
    vector is time_in(0) + vector_in(clip), without guidance. Core 0.3.75 adds guidance_in(g) after
    stacking both vectors ([B, 2, D]), so the first-frame tokens also get it and, through attention,
    every frame changes. Returning [0, g] per sample restores the official sum.
    """

    def __init__(self, inner: torch.nn.Module) -> None:
        super().__init__()
        self.inner = inner

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        g = self.inner(x)
        return torch.stack([torch.zeros_like(g), g], dim=1)


def text_first_modulation_dims(dims, transformer_options: dict):
    """Token-replace modulation ranges for a single-stream sequence laid out [text, video].

    Core 0.33 concatenates text before the video tokens in the single-stream blocks and records where the
    video starts (`transformer_options["img_slice"]`), but passes the ranges built for [video, text]
    (ComfyUI 0.33.0 `comfy/ldm/hunyuan_video/model.py:339, 416, 420`: first frame from position 0), so the
    text and part of frame 0 get the wrong vector. Officially (`hyvideo/modules/models.py:395-397, 766`,
    single stream `[video, text]`) only the first-frame video tokens take the timestep-0 vector (index 0);
    text and every other token take the sample's vector (index 1). Ranges that already start past the text
    are left alone.
    """
    img_slice = transformer_options.get("img_slice")
    if not dims or not img_slice or img_slice[0] <= 0:
        return dims  # [video, text] order (core 0.3.75): the ranges are right
    start, _, index = dims[0]
    if start != 0 or index != 0:
        return dims
    text = img_slice[0]
    return [(0, text, 1)] + [(s + text, None if e is None else e + text, i) for s, e, i in dims]


class TextFirstModulation:
    """Single-block replace patch applying `text_first_modulation_dims`; chains an existing patch."""

    def __init__(self, previous=None) -> None:
        while isinstance(previous, TextFirstModulation):
            previous = previous.previous
        self.previous = previous

    @staticmethod
    def full_sequence_dims(dims, transformer_options: dict):
        """The corrected ranges over the whole sequence, for wrappers that cut the sequence (sequence
        parallelism) before this patch runs; on the cut ranges that follow, the text range comes first
        with index 1, so this patch leaves them alone."""
        return text_first_modulation_dims(dims, transformer_options)

    def __call__(self, args: dict, extra: dict) -> dict:
        args = dict(args)
        args["modulation_dims"] = text_first_modulation_dims(
            args.get("modulation_dims"), args.get("transformer_options") or {}
        )
        if self.previous is not None:
            return self.previous(args, extra)
        return extra["original_block"](args)


def official_token_replace(model):
    """Clone of a v2 MODEL whose token-replace modulation is the official one.

    - embedded guidance only on the video tokens' vector (`GuidanceOnVideoTokens`);
    - single-stream first-frame ranges past the text on hosts that put text first (`TextFirstModulation`).
    """
    dm = model.model.diffusion_model
    if not getattr(dm.params, "guidance_embed", False):
        return model
    inner = dm.guidance_in
    while isinstance(inner, GuidanceOnVideoTokens):  # another clone's patch may still be applied
        inner = inner.inner
    m = model.clone()
    m.add_object_patch("diffusion_model.guidance_in", GuidanceOnVideoTokens(inner))
    replaced = m.model_options.get("transformer_options", {}).get("patches_replace", {}).get("dit", {})
    for i in range(len(dm.single_blocks)):
        m.set_model_patch_replace(TextFirstModulation(replaced.get(("single_block", i))), "dit", "single_block", i)
    return m


# ----------------------------------------------------------------------------------------------- RIFLEx
# `hyvideo/inference.py:641-688` (HunyuanVideoSampler.get_rotary_pos_embed) and `:51-103`
# (get_1d_rotary_pos_embed_riflex): above 192 frames, the temporal RoPE frequency with index k - 1 is
# replaced by 0.9 * 2 pi / L_test, L_test = latent frames, k = clamp(2 + (frames + 3) // (4 * 25), 4, 8).
RIFLEX_ABOVE_FRAMES = 192
RIFLEX_TRAIN_LATENT_FRAMES = 25  # official `L_train`
RIFLEX_PERIOD_FRACTION = 0.9


def riflex_index(video_length: int) -> int | None:
    """The official intrinsic frequency index k (1-based), or None at <= 192 frames (plain RoPE)."""
    if video_length <= RIFLEX_ABOVE_FRAMES:
        return None
    return max(4, min(8, 2 + (video_length + 3) // (4 * RIFLEX_TRAIN_LATENT_FRAMES)))


def riflex_frequency(latent_frames: int) -> float:
    return RIFLEX_PERIOD_FRACTION * 2 * math.pi / latent_frames


class RIFLExEmbedND(torch.nn.Module):
    """Core's RoPE embedder with the official RIFLEx temporal frequency (axis 0, column k - 1).

    Core's embedder returns per token and frequency the rotation [[cos, -sin], [sin, cos]]
    (`comfy/ldm/flux/math.py` rope); column k - 1 of the temporal axis is recomputed in float32 from the
    frame index, as the official code does (float32 positions times float32 frequencies).
    """

    def __init__(self, inner: torch.nn.Module, k: int, latent_frames: int) -> None:
        super().__init__()
        if not 1 <= k <= inner.axes_dim[0] // 2:
            raise ValueError(f"RIFLEx index {k} outside the {inner.axes_dim[0] // 2} temporal frequencies")
        self.inner = inner
        self.k = k
        self.latent_frames = latent_frames

    @property
    def axes_dim(self):
        return self.inner.axes_dim

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        pe = self.inner(ids)  # [B, 1, tokens, sum(axes_dim) / 2, 2, 2]
        freq = torch.tensor(riflex_frequency(self.latent_frames), dtype=torch.float32, device=ids.device)
        angle = ids[..., 0].to(torch.float32) * freq
        cos, sin = angle.cos().to(pe.dtype), angle.sin().to(pe.dtype)
        column = pe[:, 0, :, self.k - 1]
        column[..., 0, 0] = cos
        column[..., 0, 1] = -sin
        column[..., 1, 0] = sin
        column[..., 1, 1] = cos
        return pe


def with_riflex(model, video_length: int, latent_frames: int):
    """Clone with the official RIFLEx RoPE when the video is longer than 192 frames; else the model itself."""
    k = riflex_index(video_length)
    if k is None:
        return model
    inner = model.model.diffusion_model.pe_embedder
    while isinstance(inner, RIFLExEmbedND):
        inner = inner.inner
    m = model.clone()
    m.add_object_patch("diffusion_model.pe_embedder", RIFLExEmbedND(inner, k, latent_frames))
    return m


def make_guider(model, positive, negative, cfg: float, plan=None):
    """Core CFG guider, or the chain guider following an HV_GUIDANCE schedule (null = negative, full = positive)."""
    if plan is None:
        guider = comfy.samplers.CFGGuider(model)
        guider.set_conds(positive, negative)
        guider.set_cfg(cfg)
        return guider
    guider = I2VGuider(model, plan)
    guider.set_conds(positive, negative)
    return guider


_FULL = frozenset({gd.TEXT, gd.IMAGE})


class I2VGuider(ChainGuider):
    """The chain guider over the two passes HunyuanVideo-I2V has: null (negative prompt with a black semantic
    image) and full (prompt with the image)."""

    def available_conditions(self, positive, negative) -> frozenset[str]:
        return _FULL

    def pass_conditioning(self, p: gd.Pass, positive, negative) -> list:
        if p == _FULL:
            return positive
        if p == frozenset():
            return negative
        raise ValueError(
            f"guidance: pass {sorted(p)} needs a condition HunyuanVideo-I2V cannot switch alone; "
            "only the null pass (negative) and the full pass (text + image) exist"
        )


def sample_i2v(
    model,
    positive,
    negative,
    latent: dict,
    seed: int,
    steps: int = DEFAULT_STEPS,
    flow_shift: float | None = None,
    cfg: float = 1.0,
    guidance_plan=None,
    progress: bool = True,
):
    """Run the official Euler flow sampler; returns (LATENT, release, shift used)."""
    import comfy.sample
    import comfy.utils

    info = latent.get(LATENT_KEY) if isinstance(latent, dict) else None
    if info is None:
        raise ValueError("latent: not from HV HunyuanVideo-I2V Conditioning (it carries the image latent and mode)")
    release = release_of_model(model)
    if release.name != info["release"]:
        raise ValueError(
            f"latent: prepared for {info['release']} but the model is {release.name}; "
            "run the conditioning with the same model"
        )
    if cfg < 1.0:
        raise ValueError(f"cfg: {cfg}; real CFG needs cfg >= 1 (1 = off, as official)")
    shift = flow_shift if flow_shift else default_shift(info["stability"])
    patched = with_flow_shift(model, shift)
    if release is RELEASE_V2:
        patched = one_sample_per_forward(official_token_replace(patched))
    samples = comfy.sample.fix_empty_latent_channels(patched, latent["samples"])
    patch_t = model.model.diffusion_model.patch_size[0]
    patched = with_riflex(patched, info["length"], samples.shape[2] // patch_t)
    noise = initial_noise(samples, seed, info["stability"], info["image_latent"], patched.model.process_latent_in)
    sigmas = flow_sigmas(steps, shift)
    guider = make_guider(patched, positive, negative, cfg, guidance_plan)
    bar = comfy.utils.ProgressBar(steps) if progress else None

    def callback(step, x0, x, total):
        comfy.model_management.throw_exception_if_processing_interrupted()
        if bar is not None:
            bar.update_absolute(step + 1, total)

    out = guider.sample(
        noise,
        samples,
        comfy.samplers.sampler_object("euler"),
        sigmas,
        denoise_mask=latent.get("noise_mask"),
        callback=callback,
        disable_pbar=True,
        seed=seed,
    )
    out = out.to(comfy.model_management.intermediate_device())
    result = {k: v for k, v in latent.items() if k != "noise_mask"}
    result["samples"] = out
    return result, release, shift


def decode_frames(vae, latent: dict, release: HunyuanI2VRelease) -> torch.Tensor:
    """Decode to IMAGE frames; v1 drops the first 4 as the official pipeline does."""
    frames = vae.decode(latent["samples"])
    frames = frames.reshape(-1, *frames.shape[-3:])
    if release.drop_first_frames:
        frames = frames[release.drop_first_frames :]
    return frames
