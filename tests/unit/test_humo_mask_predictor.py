"""Focus-by-predicting mask-predictor heads: the average of the last 4 blocks' heads equals a hand computation
on the real (tiny) DiT's post-audio-attention states of the fully conditioned pass; heads survive a checkpoint
round trip through the loader; a model without heads gives an all-zero MASK; bad heads are named."""

import comfy.ldm.wan.vae
import comfy.model_management
import comfy.samplers
import comfy.sd
import pytest
import torch
import torch.nn.functional as F
from humanvideo.loaders import humo_dit
from humanvideo.models import humo_focus as hf
from humanvideo.models import humo_mask_predictor as mp
from humanvideo.nodes import humo as nh
from humanvideo.samplers import guidance as gd
from humanvideo.samplers import humo_conditioning as hc
from humanvideo.samplers import humo_guider as hg
from hv_fixtures import humo as humo_fixtures

W, H, FRAMES = 32, 32, 5  # 2 video latent frames of 2x2 tokens (+1 reference frame)
LAYERS, DIM = 5, 128  # heads on blocks 1..4; block 0 has none


def random_heads(cfg: mp.MaskPredictorConfig, seed: int = 0) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    out = {}
    for k, shape in mp.key_manifest(cfg).items():
        scale = 1.0 if k.endswith("norm.weight") else 0.3
        out[k] = (1.0 if k.endswith("norm.weight") else 0.0) + scale * torch.randn(shape, generator=g)
    return out


def hand_probability(heads: dict[str, torch.Tensor], hidden: list[torch.Tensor]) -> torch.Tensor:
    probs = []
    for k, h in enumerate(hidden):
        n = F.layer_norm(
            h.float(),
            (h.shape[-1],),
            heads[f"mask_predictor.{k}.norm.weight"],
            heads[f"mask_predictor.{k}.norm.bias"],
            1e-6,
        )
        logit = n @ heads[f"mask_predictor.{k}.proj.weight"].T + heads[f"mask_predictor.{k}.proj.bias"]
        probs.append(torch.sigmoid(logit[..., 0]))
    return sum(probs) / len(probs)


@pytest.fixture(scope="module")
def vae():
    torch.manual_seed(0)
    net = comfy.ldm.wan.vae.WanVAE(
        dim=8,
        z_dim=16,
        dim_mult=[1, 2, 4, 4],
        num_res_blocks=2,
        attn_scales=[],
        temperal_downsample=[False, True, True],
    )
    return comfy.sd.VAE(sd={k: torch.randn_like(v) * 0.2 for k, v in net.state_dict().items()})


@pytest.fixture(scope="module")
def dit_sd():
    return humo_fixtures.humo_state_dict(in_dim=16, seed=3, num_layers=LAYERS)


@pytest.fixture(scope="module")
def heads():
    return random_heads(mp.MaskPredictorConfig(DIM, 4), seed=1)


@pytest.fixture(scope="module")
def model_with_heads(tmp_path_factory, dit_sd, heads):
    path = tmp_path_factory.mktemp("humo") / "ema.pth"
    torch.save({**dit_sd, **heads}, path)  # official 1.7B container, heads beside the DiT keys
    model, cfg = humo_dit.load_humo_model(path)
    assert cfg.num_layers == LAYERS
    return model


def _conds(vae):
    cond = hc.build_condition(
        vae,
        W,
        H,
        FRAMES,
        images=[torch.rand(20, 28, 3, generator=torch.Generator().manual_seed(3))],
        speakers=[torch.randn(9, 5, 1280, generator=torch.Generator().manual_seed(4))],
    )
    text = lambda s: torch.randn(1, 6, 4096, generator=torch.Generator().manual_seed(s))
    return cond, [[text(1), {hc.COND_KEY: cond}]], [[text(2), {hc.COND_KEY: cond}]], text(1)


def test_predictor_module_averages_its_heads(heads):
    pred = mp.MaskPredictor(mp.MaskPredictorConfig(DIM, 4))
    pred.load_checkpoint(heads)
    hidden = [torch.randn(2, 10, DIM, generator=torch.Generator().manual_seed(k)) for k in range(4)]
    with torch.no_grad():
        torch.testing.assert_close(pred(hidden), hand_probability(heads, hidden), atol=1e-6, rtol=1e-5)
    assert pred.checkpoint_state_dict().keys() == heads.keys()


