"""HunyuanVideo-I2V buckets, conditioning and sampler: official tables, and the official Euler loop
around diffusers' independent network reproduced by our sampler on core's network."""

import comfy.model_sampling
import comfy.samplers
import hv_fixtures.hunyuan as fx
import pytest
import torch
from humanvideo.loaders import hunyuan_dit as hd
from humanvideo.loaders import hunyuan_vae as hvae
from humanvideo.models import hunyuan_video_spec as hs
from humanvideo.samplers import hunyuan_i2v as hi


# ------------------------------------------------------------------------------------------ buckets
def test_bucket_table_matches_official():
    assert [len(hi.bucket_list(b)) for b in (960, 720, 480)] == [91, 67, 43]
    table = {  # (input w, h) -> {resolution: (w, h)}, from the official code (hyvideo/utils/data_utils.py)
        (1280, 720): {"720p": (1248, 704), "540p": (928, 544), "360p": (608, 352)},
        (1000, 1000): {"720p": (960, 960), "540p": (704, 704), "360p": (480, 480)},
        (800, 600): {"720p": (1088, 832), "540p": (800, 608), "360p": (544, 416)},
    }
    for (w, h), expected in table.items():
        for res, (bw, bh) in expected.items():
            assert hi.closest_bucket(h, w, res) == (bh, bw), (w, h, res)
    # portrait mirrors landscape; every bucket lies on the 32-px grid
    assert hi.closest_bucket(1280, 720, "720p") == (1248, 704)
    assert all(h % 32 == 0 and w % 32 == 0 for h, w in hi.bucket_list(960))


def test_fit_to_bucket_resizes_short_side_and_centre_crops():
    img = torch.zeros(1, 90, 160, 3)
    img[:, :, 75:85] = 1.0  # a vertical bar in the middle survives the crop in the middle
    out = hi.fit_to_bucket(img, 64, 96)
    assert out.shape == (1, 64, 96, 3)
    col = out[0, 32, :, 0]
    # 160x90 -> short side 64 -> 113x64, crop 8 px left: the bar (x 75..85) lands at x 45..52
    assert col[46:51].min() > 0.9 and col[:40].max() < 0.05 and col[58:].max() < 0.05


def test_bad_images_are_corrected_or_refused():
    grey, notes = hi.normalise_image(torch.rand(1, 64, 64, 1))
    assert grey.shape[-1] == 3 and "greyscale" in notes[0]
    rgba, notes = hi.normalise_image(torch.rand(2, 64, 64, 4))
    assert rgba.shape == (1, 64, 64, 3) and any("RGBA" in n for n in notes) and any("first" in n for n in notes)
    _, notes = hi.normalise_image(torch.rand(1, 32, 400, 3))
    assert any("4:1" in n for n in notes)
    with pytest.raises(ValueError, match="channels"):
        hi.normalise_image(torch.rand(1, 64, 64, 5))
    with pytest.raises(ValueError, match="too small"):
        hi.normalise_image(torch.rand(1, 8, 64, 3))
    assert hi.normalise_length(129, hs.RELEASE_V2) == (129, [])
    n, notes = hi.normalise_length(30, hs.RELEASE_V2)
    assert n == 33 and "4n+1" in notes[0]
    assert hi.normalise_length(1, hs.RELEASE_V1)[0] == 5


def test_flow_sigmas_equal_official_formula_and_core_simple_schedule():
    s = hi.flow_sigmas(50, 7.0)
    t = torch.linspace(1, 0, 51, dtype=torch.float64)
    torch.testing.assert_close(s, (7 * t / (1 + 6 * t)).float())

    class Flow(comfy.model_sampling.ModelSamplingDiscreteFlow, comfy.model_sampling.CONST):
        pass

    ms = Flow(None)
    ms.set_parameters(shift=7.0, multiplier=1000)
    torch.testing.assert_close(comfy.samplers.calculate_sigmas(ms, "simple", 50).float(), s, atol=1e-6, rtol=1e-5)


# ------------------------------------------------------------------------------- conditioning + sampler
@pytest.fixture(scope="module")
def vae(tmp_path_factory):
    d = tmp_path_factory.mktemp("vae")
    fx.gen_vae(d)
    return hvae.load_hunyuan_vae(str(d / "vae" / fx.VAE_DIR / "pytorch_model.pt"))


def text_cond(seed, interleave):
    g = torch.Generator().manual_seed(seed)
    ctx = torch.randn(1, 12, fx.TINY_TEXT_DIM, generator=g)
    return [[ctx, {"pooled_output": torch.randn(1, 768, generator=g), hi.INTERLEAVE_KEY: interleave}]]


