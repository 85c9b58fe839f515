"""Our HuMo sampler under core's context windows (README, "Works with core nodes").

Cores whose HuMo model slices its audio per context window (ComfyUI 0.33: ``WAN21_HuMo.
resize_cond_for_context_window``) run our HuMo sampler window by window: each forward sees the audio rows of
its own latent frames and, for HuMo-1.7B, the reference image. Older cores do not slice the audio (0.3.75
fails inside the model), so the test is skipped there.
"""

from __future__ import annotations

import inspect

import comfy.model_base
import hv_fixtures
import pytest
import torch
from humanvideo.loaders import humo_dit, wan_vae
from humanvideo.samplers import guidance as gd
from humanvideo.samplers import humo_conditioning as hc
from humanvideo.samplers import humo_guider as hg

pytestmark = pytest.mark.skipif(
    not hasattr(comfy.model_base.WAN21_HuMo, "resize_cond_for_context_window"),
    reason="this core's context windows do not slice HuMo's audio",
)

W, H, FRAMES = 32, 32, 33  # 9 latent frames of 4x4
WINDOW, OVERLAP = 17, 4  # frames: 5 latent frames per window, 1 shared


def text(seed: int) -> torch.Tensor:
    return torch.randn(1, 6, 4096, generator=torch.Generator().manual_seed(seed))


def test_core_context_windows_give_each_window_its_audio_and_the_reference(tmp_path):
    from comfy_extras.nodes_context_windows import WanContextWindowsManualNode

    hv_fixtures.generate(tmp_path, ["humo_1_7b", "wan21_vae"])
    # HuMo-1.7B layout: the reference travels beside the latent, not in it.
    model, _ = humo_dit.load_humo_model(tmp_path / "diffusion_models" / "HuMo-1.7B" / "ema.pth")
    vae = wan_vae.load_wan_vae(tmp_path / "vae" / "Wan2.1_VAE.pth")
    cond = hc.build_condition(
        vae,
        W,
        H,
        FRAMES,
        images=[torch.rand(20, 28, 3, generator=torch.Generator().manual_seed(3))],
        speakers=[torch.randn(FRAMES, 5, 1280, generator=torch.Generator().manual_seed(4))],
    )
    pos, neg = [[text(1), {hc.COND_KEY: cond}]], [[text(2), {hc.COND_KEY: cond}]]
    latent = {"samples": torch.zeros(1, 16, cond.latent_frames, H // 8, W // 8)}
    options = (
        {"freenoise": False} if "freenoise" in inspect.signature(WanContextWindowsManualNode.execute).parameters else {}
    )
    windowed = WanContextWindowsManualNode.execute(
        model,
        context_length=WINDOW,
        context_overlap=OVERLAP,
        context_schedule="standard_static",
        context_stride=1,
        closed_loop=False,
        fuse_method="pyramid",
        **options,
    ).result[0]

    seen = []
    net = windowed.model.diffusion_model
    forward = net.forward

    def recording(x, timestep, context, *args, **kwargs):
        seen.append((x.shape[2], kwargs["audio_embed"].shape[1], kwargs["reference_latent"].shape[2]))
        return forward(x, timestep, context, *args, **kwargs)

    net.forward = recording
    try:
        out, _ = hg.sample_humo(
            windowed, pos, neg, latent, gd.humo_1_7b_plan(), seed=1, steps=2, solver="euler", progress=False
        )
    finally:
        net.forward = forward
    assert out["samples"].shape == latent["samples"].shape and torch.isfinite(out["samples"]).all()
    frames_per_forward = {frames for frames, _, _ in seen}
    assert max(frames_per_forward) < cond.latent_frames, f"no windowing happened: {seen}"
    assert all(audio == frames and ref == cond.n_ref for frames, audio, ref in seen), seen
