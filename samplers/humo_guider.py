"""HuMo multi-condition guider: a core GUIDER (works with SamplerCustomAdvanced) and a one-call sampler.

Per step the guider picks the chain of the schedule for the current sigma/step, runs only the distinct
passes with a non-zero contribution through core's ``calc_cond_batch`` (which batches them into one
forward when memory allows), and combines them with the chain formula. For HuMo-17B it also extends
the noise by the reference frames (the official code denoises them along) and drops them at the end,
and swaps core's hard-coded c_concat for the official y.
"""

from __future__ import annotations

from dataclasses import dataclass

import comfy.model_management
import comfy.patcher_extension
import comfy.sample
import comfy.samplers
import comfy.utils
import torch

from ..models import humo_mask_predictor as mp
from ..models.humo_focus import FocusConfig, apply_focus, mask_per_latent_frame
from . import guidance as gd
from .humo_conditioning import (
    Y_KEY,
    HuMoCondition,
    ModelSpec,
    find_condition,
    pass_conditioning,
)

APPLY_WRAPPER_KEY = "humanvideo_humo_y"


def _apply_official_y(executor, x, t, c_concat=None, c_crossattn=None, control=None, transformer_options={}, **kwargs):
    # WAN21_HuMo.extra_conds always builds its own c_concat for 17B (constant zero-VAE values, zero
    # mask); the official y travels under our key and replaces it here.
    y = kwargs.pop(Y_KEY, None)
    if y is not None:
        c_concat = y
    return executor(x, t, c_concat, c_crossattn, control, transformer_options, **kwargs)


def pass_name(p: frozenset) -> str:
    return "hv_" + ("_".join(sorted(p)) or "null")


@dataclass
class FocusOptions:
    strength: float | None = None  # None = from the conditioning
    masks: list[torch.Tensor | None] | None = None  # MASK per speaker; None = from the conditioning


class HuMoGuider(comfy.samplers.CFGGuider):
    def __init__(self, model_patcher, plan: gd.GuidancePlan, focus: FocusOptions | None = None) -> None:
        spec = ModelSpec.from_model(model_patcher.model)
        m = model_patcher.clone()
        m.add_wrapper_with_key(comfy.patcher_extension.WrappersMP.APPLY_MODEL, APPLY_WRAPPER_KEY, _apply_official_y)
        super().__init__(m)
        self.spec = spec
        self.plan = plan
        self.focus = focus or FocusOptions()
        self.condition: HuMoCondition | None = None
        self.schedule: gd.GuidanceSchedule | None = None
        self.pass_calls = 0  # forwards requested (for tests and logs)
        self.mask_recorder: mp.MaskRecorder | None = None

    # -- set-up ---------------------------------------------------------------------------------
    def set_conds(self, positive, negative) -> None:
        cond = find_condition(positive) or find_condition(negative)
        if cond is None:
            raise ValueError("positive: not HuMo conditioning; connect the positive output of HV HuMo Conditioning")
        self.condition = cond
        self.schedule = self.plan.resolve(cond.available)
        cache: dict = {}
        passes = {p for seg in self.schedule.segments for p in seg.chain.needed_passes()}
        self.inner_set_conds(
            {pass_name(p): pass_conditioning(positive, negative, cond, self.spec, p, cache) for p in passes}
        )
        self._install_focus(cond)

    def _install_focus(self, cond: HuMoCondition) -> None:
        masks = self.focus.masks if self.focus.masks is not None else cond.speaker_masks
        speakers = max(1, len(cond.speakers))
        masks = list(masks) if masks else [None] * speakers
        if len(masks) != speakers:
            raise ValueError(f"focus mask: {len(masks)} mask(s) for {speakers} audio track(s)")
        strength = self.focus.strength if self.focus.strength is not None else cond.focus_strength
        if speakers > 1 and self.focus.strength is None and strength == 0.0:
            strength = 1.0  # several tracks need regions, otherwise every token hears the average
        grouped = [None if mk is None else mask_per_latent_frame(mk, cond.frames) for mk in masks]
        cfg = FocusConfig(grouped, strength, cond.latent_frames)
        if not cfg.is_identity:
            self.model_patcher = apply_focus(self.model_patcher, cfg)
            self.model_options = self.model_patcher.model_options

    def enable_mask_prediction(self) -> bool:
        """Records the focus-by-predicting face mask when the model carries the heads; call after set_conds
        (the capture wraps the focus patch). Returns whether the model has heads."""
        predictor = mp.predictor_of(self.model_patcher)
        if predictor is None:
            return False
        self.mask_recorder = mp.MaskRecorder(predictor.cfg)
        self.model_patcher = mp.apply_mask_capture(self.model_patcher, self.mask_recorder)
        self.model_options = self.model_patcher.model_options
        return True

    def predicted_mask(self) -> torch.Tensor | None:
        """MASK [frames, H, W]: the heads' face probability in the most-conditioned pass of the last step."""
        rec, cond = self.mask_recorder, self.condition
        if rec is None or rec.latest is None:
            return None
        return mp.tokens_to_mask(rec.latest, rec.grid, cond.latent_frames, cond.width, cond.height)

    # -- per step -------------------------------------------------------------------------------
    def predict_noise(self, x, timestep, model_options={}, seed=None):
        comfy.model_management.throw_exception_if_processing_interrupted()
        sigma = float(timestep.flatten()[0])
        step = gd.step_index(sigma, model_options.get("transformer_options", {}).get("sample_sigmas"))
        chain = self.schedule.chain_at(sigma, step)
        passes = chain.needed_passes()
        self.pass_calls += len(passes)
        if self.mask_recorder is not None:
            self.mask_recorder.target = len(passes) - 1  # the chain's last pass is its most conditioned
        out = comfy.samplers.calc_cond_batch(
            self.inner_model, [self.conds[pass_name(p)] for p in passes], x, timestep, model_options
        )
        return chain.combine(dict(zip(passes, out, strict=True)))

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
        out = super().sample(noise, latent_image, sampler, sigmas, denoise_mask, callback, disable_pbar, seed)
        return out[:, :, : cond.latent_frames]


