"""The guider of guidance chains: a core GUIDER (works with SamplerCustomAdvanced) following a guidance plan.

Per step it picks the chain of the schedule for the current sigma / step, runs only the distinct passes
with a non-zero contribution through core's ``calc_cond_batch`` (which batches them into one forward when
memory allows, and which the CFG-parallel workers replace by their own) and combines them with the chain
formula of ``guidance.py``. What a pass means is the model family's business: a subclass maps each pass
(the set of conditions that are on) to its conditioning in ``pass_conditioning``.
"""

from __future__ import annotations

from collections.abc import Iterable

import comfy.model_management
import comfy.samplers
import torch

from . import guidance as gd


def pass_name(p: gd.Pass) -> str:
    """The key of a pass's conditioning among the guider's conds."""
    return "hv_" + ("_".join(sorted(p)) or "null")


class ChainGuider(comfy.samplers.CFGGuider):
    """Follows ``plan``: per step one chain, its passes in one ``calc_cond_batch``, the chain formula on top.

    Hooks for a model family: ``available_conditions`` (which conditions the inputs carry: the plan is
    restricted to them) and ``pass_conditioning`` (a pass -> its conditioning); optionally ``prepare_step``
    (the chain of a step and the model options it runs with) and ``after_step`` (look at the step's prediction).
    """

    def __init__(self, model_patcher, plan: gd.GuidancePlan) -> None:
        super().__init__(model_patcher)
        self.plan = plan
        self.schedule: gd.GuidanceSchedule | None = None
        self.pass_calls = 0  # forwards requested in the latest run (for tests and logs)
        self._cpu_sigmas: torch.Tensor | None = None  # the sigmas of the run in progress, on the CPU

    # -- hooks ----------------------------------------------------------------------------------
    def available_conditions(self, positive, negative) -> Iterable[str]:
        """The conditions these inputs can switch on (the plan's passes are restricted to them)."""
        raise NotImplementedError

    def pass_conditioning(self, p: gd.Pass, positive, negative) -> list:
        """The core CONDITIONING of pass ``p`` (the set of conditions that are on)."""
        raise NotImplementedError

    def prepare_step(self, sigma: float, step: int | None, x: torch.Tensor, model_options: dict):
        """-> (the guidance chain of this step, the model options its passes run with)."""
        return self.schedule.chain_at(sigma, step), model_options

    def after_step(self, denoised: torch.Tensor, step: int | None) -> None:
        """Called with each step's guided prediction."""

    # -- set-up and per step --------------------------------------------------------------------
    def set_conds(self, positive, negative) -> None:
        self.schedule = self.plan.resolve(self.available_conditions(positive, negative))
        passes = {p for seg in self.schedule.segments for p in seg.chain.needed_passes()}
        self.inner_set_conds({pass_name(p): self.pass_conditioning(p, positive, negative) for p in passes})

    def predict_noise(self, x, timestep, model_options={}, seed=None):
        comfy.model_management.throw_exception_if_processing_interrupted()
        sigma = float(timestep.flatten()[0])
        sample_sigmas = model_options.get("transformer_options", {}).get("sample_sigmas")
        if self._cpu_sigmas is not None and sample_sigmas is not None and len(sample_sigmas) == len(self._cpu_sigmas):
            sample_sigmas = self._cpu_sigmas  # the run's sigmas, read once: no device sync per step
        step = gd.step_index(sigma, sample_sigmas)
        chain, model_options = self.prepare_step(sigma, step, x, model_options)
        passes = chain.needed_passes()
        self.pass_calls += len(passes)
        out = comfy.samplers.calc_cond_batch(
            self.inner_model, [self.conds[pass_name(p)] for p in passes], x, timestep, model_options
        )
        denoised = chain.combine(dict(zip(passes, out, strict=True)))
        self.after_step(denoised, step)
        return denoised

    def sample(
        self, noise, latent_image, sampler, sigmas, denoise_mask=None, callback=None, disable_pbar=False, seed=None
    ):
        self.pass_calls = 0
        self._cpu_sigmas = sigmas.detach().to("cpu", torch.float64)
        return super().sample(noise, latent_image, sampler, sigmas, denoise_mask, callback, disable_pbar, seed)
