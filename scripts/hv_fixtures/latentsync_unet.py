"""Tiny random-weight LatentSync UNet in the official file format (`{"state_dict": ...}` torch file).

Same key names and structure as `latentsync_unet.pt` of LatentSync 1.5 / 1.6 (4 down / 4 up blocks,
2 layers per block, audio cross-attention on 384-d Whisper-tiny features, 20 motion modules with
position tables), with channel widths (32, 64, 96, 96) so it runs on a CPU in well under a second.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch
from torch import nn

from . import register

TINY_CHANNELS = (32, 64, 96, 96)  # widths change where the real ones do, so conv_shortcut keys match
_INIT_CLASSES = (nn.Linear, nn.Conv2d, nn.GroupNorm, nn.LayerNorm)


def _unet_module():
    try:
        from humanvideo.models import latentsync_unet  # loaded by tests/conftest.py
    except ImportError as e:  # pragma: no cover - only outside the test harness
        raise RuntimeError("the LatentSync fixture needs the pack loaded as `humanvideo` (tests/conftest.py)") from e
    return latentsync_unet


def randomize(model: nn.Module, seed: int) -> nn.Module:
    """Give every layer random weights (ComfyUI ops skip init): default torch init, then jitter so
    norms, biases and zero-initialised projections are all non-trivial."""
    torch.manual_seed(seed)
    with torch.no_grad():
        for module in model.modules():
            base = next((c for c in type(module).__mro__ if c in _INIT_CLASSES), None)
            if base is not None:
                base.reset_parameters(module)
        for _name, p in model.named_parameters():
            if p.ndim == 1:
                p.add_(0.1 * torch.randn_like(p))
    return model


def tiny_config(**overrides):
    m = _unet_module()
    return m.LatentSyncUNetConfig(block_out_channels=TINY_CHANNELS, **overrides)


def tiny_unet(seed: int = 0, **overrides) -> nn.Module:
    m = _unet_module()
    return randomize(m.LatentSyncUNet3D(tiny_config(**overrides)), seed)


def tiny_state_dict(seed: int = 0, **overrides) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone().contiguous() for k, v in tiny_unet(seed, **overrides).state_dict().items()}


@register("latentsync_unet")
def gen(models_dir: Path) -> list[Path]:
    """The same tiny UNet where users keep each release: models/latentsync/1.5/ and /1.6/ (the releases share
    one file name and layout; the folder says which one it is)."""
    out = Path(models_dir) / "latentsync" / "1.5" / "latentsync_unet.pt"
    out.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"state_dict": tiny_state_dict(seed=1247), "global_step": 0}, out)
    twin = Path(models_dir) / "latentsync" / "1.6" / "latentsync_unet.pt"
    twin.parent.mkdir(parents=True, exist_ok=True)
    os.link(out, twin)
    return [out, twin]
