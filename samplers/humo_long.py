"""Long-form HuMo: speech of any length -> one continuous video, made in chunks of the trained length.

HuMo was trained on 97-frame clips (3.9 s at 25 fps); a longer single pass leaves the training
distribution and its attention grows with the square of the length. Here the video is cut into chunks
of ``chunk_frames`` (4n+1) frames that overlap by ``overlap_latents`` latent frames, i.e.
``4 (overlap_latents - 1) + 1`` video frames (a causal Wan latent: the first covers one frame, each
next one four). Each chunk is an ordinary HuMo clip (same references, same guidance) that continues
from the previous chunk's last frames:

- "latent" continuation (training-free, the default): the previous chunk's last overlap frames are
  VAE-encoded and the new chunk's first latent frames are held to them at every step, re-noised to the
  current sigma with the chunk's own noise (RePaint, Lugmayr et al. 2022; temporal outpainting). It runs
  on core's denoise-mask machinery (``KSamplerX0Inpaint``), so it works with every solver, both model
  sizes and any guidance schedule; those latent frames end exactly on the held ones.
- "conditioning" (HuMo-17B only, an option): the same latents go in through the image channels ``y``
  with mask 1 on those frames, the way Wan I2V takes its first frame. HuMo-17B keeps the 36-channel
  Wan I2V input layout; users have continued HuMo-17B clips this way (Comfy-Org/ComfyUI pull requests
  10034 and 11567, which report flashing / a contrast artifact on the continued clip). Its training
  used mask 1 only on the reference slots, so this is off by default. "latent+conditioning" does both.

Audio: the Whisper features of the whole speech are computed once; each chunk gets the official
windows of the rows under it (``get_audio_emb_window`` with ``frame0_idx`` = the chunk's first video
frame), so nothing is re-encoded per chunk and nothing shifts at a seam. Seams: the overlap frames
of the two chunks are cross-faded in pixel space. An option re-anchors each chunk's colour statistics
to the first chunk's.

Options, all off by default: one prompt per time range (a chunk takes the range holding its first
frame), focus by prediction inside every chunk (the guider's), and speaker masks that follow the faces
found in the previous chunk's last frames (each speaker keeps the face nearest their previous box).

Memory stays flat: one chunk's latents on the device, one chunk's frames in RAM (plus the overlap),
frames handed to a sink (an mp4 writer) chunk by chunk, the heap freed by a chunk handed back after it.
Finished chunks' latents are cached on disk under a key of every input, so a rerun after a crash or
Cancel decodes them again and samples on from the first missing chunk; the result is the same as an
uninterrupted run.
"""

from __future__ import annotations

import bisect
import ctypes
import dataclasses
import hashlib
import itertools
import json
import logging
import math
import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field

import comfy.model_management
import numpy as np
import torch

from ..media import face_focus
from ..models.audio_features import HUMO_FPS, humo_audio_windows
from ..models.humo_spec import SPATIAL_STRIDE, TEMPORAL_STRIDE
from . import flow_unipc
from . import guidance as gd
from . import humo_conditioning as hc
from . import humo_guider as hg

DEFAULT_CHUNK_FRAMES = 97  # the trained length (Phantom-video/HuMo@17094e9 humo/configs/inference/generate.yaml)
DEFAULT_OVERLAP_LATENTS = 3  # 9 video frames
CONTINUATIONS = ("latent", "conditioning", "latent+conditioning")
DEFAULT_CONTINUATION = "latent"
CACHE_VERSION = 1  # bump when what a cached chunk holds or how it is made changes


def video_frames_for(num_samples: int, sample_rate: int, fps: int = HUMO_FPS) -> int:
    """round(duration x fps) frames (halves up) for audio of ``num_samples`` at ``sample_rate``."""
    if num_samples <= 0 or sample_rate <= 0:
        raise ValueError(f"audio: {num_samples} samples at {sample_rate} Hz is no audio")
    return (2 * num_samples * fps + sample_rate) // (2 * sample_rate)


def overlap_frames(overlap_latents: int) -> int:
    """Video frames covered by ``overlap_latents`` leading latent frames of a clip (1 + 4 (k - 1))."""
    return 1 + TEMPORAL_STRIDE * (overlap_latents - 1)


