"""HunyuanVideo VAE: official key layout -> core VAE, manifest of the real VAE and parity with diffusers
(whole-clip pass on every host; core's rolling chunks only as the low-memory option)."""

import hv_fixtures.hunyuan as fx
import pytest
import torch
from humanvideo.loaders import hunyuan_vae as hv


def test_real_vae_manifest_converts_to_core_keys():
    from comfy.ldm.models.autoencoder import AutoencoderKL
    from diffusers import AutoencoderKLHunyuanVideo

    with torch.device("meta"):
        official = AutoencoderKLHunyuanVideo().state_dict()  # block_out (128, 256, 512, 512), 16 latent channels
    core_sd = hv.to_core_layout(dict(official))
    ddconfig = hv.ddconfig_from_state_dict(core_sd)
    assert {k: ddconfig[k] for k in hv.CORE_DDCONFIG} == hv.CORE_DDCONFIG and ddconfig["z_channels"] == 16
    with torch.device("meta"):
        core = AutoencoderKL(ddconfig=ddconfig, embed_dim=16)
    assert {k: tuple(v.shape) for k, v in core.state_dict().items()} == {k: tuple(v.shape) for k, v in core_sd.items()}


def test_tiny_official_vae_matches_diffusers(tmp_path):
    from diffusers import AutoencoderKLHunyuanVideo

    fx.gen_vae(tmp_path)
    vae = hv.load_hunyuan_vae(str(tmp_path / "vae" / fx.VAE_DIR / "pytorch_model.pt"))
    ref = AutoencoderKLHunyuanVideo(**fx.TINY_VAE)
    ref.load_state_dict(fx.tiny_vae_state_dict())
    ref.eval()
    torch.manual_seed(0)
    video = torch.rand(5, 32, 48, 3)  # 5 frames -> 2 latent frames
    latent = vae.encode(video)
    assert latent.shape == (1, 16, 2, 4, 6)
    with torch.no_grad():
        x = video.permute(3, 0, 1, 2)[None] * 2 - 1
        expected = ref.encode(x).latent_dist.mode()  # official encodes with mode()
    torch.testing.assert_close(latent, expected, atol=2e-4, rtol=2e-4)
    frames = vae.decode(latent)
    with torch.no_grad():
        dec = ref.decode(expected).sample
    dec = ((dec[0].permute(1, 2, 3, 0) + 1) / 2).clamp(0, 1)
    torch.testing.assert_close(frames.reshape(dec.shape), dec, atol=2e-4, rtol=2e-4)


@pytest.fixture(scope="module")
def vae_file(tmp_path_factory):
    d = tmp_path_factory.mktemp("vae")
    fx.gen_vae(d)
    return str(d / "vae" / fx.VAE_DIR / "pytorch_model.pt")


@pytest.fixture(scope="module")
def reference():
    from diffusers import AutoencoderKLHunyuanVideo

    ref = AutoencoderKLHunyuanVideo(**fx.TINY_VAE)
    ref.load_state_dict(fx.tiny_vae_state_dict())
    ref.use_framewise_encoding = ref.use_framewise_decoding = False  # the official whole-clip pass
    return ref.eval()


def test_whole_clip_pass_matches_diffusers_on_long_clips(vae_file, reference):
    """13 frames span several of newer core's rolling chunks (1 + 8 + 4 frames in, 2 latent frames out)."""
    vae = hv.load_hunyuan_vae(vae_file)
    video = torch.rand(13, 16, 24, 3, generator=torch.Generator().manual_seed(3))
    x = video.permute(3, 0, 1, 2)[None] * 2 - 1
    with torch.no_grad():
        expected = reference.encode(x).latent_dist.mode()
        decoded = reference.decode(expected).sample
    latent = vae.encode(video)
    torch.testing.assert_close(latent, expected, atol=2e-5, rtol=1e-5)
    frames = vae.decode(expected)
    torch.testing.assert_close(frames.reshape(13, 16, 24, 3), ((decoded[0].permute(1, 2, 3, 0) + 1) / 2).clamp(0, 1))
    if hv.has_rolling_pass(vae):  # newer core: the rolling option is core's own pass, which differs
        rolling = hv.load_hunyuan_vae(vae_file, temporal_pass=hv.PASS_ROLLING)
        assert (rolling.encode(video) - expected).abs().max() > 1e-3
        assert (rolling.decode(expected).reshape(13, 16, 24, 3) - frames.reshape(13, 16, 24, 3)).abs().max() > 1e-3
    else:
        with pytest.raises(ValueError, match="temporal_pass.*whole clip"):
            hv.load_hunyuan_vae(vae_file, temporal_pass=hv.PASS_ROLLING)


def test_memory_estimates_follow_the_pass_and_tiles(vae_file):
    dt = torch.float32
    whole = hv.load_hunyuan_vae(vae_file, decode_tiling=hv.TILES_OFF)
    long, short = (1, 16, 33, 88, 156), (1, 16, 9, 88, 156)  # 129 / 33 frames at 1248x704
    assert whole.memory_used_decode(long, dt) > 3.5 * whole.memory_used_decode(short, dt)  # grows with frames
    assert whole.memory_used_encode((1, 3, 129, 704, 1248), dt) > 10 * whole.memory_used_encode(
        (1, 3, 9, 704, 1248), dt
    )
    tiled = hv.load_hunyuan_vae(vae_file)  # official tiles: one 17 x 32 x 32 latent tile at a time
    assert tiled.memory_used_decode(long, dt) == whole.memory_used_decode((1, 16, 17, 32, 32), dt)
    if hv.has_rolling_pass(tiled):
        rolling = hv.load_hunyuan_vae(vae_file, temporal_pass=hv.PASS_ROLLING, decode_tiling=hv.TILES_OFF)
        assert rolling.memory_used_decode(long, dt) == rolling.memory_used_decode(short, dt)  # at most 8 frames live
        assert rolling.memory_used_decode(long, dt) < whole.memory_used_decode(long, dt)


def test_bad_pass_names_are_refused(vae_file):
    with pytest.raises(ValueError, match="decode_tiling"):
        hv.load_hunyuan_vae(vae_file, decode_tiling="tiles please")
    with pytest.raises(ValueError, match="temporal_pass"):
        hv.load_hunyuan_vae(vae_file, temporal_pass="fast")


def test_foreign_vae_is_rejected(tmp_path):
    path = tmp_path / "sd_vae.pt"
    torch.save({"decoder.conv_in.weight": torch.zeros(512, 4, 3, 3)}, path)
    with pytest.raises(ValueError, match="not a HunyuanVideo causal 3-D VAE"):
        hv.load_hunyuan_vae(str(path))
