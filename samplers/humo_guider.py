"""HuMo multi-condition guider: a core GUIDER (works with SamplerCustomAdvanced) and a one-call sampler.

The guider is the chain guider (``chain_guider.py``) with HuMo's passes: text, image and audio each on or
off, assembled by ``humo_conditioning.pass_conditioning``. For HuMo-17B it also extends
the noise by the reference frames (the official code denoises them along) and drops them at the end,
and swaps core's hard-coded c_concat for the official y.

Official integer timesteps: the official loop feeds the DiT the scheduler's int64 timesteps, i.e.
1000 x sigma truncated (Phantom-video/HuMo@17094e9 humo/models/utils/fm_solvers_unipc.py:205-211, used
at humo/generate.py:589 and 618-626), and its guidance switch compares that integer, ``t > 980``
(generate.py:451). With the option on, the guider feeds the DiT the same integer and switches on it;
the sampler's own update still uses the float sigma, as the official scheduler's does.

A generation from a zero latent starts from the noise itself, as the official loop does, not from core's
sigma_0 x noise.

Focus by prediction (an option; the official inference has no focus): at a chosen step the guider
decodes its x0 estimate, finds each speaker's face in the frames and makes soft, dilated face masks
the focus regions of the audio cross-attention for the remaining steps.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import comfy.model_management
import comfy.patcher_extension
import comfy.sample
import comfy.samplers
import comfy.utils
import numpy as np
import torch

from .. import paths
from ..media import face_detect, face_focus
from ..models.humo_focus import FocusConfig, apply_focus, mask_per_latent_frame, set_focus
from ..models.humo_spec import SPATIAL_STRIDE, TEMPORAL_STRIDE
from . import flow_unipc
from . import guidance as gd
from .chain_guider import ChainGuider
from .humo_conditioning import (
    Y_KEY,
    HuMoCondition,
    ModelSpec,
    find_condition,
    pass_conditioning,
)

APPLY_WRAPPER_KEY = "humanvideo_humo_y"
TIMESTEP_WRAPPER_KEY = "humanvideo_humo_integer_timestep"
MODEL_TIMESTEP_KEY = "hv_humo_model_timestep"  # transformer option: the integer timestep of this step, a 0-d tensor


def _apply_official_y(executor, x, t, c_concat=None, c_crossattn=None, control=None, transformer_options={}, **kwargs):
    # WAN21_HuMo.extra_conds always builds its own c_concat for 17B (constant zero-VAE values, zero
    # mask); the official y travels under our key and replaces it here.
    y = kwargs.pop(Y_KEY, None)
    if y is not None:
        c_concat = y
    return executor(x, t, c_concat, c_crossattn, control, transformer_options, **kwargs)


def _feed_model_timestep(
    executor, x, timestep, context, clip_fea=None, time_dim_concat=None, transformer_options={}, **kwargs
):
    # Diffusion-model wrapper: the DiT gets the integer the guider chose for this step (core passes the
    # float 1000 x sigma); everything around the DiT keeps the float sigma.
    t = transformer_options.get(MODEL_TIMESTEP_KEY)
    if t is not None:
        # a tensor, not a Python number: torch.compile (core's TorchCompileModel) would bake a number into
        # the graph and compile the DiT again at every step
        timestep = t.to(timestep.dtype).expand(timestep.shape).contiguous()  # core's layout: no stride guard fails
    return executor(x, timestep, context, clip_fea, time_dim_concat, transformer_options, **kwargs)


def model_timestep(sigma: float, official: Mapping[float, int] | None = None) -> int:
    """The integer timestep the official loop feeds the DiT at ``sigma``.

    ``official`` maps the float32 sigmas of an official schedule to its timesteps, which the official code
    truncates from the float64 sigma before storing it as float32 (fm_solvers_unipc.py:205-211); other sigmas
    take core's float32 timestep 1000 x sigma truncated. The two agree except where 1000 x sigma lies within
    float32 rounding of an integer (2 of 316 050 steps over 1..300 steps at shifts 1..10).
    """
    if official:
        t = official.get(sigma)
        if t is not None:
            return int(t)
    return int(torch.tensor(sigma, dtype=torch.float32) * flow_unipc.NUM_TRAIN_TIMESTEPS)


@dataclass
class FocusPrediction:
    """Focus by prediction: after step ``step`` decode the x0 estimate, find the faces, focus on them.

    ``strength`` None takes the focus strength of the conditioning, or 1 when that is 0. ``detector``
    None is dlib's HOG detector with the first 68-point landmark model found; ``decode`` None decodes
    with the conditioning's VAE (raw latents [1, 16, T, h, w] -> IMAGE [frames, H, W, 3]).
    """

    step: int = 10
    strength: float | None = None
    dilation: float = face_focus.DEFAULT_DILATION
    feather: float = face_focus.DEFAULT_FEATHER
    stride: int = TEMPORAL_STRIDE  # detect on one frame per latent frame of Wan's temporal VAE
    detector: object | None = None
    decode: Callable[[torch.Tensor], torch.Tensor] | None = None

    def __post_init__(self) -> None:
        if self.step < 0:
            raise ValueError(f"focus prediction step: must be >= 0, got {self.step}")
        if self.strength is not None and not 0.0 <= self.strength <= 1.0:
            raise ValueError(f"focus prediction strength: must be within 0..1, got {self.strength}")


@dataclass
class FocusOptions:
    strength: float | None = None  # None = from the conditioning
    masks: list[torch.Tensor | None] | None = None  # MASK per speaker; None = from the conditioning
    prediction: FocusPrediction | None = None  # None = no focus by prediction


class _Uint8Frames:
    """IMAGE [N, H, W, C] in 0..1 as a sequence of uint8 RGB frames made on access (detection reads a few)."""

    def __init__(self, images: torch.Tensor) -> None:
        self.images = images

    def __len__(self) -> int:
        return int(self.images.shape[0])

    def __getitem__(self, i: int) -> np.ndarray:
        frame = self.images[i, ..., :3].float().clamp(0, 1).mul(255.0).round().to(torch.uint8)
        return frame.cpu().numpy()


def default_face_detector():
    choices = paths.face_model_choices()
    if not choices:
        raise ValueError(
            "focus_by_prediction: needs dlib's 68-point face model "
            f"({face_detect.LANDMARKS_68}) in models/face_detection, or the face_recognition_models package"
        )
    return face_detect.DlibFaceDetector(paths.resolve_face_model(choices[0], "focus_by_prediction"))


class HuMoGuider(ChainGuider):
    """The chain guider with HuMo's passes (text, image, audio on or off), official integer timesteps, the 17B
    reference frames and focus."""

    def __init__(
        self,
        model_patcher,
        plan: gd.GuidancePlan,
        focus: FocusOptions | None = None,
        integer_timesteps: bool = True,
        official_start: bool = True,
    ) -> None:
        spec = ModelSpec.from_model(model_patcher.model)
        m = model_patcher.clone()
        m.add_wrapper_with_key(comfy.patcher_extension.WrappersMP.APPLY_MODEL, APPLY_WRAPPER_KEY, _apply_official_y)
        m.remove_wrappers_with_key(comfy.patcher_extension.WrappersMP.DIFFUSION_MODEL, TIMESTEP_WRAPPER_KEY)
        m.add_wrapper_with_key(
            comfy.patcher_extension.WrappersMP.DIFFUSION_MODEL, TIMESTEP_WRAPPER_KEY, _feed_model_timestep
        )
        super().__init__(m, plan)
        self.spec = spec
        self.focus = focus or FocusOptions()
        self.integer_timesteps = integer_timesteps
        self.official_start = official_start
        self.official_timesteps: dict[float, int] = {}
        self.condition: HuMoCondition | None = None
        # Of the latest run, for tests and logs: integers fed to the DiT, (sigma, DiT timestep, chain) per guider
        # call, and what focus by prediction did.
        self.model_timesteps: list[int] = []
        self.trace: list[tuple[float, int | None, gd.GuidanceChain]] = []
        self.notes: list[str] = []
        self.focus_config: FocusConfig | None = None  # the focus in force
        self._base_strength = 0.0
        self._prediction_done = False
        self._detector = None
        self._pass_cache: dict = {}  # inputs shared by several passes while set_conds builds them

    # -- set-up ---------------------------------------------------------------------------------
    def set_conds(self, positive, negative) -> None:
        cond = find_condition(positive) or find_condition(negative)
        if cond is None:
            raise ValueError("positive: not HuMo conditioning; connect the positive output of HV HuMo Conditioning")
        self.condition = cond
        self._pass_cache = {}
        try:
            super().set_conds(positive, negative)
        finally:
            self._pass_cache = {}
        self._install_focus(cond)

    def available_conditions(self, positive, negative) -> frozenset[str]:
        return self.condition.available

    def pass_conditioning(self, p: gd.Pass, positive, negative) -> list:
        return pass_conditioning(positive, negative, self.condition, self.spec, p, self._pass_cache)

    def use_official_timesteps(self, sigmas: torch.Tensor, timesteps: torch.Tensor) -> None:
        """Feeds the DiT exactly these integers at these sigmas (an official schedule, see model_timestep)."""
        self.official_timesteps = {float(s): int(t) for s, t in zip(sigmas.tolist(), timesteps.tolist(), strict=False)}

    def _install_focus(self, cond: HuMoCondition) -> None:
        masks = self.focus.masks if self.focus.masks is not None else cond.speaker_masks
        speakers = max(1, len(cond.speakers))
        masks = list(masks) if masks else [None] * speakers
        if len(masks) != speakers:
            raise ValueError(f"focus mask: {len(masks)} mask(s) for {speakers} audio track(s)")
        strength = self.focus.strength if self.focus.strength is not None else cond.focus_strength
        if speakers > 1 and self.focus.strength is None and strength == 0.0:
            strength = 1.0  # several tracks need regions, otherwise every token hears the average
        self._base_strength = strength
        grouped = [None if mk is None else mask_per_latent_frame(mk, cond.frames) for mk in masks]
        cfg = FocusConfig(grouped, strength, cond.latent_frames)
        self.focus_config = cfg
        updatable = self.focus.prediction is not None
        if updatable and not cond.speakers:
            raise ValueError("focus_by_prediction: needs audio; without audio there is nothing to focus")
        if updatable or not cfg.is_identity:
            self.model_patcher = apply_focus(self.model_patcher, cfg, updatable=updatable)
            self.model_options = self.model_patcher.model_options

    # -- per step -------------------------------------------------------------------------------
    def select(self, sigma: float, step: int | None) -> tuple[gd.GuidanceChain, int | None]:
        """The guidance chain of this step and the integer timestep the DiT gets (None: core's float timestep)."""
        if not self.integer_timesteps:
            return self.schedule.chain_at(sigma, step), None
        t = model_timestep(sigma, self.official_timesteps)
        # generate.py:451 switches on the integer: t > 980 <=> t / 1000 > 0.98.
        return self.schedule.chain_at(t / flow_unipc.NUM_TRAIN_TIMESTEPS, step), t

    def prepare_step(self, sigma: float, step: int | None, x: torch.Tensor, model_options: dict):
        chain, t = self.select(sigma, step)
        self.trace.append((sigma, t, chain))
        if t is not None:
            self.model_timesteps.append(t)
            t_tensor = torch.full((), float(t), device=x.device)  # made on the device: no host-to-device copy
            options = model_options.get("transformer_options", {})
            model_options = {**model_options, "transformer_options": {**options, MODEL_TIMESTEP_KEY: t_tensor}}
        return chain, model_options

    def after_step(self, denoised: torch.Tensor, step: int | None) -> None:
        prediction = self.focus.prediction
        if prediction is not None and not self._prediction_done and step == prediction.step:
            self._prediction_done = True
            self.predict_focus(denoised)

    # -- focus by prediction --------------------------------------------------------------------
    def _decode(self, x0: torch.Tensor) -> torch.Tensor:
        """Model-space x0 of the video frames [1, 16, T, h, w] -> IMAGE [frames, H, W, 3]."""
        raw = self.inner_model.process_latent_out(x0.float())
        prediction = self.focus.prediction
        if prediction.decode is not None:
            images = prediction.decode(raw)
        else:
            vae = self.condition.vae
            if vae is None:
                raise ValueError("focus_by_prediction: the conditioning carries no VAE to decode the x0 estimate")
            images = vae.decode(raw)
            # The VAE may have pushed the DiT out of memory; sampling goes on with it.
            comfy.model_management.load_models_gpu([self.model_patcher] + list(getattr(self, "loaded_models", [])))
        return images.reshape(-1, *images.shape[-3:])

    def predict_focus(self, denoised: torch.Tensor) -> FocusConfig | None:
        """Decodes the x0 estimate, finds each speaker's face and focuses on it from the next forward on.

        Returns the new focus, or None when no face was found (the focus stays as it was).
        """
        cond, prediction = self.condition, self.focus.prediction
        x0 = denoised[:1, :, : cond.latent_frames]  # the first sample's video frames (17B: references dropped)
        frames = self._decode(x0)
        old = self.focus_config
        hints = [None if m is None else m.float().cpu().numpy() for m in self._speaker_masks()]
        if self._detector is None:
            self._detector = prediction.detector or default_face_detector()
        faces = face_focus.find_speaker_faces(
            _Uint8Frames(frames),
            self._detector,
            old.speakers,
            hints if all(h is not None for h in hints) else None,
            prediction.stride,
            on_frame=lambda _: comfy.model_management.throw_exception_if_processing_interrupted(),
        )
        if not any(faces.found(s) for s in range(faces.speakers)):
            self.notes.append(f"focus by prediction: no face in the x0 estimate of step {prediction.step}; unchanged")
            logging.info("HumanVideo: %s", self.notes[-1])
            return None
        size = (cond.height // SPATIAL_STRIDE, cond.width // SPATIAL_STRIDE)
        grouped = []
        for s in range(faces.speakers):
            if not faces.found(s):
                grouped.append(old.masks[s])  # this speaker keeps the region it had
                continue
            per_frame = face_focus.soft_box_masks(
                faces.boxes[s], faces.width, faces.height, size, prediction.dilation, prediction.feather
            )
            grouped.append(mask_per_latent_frame(torch.from_numpy(per_frame), cond.frames))
        if prediction.strength is not None:
            strength = prediction.strength
        else:
            strength = self._base_strength if self._base_strength > 0 else 1.0
        cfg = FocusConfig(grouped, strength, cond.latent_frames)
        set_focus(self.model_patcher, cfg)
        self.focus_config = cfg
        found = [s + 1 for s in range(faces.speakers) if faces.found(s)]
        self.notes.append(
            f"focus by prediction at step {prediction.step}: face(s) of speaker(s) {found} found on "
            f"{len(faces.detected_frames)} checked frames, strength {strength:g}"
        )
        logging.info("HumanVideo: %s", self.notes[-1])
        return cfg

    def _speaker_masks(self) -> list[torch.Tensor | None]:
        masks = self.focus.masks if self.focus.masks is not None else self.condition.speaker_masks
        return list(masks) if masks else [None] * self.focus_config.speakers

    # -- whole run ------------------------------------------------------------------------------
    def sample(
        self, noise, latent_image, sampler, sigmas, denoise_mask=None, callback=None, disable_pbar=False, seed=None
    ):
        cond = self.condition
        if cond is None:
            raise ValueError("HuMo guider: set_conds was not called")
        if latent_image.is_nested:
            raise ValueError("latent: nested latents are not supported by the HuMo guider")
        want = (cond.latent_frames, cond.height // 8, cond.width // 8)
        if tuple(latent_image.shape[2:]) != want:
            raise ValueError(
                f"latent: shape {tuple(latent_image.shape)} does not match the HuMo conditioning "
                f"(frames, h, w) = {want}; use the latent output of HV HuMo Conditioning"
            )
        self.model_timesteps, self.trace, self.notes = [], [], []  # per run
        prediction = self.focus.prediction
        if prediction is not None:
            steps = len(sigmas) - 1
            if prediction.step >= steps - 1:
                raise ValueError(
                    f"focus_prediction_step: {prediction.step} leaves no step to use the predicted focus "
                    f"in {steps} steps; pick a step below {max(steps - 1, 0)}"
                )
            if self._detector is None:  # fail before sampling, not halfway
                self._detector = prediction.detector or default_face_detector()
            self._prediction_done = False
            if self.focus_config is not None:  # a repeated run starts from the conditioning's focus again
                self._install_initial_focus()
        extra = cond.n_ref if self.spec.concat_y else 0
        if extra:
            gen = torch.Generator().manual_seed((seed or 0) + 1)
            tail = torch.randn((noise.shape[0], noise.shape[1], extra, *noise.shape[3:]), generator=gen).to(noise)
            noise = torch.cat([noise, tail], dim=2)
            latent_image = torch.cat([latent_image, torch.zeros_like(tail).to(latent_image)], dim=2)
            if denoise_mask is not None:
                dm = denoise_mask
                if dm.ndim == 5 and dm.shape[2] == cond.latent_frames:
                    denoise_mask = torch.cat(
                        [dm, torch.ones_like(dm[:, :, :1]).expand(*dm.shape[:2], extra, *dm.shape[3:])], dim=2
                    )
        if denoise_mask is None:
            from_scratch = not latent_image.any()
        elif denoise_mask.ndim == 5 and denoise_mask.shape[2] == latent_image.shape[2]:
            from_scratch = not (latent_image * denoise_mask.to(latent_image)).any()
        else:
            from_scratch = False
        if self.official_start and from_scratch and 0 < float(sigmas[0]) < 1:
            # A generation from scratch starts from the noise itself (generate.py:592 and generate_1_7B.py:576,
            # latents = noise); core starts from sigma_0 noise + (1 - sigma_0) latent, so give it noise / sigma_0.
            # With a denoise mask (long-form continuation) this holds where the mask frees the latent; the kept
            # part is re-noised by core with the same noise and ends on its latent all the same.
            noise = noise / sigmas[0].to(noise)
        out = super().sample(noise, latent_image, sampler, sigmas, denoise_mask, callback, disable_pbar, seed)
        return out[:, :, : cond.latent_frames]

    def _install_initial_focus(self) -> None:
        cond = self.condition
        grouped = [None if m is None else mask_per_latent_frame(m, cond.frames) for m in self._speaker_masks()]
        self.focus_config = FocusConfig(grouped, self._base_strength, cond.latent_frames)
        set_focus(self.model_patcher, self.focus_config)


SOLVERS = {"flow_unipc": flow_unipc.SAMPLER_NAME, "uni_pc": "uni_pc_bh2", "euler": "euler"}
DEFAULT_SOLVER = "flow_unipc"  # the official FlowUniPCMultistepScheduler


def humo_sigmas(steps: int, shift: float) -> torch.Tensor:
    """Official sigmas: float32(0.999) .. 0 in ``steps`` equal parts, shifted, then 0 (see flow_unipc)."""
    return flow_unipc.official_schedule(steps, shift)[0]


def solver_object(solver: str) -> comfy.samplers.KSAMPLER:
    if solver not in SOLVERS:
        raise ValueError(f"solver: {solver!r} is not one of {sorted(SOLVERS)}")
    if solver == "flow_unipc":  # independent of the name being registered in core's lists
        return comfy.samplers.KSAMPLER(flow_unipc.sample_flow_unipc)
    return comfy.samplers.sampler_object(SOLVERS[solver])


def sample_humo(
    model_patcher,
    positive,
    negative,
    latent: dict,
    plan: gd.GuidancePlan,
    seed: int,
    steps: int = 50,
    shift: float = 5.0,
    solver: str = DEFAULT_SOLVER,
    focus: FocusOptions | None = None,
    progress: bool = True,
    integer_timesteps: bool = True,
) -> tuple[dict, HuMoGuider]:
    """All-in-one: official sigmas, the HuMo guider, a sampler; returns (LATENT of video frames, guider)."""
    sigmas, timesteps = flow_unipc.official_schedule(steps, shift)
    sampler = solver_object(solver)
    guider = HuMoGuider(model_patcher, plan, focus, integer_timesteps)
    guider.set_conds(positive, negative)
    guider.use_official_timesteps(sigmas, timesteps)
    samples = latent["samples"]
    noise = comfy.sample.prepare_noise(samples, seed, latent.get("batch_index"))
    pbar = comfy.utils.ProgressBar(steps) if progress else None

    def callback(step, x0, x, total):
        comfy.model_management.throw_exception_if_processing_interrupted()
        if pbar is not None:
            pbar.update_absolute(step + 1, total)

    out = guider.sample(noise, samples, sampler, sigmas, callback=callback, disable_pbar=True, seed=seed)
    result = latent.copy()
    result.pop("noise_mask", None)
    result["samples"] = out.to(comfy.model_management.intermediate_device())
    return result, guider
