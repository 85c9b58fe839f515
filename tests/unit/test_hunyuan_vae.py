"""HunyuanVideo VAE: official key layout -> core VAE, manifest of the real VAE and parity with diffusers."""

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


def test_foreign_vae_is_rejected(tmp_path):
    path = tmp_path / "sd_vae.pt"
    torch.save({"decoder.conv_in.weight": torch.zeros(512, 4, 3, 3)}, path)
    with pytest.raises(ValueError, match="not a HunyuanVideo causal 3-D VAE"):
        hv.load_hunyuan_vae(str(path))
