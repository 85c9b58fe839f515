"""HuMo conditioning: official reference preprocessing, audio windows, zero-VAE latents, per-pass inputs."""

import numpy as np
import pytest
import torch
from humanvideo.samplers import humo_conditioning as hc
from humanvideo.samplers.guidance import AUDIO, IMAGE, TEXT
from PIL import Image, ImageOps


def _official_fit(img: Image.Image, w: int, h: int) -> np.ndarray:
    # Independent transcription of the official load_image_latent_ref_id preprocessing.
    ratio = img.width / img.height
    if ratio > w / h:
        nw, nh = w, int(w / ratio)
    else:
        nh, nw = h, int(h * ratio)
    img = img.resize((nw, nh), Image.LANCZOS)
    dw, dh = w - nw, h - nh
    img = ImageOps.expand(img, (dw // 2, dh // 2, dw - dw // 2, dh - dh // 2), fill=(255, 255, 255))
    return np.asarray(img)


@pytest.mark.parametrize("src", [(37, 90), (90, 37), (64, 48)])
def test_reference_preprocessing_matches_official(src):
    rng = np.random.default_rng(1)
    arr = rng.integers(0, 256, (src[1], src[0], 3), dtype=np.uint8)
    expected = _official_fit(Image.fromarray(arr), 64, 48)
    got = hc.fit_reference(torch.from_numpy(arr.astype(np.float32) / 255.0), 64, 48)
    assert got.shape == (48, 64, 3)
    np.testing.assert_array_equal((got.numpy() * 255).round().astype(np.uint8), expected)
    if src[0] / src[1] > 64 / 48:
        assert (got[0] == 1.0).all() and (got[-1] == 1.0).all()  # white bars top and bottom


def test_audio_windows_follow_official_indexing():
    n = 11
    feats = torch.arange(1, n + 1, dtype=torch.float32)[:, None, None].expand(n, 5, 1280)
    win = hc.audio_windows(feats, 13)  # 13 frames -> 4 latent frames
    assert win.shape == (4, 8, 5, 1280)
    rows = win[:, :, 0, 0].long().tolist()  # value = frame index + 1, 0 = zero row
    assert rows[0] == [0, 0, 0, 0, 0, 1, 2, 3]  # 3 zero rows, frames -2..2
    assert rows[1] == [0, 1, 2, 3, 4, 5, 6, 7]  # frames -1..6
    assert rows[2] == [4, 5, 6, 7, 8, 9, 10, 11]  # frames 3..10
    assert rows[3] == [8, 9, 10, 11, 0, 0, 0, 0]  # past the audio: zero rows


def test_length_rounding_and_size_errors():
    assert hc.round_length(97) == (97, "")
    n, note = hc.round_length(100)
    assert n == 97 and "rounded down to 97" in note
    with pytest.raises(ValueError, match="width: 840 is not a positive multiple of 16"):
        hc.check_size(840, 480)
    with pytest.raises(ValueError, match="height"):
        hc.check_size(832, 0)


def test_zero_vae_equals_encoded_zero_video(vae):
    hc.ZERO_VAE_CACHE.clear()
    got3 = hc.zero_vae_latents(vae, 32, 16, 3)
    direct = vae.encode(torch.full((9, 16, 32, 3), 0.5))  # 9 frames = 3 latent frames, 0.5 = official 0
    torch.testing.assert_close(got3, direct.float())
    # causal VAE: a shorter request is served from the cache and equals its own encoding
    got2 = hc.zero_vae_latents(vae, 32, 16, 2)
    torch.testing.assert_close(got2, vae.encode(torch.full((5, 16, 32, 3), 0.5)).float(), atol=1e-5, rtol=1e-5)


def test_condition_modes_and_bad_input(vae):
    img = torch.rand(40, 30, 3)
    feats = torch.randn(20, 5, 1280)
    c = hc.build_condition(vae, 32, 16, -1, images=[img, img], speakers=[feats])
    assert c.mode == "TIA" and c.frames == 17 and c.n_ref == 2 and c.ref_latents.shape == (1, 16, 2, 2, 4)
    assert any("rounded down to 17" in n for n in c.notes)
    silent = hc.build_condition(vae, 32, 16, 9, speakers=[torch.zeros(20, 5, 1280)])
    assert silent.mode == "T" and silent.n_ref == 1 and any("silent" in n for n in silent.notes)
    with pytest.raises(ValueError, match="at most 1"):
        hc.build_condition(vae, 32, 16, 9, images=[img, img], max_references=1)
    with pytest.raises(ValueError, match="-1 .*needs non-silent audio"):
        hc.build_condition(vae, 32, 16, -1)
    with pytest.raises(ValueError, match="every track needs its own mask"):
        hc.build_condition(vae, 32, 16, 9, speakers=[feats, feats])


def test_pass_inputs_17b_and_1_7b(vae):
    img = torch.rand(16, 32, 3)
    c = hc.build_condition(vae, 32, 16, 9, images=[img], speakers=[torch.randn(9, 5, 1280)])
    scale = lambda x: x * 2.0 + 1.0  # stands in for process_latent_in
    y_on, y_null = hc.image_inputs(c, hc.ModelSpec(True, scale))
    t = c.latent_frames
    assert y_on.shape == (1, 20, t + 1, 2, 4)
    assert (y_on[:, :4, :t] == 0).all() and (y_on[:, :4, t:] == 1).all() and (y_null[:, :4, t:] == 1).all()
    zero = scale(hc.zero_vae_latents(vae, 32, 16, t + 1))
    torch.testing.assert_close(y_null[:, 4:], zero)
    torch.testing.assert_close(y_on[:, 4:, :t], zero[:, :, :t])
    torch.testing.assert_close(y_on[:, 4:, t:], scale(c.ref_latents))
    ref_on, ref_null = hc.image_inputs(c, hc.ModelSpec(False, scale))
    torch.testing.assert_close(ref_on, scale(c.ref_latents))
    assert (ref_null == 0).all() and ref_null.shape == (1, 16, 1, 2, 4)
    a_on, a_off = hc.audio_inputs(c, hc.ModelSpec(True, scale))
    assert a_on.shape == (1, t + 1, 8, 5, 1280) and (a_on[:, t:] == 0).all() and (a_off == 0).all()
    a_on, _ = hc.audio_inputs(c, hc.ModelSpec(False, scale))
    assert a_on.shape == (1, t, 8, 5, 1280)  # core appends the reference rows for 1.7B
    pos = [[torch.ones(1, 3, 8), {"audio_embed": "stale", "reference_latents": ["stale"]}]]
    neg = [[torch.zeros(1, 3, 8), {}]]
    p = hc.pass_conditioning(pos, neg, c, hc.ModelSpec(True, scale), frozenset([IMAGE]))
    assert p[0][0].sum() == 0 and "reference_latents" not in p[0][1]
    assert (p[0][1]["audio_embed"] == 0).all()
    torch.testing.assert_close(p[0][1]["model_conds"][hc.Y_KEY].cond, y_on)
    p = hc.pass_conditioning(pos, neg, c, hc.ModelSpec(True, scale), frozenset([TEXT, AUDIO]))
    assert p[0][0].sum() > 0 and p[0][1]["audio_embed"].abs().sum() > 0
    torch.testing.assert_close(p[0][1]["model_conds"][hc.Y_KEY].cond, y_null)