def official_euler(ref, plan, pos, neg, seed, steps, shift, cfg, scale):
    """The official loop (`pipeline_hunyuan_video.py`) around diffusers' independent network `ref`:
    no core sampler, masks, noise scaling or core DiT."""
    import comfy.sample

    img = plan.image_latent * scale
    frames = plan.latent_frames
    x = comfy.sample.prepare_noise(torch.zeros(1, 16, frames, plan.height // 8, plan.width // 8), seed)
    if plan.stability:
        x = 0.999 * x + 0.001 * img.expand(-1, -1, frames, -1, -1)
    sig = hi.flow_sigmas(steps, shift)

    def velocity(xin, s, cond):
        kw = dict(
            encoder_hidden_states=cond[0][0],
            pooled_projections=cond[0][1]["pooled_output"],
            encoder_attention_mask=torch.ones(1, cond[0][0].shape[1]),
            timestep=(s * 1000).reshape(1),
        )
        if plan.release is hs.RELEASE_V2:
            kw["guidance"] = torch.tensor([6000.0])
        else:
            concat = torch.zeros_like(xin)
            concat[:, :, :1] = img
            mask = torch.zeros_like(xin[:, :1])
            mask[:, :, :1] = 1.0
            xin = torch.cat([xin, concat, mask], dim=1)
        with torch.no_grad():
            return ref(hidden_states=xin, return_dict=False, **kw)[0]

    for i in range(steps):
        if plan.release is hs.RELEASE_V2:
            x = torch.cat([img, x[:, :, 1:]], dim=2)
        v = velocity(x, sig[i], pos)
        if cfg != 1.0:
            vn = velocity(x, sig[i], neg)
            v = vn + cfg * (v - vn)
        x = x + v * (sig[i + 1] - sig[i])
    if plan.release is hs.RELEASE_V2:
        x = torch.cat([img, x[:, :, 1:]], dim=2)
    return x / scale


@pytest.mark.parametrize("release,stability,cfg", [("v2", True, 1.0), ("v2", False, 3.0), ("v1", False, 2.5)])
def test_sampler_equals_official_euler_loop(vae, monkeypatch, release, stability, cfg):
    monkeypatch.setitem(hi.RESOLUTION_BASES, "tiny", 96)  # a 96-px bucket base keeps the CPU run short
    sd = fx.tiny_dit_state_dict(release, seed=4)
    model, rel = hd.load_state_dict_as_model(dict(sd), "fp32")
    pos, neg = text_cond(1, rel.image_interleave), text_cond(2, rel.image_interleave)
    image = torch.rand(1, 40, 72, 3)
    p, n, latent, plan = hi.prepare_i2v(model, vae, pos, neg, image, length=9, resolution="tiny", stability=stability)
    assert (plan.height, plan.width) == (64, 96) and latent["samples"].shape[2:] == (3, 8, 12)
    out, r2, shift = hi.sample_i2v(model, p, n, latent, seed=11, steps=3, cfg=cfg, progress=False)
    assert r2 is rel and shift == (7.0 if stability else 17.0)
    expected = official_euler(
        fx.diffusers_reference(release, sd),
        plan,
        pos,
        neg,
        seed=11,
        steps=3,
        shift=shift,
        cfg=cfg,
        scale=model.model.latent_format.scale_factor,
    )
    torch.testing.assert_close(out["samples"], expected, atol=1e-4, rtol=1e-4)
    if rel is hs.RELEASE_V2:
        torch.testing.assert_close(out["samples"][:, :, :1], plan.image_latent, atol=1e-5, rtol=1e-5)
    frames = hi.decode_frames(vae, out, rel)
    assert frames.shape[0] == 9 - rel.drop_first_frames


def test_mismatched_release_settings_are_refused(vae, monkeypatch):
    monkeypatch.setitem(hi.RESOLUTION_BASES, "360p", 96)
    model, rel = hd.load_state_dict_as_model(fx.tiny_dit_state_dict("v2"), "fp32")
    with pytest.raises(ValueError, match=r"encoded for v1.*model is v2"):
        hi.prepare_i2v(
            model, vae, text_cond(1, 2), text_cond(2, 2), torch.rand(1, 32, 32, 3), length=5, resolution="360p"
        )
    v1, _ = hd.load_state_dict_as_model(fx.tiny_dit_state_dict("v1"), "fp32")
    _, _, latent, _ = hi.prepare_i2v(
        model, vae, text_cond(1, 4), text_cond(2, 4), torch.rand(1, 32, 32, 3), length=5, resolution="360p"
    )
    with pytest.raises(ValueError, match=r"prepared for v2.*model is v1"):
        hi.sample_i2v(v1, text_cond(1, 2), text_cond(2, 2), latent, seed=0, steps=1, progress=False)
    with pytest.raises(ValueError, match="HV HunyuanVideo-I2V Conditioning"):
        hi.sample_i2v(model, text_cond(1, 4), text_cond(2, 4), {"samples": torch.zeros(1, 16, 2, 4, 4)}, seed=0)
