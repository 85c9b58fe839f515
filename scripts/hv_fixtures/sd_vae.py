"""A tiny Stable Diffusion VAE in the diffusers layout of stabilityai/sd-vae-ft-mse (LatentSync's VAE)."""

from pathlib import Path

import torch
from safetensors.torch import save_file

from . import register


@register("sd_vae")
def sd_vae(models_dir: Path) -> list[Path]:
    from diffusers import AutoencoderKL

    torch.manual_seed(7)
    # Same block structure as sd-vae-ft-mse (4 levels, 2 resnets, mid attention, 4 latent channels), tiny widths.
    vae = AutoencoderKL(
        in_channels=3,
        out_channels=3,
        latent_channels=4,
        layers_per_block=2,
        norm_num_groups=32,
        block_out_channels=(32, 32, 32, 32),  # core fixes GroupNorm at 32 groups
        down_block_types=("DownEncoderBlock2D",) * 4,
        up_block_types=("UpDecoderBlock2D",) * 4,
    )
    folder = Path(models_dir) / "vae" / "sd-vae-ft-mse-tiny"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "diffusion_pytorch_model.safetensors"
    save_file({k: v.contiguous() for k, v in vae.state_dict().items()}, str(path))
    return [path]
