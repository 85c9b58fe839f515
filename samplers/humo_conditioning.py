"""HuMo conditioning, official-faithful: reference images, zero-VAE latents, audio windows, per-pass conds.

What the official code does (Phantom-video/HuMo, humo/generate.py and generate_1_7B.py):
- each reference image is fitted inside W x H keeping its aspect (Lanczos), padded white, centred, and
  VAE-encoded alone: one latent frame per image, appended at the END of the time axis;
- with no image there is still one reference slot (zeros), so the sequence always has >= 1 extra frame;
- 17B (in_dim 36) gets a channel-concatenated y = [mask(4): 1 on reference frames; zero-VAE latents for
  the video frames, then the reference latents]; its null image is zero-VAE latents everywhere (same mask);
  the noise covers the reference frames too and they are dropped at the end;
- 1.7B (in_dim 16) swaps the clean reference latent (null: zeros) into the last frame(s), which core's
  HumoWanModel reproduces by appending `reference_latent` tokens after the video;
- audio windows: 8 rows per latent frame, zero rows for the reference frames; the null audio is
  all-zero windows. Both come from ``models.audio_features.humo_audio_windows``, the one definition.

Conditioning nodes do not know which model will consume them, so they store a ``HuMoCondition`` in the
CONDITIONING options; the guider turns it into one core cond list per guidance pass for its model.
"""

from __future__ import annotations

import threading
import weakref
from dataclasses import dataclass, field

import comfy.conds
import comfy.model_management
import numpy as np
import torch
from PIL import Image, ImageOps

from ..models.audio_features import (
    HUMO_SAMPLES_PER_FRAME,
    AudioFeatures,
    humo_audio_embedding,
    humo_audio_windows,
)
from ..models.humo_spec import AUDIO_GROUPS, WHISPER_DIM, latent_frames, video_frames
from ..models.humo_spec import SPATIAL_STRIDE as VAE_STRIDE_S
from .guidance import AUDIO, IMAGE, TEXT

LATENT_CHANNELS = 16
SIZE_MULTIPLE = 16  # 8 (VAE) x 2 (patch)
MAX_LATENT_FRAMES = 1024  # the official Wan RoPE table (rope_params(1024)) the model was trained with
COND_KEY = "hv_humo"  # CONDITIONING option holding the HuMoCondition
Y_KEY = "hv_humo_y"  # model cond carrying the official 17B y; swapped for core's c_concat by the guider

PRESET_SIZES = {"480x832": (832, 480), "832x480": (480, 832), "720x1280": (1280, 720), "1280x720": (720, 1280)}


def round_length(frames: int) -> tuple[int, str]:
    """Official rounding to 4n+1 frames (down: 4 * ((F - 1) // 4) + 1); returns (frames, note)."""
    if frames < 1:
        raise ValueError(f"length: must be at least 1 frame, got {frames}")
    rounded = video_frames(latent_frames(frames))
    note = (
        ""
        if rounded == frames
        else f"length {frames} is not 4n+1: rounded down to {rounded} frames as the official code does"
    )
    return rounded, note


def check_size(width: int, height: int) -> None:
    for name, v in (("width", width), ("height", height)):
        if v < SIZE_MULTIPLE or v % SIZE_MULTIPLE:
            raise ValueError(
                f"{name}: {v} is not a positive multiple of {SIZE_MULTIPLE} "
                f"(HuMo needs multiples of 16, e.g. 480x832 or 720x1280)"
            )


# --- reference images ----------------------------------------------------------------------------


