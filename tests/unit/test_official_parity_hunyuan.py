"""HunyuanVideo-I2V pipeline steps against numbers computed by running the official code (Tencent-Hunyuan/
HunyuanVideo-I2V; provenance in data/hunyuan_official_parity.json):

- RIFLEx above 192 frames (`hyvideo/inference.py` get_rotary_pos_embed): index k and the stretched
  temporal RoPE frequency, on our clone of core's network;
- the official tiled VAE decode (`hyvideo/vae/autoencoder_kl_causal_3d.py` with tiling on, the official
  default): tile counts and the stitched result around an analytic stand-in decoder at the real tile sizes,
  and parity with diffusers' independent tiled decode on the tiny official-layout VAE.
"""

import json
from pathlib import Path

import hv_fixtures.hunyuan as fx
import pytest
import torch
from humanvideo.loaders import hunyuan_dit as hd
from humanvideo.loaders import hunyuan_vae as hvae
from humanvideo.models import hunyuan_vae_tiling as tiling
from humanvideo.samplers import hunyuan_i2v as hi

OFFICIAL = json.loads((Path(__file__).parent / "data" / "hunyuan_official_parity.json").read_text())


# ----------------------------------------------------------------------------------------------- RIFLEx
@pytest.fixture(scope="module")
def v2_model():
    model, _ = hd.load_state_dict_as_model(fx.tiny_dit_state_dict("v2"), "fp32")
    return model


def rope_of(model, latent_frames: int) -> torch.Tensor:
    """The patched model's RoPE for a latent [1, 16, T, 4, 4] (2 x 2 tokens per frame): [T, 2x2, 64, 2, 2]."""
    dm = model.model.diffusion_model
    model.patch_model()
    try:
        ids = dm.img_ids(torch.zeros(1, 16, latent_frames, 4, 4))
        return dm.pe_embedder(ids)[0, 0].reshape(latent_frames, 4, -1, 2, 2)
    finally:
        model.unpatch_model()


@pytest.mark.parametrize("frames", sorted(OFFICIAL["riflex"], key=int))
def test_riflex_matches_official_rope(v2_model, frames):
    ref = OFFICIAL["riflex"][frames]
    frames, latent_frames = int(frames), ref["latent_frames"]
    assert latent_frames == (frames - 1) // 4 + 1
    official_freq = torch.tensor(ref["freq_t1"], dtype=torch.float64)
    plain = 256.0 ** (-torch.arange(8, dtype=torch.float64) / 8)  # theta 256, 16 temporal dims
    changed = torch.nonzero((official_freq - plain).abs() > 1e-6).flatten().tolist()
    k = hi.riflex_index(frames)
    assert changed == ([] if k is None else [k - 1])

    patched = hi.with_riflex(v2_model, frames, latent_frames)
    assert (patched is v2_model) == (k is None)
    pe = rope_of(patched, latent_frames)
    temporal = pe[:, 0, :8]  # token (h 0, w 0) of every frame, the 8 temporal frequencies
    cos, sin = temporal[..., 0, 0], temporal[..., 1, 0]
    assert torch.equal(temporal[..., 0, 1], -sin) and torch.equal(temporal[..., 1, 1], cos)
    angle_t1 = torch.atan2(sin[1].double(), cos[1].double())
    torch.testing.assert_close(angle_t1, official_freq, atol=1e-7, rtol=1e-6)
    torch.testing.assert_close(cos[-1], torch.tensor(ref["cos_last"]), atol=2e-5, rtol=0)
    torch.testing.assert_close(sin[-1], torch.tensor(ref["sin_last"]), atol=2e-5, rtol=0)
    # the spatial frequencies are untouched
    torch.testing.assert_close(pe[:, :, 8:], rope_of(v2_model, latent_frames)[:, :, 8:], atol=0, rtol=0)


def test_riflex_index_follows_the_official_rule():
    assert [hi.riflex_index(n) for n in (129, 189, 192, 193, 297, 397, 401, 501, 601, 1025)] == [
        None,
        None,
        None,
        4,
        5,
        6,
        6,
        7,
        8,
        8,
    ]


def test_sampler_applies_riflex_above_192_frames(v2_model, monkeypatch, tmp_path):
    monkeypatch.setitem(hi.RESOLUTION_BASES, "tiny", 64)
    fx.gen_vae(tmp_path)
    vae = hvae.load_hunyuan_vae(str(tmp_path / "vae" / fx.VAE_DIR / "pytorch_model.pt"))
    cond = [[torch.randn(1, 12, fx.TINY_TEXT_DIM), {"pooled_output": torch.randn(1, 768), hi.INTERLEAVE_KEY: 4}]]
    seen = []
    real = hi.with_riflex

    def spy(model, video_length, latent_frames):
        patched = real(model, video_length, latent_frames)
        seen.append((video_length, latent_frames, patched is not model))
        return patched

    monkeypatch.setattr(hi, "with_riflex", spy)
    for length in (193, 189):
        p, n, latent, _ = hi.prepare_i2v(v2_model, vae, cond, cond, torch.rand(1, 32, 32, 3), length, "tiny")
        out, _, _ = hi.sample_i2v(v2_model, p, n, latent, seed=0, steps=1, progress=False)
        assert torch.isfinite(out["samples"]).all()
    assert seen == [(193, 49, True), (189, 48, False)]


