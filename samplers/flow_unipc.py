"""FlowUniPC: UniPC (bh2, order 2, x0 prediction) on the log-SNR of a flow-matching schedule.

The official HuMo / Wan 2.1 sampler is ``FlowUniPCMultistepScheduler``
(Phantom-video/HuMo@17094e9 humo/models/utils/fm_solvers_unipc.py). For flow matching
x_sigma = (1 - sigma) x0 + sigma eps, so alpha = 1 - sigma (fm_solvers_unipc.py:272-273) and the
log-SNR is lambda = log(1 - sigma) - log(sigma). With h = lambda_t - lambda_s and the model's x0
estimates m, one step of the predictor UniP from s to t reads

    x_t = (sigma_t / sigma_s) x_s + alpha_t (1 - e^-h) m_s  -  alpha_t (e^-h - 1) * rho_p * D_1,
    D_1 = (m_s' - m_s) / r_1,   r_1 = (lambda_s' - lambda_s) / h                (s' the point before s)

with rho_p = 1/2 at order 2 (fm_solvers_unipc.py:455-481), and the corrector UniC re-runs the step
that produced x_t once the model output m_t at x_t is known, with coefficients solving the order
conditions (fm_solvers_unipc.py:541-626). The schedule settings are the official ones
(fm_solvers_unipc.py:79-95): solver_order 2, bh2 (B(h) = e^-h - 1), predict_x0, lower_order_final
(the last step is first order, fm_solvers_unipc.py:712-721), the corrector on every step after the
first (disable_corrector empty, fm_solvers_unipc.py:689-703).

Core's ``uni_pc_bh2`` is the same family but runs up to order 3 on a variance-exploding lambda, so its
trajectory drifts from the official one. This sampler takes the sigmas it is given (shift and step
count live in the sigmas; :func:`official_schedule` makes the official ones) and is registered as
``flow_unipc`` in core's sampler lists, so KSamplerSelect / SamplerCustomAdvanced offer it and core's
noise-mask (inpainting) machinery wraps it like any other sampler.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from tqdm.auto import trange

SAMPLER_NAME = "flow_unipc"
ORDER = 2
NUM_TRAIN_TIMESTEPS = 1000


def flow_log_snr(sigma: float) -> float:
    """lambda = log(alpha / sigma) with alpha = 1 - sigma; +inf at sigma 0, -inf at sigma 1."""
    if not 0.0 <= sigma <= 1.0:
        raise ValueError(
            f"flow_unipc: sigma {sigma:g} is outside [0, 1]; this sampler needs a flow-matching model "
            "(Wan / HuMo, HunyuanVideo, SD3, Flux), whose sigmas run from 1 to 0"
        )
    if sigma == 0.0:
        return math.inf
    if sigma == 1.0:
        return -math.inf
    return math.log1p(-sigma) - math.log(sigma)


def _phi_coefficients(h: float) -> tuple[float, float, float, float]:
    """(e^-h - 1, B(h), b_1, b_2) for x0 prediction (hh = -h) with bh2 (B(h) = e^hh - 1).

    b_1, b_2 are the right-hand sides of UniPC's order conditions (fm_solvers_unipc.py:433-450):
    g_1 = (e^hh - 1) / hh - 1, g_2 = g_1 / hh - 1/2, b_k = k! g_k / B(h). At h = inf (a step to
    sigma 0) float arithmetic gives the limits e^-h - 1 = -1, b_1 = b_2 = 1.
    """
    hh = -h
    h_phi_1 = math.expm1(hh)
    b_h = h_phi_1
    g_1 = h_phi_1 / hh - 1.0
    g_2 = g_1 / hh - 0.5
    return h_phi_1, b_h, g_1 / b_h, 2.0 * g_2 / b_h


def _log_snr_step(lambda_s: float, lambda_t: float) -> float:
    """h = lambda_t - lambda_s, infinite when either end is (sigma_t = 0 or sigma_s = 1)."""
    if lambda_t == math.inf or lambda_s == -math.inf:
        return math.inf
    return lambda_t - lambda_s


def _step(
    x: torch.Tensor,
    m0: torch.Tensor,
    sigma_s: float,
    sigma_t: float,
    lambda_s: float,
    lambda_t: float,
    earlier: tuple[torch.Tensor, float] | None,
    m_t: torch.Tensor | None = None,
) -> torch.Tensor:
    """One UniP step from s to t (``m_t`` None) or its UniC correction (``m_t`` the output at the predicted x_t).

    ``earlier`` is (x0 estimate, lambda) at the point before s; given, the step is second order.
    """
    h = _log_snr_step(lambda_s, lambda_t)
    if h == 0.0:  # repeated sigma: nothing moves
        return x
    alpha_t = 1.0 - sigma_t
    h_phi_1, b_h, b1, b2 = _phi_coefficients(h)
    # First-order (DDIM-like) part in x0 form: (sigma_t / sigma_s) x - alpha_t (e^-h - 1) m0.
    x_t = (sigma_t / sigma_s) * x - (alpha_t * h_phi_1) * m0
    d1 = None
    r1 = 0.0
    if earlier is not None:
        m1, lambda_1 = earlier
        r1 = (lambda_1 - lambda_s) / h
        if math.isfinite(r1) and r1 != 0.0:
            d1 = (m1 - m0) / r1
        # r1 = -inf (the earlier point at sigma 1): D_1 -> 0, the term vanishes in the limit.
    if m_t is None:
        if d1 is None:
            return x_t
        return x_t - (alpha_t * b_h * 0.5) * d1  # rho_p = 1/2 at order 2 (fm_solvers_unipc.py:457-459)
    d1_t = m_t - m0
    if earlier is None:
        return x_t - (alpha_t * b_h * 0.5) * d1_t  # order-1 corrector, rho_c = 1/2 (fm_solvers_unipc.py:603-605)
    # Order 2: rho solves [[1, 1], [r1, 1]] rho = [b1, b2] (fm_solvers_unipc.py:589-607); r1 -> -inf gives (0, b1).
    rho_1 = (b2 - b1) / (r1 - 1.0) if math.isfinite(r1) else 0.0
    rho_t = b1 - rho_1
    correction = rho_t * d1_t
    if d1 is not None:
        correction = correction + rho_1 * d1
    return x_t - (alpha_t * b_h) * correction


@torch.no_grad()
def sample_flow_unipc(model, x, sigmas, extra_args=None, callback=None, disable=None):
    """k-diffusion style sampler: ``model(x, sigma * s_in, **extra_args)`` returns the x0 estimate.

    Steps follow ``sigmas`` exactly (the last entry is where sampling ends, 0 for a full run).
    """
    extra_args = {} if extra_args is None else extra_args
    s_in = x.new_ones([x.shape[0]])
    sig = [float(s) for s in sigmas]
    lam = [flow_log_snr(s) for s in sig]
    steps = len(sig) - 1
    history: list[torch.Tensor] = []  # x0 estimates at sig[0..i], the last two kept
    last_x: torch.Tensor | None = None  # x at the previous point, before its predictor step
    last_order = 0
    for i in trange(steps, disable=disable):
        denoised = model(x, sig[i] * s_in, **extra_args)
        if callback is not None:
            callback({"x": x, "i": i, "sigma": sigmas[i], "sigma_hat": sigmas[i], "denoised": denoised})
        if last_x is not None:
            # UniC: redo the previous step with the output at its end (fm_solvers_unipc.py:689-703).
            earlier = (history[-2], lam[i - 2]) if last_order == 2 else None
            x = _step(last_x, history[-1], sig[i - 1], sig[i], lam[i - 1], lam[i], earlier, denoised)
        history = (history + [denoised])[-ORDER:]
        # Warm-up from first order, and first order again on the last step (lower_order_final).
        order = min(ORDER, steps - i, len(history))
        last_x = x
        earlier = (history[-2], lam[i - 1]) if order == 2 else None
        x = _step(x, denoised, sig[i], sig[i + 1], lam[i], lam[i + 1], earlier)
        last_order = order
    return x


def official_schedule(
    steps: int, shift: float, num_train_timesteps: int = NUM_TRAIN_TIMESTEPS
) -> tuple[torch.Tensor, torch.Tensor]:
    """(sigmas float32 [steps + 1] ending in 0, integer timesteps int64 [steps]) as the official scheduler sets them.

    fm_solvers_unipc.py:107-132 and 160-211: sigma_max is the float32 value of 1 - 1/num_train_timesteps,
    the sigmas are linspace(sigma_max, 0, steps + 1)[:-1] shifted by s' = shift s / (1 + (shift - 1) s) in
    float64, the timesteps are those shifted sigmas times num_train_timesteps truncated to int64, and the
    sigmas are stored as float32 with a final 0.
    """
    if steps < 1:
        raise ValueError(f"steps: must be at least 1, got {steps}")
    if shift <= 0:
        raise ValueError(f"shift: must be positive, got {shift}")
    sigma_max = float(np.float32(1.0 - 1.0 / num_train_timesteps))
    base = np.linspace(sigma_max, 0.0, steps + 1)[:-1]
    shifted = shift * base / (1.0 + (shift - 1.0) * base)
    timesteps = torch.from_numpy((shifted * num_train_timesteps).astype(np.int64))
    sigmas = torch.from_numpy(np.concatenate([shifted, [0.0]]).astype(np.float32))
    return sigmas, timesteps


def register() -> None:
    """Adds ``flow_unipc`` to core's sampler lists (KSampler, KSamplerSelect, ...); safe to call repeatedly.

    Core builds its sampler combos from ``comfy.samplers.KSAMPLER_NAMES`` / ``SAMPLER_NAMES`` (the same
    list objects the node definitions read each time the page asks for them) and resolves a name
    ``n`` to ``comfy.k_diffusion.sampling.sample_<n>``.
    """
    import comfy.k_diffusion.sampling
    import comfy.samplers

    setattr(comfy.k_diffusion.sampling, f"sample_{SAMPLER_NAME}", sample_flow_unipc)
    for names in (comfy.samplers.KSAMPLER_NAMES, comfy.samplers.SAMPLER_NAMES):
        if SAMPLER_NAME not in names:
            names.append(SAMPLER_NAME)
