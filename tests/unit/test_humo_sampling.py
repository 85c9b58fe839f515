"""HuMo guider on a tiny random-weight core WAN21_HuMo: every official formula (17B TIA with the t > 980
switch, 17B TA, 1.7B TIA / TA) against a direct re-computation with the official inputs; focus strength
0 is bit-identical to the official block; several speakers route each region to its own track."""

import comfy.samplers
import pytest
import torch
from humanvideo.models import humo_focus as hf
from humanvideo.samplers import guidance as gd
from humanvideo.samplers import humo_conditioning as hc
from humanvideo.samplers import humo_guider as hg

W, H, FRAMES = 32, 32, 5  # 2 latent frames of 4x4 -> 2x2 tokens


def _text(seed):
    return torch.randn(1, 6, 4096, generator=torch.Generator().manual_seed(seed))


def _conds(vae, image=True, audio=True, length=FRAMES):
    cond = hc.build_condition(
        vae,
        W,
        H,
        length,
        images=[torch.rand(20, 28, 3, generator=torch.Generator().manual_seed(3))] if image else None,
        speakers=[torch.randn(9, 5, 1280, generator=torch.Generator().manual_seed(4))] if audio else None,
    )
    pos = [[_text(1), {hc.COND_KEY: cond}]]
    neg = [[_text(2), {hc.COND_KEY: cond}]]
    return cond, pos, neg