def fit_reference(image: torch.Tensor, width: int, height: int) -> torch.Tensor:
    """One IMAGE frame [H, W, C] in 0..1 -> [height, width, 3]: aspect-fit (Lanczos), white padding, centred."""
    if image.ndim != 3 or image.shape[-1] not in (1, 3, 4):
        raise ValueError(f"reference image: expected [H, W, C] with 1, 3 or 4 channels, got {tuple(image.shape)}")
    arr = (image[..., :3] if image.shape[-1] != 1 else image.expand(-1, -1, 3)).clamp(0, 1)
    # The official code starts from an 8-bit file, so quantise first to resize the same pixels.
    pil = Image.fromarray((arr.cpu().float().numpy() * 255.0).round().astype(np.uint8), "RGB")
    img_ratio = pil.width / pil.height
    if img_ratio > width / height:
        new_w, new_h = width, int(width / img_ratio)
    else:
        new_w, new_h = int(height * img_ratio), height
    new_w, new_h = max(new_w, 1), max(new_h, 1)
    pil = pil.resize((new_w, new_h), Image.Resampling.LANCZOS)
    dw, dh = width - new_w, height - new_h
    pil = ImageOps.expand(pil, (dw // 2, dh // 2, dw - dw // 2, dh - dh // 2), fill=(255, 255, 255))
    return torch.from_numpy(np.asarray(pil).astype(np.float32) / 255.0)


def encode_references(vae, images: list[torch.Tensor], width: int, height: int) -> torch.Tensor:
    """Each image encoded alone (one latent frame each), concatenated in time: raw VAE latents [1, 16, n, h, w]."""
    latents = [vae.encode(fit_reference(img, width, height)[None])[:, :, :1] for img in images]
    return torch.cat(latents, dim=2).to(comfy.model_management.intermediate_device(), torch.float32)


# --- zero-VAE latents ----------------------------------------------------------------------------


class _ZeroVaeCache:
    """Latents of an all-zero ([-1, 1] space) video per (VAE, size).

    The Wan VAE is causal in time, so latent frame k only depends on pixel frames <= 4k: the latents
    of a longer zero video start with those of a shorter one and one entry per size serves every length.
    """

    def __init__(self, max_entries: int = 8) -> None:
        self._lock = threading.Lock()
        self._entries: dict[tuple[int, int, int], tuple[weakref.ref, torch.Tensor]] = {}
        self._max = max_entries

    def get(self, vae, width: int, height: int, frames_latent: int) -> torch.Tensor:
        key = (id(vae), width, height)
        with self._lock:
            hit = self._entries.get(key)
            if hit is not None and hit[0]() is vae and hit[1].shape[2] >= frames_latent:
                return hit[1][:, :, :frames_latent]
        pixels = video_frames(frames_latent)
        # ComfyUI images are 0..1 and the VAE maps them to [-1, 1]: 0.5 is the official zero.
        zeros = torch.full((pixels, height, width, 3), 0.5)
        lat = vae.encode(zeros).to(comfy.model_management.intermediate_device(), torch.float32)
        with self._lock:
            self._entries[key] = (weakref.ref(vae), lat)
            while len(self._entries) > self._max:
                self._entries.pop(next(iter(self._entries)))
        return lat[:, :, :frames_latent]

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()


ZERO_VAE_CACHE = _ZeroVaeCache()


def zero_vae_latents(vae, width: int, height: int, frames_latent: int) -> torch.Tensor:
    """Raw VAE latents [1, 16, frames_latent, h, w] of an all-zero video of ``1 + 4 (frames_latent - 1)`` frames."""
    return ZERO_VAE_CACHE.get(vae, width, height, frames_latent)


# --- audio windows -------------------------------------------------------------------------------


def audio_windows(features: torch.Tensor, frames: int) -> torch.Tensor:
    """Per-video-frame features [T25, 5, 1280] -> official windows [T_lat, 8, 5, 1280] without reference rows
    (they depend on the model and are added when the passes are built)."""
    return humo_audio_windows(features, frames, n_ref=0)


def frame_features(audio) -> torch.Tensor | None:
    """HV_AUDIO_FEATURES (or an already grouped [T25, 5, 1280] tensor) -> [T25, 5, 1280]; None when silent."""
    if audio is None:
        return None
    if isinstance(audio, AudioFeatures):
        if audio.silent or audio.num_samples < HUMO_SAMPLES_PER_FRAME:
            return None
        return humo_audio_embedding(audio)
    if isinstance(audio, torch.Tensor):
        return audio
    raise ValueError(f"audio_features: expected HV_AUDIO_FEATURES, got {type(audio).__name__}")


def audio_is_silent(features: torch.Tensor | None) -> bool:
    return features is None or features.numel() == 0 or features.shape[0] == 0 or not bool(features.abs().amax() > 0)


# --- the bundle ----------------------------------------------------------------------------------


@dataclass
class HuMoCondition:
    """Everything the guider needs to build each guidance pass; model-size independent."""

    width: int
    height: int
    frames: int  # video frames, 4n+1
    ref_latents: torch.Tensor | None  # raw VAE latents [1, 16, n_ref, h, w]; None = no image (TA / T)
    speakers: list[torch.Tensor] = field(default_factory=list)  # audio windows [T_lat, 8, 5, 1280] per speaker
    speaker_masks: list[torch.Tensor | None] = field(default_factory=list)  # MASK [N, H, W] per speaker
    vae: object | None = None  # for 17B zero-VAE latents
    focus_strength: float = 0.0  # 0 = official audio cross-attention
    notes: list[str] = field(default_factory=list)
    # Raw VAE latents [1, 16, k, h, w] of frames this clip continues from (long-form, 17B only): given to the
    # model through y on its first k latent frames (mask 1), the way Wan I2V takes its first frame.
    prefix_latents: torch.Tensor | None = None

    @property
    def latent_frames(self) -> int:
        return latent_frames(self.frames)

    @property
    def n_ref(self) -> int:
        # The official code keeps one (zero) reference slot even without an image.
        return 1 if self.ref_latents is None else self.ref_latents.shape[2]

    @property
    def available(self) -> frozenset[str]:
        have = {TEXT}
        if self.ref_latents is not None:
            have.add(IMAGE)
        if self.speakers:
            have.add(AUDIO)
        return frozenset(have)

    @property
    def mode(self) -> str:
        return "".join(c for c, k in (("T", TEXT), ("I", IMAGE), ("A", AUDIO)) if k in self.available)


def build_condition(
    vae,
    width: int,
    height: int,
    length: int,
    images: list[torch.Tensor] | None = None,
    speakers: list[torch.Tensor | None] | None = None,
    speaker_masks: list[torch.Tensor | None] | None = None,
    max_references: int | None = None,
    focus_strength: float = 0.0,
) -> HuMoCondition:
    """Validate inputs and build the bundle.

    ``speakers`` are HV_AUDIO_FEATURES or per-video-frame features [T25, 5, 1280] (25 fps) per track; ``length`` -1
    takes the length of the longest track. Silent or empty tracks are dropped (noted).
    """
    check_size(width, height)
    notes: list[str] = []
    speakers = [frame_features(a) for a in (speakers or [])]
    speaker_masks = list(speaker_masks or [None] * len(speakers))
    if len(speaker_masks) != len(speakers):
        raise ValueError(f"speaker masks: {len(speaker_masks)} masks for {len(speakers)} audio tracks")
    kept = [(f, m) for f, m in zip(speakers, speaker_masks, strict=True) if not audio_is_silent(f)]
    if len(kept) < len(speakers):
        notes.append(f"{len(speakers) - len(kept)} audio track(s) silent or empty: ignored")
    if speakers and not kept:
        notes.append("no usable audio: generating without audio (TI / T mode)")
    if len(kept) > 1 and any(m is None for _, m in kept):
        raise ValueError("speaker masks: with two or more audio tracks every track needs its own mask")

    if length == -1:
        if not kept:
            raise ValueError("length: -1 (from the audio) needs non-silent audio features")
        length = max(int(f.shape[0]) for f, _ in kept)
        notes.append(f"length from the audio: {length} frames")
    rounded, note = round_length(length)
    if note:
        notes.append(note)

    images = [im for im in (images or [])]
    if max_references is not None and len(images) > max_references:
        raise ValueError(f"reference images: {len(images)} given, this setup takes at most {max_references}")
    if latent_frames(rounded) + max(1, len(images)) > MAX_LATENT_FRAMES:
        raise ValueError(
            f"reference images: {len(images)} references + {latent_frames(rounded)} video latent frames "
            f"exceed the {MAX_LATENT_FRAMES} temporal positions of the official Wan RoPE; use fewer or a shorter length"
        )
    if not 0.0 <= focus_strength <= 1.0:
        raise ValueError(f"focus_strength: must be within 0..1, got {focus_strength}")
    ref = encode_references(vae, images, width, height) if images else None
    if ref is not None and ref.shape[-2:] != (height // VAE_STRIDE_S, width // VAE_STRIDE_S):
        raise ValueError(f"reference latents: VAE returned {tuple(ref.shape)}, not a Wan 2.1 VAE (stride 8)?")

    windows = [audio_windows(f.float(), rounded) for f, _ in kept]
    cond = HuMoCondition(width, height, rounded, ref, windows, [m for _, m in kept], vae, focus_strength, notes)
    notes.insert(
        0,
        f"HuMo mode {cond.mode}: {rounded} frames, {width}x{height}, {len(images)} reference image(s), "
        f"{len(windows)} audio track(s)",
    )
    return cond


# --- per-pass conds ------------------------------------------------------------------------------


@dataclass
class ModelSpec:
    """What the pass builder needs to know about the HuMo network it feeds."""

    concat_y: bool  # 17B (in_dim 36): Wan-I2V style y; 1.7B: reference swapped in as latent frames
    process_latent_in: object  # callable raw VAE latents -> model (normalised) latents

    @classmethod
    def from_model(cls, model) -> ModelSpec:
        """``model`` is a core BaseModel (``ModelPatcher.model``) holding a HumoWanModel."""
        dm = model.diffusion_model
        if not hasattr(dm, "audio_proj"):
            raise ValueError("model: not a HuMo model (no audio_proj); load a HuMo checkpoint")
        in_dim = dm.patch_embedding.weight.shape[1]
        if in_dim not in (16, 36):
            raise ValueError(f"model: HuMo patch embedding takes {in_dim} channels, expected 16 (1.7B) or 36 (17B)")
        return cls(in_dim == 36, model.process_latent_in)


def _null_reference(cond: HuMoCondition) -> torch.Tensor:
    return torch.zeros(1, LATENT_CHANNELS, cond.n_ref, cond.height // VAE_STRIDE_S, cond.width // VAE_STRIDE_S)


def image_inputs(cond: HuMoCondition, spec: ModelSpec) -> tuple[torch.Tensor, torch.Tensor]:
    """(with image, null image) in model space: 17B y [1, 20, T+n_ref, h, w]; 1.7B reference [1, 16, n_ref, h, w]."""
    if not spec.concat_y:
        null = _null_reference(cond)  # normalised-space zeros, as official
        on = spec.process_latent_in(cond.ref_latents) if cond.ref_latents is not None else null
        return on.float(), null
    t, n = cond.latent_frames, cond.n_ref
    if cond.vae is None:
        raise ValueError("vae: the 17B model needs the VAE for its zero-VAE latents")
    zero = spec.process_latent_in(zero_vae_latents(cond.vae, cond.width, cond.height, t + n)).float()
    mask = torch.zeros(1, 4, t + n, *zero.shape[-2:])
    mask[:, :, t:] = 1.0
    if cond.prefix_latents is not None:
        k = cond.prefix_latents.shape[2]
        if k > t:
            raise ValueError(f"continuation: {k} prefix latent frames for a {t}-latent-frame clip")
        mask[:, :, :k] = 1.0
        zero = torch.cat([spec.process_latent_in(cond.prefix_latents).float(), zero[:, :, k:]], dim=2)
    y_null = torch.cat([mask, zero], dim=1)
    if cond.ref_latents is None:
        return y_null, y_null
    y_on = torch.cat(
        [mask, torch.cat([zero[:, :, :t], spec.process_latent_in(cond.ref_latents).float()], dim=2)], dim=1
    )
    return y_on, y_null


def audio_inputs(cond: HuMoCondition, spec: ModelSpec) -> tuple[torch.Tensor | None, torch.Tensor | None]:
    """(audio on, audio off) ``audio_embed`` [1, K * F, 8, 5, 1280]; speakers are stacked along frames.

    17B gets the reference frames' zero rows here; for 1.7B core appends them itself when it appends
    the reference tokens.
    """
    t = cond.latent_frames
    pad = cond.n_ref if spec.concat_y else 0
    if not cond.speakers:
        # windows of no audio at all: every row is a zero row
        return None, humo_audio_windows(torch.zeros(0, AUDIO_GROUPS, WHISPER_DIM), cond.frames, n_ref=pad)[None]
    blocks = [torch.cat([w[:t], w.new_zeros(pad, *w.shape[1:])]) for w in cond.speakers]
    on = torch.cat(blocks)[None]
    return on, torch.zeros_like(on)


def pass_conditioning(
    positive: list,
    negative: list,
    cond: HuMoCondition,
    spec: ModelSpec,
    flags: frozenset[str],
    cache: dict | None = None,
) -> list:
    """The CONDITIONING list of one guidance pass: text from positive/negative, image and audio on or off."""
    cache = {} if cache is None else cache
    if "image" not in cache:
        cache["image"] = image_inputs(cond, spec)
    if "audio" not in cache:
        cache["audio"] = audio_inputs(cond, spec)
    img_on, img_null = cache["image"]
    aud_on, aud_null = cache["audio"]
    img = img_on if IMAGE in flags else img_null
    aud = aud_on if (AUDIO in flags and aud_on is not None) else aud_null
    source = positive if TEXT in flags else negative
    out = []
    for emb, opts in source:
        o = {
            k: v
            for k, v in opts.items()
            if k not in ("reference_latents", "audio_embed", "concat_latent_image", "concat_mask", COND_KEY)
        }
        model_conds = dict(o.get("model_conds", {}))
        if spec.concat_y:
            model_conds[Y_KEY] = comfy.conds.CONDNoiseShape(img)
        else:
            model_conds["reference_latent"] = comfy.conds.CONDRegular(img)
        o["model_conds"] = model_conds
        o["audio_embed"] = aud
        out.append([emb, o])
    return out


def find_condition(conditioning: list) -> HuMoCondition | None:
    for _, opts in conditioning:
        if isinstance(opts.get(COND_KEY), HuMoCondition):
            return opts[COND_KEY]
    return None