@dataclass(frozen=True)
class Chunk:
    index: int
    start: int  # first video frame, in the whole video
    frames: int  # frames sampled (4n+1); the last chunk may run past the end (the extra frames are dropped)
    overlap: int  # leading frames shared with the previous chunk (0 for the first)

    @property
    def end(self) -> int:
        return self.start + self.frames

    @property
    def latent_frames(self) -> int:
        return hc.latent_frames(self.frames)


def plan_chunks(
    total_frames: int, chunk_frames: int = DEFAULT_CHUNK_FRAMES, overlap_latents: int = DEFAULT_OVERLAP_LATENTS
) -> list[Chunk]:
    """Chunks covering ``total_frames``: full chunks of ``chunk_frames`` then a last one just long enough."""
    if total_frames < 1:
        raise ValueError(f"length: the video needs at least one frame, got {total_frames}")
    if chunk_frames < 5 or (chunk_frames - 1) % TEMPORAL_STRIDE:
        raise ValueError(f"chunk_frames: must be 4n+1 and at least 5 (trained: 97), got {chunk_frames}")
    if overlap_latents < 1:
        raise ValueError(f"overlap_latent_frames: must be at least 1, got {overlap_latents}")
    overlap = overlap_frames(overlap_latents)
    if overlap > chunk_frames - TEMPORAL_STRIDE:
        raise ValueError(
            f"overlap_latent_frames: {overlap_latents} latent frames ({overlap} video frames) leave no new frames "
            f"in a {chunk_frames}-frame chunk; use at most {(chunk_frames - 1) // TEMPORAL_STRIDE - 1}"
        )
    chunks: list[Chunk] = []
    start = 0
    while True:
        remaining = total_frames - start
        frames = min(chunk_frames, 1 + TEMPORAL_STRIDE * math.ceil((remaining - 1) / TEMPORAL_STRIDE))
        chunks.append(Chunk(len(chunks), start, frames, overlap if chunks else 0))
        if start + frames >= total_frames:
            return chunks
        start += frames - overlap


def chunk_windows(embedding: torch.Tensor, chunk: Chunk) -> torch.Tensor:
    """The official audio windows [T_lat, 8, 5, 1280] of a chunk, cut from the whole audio's per-frame rows."""
    return humo_audio_windows(embedding, chunk.frames, n_ref=0, frame0=chunk.start)


def chunk_mask(mask: torch.Tensor | None, chunk: Chunk) -> torch.Tensor | None:
    """A MASK of one (static) or one per video frame of the whole video -> the chunk's frames."""
    if mask is None or mask.shape[0] == 1:
        return mask
    idx = torch.arange(chunk.start, chunk.end).clamp(max=mask.shape[0] - 1)
    return mask[idx]


def crossfade(previous: torch.Tensor, current: torch.Tensor) -> torch.Tensor:
    """Linear cross-fade of two runs of the same frames [N, H, W, C]: from the previous chunk to the current."""
    n = previous.shape[0]
    w = (torch.arange(1, n + 1, dtype=torch.float32) / (n + 1)).view(n, 1, 1, 1)
    return previous * (1.0 - w) + current * w


@dataclass
class ColourStats:
    mean: torch.Tensor  # [C]
    std: torch.Tensor  # [C]

    @classmethod
    def of(cls, frames: torch.Tensor) -> ColourStats:
        flat = frames.reshape(-1, frames.shape[-1]).float()
        return cls(flat.mean(0), flat.std(0).clamp(min=1e-4))


def reanchor_colour(frames: torch.Tensor, anchor: ColourStats) -> torch.Tensor:
    """Per-channel affine map giving ``frames`` the anchor's mean and spread (undoes slow colour drift)."""
    own = ColourStats.of(frames)
    return ((frames - own.mean) / own.std * anchor.std + anchor.mean).clamp(0, 1)


# --- one prompt per time range -------------------------------------------------------------------


