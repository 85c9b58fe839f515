"""DDIM (Song et al., "Denoising Diffusion Implicit Models", eta = 0) as LatentSync configures it.

LatentSync's `configs/scheduler_config.json`: 1000 training steps, "scaled_linear" betas from 0.00085
to 0.012, "leading" timestep spacing with steps_offset 1, set_alpha_to_one false (the last step lands
on alpha_bar[0]), epsilon prediction, no sample clipping. 20 steps give 951, 901, ..., 51, 1.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class DDIMSchedule:
    num_train_timesteps: int = 1000
    beta_start: float = 0.00085
    beta_end: float = 0.012
    steps_offset: int = 1
    set_alpha_to_one: bool = False

    def alphas_cumprod(self) -> torch.Tensor:
        """alpha_bar_t for t = 0 .. T-1 (float64). scaled_linear = linear in sqrt(beta)."""
        betas = (
            torch.linspace(self.beta_start**0.5, self.beta_end**0.5, self.num_train_timesteps, dtype=torch.float64) ** 2
        )
        return torch.cumprod(1.0 - betas, dim=0)

    def final_alpha_cumprod(self) -> float:
        return 1.0 if self.set_alpha_to_one else float(self.alphas_cumprod()[0])

    def step_ratio(self, steps: int) -> int:
        return self.num_train_timesteps // steps

    def timesteps(self, steps: int) -> list[int]:
        """Leading spacing: t_i = i * (T // steps) + offset, highest first."""
        if not isinstance(steps, int) or steps < 1:
            raise ValueError(f"steps must be a positive integer, got {steps!r}")
        ratio = self.step_ratio(steps)
        top = (steps - 1) * ratio + self.steps_offset
        if ratio < 1 or top >= self.num_train_timesteps:
            raise ValueError(
                f"steps={steps} is too many: with {self.num_train_timesteps} training timesteps and offset "
                f"{self.steps_offset} the first timestep would be {top}, past the schedule"
            )
        return [i * ratio + self.steps_offset for i in reversed(range(steps))]


class DDIMSampler:
    """Deterministic DDIM updates x_t -> x_{t - T/steps} from an epsilon prediction."""

    def __init__(self, steps: int, schedule: DDIMSchedule = DDIMSchedule()):
        self.schedule = schedule
        self.timesteps = schedule.timesteps(steps)
        self.step_ratio = schedule.step_ratio(steps)
        self._alphas = schedule.alphas_cumprod()
        self._final = schedule.final_alpha_cumprod()

    def alpha_bar(self, t: int) -> float:
        return float(self._alphas[t]) if t >= 0 else self._final

    def step(self, eps: torch.Tensor, t: int, x: torch.Tensor) -> torch.Tensor:
        a_t = self.alpha_bar(t)
        a_prev = self.alpha_bar(t - self.step_ratio)
        x0 = (x - (1.0 - a_t) ** 0.5 * eps) / a_t**0.5
        return a_prev**0.5 * x0 + (1.0 - a_prev) ** 0.5 * eps
