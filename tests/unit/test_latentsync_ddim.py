"""DDIM schedule / step against diffusers' DDIMScheduler, and the chunked LatentSync denoising loop."""

from __future__ import annotations

import comfy.model_management as mm
import pytest
import torch
from humanvideo.samplers.ddim import DDIMSampler, DDIMSchedule
from humanvideo.samplers.latentsync_denoise import DenoiseSettings, denoise_latents, initial_noise
from hv_fixtures import latentsync_unet as fixture

pytestmark = pytest.mark.usefixtures("one_thread")

# LatentSync's configs/scheduler_config.json
SCHEDULER_CONFIG = dict(
    num_train_timesteps=1000,
    beta_start=0.00085,
    beta_end=0.012,
    beta_schedule="scaled_linear",
    clip_sample=False,
    set_alpha_to_one=False,
    steps_offset=1,
)


def diffusers_ddim(steps: int):
    diffusers = pytest.importorskip("diffusers")
    sched = diffusers.DDIMScheduler(**SCHEDULER_CONFIG)
    sched.set_timesteps(steps)
    return sched


def test_twenty_steps_are_951_to_1():
    ts = DDIMSchedule().timesteps(20)
    assert ts == list(range(951, 0, -50))
    assert ts[0] == 951 and ts[-1] == 1 and len(ts) == 20


@pytest.mark.parametrize("steps", [1, 7, 20, 50, 999])
def test_timesteps_equal_diffusers(steps):
    assert DDIMSchedule().timesteps(steps) == diffusers_ddim(steps).timesteps.tolist()


def test_alphas_cumprod_equal_diffusers():
    ref = diffusers_ddim(20).alphas_cumprod.double()
    torch.testing.assert_close(DDIMSchedule().alphas_cumprod(), ref, rtol=1e-6, atol=1e-7)
    assert DDIMSchedule().final_alpha_cumprod() == pytest.approx(float(ref[0]), rel=1e-6)  # set_alpha_to_one false


def test_full_trajectory_equals_diffusers_step():
    sched = diffusers_ddim(20)
    ours = DDIMSampler(20)
    g = torch.Generator().manual_seed(0)
    x_ref = x = torch.randn(1, 4, 3, 8, 8, generator=g)
    for t in ours.timesteps:
        eps = torch.randn(x.shape, generator=g)
        x_ref = sched.step(eps, t, x_ref, eta=0.0).prev_sample
        x = ours.step(eps, t, x)
    torch.testing.assert_close(x, x_ref, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("steps", [0, -3, 1000, 2.5])
def test_bad_step_counts_are_value_errors(steps):
    with pytest.raises(ValueError, match="steps"):
        DDIMSchedule().timesteps(steps)


# ---------------------------------------------------------------- denoising loop

N, H = 5, 4  # frames, latent side


def video_inputs(seed=0, frames=N):
    g = torch.Generator().manual_seed(seed)
    masked = torch.randn(frames, 4, H, H, generator=g)
    ref = torch.randn(frames, 4, H, H, generator=g)
    mask = (torch.rand(1, 1, H, H, generator=g) > 0.5).float()
    audio = torch.randn(frames, 50, 384, generator=g)
    return masked, ref, mask, audio


@pytest.fixture(scope="module")
def unet():
    return fixture.tiny_unet(seed=21).eval()


@torch.no_grad()
def upstream_loop(unet, masked, ref, mask, audio, noise, steps, guidance, chunk):
    """LipsyncPipeline's loop read independently: diffusers' DDIM, cat order, zero-audio CFG batch."""
    sched = diffusers_ddim(steps)
    out = []
    for s in range(0, masked.shape[0], chunk):
        e = min(s + chunk, masked.shape[0])
        v = lambda z: z.transpose(0, 1).unsqueeze(0)  # noqa: E731  (f c h w -> 1 c f h w)
        latents = v(noise.expand(e - s, -1, -1, -1))
        cond = torch.cat([v(mask.expand(e - s, -1, -1, -1)), v(masked[s:e]), v(ref[s:e])], dim=1)
        a = audio[s:e].unsqueeze(0)
        if guidance > 1:
            cond, a = torch.cat([cond, cond]), torch.cat([torch.zeros_like(a), a])
        for t in sched.timesteps:
            inp = torch.cat([latents] * 2) if guidance > 1 else latents
            eps = unet(torch.cat([inp, cond], dim=1), t, a)
            if guidance > 1:
                u, c = eps.chunk(2)
                eps = u + guidance * (c - u)
            latents = sched.step(eps, t, latents).prev_sample
        out.append(latents[0].transpose(0, 1))
    return torch.cat(out)


def test_loop_equals_upstream_reading_with_cfg_and_chunks(unet):
    masked, ref, mask, audio = video_inputs()
    noise = initial_noise(1247, H, H)
    calls = []
    got = denoise_latents(
        unet,
        masked,
        ref,
        mask,
        audio,
        noise,
        DenoiseSettings(steps=3, guidance=1.5, chunk_frames=2),
        callback=lambda d, t: calls.append((d, t)),
    )
    expected = upstream_loop(unet, masked, ref, mask, audio, noise, 3, 1.5, 2)
    assert got.shape == (N, 4, H, H) and got.dtype == torch.float32
    torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-4)
    assert calls == [(i, 9) for i in range(1, 10)]  # 3 chunks x 3 steps