def parse_prompt_schedule(text: str, name: str = "prompt_schedule") -> list[tuple[float, str]]:
    """Lines ``start_s: prompt`` -> [(start_s, prompt)] with strictly increasing starts; blank lines are skipped."""
    entries: list[tuple[float, str]] = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        head, sep, prompt = line.partition(":")
        try:
            start = float(head) if sep else math.nan
        except ValueError:
            start = math.nan
        if not math.isfinite(start) or start < 0 or not prompt.strip():
            raise ValueError(
                f"{name}: line {number} {line.strip()!r} is not 'start_s: prompt' (a start time of 0 or more seconds, "
                "a colon, then the prompt), e.g. '0: a man talks calmly'"
            )
        if entries and start <= entries[-1][0]:
            raise ValueError(
                f"{name}: line {number} {line.strip()!r} starts at {start:g} s, not after the line before "
                f"({entries[-1][0]:g} s); list the ranges in time order"
            )
        entries.append((start, prompt.strip()))
    return entries


def scheduled(schedule: list[tuple[float, object]] | None, chunk: Chunk, default, fps: int = HUMO_FPS):
    """The entry of the last range starting at or before the chunk's first frame (``default`` before the first)."""
    if not schedule:
        return default
    i = bisect.bisect_right([start for start, _ in schedule], chunk.start / fps) - 1
    return default if i < 0 else schedule[i][1]


# --- speaker masks following the faces ------------------------------------------------------------


def follow_faces(
    frames: torch.Tensor,
    detector,
    previous: list[np.ndarray | None],
    hints: list[torch.Tensor | None],
) -> list[np.ndarray | None]:
    """Each speaker's face box on the last frame of ``frames`` [N, H, W, 3] where one is found (else None).

    A speaker tracked before keeps the face nearest its previous box (all speakers together: the pairing
    with the least total centre distance); the first time, speakers take the faces their masks cover
    (one speaker without a mask: the largest face; two: left to right), as focus by prediction does.
    Searches back over the frames until a face is found.
    """
    images = hg._Uint8Frames(frames)
    height, width = int(frames.shape[1]), int(frames.shape[2])
    for i in range(len(images) - 1, -1, -1):
        faces = detector.detect(images[i])
        if faces:
            break
    else:
        return [None] * len(previous)
    if all(b is not None for b in previous):
        centres = np.array([f.centre for f in faces], dtype=np.float64)
        best, best_cost = None, math.inf
        options = list(range(len(faces))) + [None] * len(previous)
        for pick in set(itertools.permutations(options, len(previous))):
            if all(f is None for f in pick):
                continue
            cost = sum(
                float(np.hypot(*(centres[f] - (b[:2] + b[2:]) / 2)))
                for f, b in zip(pick, previous, strict=True)
                if f is not None
            ) + sum(width + height for f in pick if f is None)  # a speaker left without a face costs more
            if cost < best_cost:
                best, best_cost = pick, cost
        return [None if f is None else np.asarray(faces[f].box, dtype=np.float64) for f in best]
    unit = [None if h is None else h[min(i, h.shape[0] - 1)].float().cpu().numpy() for h in hints]
    return face_focus.assign_faces(
        faces, len(previous), width, height, unit if all(u is not None for u in unit) else None
    )


def box_mask(box: np.ndarray, width: int, height: int) -> torch.Tensor:
    """A static soft MASK [1, H, W] over a face box, dilated and feathered as focus by prediction's masks."""
    return torch.from_numpy(face_focus.soft_box_masks(box[None], width, height))


# --- cache -----------------------------------------------------------------------------------------


class UnkeyableInput(TypeError):
    """An input the cache key cannot describe by value (then the run is not cached)."""


def _digest(obj, sample: int | None = None) -> str:
    h = hashlib.sha256()
    _feed(h, obj, sample)
    return h.hexdigest()