def test_loader_keeps_heads_round_trip(model_with_heads, heads):
    predictor = mp.predictor_of(model_with_heads)
    assert predictor is not None and predictor.cfg == mp.MaskPredictorConfig(DIM, 4)
    assert predictor.cfg.first_block(LAYERS) == 1
    saved = predictor.checkpoint_state_dict()
    assert saved.keys() == heads.keys()
    for k, v in heads.items():
        torch.testing.assert_close(saved[k], v)
    # under the DiT the heads have the checkpoint's key names, so ComfyUI saves/patches them as such
    model_keys = model_with_heads.model.diffusion_model.state_dict().keys()
    assert set(heads) <= set(model_keys)


def test_sampler_mask_is_the_hand_average_of_the_conditioned_pass(model_with_heads, heads, vae):
    cond, pos, neg, ctx = _conds(vae)
    guider = hg.HuMoGuider(model_with_heads, gd.humo_1_7b_plan())
    guider.set_conds(pos, neg)
    assert guider.enable_mask_prediction()
    name = "diffusion_model.blocks.4.audio_cross_attn_wrapper"
    # key paths inside the patched wrapper are unchanged (LoRA weight patches still resolve)
    assert guider.model_patcher.get_model_object(name + ".audio_cross_attn.q") is model_with_heads.get_model_object(
        name + ".audio_cross_attn.q"
    )
    assert not model_with_heads.object_patches  # the loaded MODEL is untouched

    seen = {}

    def one_eval(model, x, sigmas, extra_args=None, callback=None, disable=None):
        seen["x"] = x.clone()
        return model(x, sigmas[0] * x.new_ones([x.shape[0]]), **extra_args)

    latent = torch.zeros(1, 16, cond.latent_frames, H // 8, W // 8)
    noise = torch.randn(latent.shape, generator=torch.Generator().manual_seed(7))
    guider.sample(noise, latent, comfy.samplers.KSAMPLER(one_eval), torch.tensor([0.6, 0.0]), seed=7)
    rec = guider.mask_recorder
    assert rec.evaluations == 1 and rec.grid == (cond.latent_frames + 1, 2, 2, 1)
    recorded = rec.latest.clone()
    mask = guider.predicted_mask()

    # Hand: the fully conditioned pass (text, reference, audio) straight through the unpatched DiT.
    comfy.model_management.unload_all_models()  # core keeps a sampled model patched until it is unloaded
    dm = model_with_heads.model.diffusion_model
    assert not isinstance(dm.blocks[4].audio_cross_attn_wrapper, mp.MaskCapturingAudioCrossAttention)
    captured = {}
    hooks = [
        dm.blocks[i].audio_cross_attn_wrapper.register_forward_hook(
            lambda mod, args, out, i=i: captured.__setitem__(i, out)
        )
        for i in range(1, LAYERS)
    ]
    spec = hc.ModelSpec.from_model(model_with_heads.model)
    ref = model_with_heads.model.process_latent_in(cond.ref_latents)
    audio = hc.audio_inputs(cond, spec)[0]
    try:
        with torch.no_grad():
            dm(seen["x"], torch.tensor([600.0]), ctx, audio_embed=audio, reference_latent=ref)
    finally:
        for h in hooks:
            h.remove()
    expected = hand_probability(heads, [captured[i] for i in range(1, LAYERS)])
    torch.testing.assert_close(recorded, expected, atol=1e-5, rtol=1e-4)
    assert rec.evaluations == 1
    assert mask.shape == (FRAMES, H, W) and 0 <= float(mask.min()) and float(mask.max()) <= 1
    grid = expected.reshape(cond.latent_frames + 1, 2, 2)
    # frame 0 <- latent 0, frames 1..4 <- latent 1; a token covers a 16x16 pixel patch (centre pixel exact-ish)
    torch.testing.assert_close(mask[0, 4:12, 4:12].mean(), grid[0, 0, 0], atol=0.05, rtol=0)
    for f in range(1, FRAMES):
        torch.testing.assert_close(mask[f], mask[1])
    torch.testing.assert_close(mask[3, 20:28, 20:28].mean(), grid[1, 1, 1], atol=0.05, rtol=0)


def test_tokens_to_mask_layout():
    # 2 video latent frames + 1 reference, 2x3 tokens: frame value + left/right contrast
    probs = torch.zeros(3, 2, 3)
    probs[0, :, 0] = 1.0  # latent 0: left column on
    probs[1, :, 2] = 1.0  # latent 1: right column on
    probs[2] = 0.5  # the reference frame is dropped
    mask = mp.tokens_to_mask(probs.reshape(1, -1), (3, 2, 3, 0), 2, width=48, height=32)
    assert mask.shape == (5, 32, 48)
    assert mask[0, :, :8].min() == 1.0 and mask[0, :, 40:].max() == 0.0
    for f in range(1, 5):
        assert mask[f, :, 40:].min() == 1.0 and mask[f, :, :8].max() == 0.0
    with pytest.raises(ValueError, match="do not fit the grid"):
        mp.tokens_to_mask(torch.zeros(1, 17), (3, 2, 3, 0), 2, 48, 32)


def test_predicted_mask_feeds_back_as_focus_mask(model_with_heads, vae):
    _, pos, neg, _ = _conds(vae)
    speech = torch.randn(9, 5, 1280, generator=torch.Generator().manual_seed(4))
    p, n, latent, _ = nh.HVHuMoConditioning.execute(
        pos, neg, vae, "custom", W, H, FRAMES, audio_features=speech, reference_images=torch.rand(1, 20, 28, 3)
    ).result
    out, mask = nh.HVHuMoSampler.execute(model_with_heads, p, n, latent, 1, 1, 5.0, "euler").result
    assert mask.shape == (FRAMES, H, W) and float(mask.std()) > 0
    p2, n2, latent2, info = nh.HVHuMoConditioning.execute(
        pos, neg, vae, "custom", W, H, FRAMES, audio_features=speech, focus_mask=mask, focus_strength=1.0
    ).result
    guider = hg.HuMoGuider(model_with_heads, gd.humo_1_7b_plan())
    guider.set_conds(p2, n2)
    guider.enable_mask_prediction()
    patched = guider.model_patcher.object_patches["diffusion_model.blocks.4.audio_cross_attn_wrapper"]
    assert isinstance(patched, mp.MaskCapturingAudioCrossAttention)
    assert isinstance(patched._refs[0], hf.FocusedAudioCrossAttention)  # capture wraps the focus patch
    again = nh.HVHuMoSampler.execute(model_with_heads, p2, n2, latent2, 1, 1, 5.0, "euler").result
    assert torch.isfinite(again[0]["samples"]).all() and again[1].shape == (FRAMES, H, W)


def test_model_without_heads_gives_zero_mask(tmp_path, dit_sd, vae):
    path = tmp_path / "ema.pth"
    torch.save(dit_sd, path)
    model, _ = humo_dit.load_humo_model(path)
    assert mp.predictor_of(model) is None
    _, pos, neg, _ = _conds(vae)
    p, n, latent, _ = nh.HVHuMoConditioning.execute(pos, neg, vae, "custom", W, H, 9).result
    out, mask = nh.HVHuMoSampler.execute(model, p, n, latent, 1, 1, 5.0, "euler").result
    assert mask.shape == (9, H, W) and not mask.any()
    guider = hg.HuMoGuider(model, gd.humo_1_7b_plan())
    guider.set_conds(p, n)
    assert not guider.enable_mask_prediction() and guider.predicted_mask() is None


@pytest.mark.parametrize(
    "edit, message",
    [
        (lambda h: h.update({"mask_predictor.1.proj.weight": torch.zeros(1, 64)}), "do not fit the DiT width 128"),
        (lambda h: h.pop("mask_predictor.2.norm.bias"), "incomplete mask predictor"),
        (lambda h: h.update({"mask_predictor.0.extra": torch.zeros(1)}), "unknown mask-predictor tensors"),
        (lambda h: h.update({k.replace(".3.", ".9."): v for k, v in list(h.items()) if ".3." in k}), "numbered 0..K-1"),
    ],
)
def test_bad_heads_are_named(heads, edit, message):
    bad = dict(heads)
    edit(bad)
    with pytest.raises(ValueError, match=message):
        mp.infer_config(bad, DIM, LAYERS, "ema.pth")
    with pytest.raises(ValueError, match="6 mask-predictor heads for a DiT with 5 blocks"):
        mp.infer_config(random_heads(mp.MaskPredictorConfig(DIM, 6)), DIM, LAYERS)
