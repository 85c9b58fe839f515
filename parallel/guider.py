"""A core GUIDER whose sampling runs on the workers (for SamplerCustomAdvanced and friends).

It holds what the ComfyUI process would use to build the real guider (its class, arguments and
conditioning); ``sample`` ships those with the noise, latent, sampler and sigmas, every worker builds the
same guider on its parallel model and samples, and rank 0's result comes back. Per-step previews reach
the caller's callback with the worker's x0.
"""

from __future__ import annotations

import comfy.samplers

from . import runtime


def sample_with_guider(
    model, guider_cls, init_args, positive, negative, noise, latent_image, sampler, sigmas, denoise_mask, seed, callback
):
    """Worker side: the guider the ComfyUI process would have built, sampling on this worker's model."""
    guider = guider_cls(model, *init_args)
    guider.set_conds(positive, negative)
    return guider.sample(
        noise, latent_image, sampler, sigmas, denoise_mask=denoise_mask, callback=callback, disable_pbar=True, seed=seed
    )


class ParallelGuider(comfy.samplers.CFGGuider):
    def __init__(self, config: runtime.ParallelConfig, model, guider_cls, init_args: tuple, positive, negative):
        super().__init__(model)
        self.config = config
        self.guider_cls, self.init_args = guider_cls, tuple(init_args)
        self.positive, self.negative = positive, negative
        # built here too, so wrong inputs fail now with the usual messages and the schedule can be inspected
        self.local = guider_cls(model, *init_args)
        self.local.set_conds(positive, negative)

    def sample(
        self, noise, latent_image, sampler, sigmas, denoise_mask=None, callback=None, disable_pbar=False, seed=None
    ):
        return runtime.run(
            self.config,
            self.model_patcher,
            sample_with_guider,
            self.guider_cls,
            self.init_args,
            self.positive,
            self.negative,
            noise,
            latent_image,
            sampler,
            sigmas,
            denoise_mask,
            seed,
            callback_kw="callback",
            callback=callback,
        )