def _feed(h, obj, sample: int | None = None) -> None:
    """Hash anything the inputs are made of; tensors by dtype, shape and values (the first ``sample`` only)."""
    if isinstance(obj, torch.Tensor):
        t = obj.detach()
        h.update(f"T{t.dtype}{tuple(t.shape)}".encode())
        if t.device.type == "meta":
            return
        flat = t.reshape(-1)
        if sample is not None:
            flat = flat[:sample]
        flat = flat.cpu().contiguous()
        h.update(flat.view(torch.uint8).numpy().tobytes() if flat.numel() else b"")
    elif isinstance(obj, dict):  # keys by their own hash: frozenset keys have no stable order of their own
        h.update(b"{")
        for digest, value in sorted(((_digest(k), v) for k, v in obj.items()), key=lambda kv: kv[0]):
            h.update(digest.encode())
            _feed(h, value, sample)
        h.update(b"}")
    elif isinstance(obj, (list, tuple)):
        h.update(b"[")
        for item in obj:
            _feed(h, item, sample)
        h.update(b"]")
    elif isinstance(obj, (set, frozenset)):  # in an order that does not depend on the process's hash seed
        h.update(("<" + ",".join(sorted(_digest(item, sample) for item in obj)) + ">").encode())
    elif dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        h.update(type(obj).__name__.encode())
        _feed(h, {f.name: getattr(obj, f.name) for f in dataclasses.fields(obj)}, sample)
    elif obj is None or isinstance(obj, (bool, int, float, str)):
        h.update(json.dumps(obj).encode())
    elif isinstance(obj, torch.dtype | torch.device):
        h.update(str(obj).encode())
    elif hasattr(obj, "__dict__") and not callable(obj):  # e.g. core's weight adapters (LoRA patches)
        h.update(type(obj).__qualname__.encode())
        _feed(h, {k: v for k, v in vars(obj).items() if not k.startswith("_")}, sample)
    else:
        raise UnkeyableInput(type(obj).__name__)


WEIGHT_SAMPLE = 256  # values hashed per weight tensor: enough to tell checkpoints apart, cheap for 17B


def module_fingerprint(module: torch.nn.Module) -> str:
    h = hashlib.sha256()
    for name, value in module.state_dict().items():
        h.update(name.encode())
        _feed(h, value, WEIGHT_SAMPLE)
    return h.hexdigest()


def model_fingerprint(model_patcher) -> str:
    """The diffusion model's weights (sampled) and its weight patches (LoRAs and their strengths)."""
    h = hashlib.sha256(module_fingerprint(model_patcher.model.diffusion_model).encode())
    _feed(h, {str(k): v for k, v in getattr(model_patcher, "patches", {}).items()}, WEIGHT_SAMPLE)
    return h.hexdigest()


class ChunkCache:
    """Finished chunks' latents on disk, one folder per input key; written atomically, read weights-only."""

    def __init__(self, root: str, key: str) -> None:
        self.folder = os.path.join(root, key)

    def _path(self, index: int) -> str:
        return os.path.join(self.folder, f"chunk_{index:05d}.pt")

    def load(self, index: int) -> torch.Tensor | None:
        path = self._path(index)
        if not os.path.isfile(path):
            return None
        try:
            return torch.load(path, map_location="cpu", weights_only=True)["latents"]
        except Exception as e:  # a torn or foreign file: sample the chunk again
            logging.warning("HumanVideo: long-form cache %s unreadable (%s); sampling the chunk again", path, e)
            return None

    def save(self, index: int, latents: torch.Tensor) -> None:
        os.makedirs(self.folder, exist_ok=True)
        tmp = self._path(index) + ".tmp"
        torch.save({"latents": latents.detach().cpu().contiguous()}, tmp)
        os.replace(tmp, self._path(index))

    def cached(self) -> list[int]:
        if not os.path.isdir(self.folder):
            return []
        return sorted(int(n[6:11]) for n in os.listdir(self.folder) if n.startswith("chunk_") and n.endswith(".pt"))

    def clear(self) -> None:
        shutil.rmtree(self.folder, ignore_errors=True)


# --- memory ----------------------------------------------------------------------------------------


def _glibc_malloc_trim():
    try:
        return ctypes.CDLL("libc.so.6").malloc_trim
    except (OSError, AttributeError):  # not Linux / not glibc: nothing to do
        return None


_MALLOC_TRIM = _glibc_malloc_trim()