def _one_step(guider, cond, sigma):
    """Run the guider for one model evaluation at ``sigma``; returns (x fed to the model, denoised)."""
    seen = {}

    def fn(model, x, sigmas, extra_args=None, callback=None, disable=None):
        seen["x"] = x.clone()
        return model(x, sigmas[0] * x.new_ones([x.shape[0]]), **extra_args)

    latent = torch.zeros(1, 16, cond.latent_frames, H // 8, W // 8)
    noise = torch.randn(latent.shape, generator=torch.Generator().manual_seed(7))
    out = guider.sample(noise, latent, comfy.samplers.KSAMPLER(fn), torch.tensor([sigma, 0.0]), seed=7)
    return seen["x"], guider.model_patcher.model.process_latent_in(out)


def _v(dm, x, sigma, ctx, audio, **kw):
    with torch.no_grad():
        return dm(x, torch.tensor([sigma * 1000.0]), ctx, audio_embed=audio, **kw).float()


def _official_17b(model, vae, cond, x, sigma):
    """forward_tia / forward_ta of generate.py, inputs rebuilt from scratch."""
    dm, pin = model.model.diffusion_model, model.model.process_latent_in
    t, n = cond.latent_frames, cond.n_ref
    zero = pin(vae.encode(torch.full((1 + 4 * (t + n - 1), H, W, 3), 0.5)).float())
    msk = torch.zeros(1, 4, t + n, H // 8, W // 8)
    msk[:, :, t:] = 1
    y_null = torch.cat([msk, zero], 1)
    y_c = (
        torch.cat([msk, torch.cat([zero[:, :, :t], pin(cond.ref_latents)], 2)], 1)
        if cond.ref_latents is not None
        else y_null
    )
    audio = torch.cat(
        [
            hc.audio_windows(torch.randn(9, 5, 1280, generator=torch.Generator().manual_seed(4)), FRAMES),
            torch.zeros(n, 8, 5, 1280),
        ]
    )[None]
    a0 = torch.zeros_like(audio)
    ctx, nctx = _text(1), _text(2)
    v = lambda y, c, a: _v(dm, torch.cat([x, y], 1), sigma, c, a)
    sa, st = 5.5, 5.0
    if cond.ref_latents is None:  # TA
        ta, tt, neg = v(y_null, ctx, audio), v(y_null, ctx, a0), v(y_null, nctx, a0)
        return sa * (ta - tt) + st * (tt - neg) + neg
    tia, ti = v(y_c, ctx, audio), v(y_c, ctx, a0)
    if sigma * 1000 > 980:
        neg = v(y_c, nctx, a0)
        return sa * (tia - ti) + st * (ti - neg) + neg
    neg = v(y_null, nctx, a0)
    return sa * (tia - ti) + (st - 2.0) * (ti - neg) + neg


@pytest.mark.parametrize("sigma,image", [(0.995, True), (0.6, True), (0.995, False)])
def test_17b_guidance_equals_official(model_17b, vae, sigma, image):
    cond, pos, neg = _conds(vae, image=image)
    guider = hg.HuMoGuider(model_17b, gd.humo_17b_plan())
    guider.set_conds(pos, neg)
    x, den = _one_step(guider, cond, sigma)
    assert x.shape[2] == cond.latent_frames + 1  # the reference frame is denoised along
    v = _official_17b(model_17b, vae, cond, x, sigma)
    expected = (x - sigma * v)[:, :, : cond.latent_frames]
    torch.testing.assert_close(den, expected, atol=2e-4, rtol=2e-4)
    assert guider.pass_calls == 3


@pytest.mark.parametrize("image", [True, False])
def test_1_7b_guidance_equals_official(model_1_7b, vae, image):
    """generate_1_7B.py: the clean reference replaces the last latent frame (zeros when null)."""
    sigma = 0.7
    cond, pos, neg = _conds(vae, image=image)
    guider = hg.HuMoGuider(model_1_7b, gd.humo_1_7b_plan(scale_t=7.0))
    guider.set_conds(pos, neg)
    x, den = _one_step(guider, cond, sigma)
    dm, pin = model_1_7b.model.diffusion_model, model_1_7b.model.process_latent_in
    t = cond.latent_frames
    ref = pin(cond.ref_latents) if image else torch.zeros(1, 16, 1, H // 8, W // 8)
    audio = torch.cat(
        [
            hc.audio_windows(torch.randn(9, 5, 1280, generator=torch.Generator().manual_seed(4)), FRAMES),
            torch.zeros(1, 8, 5, 1280),
        ]
    )[None]
    a0 = torch.zeros_like(audio)
    ctx, nctx = _text(1), _text(2)
    v = lambda r, c, a: _v(dm, torch.cat([x, r], 2), sigma, c, a)[:, :, :t]
    zero = torch.zeros_like(ref)
    neg, tt, ta = v(zero, nctx, a0), v(zero, ctx, a0), v(zero, ctx, audio)
    pred = 7.5 * (ta - tt) + 7.0 * (tt - neg) + neg
    if image:
        pred = 4.0 * (v(ref, ctx, audio) - ta) + pred
    torch.testing.assert_close(den, x - sigma * pred, atol=2e-4, rtol=2e-4)
    assert guider.pass_calls == (4 if image else 3)


def test_focus_strength_zero_is_official_and_mask_changes_output(model_17b, vae):
    cond, pos, neg = _conds(vae)
    plain = hg.HuMoGuider(model_17b, gd.humo_17b_plan())
    plain.set_conds(pos, neg)
    _, ref = _one_step(plain, cond, 0.6)
    mask = torch.zeros(1, H, W)
    mask[:, :16] = 1.0
    zero = hg.HuMoGuider(model_17b, gd.humo_17b_plan(), hg.FocusOptions(0.0, [mask]))
    zero.set_conds(pos, neg)
    _, out0 = _one_step(zero, cond, 0.6)
    assert torch.equal(out0, ref)
    focused = hg.HuMoGuider(model_17b, gd.humo_17b_plan(), hg.FocusOptions(1.0, [mask]))
    focused.set_conds(pos, neg)
    assert any(isinstance(v, hf.FocusedAudioCrossAttention) for v in focused.model_patcher.object_patches.values())
    _, out1 = _one_step(focused, cond, 0.6)
    assert not torch.allclose(out1, ref)
    # the original model is untouched
    assert not model_17b.object_patches


def test_focused_block_math_and_two_speakers(model_17b):
    dm = model_17b.model.diffusion_model
    orig = dm.blocks[0].audio_cross_attn_wrapper
    g = torch.Generator().manual_seed(0)
    x = torch.randn(1, 2 * 4, 128, generator=g)  # 2 frames of 2x2 tokens
    a1, a2 = torch.randn(1, 2 * 16, 1536, generator=g), torch.randn(1, 2 * 16, 1536, generator=g)
    m1 = torch.zeros(2, 4, 4)
    m1[:, :, :2] = 1  # left half
    cfg = hf.FocusConfig([m1, 1 - m1], 1.0, 2)
    block = hf.FocusedAudioCrossAttention(orig, cfg)
    opts = {hf.GRID_KEY: (2, 2, 2, 0)}
    with torch.no_grad():
        out = block(x, torch.cat([a1, a2], 1), opts)
        r1 = orig(x, a1) - x
        r2 = orig(x, a2) - x
    left = torch.tensor([1.0, 0.0, 1.0, 0.0] * 2)[None, :, None]  # token (row, col) order, col 0 = left
    torch.testing.assert_close(out, x + left * r1 + (1 - left) * r2, atol=1e-5, rtol=1e-5)
    single = hf.FocusedAudioCrossAttention(orig, hf.FocusConfig([m1], 0.5, 2))
    with torch.no_grad():
        torch.testing.assert_close(single(x, a1, opts), x + (1 - 0.5 * (1 - left)) * r1, atol=1e-5, rtol=1e-5)


def test_sampler_end_to_end_and_bad_latent(model_17b, vae):
    cond, pos, neg = _conds(vae)
    latent = {"samples": torch.zeros(1, 16, cond.latent_frames, H // 8, W // 8)}
    out, guider = hg.sample_humo(
        model_17b, pos, neg, latent, gd.humo_17b_plan(), seed=1, steps=2, solver="euler", progress=False
    )
    assert out["samples"].shape == latent["samples"].shape and torch.isfinite(out["samples"]).all()
    assert guider.pass_calls == 6  # step 1 at sigma 0.9995 (> 0.98), step 2 after the switch
    bad = {"samples": torch.zeros(1, 16, 3, H // 8, W // 8)}
    with pytest.raises(ValueError, match="does not match the HuMo conditioning"):
        hg.sample_humo(model_17b, pos, neg, bad, gd.humo_17b_plan(), seed=1, steps=2, progress=False)


def test_official_sigmas():
    s = hg.humo_sigmas(50, 5.0)
    assert s.shape == (51,) and s[-1] == 0
    torch.testing.assert_close(s[:3] * 1000, torch.tensor([999.8, 995.7, 991.5]), atol=0.05, rtol=0)
    assert int((s * 1000 > 980).sum()) == 5


def test_nodes_conditioning_schedule_sampler(model_1_7b, vae):
    from humanvideo.nodes import guidance as ng
    from humanvideo.nodes import humo as nh

    plan, summary = ng.HVGuidanceSchedule.execute("custom", -1, -1, -1, "0 | TIA:2.5", "", "sigma").result
    assert "TIA:2.5" in summary
    p17 = ng.HVGuidanceSchedule.execute("HuMo-17B official", 4.0, -1, -1, "", "", "sigma").result[0]
    assert p17.default.segments[1].chain.scales == (2.0, 5.5)
    with pytest.raises(ValueError, match="unknown condition letter"):
        ng.HVGuidanceSchedule.execute("custom", -1, -1, -1, "0 | Q:1", "", "sigma")
    pos, neg = [[_text(1), {}]], [[_text(2), {}]]
    with pytest.raises(ValueError, match="width: 40 is not a positive multiple of 16"):
        nh.HVHuMoConditioning.execute(pos, neg, vae, "custom", 40, 32, 5)
    img = torch.rand(1, 20, 28, 3)
    p, n, latent, info = nh.HVHuMoConditioning.execute(pos, neg, vae, "custom", W, H, 7, reference_images=img).result
    assert latent["samples"].shape == (1, 16, 2, H // 8, W // 8)
    assert "mode TI" in info and "rounded down to 5" in info
    assert hc.find_condition(p).ref_latents.shape[2] == 1 and hc.COND_KEY not in pos[0][1]
    out = nh.HVHuMoSampler.execute(model_1_7b, p, n, latent, 1, 1, 5.0, "euler", guidance=plan).result[0]
    assert out["samples"].shape == latent["samples"].shape and torch.isfinite(out["samples"]).all()
    guider = nh.HVHuMoGuider.execute(model_1_7b, p, n).result[0]
    assert guider.schedule.name == "HuMo-1.7B official"