# ------------------------------------------------------------------------------------------ tiled decode
def fake_decode(z: torch.Tensor) -> torch.Tensor:
    """Analytic stand-in for the decoder: causal 4x time / 8x space upsampling of channel 0, minus the
    tile's mean, plus a ramp in tile coordinates, through tanh (so every seam and blend weight shows)."""
    x = z[:, :1]
    x = torch.cat([x[:, :, :1], x[:, :, 1:].repeat_interleave(4, 2)], 2)
    x = x.repeat_interleave(8, 3).repeat_interleave(8, 4)
    t, h, w = x.shape[2:]
    ramp = (
        (torch.arange(t) / t)[:, None, None]
        + (torch.arange(h) / h)[None, :, None]
        - (torch.arange(w) / w)[None, None, :]
    )
    return torch.tanh(x - x.mean() + ramp)


@pytest.mark.parametrize("case", ["temporal_and_spatial", "spatial_only"])
def test_tiled_decode_matches_official_numbers(case):
    ref = OFFICIAL["tiles"][case]
    z = torch.randn(*ref["latent_shape"], generator=torch.Generator().manual_seed(0))
    calls = []

    def decode(tile):
        calls.append(tuple(tile.shape))
        return fake_decode(tile)

    y = tiling.tiled_decode(decode, z)[0, 0].double()
    assert list(y.shape) == ref["pixel_shape"] and len(calls) == ref["tile_decodes"]
    assert tiling.count_tiles(tuple(z.shape)) == ref["tile_decodes"]
    t, h, w = y.shape
    got = {
        "frame_mean": y.mean((1, 2)),
        "frame_rms": y.pow(2).mean((1, 2)).sqrt(),
        "row8_mean": y.reshape(t, h // 8, 8, w).mean((0, 2, 3)),
        "col8_mean": y.reshape(t, h, w // 8, 8).mean((0, 1, 3)),
    }
    for name, values in got.items():
        torch.testing.assert_close(values, torch.tensor(ref[name], dtype=torch.float64), atol=2e-6, rtol=1e-5)


@pytest.mark.parametrize("size", ["720p_129", "540p_129", "720p_1_frame"])
def test_tile_counts_at_real_sizes_match_official(size):
    ref = OFFICIAL["tiles"]["tile_counts"][size]
    assert tiling.count_tiles(tuple(ref["latent_shape"])) == ref["tile_decodes"]
    largest = tiling.OFFICIAL_TILES.bounded_latent_shape(tuple(ref["latent_shape"]))
    assert list(largest[2:]) == ref["largest_tile"]


def test_official_tile_geometry():
    spec = tiling.OFFICIAL_TILES
    assert (spec.latent_size, spec.latent_stride, spec.blend_pixels, spec.sample_size - spec.blend_pixels) == (
        32,
        24,
        64,
        192,
    )
    assert (spec.latent_frames, spec.latent_frame_stride, spec.blend_frames) == (16, 12, 16)


SMALL_TILES = tiling.TileSpec(sample_size=32, sample_frames=16)  # the official rule, scaled to the tiny VAE


@pytest.fixture(scope="module")
def tiny_vae_sd():
    return hvae.to_core_layout(fx.tiny_vae_state_dict())


def test_tiled_vae_decode_equals_diffusers_tiling(tiny_vae_sd):
    """Core's network in official tiles == diffusers' AutoencoderKLHunyuanVideo tiling with the same tiles
    (diffusers' tiling equals the official one at these settings)."""
    from diffusers import AutoencoderKLHunyuanVideo

    vae = hvae.build_vae(dict(tiny_vae_sd))
    hvae.configure_passes(vae, spec=SMALL_TILES)
    ref = AutoencoderKLHunyuanVideo(**fx.TINY_VAE)
    ref.load_state_dict(fx.tiny_vae_state_dict())
    ref.eval().enable_tiling(
        tile_sample_min_height=32,
        tile_sample_min_width=32,
        tile_sample_min_num_frames=16,
        tile_sample_stride_height=24,
        tile_sample_stride_width=24,
        tile_sample_stride_num_frames=12,
    )
    z = torch.randn(1, 16, 5, 3, 5, generator=torch.Generator().manual_seed(0))  # 2 time x 1 x 2 space tiles
    assert tiling.count_tiles(tuple(z.shape), SMALL_TILES) == 4
    with torch.no_grad():
        expected = ((ref.decode(z).sample[0].permute(1, 2, 3, 0) + 1) / 2).clamp(0, 1)
    frames = vae.decode(z).reshape(expected.shape)
    torch.testing.assert_close(frames, expected, atol=2e-5, rtol=1e-5)

    untiled = hvae.build_vae(dict(tiny_vae_sd))
    hvae.configure_passes(untiled, decode_tiling=hvae.TILES_OFF)
    assert (untiled.decode(z).reshape(expected.shape) - expected).abs().max() > 1e-3  # the tiles matter

    # core's own tiled decode (VAE Decode (Tiled)) is not tiled a second time by ours: with one core tile
    # covering the latent it is the untiled decode
    with torch.inference_mode():  # as the server runs nodes (core's tiler writes in place)
        core_tiled = vae.decode_tiled(z, tile_x=8, tile_y=8, overlap=1, tile_t=8, overlap_t=1)
        torch.testing.assert_close(core_tiled.reshape(expected.shape), untiled.decode(z).reshape(expected.shape))