def release_freed_heap() -> None:
    """Hands the heap pages freed by the last chunk back to the system (glibc only; a no-op elsewhere).

    A chunk allocates and frees many mid-sized CPU buffers (decoded frames, VAE activations). glibc's
    allocator raises its mmap threshold as large blocks are freed, so later blocks of that size come from
    the heap, and freed heap pages are kept for reuse: the process's RSS then creeps up over the first
    chunks and stays at the high-water mark of its fragmentation, although the memory in use is flat.
    Trimming once per chunk costs milliseconds.
    """
    if _MALLOC_TRIM is not None:
        _MALLOC_TRIM(0)


# --- the run ---------------------------------------------------------------------------------------


@dataclass
class LongFormSettings:
    chunk_frames: int = DEFAULT_CHUNK_FRAMES
    overlap_latents: int = DEFAULT_OVERLAP_LATENTS
    continuation: str = DEFAULT_CONTINUATION
    seed: int = 666666
    steps: int = 50
    shift: float = 5.0
    solver: str = hg.DEFAULT_SOLVER
    integer_timesteps: bool = True
    colour_anchor: bool = False
    focus_strength: float = 0.0
    focus_prediction_step: int | None = None  # focus by prediction in every chunk after this step; None = off
    track_faces: bool = False  # each chunk's speaker masks follow the faces of the previous chunk's last frames

    def check(self, concat_y: bool) -> None:
        if self.continuation not in CONTINUATIONS:
            raise ValueError(f"continuation: {self.continuation!r} is not one of {CONTINUATIONS}")
        if "conditioning" in self.continuation and not concat_y:
            raise ValueError(
                f"continuation: {self.continuation!r} needs HuMo-17B (its y channels); HuMo-1.7B has none, use 'latent'"
            )
        if self.steps < 1:
            raise ValueError(f"steps: must be at least 1, got {self.steps}")
        if self.focus_prediction_step is not None and not 0 <= self.focus_prediction_step < self.steps:
            raise ValueError(
                f"focus_prediction_step: {self.focus_prediction_step} is not a step of a {self.steps}-step chunk"
            )


@dataclass
class LongFormResult:
    frames: int
    chunks: list[Chunk]
    resumed: list[int] = field(default_factory=list)  # chunks taken from the cache
    notes: list[str] = field(default_factory=list)
    last_frame: torch.Tensor | None = None
    cache_key: str | None = None  # the folder under the cache root holding this run's chunks
    face_boxes: list[list] = field(default_factory=list)  # track_faces: each speaker's box after chunk i


def chunk_seed(seed: int, index: int) -> int:
    """Chunk 0 uses the seed itself (so it is the single-clip result); the guider takes seed + 1 for 17B's
    reference noise, hence the even spacing."""
    return seed + 2 * index


def input_key(
    model_patcher,
    vae,
    positive: list,
    negative: list,
    plan: gd.GuidancePlan,
    width: int,
    height: int,
    total_frames: int,
    embeddings: list[torch.Tensor],
    masks: list[torch.Tensor | None],
    ref_latents: torch.Tensor | None,
    settings: LongFormSettings,
    positive_schedule: list[tuple[float, list]] | None = None,
) -> str:
    """sha256 of everything that decides a chunk's latents."""
    h = hashlib.sha256(f"humo-long-form v{CACHE_VERSION}".encode())
    h.update(model_fingerprint(model_patcher).encode())
    h.update(module_fingerprint(vae.first_stage_model).encode())
    schedule = [c for _, c in positive_schedule or []]
    for conditioning in (positive, negative, *schedule):
        _feed(h, [[emb, {k: v for k, v in opts.items() if k != hc.COND_KEY}] for emb, opts in conditioning])
    _feed(h, [start for start, _ in positive_schedule or []])
    _feed(h, plan)
    _feed(h, [width, height, total_frames, embeddings, masks, ref_latents])
    _feed(h, settings)
    return h.hexdigest()[:32]