# Official FlowUniPC: sigma_max = 1 - 1/num_train_timesteps.
OFFICIAL_SIGMA_MAX = 0.999
SOLVERS = {"uni_pc": "uni_pc_bh2", "euler": "euler"}  # official FlowUniPC uses the bh2 variant


def humo_sigmas(steps: int, shift: float) -> torch.Tensor:
    """Official schedule: linspace(0.999, 0, steps + 1)[:-1], shifted s' = shift s / (1 + (shift - 1) s), then 0."""
    sigmas = torch.linspace(OFFICIAL_SIGMA_MAX, 0.0, steps + 1, dtype=torch.float64)[:-1]
    shifted = shift * sigmas / (1.0 + (shift - 1.0) * sigmas)
    return torch.cat([shifted, torch.zeros(1, dtype=torch.float64)]).float()


def sample_humo(
    model_patcher,
    positive,
    negative,
    latent: dict,
    plan: gd.GuidancePlan,
    seed: int,
    steps: int = 50,
    shift: float = 5.0,
    solver: str = "uni_pc",
    focus: FocusOptions | None = None,
    progress: bool = True,
) -> tuple[dict, HuMoGuider]:
    """All-in-one: official sigmas, the HuMo guider, a core sampler; returns (LATENT of video frames, guider)."""
    if steps < 1:
        raise ValueError(f"steps: must be at least 1, got {steps}")
    if shift <= 0:
        raise ValueError(f"shift: must be positive, got {shift}")
    guider = HuMoGuider(model_patcher, plan, focus)
    guider.set_conds(positive, negative)
    guider.enable_mask_prediction()
    samples = latent["samples"]
    noise = comfy.sample.prepare_noise(samples, seed, latent.get("batch_index"))
    if solver not in SOLVERS:
        raise ValueError(f"solver: {solver!r} is not one of {sorted(SOLVERS)}")
    sigmas = humo_sigmas(steps, shift)
    sampler = comfy.samplers.sampler_object(SOLVERS[solver])
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
