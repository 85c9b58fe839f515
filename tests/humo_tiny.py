"""Tiny random-weight HuMo models built on core's own classes, for in-process tests: a HumoWanModel of either
size (in_dim 36: 17B layout, 16: 1.7B layout) as a core MODEL. The tiny Wan 2.1 VAE is
``hv_fixtures.humo.tiny_wan_vae``."""

from __future__ import annotations

import comfy.ldm.wan.model
import comfy.ops
import comfy.sd
import torch


def tiny_humo(in_dim: int, seed: int = 0):
    with torch.device("meta"):
        net = comfy.ldm.wan.model.HumoWanModel(
            in_dim=in_dim,
            dim=128,
            ffn_dim=256,
            num_heads=1,
            num_layers=2,
            text_dim=4096,
            out_dim=16,
            operations=comfy.ops.disable_weight_init,
        )
    g = torch.Generator().manual_seed(seed)
    # audio_proj alone has ~39M weights (fixed HuMo sizes): tile a 1M random pool to keep set-up fast on CPU.
    pool = torch.randn(1 << 20, generator=g) * 0.05

    def rand(shape):
        n = torch.Size(shape).numel()
        if n <= pool.numel():
            return torch.randn(shape, generator=g) * 0.05
        return pool.repeat(n // pool.numel() + 1)[:n].roll(int(torch.randint(0, n, (1,), generator=g))).reshape(shape)

    return comfy.sd.load_diffusion_model_state_dict({k: rand(v.shape) for k, v in net.state_dict().items()})