def test_guidance_one_skips_unconditional_pass_and_chunks_are_independent(unet):
    masked, ref, mask, audio = video_inputs(seed=1)
    noise = initial_noise(7, H, H)
    batches = []
    hook = unet.register_forward_pre_hook(lambda m, args: batches.append(args[0].shape[0]))
    try:
        full = denoise_latents(
            unet, masked, ref, mask, audio, noise, DenoiseSettings(steps=2, guidance=1.0, chunk_frames=3)
        )
    finally:
        hook.remove()
    assert batches == [1] * 4  # 2 chunks x 2 steps, never an unconditional batch item
    expected = upstream_loop(unet, masked, ref, mask, audio, noise, 2, 1.0, 3)
    torch.testing.assert_close(full, expected, rtol=1e-4, atol=1e-4)
    # the second chunk alone gives the same frames: nothing leaks between chunks
    tail = denoise_latents(
        unet, masked[3:], ref[3:], mask, audio[3:], noise, DenoiseSettings(steps=2, guidance=1.0, chunk_frames=3)
    )
    torch.testing.assert_close(tail, full[3:], rtol=1e-5, atol=1e-5)


def test_deepcache_runs_full_network_every_third_step(unet):
    masked, ref, mask, audio = video_inputs(seed=2, frames=3)
    noise = initial_noise(3, H, H)
    full_passes = []
    hook = unet.mid_block.register_forward_hook(lambda m, i, o: full_passes.append(1))
    try:
        cached = denoise_latents(unet, masked, ref, mask, audio, noise, DenoiseSettings(steps=7, deepcache_interval=3))
    finally:
        hook.remove()
    assert len(full_passes) == 3  # steps 0, 3, 6
    plain = denoise_latents(unet, masked, ref, mask, audio, noise, DenoiseSettings(steps=7))
    assert torch.isfinite(cached).all()
    assert not torch.allclose(cached, plain, atol=1e-4)


def test_interrupt_stops_the_loop(unet):
    masked, ref, mask, audio = video_inputs(frames=2)
    mm.interrupt_current_processing(True)
    try:
        with pytest.raises(mm.InterruptProcessingException):
            denoise_latents(unet, masked, ref, mask, audio, initial_noise(0, H, H), DenoiseSettings(steps=2))
    finally:
        mm.interrupt_current_processing(False)


def test_initial_noise_is_seeded_single_frame():
    a, b = initial_noise(1247, 8, 8), initial_noise(1247, 8, 8)
    assert a.shape == (1, 4, 8, 8) and torch.equal(a, b)
    assert not torch.equal(a, initial_noise(1248, 8, 8))


@pytest.mark.parametrize(
    "change, message",
    [
        (dict(ref=lambda r: r[:3]), "reference_latents has 3 frames"),
        (dict(mask=lambda m: m.expand(2, -1, -1, -1)), "mask has 2 frames"),
        (dict(audio=lambda a: a[..., :100]), "100-d but this UNet expects 384-d"),
        (dict(masked=lambda m: m[:, :3]), "masked_latents has shape"),
        (dict(settings=DenoiseSettings(guidance=0.5)), "guidance must be >= 1.0"),
        (dict(settings=DenoiseSettings(chunk_frames=30)), "exceeds the motion modules' 24"),
        (dict(settings=DenoiseSettings(deepcache_interval=-1)), "deepcache_interval"),
    ],
)
def test_bad_inputs_are_value_errors(unet, change, message):
    masked, ref, mask, audio = video_inputs()
    masked = change.get("masked", lambda m: m)(masked)
    ref = change.get("ref", lambda r: r)(ref)
    mask = change.get("mask", lambda m: m)(mask)
    audio = change.get("audio", lambda a: a)(audio)
    settings = change.get("settings", DenoiseSettings(steps=1))
    with pytest.raises(ValueError, match=message):
        denoise_latents(unet, masked, ref, mask, audio, initial_noise(0, H, H), settings)


def test_rejects_non_unet_model():
    masked, ref, mask, audio = video_inputs()
    with pytest.raises(ValueError, match="HV_LATENTSYNC_UNET"):
        denoise_latents(torch.nn.Linear(2, 2), masked, ref, mask, audio, initial_noise(0, H, H))
