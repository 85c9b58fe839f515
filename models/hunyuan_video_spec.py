"""HunyuanVideo-I2V release facts: the DiT's hyper-parameters and what differs between the two I2V releases.

One place for what the official code fixes per release (Tencent-Hunyuan/HunyuanVideo-I2V `hyvideo/modules/
models.py` `HUNYUAN_VIDEO_CONFIG`, `hyvideo/inference.py`, the official README); the loaders check files
against it and the samplers condition and decode by it.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class HunyuanDiTConfig:
    """HYVideo-T/2 hyper-parameters (`hyvideo/modules/models.py`, `HUNYUAN_VIDEO_CONFIG`)."""

    in_channels: int = 16
    out_channels: int = 16
    hidden_size: int = 3072
    heads: int = 24
    double_blocks: int = 20
    single_blocks: int = 40
    mlp_ratio: float = 4.0
    patch_size: tuple[int, int, int] = (1, 2, 2)
    text_dim: int = 4096  # LLaVA-Llama-3 hidden size
    pooled_dim: int = 768  # CLIP-L pooled output
    refiner_blocks: int = 2
    guidance_embed: bool = True

    @property
    def head_dim(self) -> int:
        return self.hidden_size // self.heads

    @property
    def mlp_hidden(self) -> int:
        return int(self.hidden_size * self.mlp_ratio)


@dataclass(frozen=True)
class HunyuanI2VRelease:
    """What differs between the two official I2V checkpoints (official README, hyvideo/modules/models.py)."""

    name: str
    condition_type: str  # official `--i2v-condition-type`
    in_channels: int
    guidance_embed: bool
    image_interleave: int  # MLLM image tokens kept: 576 / interleave
    drop_first_frames: int  # pixel frames the official pipeline removes from the output


RELEASE_V1 = HunyuanI2VRelease("v1 (concat)", "latent_concat", 33, False, 2, 4)
RELEASE_V2 = HunyuanI2VRelease("v2 (replace)", "token_replace", 16, True, 4, 0)
RELEASES = {r.name: r for r in (RELEASE_V1, RELEASE_V2)}

REAL_V1 = HunyuanDiTConfig(in_channels=33, guidance_embed=False)
REAL_V2 = HunyuanDiTConfig(in_channels=16, guidance_embed=True)


def release_for(in_channels: int, guidance_embed: bool) -> HunyuanI2VRelease:
    if in_channels == 33:
        if guidance_embed:
            log.warning("HunyuanVideo-I2V: 33-channel DiT with a guidance embedding; treating it as v1 (concat)")
        return RELEASE_V1
    if in_channels == 16:
        if not guidance_embed:
            raise ValueError(
                "model: 16-channel HunyuanVideo DiT without 'guidance_in'; the I2V v2 release always has it "
                "(official weights need --embedded-cfg-scale), so this is not a HunyuanVideo-I2V checkpoint"
            )
        return RELEASE_V2
    if in_channels == 32:
        raise ValueError("model: 32 input channels is SkyReels-I2V, not an official HunyuanVideo-I2V release")
    raise ValueError(f"model: {in_channels} input channels matches no HunyuanVideo-I2V release (33 = v1, 16 = v2)")


def release_of_model(model) -> HunyuanI2VRelease:
    """The I2V release of a core `MODEL` (from any loader), read from the network itself."""
    dm = getattr(getattr(model, "model", None), "diffusion_model", None)
    params = getattr(dm, "params", None)
    if params is None or not hasattr(params, "guidance_embed") or len(getattr(dm, "patch_size", ())) != 3:
        raise ValueError("model: not a HunyuanVideo model (load it with the HunyuanVideo-I2V loader or UNETLoader)")
    return release_for(params.in_channels, params.guidance_embed)
