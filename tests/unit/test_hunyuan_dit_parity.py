"""An official-layout tiny DiT loaded by us into core's network predicts what diffusers' independent
HunyuanVideoTransformer3DModel predicts from the same official weights (both I2V condition types), on
every host: core 0.3.75 ([video, text] single stream) and newer core ([text, video])."""

import inspect

import hv_fixtures.hunyuan as fx
import pytest
import torch
from humanvideo.loaders import hunyuan_dit as hd
from humanvideo.samplers import hunyuan_i2v as hi


def predict(model, x, context, pooled, t, release):
    kw = dict(context=context, y=pooled, timestep=t)
    if release == "v2":
        kw.update(guidance=torch.tensor([6.0]), guiding_frame_index=torch.tensor([0.0]))
    model.patch_model()
    try:
        with torch.no_grad():  # as core's apply_model: the clone's block patches travel in transformer_options
            return model.model.diffusion_model(x, transformer_options=model.model_options["transformer_options"], **kw)
    finally:
        model.unpatch_model()


@pytest.mark.parametrize("release", ["v2", "v1"])
def test_loaded_core_model_matches_diffusers(release):
    sd = fx.tiny_dit_state_dict(release, seed=21)
    cfg = fx.tiny_dit_config(release)
    model, _ = hd.load_state_dict_as_model(dict(sd), "fp32")
    ref = fx.diffusers_reference(release, sd)
    g = torch.Generator().manual_seed(0)
    x = torch.randn(1, cfg.in_channels, 3, 8, 12, generator=g)
    context = torch.randn(1, 10, cfg.text_dim, generator=g)
    pooled = torch.randn(1, 768, generator=g)
    t = torch.tensor([700.0])
    ref_kw = dict(
        encoder_hidden_states=context, encoder_attention_mask=torch.ones(1, 10), pooled_projections=pooled, timestep=t
    )
    if release == "v2":
        ref_kw.update(guidance=torch.tensor([6000.0]))  # diffusers takes the guidance already x1000
    with torch.no_grad():
        theirs = ref(hidden_states=x, return_dict=False, **ref_kw)[0]
    if release == "v1":
        torch.testing.assert_close(predict(model, x, context, pooled, t, release), theirs, atol=2e-5, rtol=1e-5)
        return
    # v2: core adds the guidance embedding to the first-frame (token replace) vector too, which moves every
    # frame; with our official_token_replace patch the video frames agree to float32 precision (outputs
    # are ~7 in size). Frame 0's own output is never used (the clean image latent replaces it every step;
    # core and diffusers also modulate it differently in the final layer).
    core = predict(model, x, context, pooled, t, release)
    assert (core[:, :, 1:] - theirs[:, :, 1:]).abs().max() > 1e-2
    ours = predict(hi.official_token_replace(model), x, context, pooled, t, release)
    torch.testing.assert_close(ours[:, :, 1:], theirs[:, :, 1:], atol=2e-5, rtol=1e-5)

    # The guidance fix alone is enough where core orders the single stream [video, text]; where it puts
    # the text first, core's own first-frame ranges are wrong as well and only the range fix restores parity.
    guidance_only = model.clone()
    guidance_only.add_object_patch(
        "diffusion_model.guidance_in", hi.GuidanceOnVideoTokens(model.model.diffusion_model.guidance_in)
    )
    err = (predict(guidance_only, x, context, pooled, t, release)[:, :, 1:] - theirs[:, :, 1:]).abs().max()
    assert (err > 1e-2) == text_first_host(), float(err)


def text_first_host() -> bool:
    from comfy.ldm.hunyuan_video.model import HunyuanVideo

    return "img_slice" in inspect.getsource(HunyuanVideo.forward_orig)


def test_single_stream_ranges_are_moved_past_the_text():
    core_ranges = [(0, 24, 0), (24, None, 1)]  # first frame (24 tokens) from position 0
    assert hi.text_first_modulation_dims(core_ranges, {}) == core_ranges  # [video, text]: right as is
    fixed = hi.text_first_modulation_dims(core_ranges, {"img_slice": [10, 82]})
    assert fixed == [(0, 10, 1), (10, 34, 0), (34, None, 1)]  # text, frame 0, other frames
    assert hi.text_first_modulation_dims(fixed, {"img_slice": [10, 82]}) == fixed  # already right: kept
    assert hi.text_first_modulation_dims(None, {"img_slice": [10, 82]}) is None  # v1: no token replace