def generate_long_form(
    model_patcher,
    vae,
    positive: list,
    negative: list,
    plan: gd.GuidancePlan,
    *,
    width: int,
    height: int,
    total_frames: int,
    speakers: list[torch.Tensor],
    speaker_masks: list[torch.Tensor | None] | None = None,
    images: list[torch.Tensor] | None = None,
    settings: LongFormSettings | None = None,
    sink: Callable[[torch.Tensor], None] | None = None,
    cache_root: str | None = None,
    on_progress: Callable[[int, int, int, int], None] | None = None,
    on_chunk: Callable[[Chunk, torch.Tensor], None] | None = None,
    positive_schedule: list[tuple[float, list]] | None = None,
    face_detector=None,
) -> LongFormResult:
    """Generate ``total_frames`` frames chunk by chunk; ``sink`` gets the finished frames [N, H, W, 3] in order.

    ``speakers`` are per-video-frame features [T25, 5, 1280] of the whole audio (one per track, see
    ``humo_conditioning.frame_features``), ``speaker_masks`` one MASK per track (static or per frame of the
    whole video). ``on_progress(chunk, chunks, step, steps)`` reports progress (it may raise to cancel);
    ``on_chunk(chunk, latents)`` sees each chunk's sampled latents (raw VAE space, video frames only).
    ``positive_schedule`` [(start_s, conditioning)] in time order: a chunk uses the conditioning of the last
    range starting at or before its first frame, ``positive`` before the first range. ``face_detector``
    (``media.face_track.Detector``) serves focus by prediction and face tracking; None: dlib's, loaded once.
    """
    settings = settings or LongFormSettings()
    spec = hc.ModelSpec.from_model(model_patcher.model)
    settings.check(spec.concat_y)
    hc.check_size(width, height)
    speaker_masks = list(speaker_masks or [None] * len(speakers))
    if len(speaker_masks) != len(speakers):
        raise ValueError(f"speaker masks: {len(speaker_masks)} masks for {len(speakers)} audio tracks")
    if len(speakers) > 1 and any(m is None for m in speaker_masks):
        raise ValueError("speaker masks: with two or more audio tracks every track needs its own mask")
    chunks = plan_chunks(total_frames, settings.chunk_frames, settings.overlap_latents)
    overlap = overlap_frames(settings.overlap_latents)
    images = list(images or [])
    ref_latents = hc.encode_references(vae, images, width, height) if images else None
    embeddings = [s.float() for s in speakers]

    cache = None
    notes = []
    if cache_root is not None:
        try:
            key = input_key(
                model_patcher,
                vae,
                positive,
                negative,
                plan,
                width,
                height,
                total_frames,
                embeddings,
                speaker_masks,
                ref_latents,
                settings,
                positive_schedule,
            )
            cache = ChunkCache(cache_root, key)
        except UnkeyableInput as e:
            notes.append(f"resume off: the inputs hold a {e} the chunk cache cannot key by value")
            logging.warning("HumanVideo long-form: %s", notes[-1])
    result = LongFormResult(total_frames, chunks, notes=notes, cache_key=None if cache is None else key)
    sigmas, timesteps = flow_unipc.official_schedule(settings.steps, settings.shift)
    sampler = hg.solver_object(settings.solver)
    latent_continuation = settings.continuation in ("latent", "latent+conditioning")
    conditioning_continuation = "conditioning" in settings.continuation
    detector = face_detector
    if detector is None and (settings.track_faces or settings.focus_prediction_step is not None):
        detector = hg.default_face_detector()  # once for the whole run, not per chunk
    focus = None
    if settings.focus_prediction_step is not None:
        focus = hg.FocusOptions(prediction=hg.FocusPrediction(step=settings.focus_prediction_step, detector=detector))
    masks = list(speaker_masks)  # the masks in force; face tracking replaces them chunk by chunk
    boxes: list[np.ndarray | None] = [None] * len(speakers)

    held: torch.Tensor | None = None  # raw VAE latents of the previous chunk's last overlap frames
    tail: torch.Tensor | None = None  # the previous chunk's last overlap frames, as they are to be written
    anchor: ColourStats | None = None
    written = 0
    h8, w8 = height // SPATIAL_STRIDE, width // SPATIAL_STRIDE

    def emit(frames: torch.Tensor) -> None:
        nonlocal written
        frames = frames[: total_frames - written]
        if frames.shape[0] and sink is not None:
            sink(frames)
        written += frames.shape[0]

    for chunk in chunks:
        comfy.model_management.throw_exception_if_processing_interrupted()
        n_hold = settings.overlap_latents if held is not None else 0
        cond = hc.HuMoCondition(
            width,
            height,
            chunk.frames,
            ref_latents,
            [chunk_windows(e, chunk) for e in embeddings],
            [chunk_mask(m, chunk) for m in masks],
            vae,
            settings.focus_strength,
            [],
            prefix_latents=held if (conditioning_continuation and held is not None) else None,
        )
        latents = cache.load(chunk.index) if cache is not None else None
        if latents is not None:
            result.resumed.append(chunk.index)
            if on_progress is not None:
                on_progress(chunk.index, len(chunks), settings.steps, settings.steps)
        else:
            guider = hg.HuMoGuider(model_patcher, plan, focus, settings.integer_timesteps)
            guider.set_conds(
                [[e, {**o, hc.COND_KEY: cond}] for e, o in scheduled(positive_schedule, chunk, positive)],
                [[e, {**o, hc.COND_KEY: cond}] for e, o in negative],
            )
            guider.use_official_timesteps(sigmas, timesteps)
            latent_image = torch.zeros(1, hc.LATENT_CHANNELS, chunk.latent_frames, h8, w8)
            denoise_mask = None
            if latent_continuation and n_hold:
                latent_image[:, :, :n_hold] = held
                denoise_mask = torch.ones(1, 1, chunk.latent_frames, h8, w8)
                denoise_mask[:, :, :n_hold] = 0.0
            seed = chunk_seed(settings.seed, chunk.index)
            noise = torch.randn(latent_image.shape, generator=torch.Generator().manual_seed(seed))

            def callback(step, x0, x, total, index=chunk.index):
                comfy.model_management.throw_exception_if_processing_interrupted()
                if on_progress is not None:
                    on_progress(index, len(chunks), step + 1, total)

            out = guider.sample(
                noise, latent_image, sampler, sigmas, denoise_mask, callback=callback, disable_pbar=True, seed=seed
            )
            latents = out.to("cpu", torch.float32)
            result.notes.extend(f"chunk {chunk.index + 1}: {note}" for note in getattr(guider, "notes", []))
            if cache is not None:
                cache.save(chunk.index, latents)
        if on_chunk is not None:
            on_chunk(chunk, latents)

        raw = vae.decode(latents)
        raw = raw.reshape(-1, *raw.shape[-3:]).to("cpu", torch.float32)[: chunk.frames]
        is_last = chunk.index == len(chunks) - 1
        if not is_last:
            held = vae.encode(raw[-overlap:]).to("cpu", torch.float32)[:, :, : settings.overlap_latents]
            if settings.track_faces:
                hints = [None if m is None else chunk_mask(m, chunk)[-overlap:] for m in masks]
                for k, box in enumerate(follow_faces(raw[-overlap:], detector, boxes, hints)):
                    if box is not None:
                        boxes[k], masks[k] = box, box_mask(box, width, height)
                result.face_boxes.append([None if b is None else b.copy() for b in boxes])
        frames = raw
        if settings.colour_anchor:
            if anchor is None:
                anchor = ColourStats.of(raw)
            else:
                frames = reanchor_colour(raw, anchor)
        if tail is not None:
            emit(crossfade(tail, frames[:overlap]))
            frames = frames[overlap:]
        if is_last:
            emit(frames)
            result.last_frame = frames[-1:].clone() if frames.shape[0] else tail[-1:].clone()
        else:
            emit(frames[:-overlap])
            tail = frames[-overlap:].clone()
        del raw, frames
        release_freed_heap()

    if written != total_frames:  # the plan covers the video by construction
        raise RuntimeError(f"long-form: wrote {written} frames, expected {total_frames}")
    if result.resumed:
        result.notes.append(f"resumed: chunk(s) {result.resumed} taken from the cache")
    result.notes.insert(
        0,
        f"long-form HuMo: {total_frames} frames in {len(chunks)} chunk(s) of up to {settings.chunk_frames}, "
        f"overlap {overlap} frame(s), {settings.continuation} continuation",
    )
    return result
