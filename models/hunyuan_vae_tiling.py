"""The official HunyuanVideo VAE tiled decode, around any whole-tile decode function.

The official inference decodes with tiling on (`hyvideo/config.py:204-208`, `--vae-tiling` defaults to
True; `pipeline_hunyuan_video.py:1139-1141` calls `vae.enable_tiling()` before decoding) and encodes the
reference image untiled (`inference.py:858` runs before the first `enable_tiling()`). The rule, read from
`hyvideo/vae/autoencoder_kl_causal_3d.py:121-132, 297-312, 343-531` (Tencent-Hunyuan/HunyuanVideo-I2V at
1481c1d):

- tiles are `sample_size` px square (256, the VAE's config.json) and `sample_tsize` frames long (64),
  i.e. 32 x 32 latent positions and 16 latent frames (+ 1 frame of causal context);
- tiles start every 3/4 tile (24 latent positions, 12 latent frames); time is split first when the clip
  has more than 16 latent frames, each time tile split in space when it is wider or taller than 32;
- each tile is blended linearly over the first 1/4 tile (64 px, 16 frames) with the already blended
  previous tile (above first, then left), then cut to the stride (192 px, 48 frames; the very first time
  tile keeps 49); a time tile after the first drops its first decoded frame before blending.

The result equals diffusers' `AutoencoderKLHunyuanVideo` tiling with the same tile sizes and strides.
Only the previous row / tile is kept while stitching, so memory stays at one row of decoded tiles.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class TileSpec:
    """Official tile geometry (`AutoencoderKLCausal3D.__init__`, config.json of the 884-16c VAE)."""

    sample_size: int = 256  # config.json `sample_size`: tile side in pixels
    sample_frames: int = 64  # config.json `sample_tsize`: tile length in frames
    overlap: float = 0.25  # `tile_overlap_factor`
    spatial_ratio: int = 8  # 2 ** (len(block_out_channels) - 1)
    time_ratio: int = 4

    @property
    def latent_size(self) -> int:
        return int(self.sample_size / self.spatial_ratio)

    @property
    def latent_frames(self) -> int:
        return self.sample_frames // self.time_ratio

    @property
    def latent_stride(self) -> int:  # official `overlap_size` of the spatial decode
        return int(self.latent_size * (1 - self.overlap))

    @property
    def latent_frame_stride(self) -> int:  # official `overlap_size` of the temporal decode
        return int(self.latent_frames * (1 - self.overlap))

    @property
    def blend_pixels(self) -> int:
        return int(self.sample_size * self.overlap)

    @property
    def blend_frames(self) -> int:
        return int(self.sample_frames * self.overlap)

    def bounded_latent_shape(self, shape: tuple[int, ...]) -> tuple[int, ...]:
        """The largest latent tile this spec decodes at once (for memory estimates)."""
        s = list(shape)
        if len(s) == 5:
            s[2] = min(s[2], self.latent_frames + 1)
            s[3] = min(s[3], self.latent_size)
            s[4] = min(s[4], self.latent_size)
        return tuple(s)


OFFICIAL_TILES = TileSpec()

Decode = Callable[[torch.Tensor], torch.Tensor]


def _blend_into(previous: torch.Tensor, current: torch.Tensor, extent: int, dim: int) -> None:
    """Linear cross-fade of `current`'s first entries along `dim` from `previous`'s last ones, in place.

    Weights k / extent for k = 0 .. extent - 1, computed in float64 like the official Python-float weights.
    """
    extent = min(previous.shape[dim], current.shape[dim], extent)
    if extent <= 0:
        return
    w = torch.arange(extent, dtype=torch.float64) / extent
    shape = [1] * current.ndim
    shape[dim] = extent
    keep = w.to(current.dtype).to(current.device).view(shape)
    fade = (1 - w).to(current.dtype).to(current.device).view(shape)
    head = current.narrow(dim, 0, extent)
    tail = previous.narrow(dim, previous.shape[dim] - extent, extent)
    head.copy_(tail * fade + head * keep)


def _starts(length: int, stride: int) -> range:
    return range(0, length, stride)


def count_tiles(latent_shape: tuple[int, ...], spec: TileSpec = OFFICIAL_TILES) -> int:
    """How many tile decodes `tiled_decode` runs for a [B, C, T, H, W] latent (for progress bars)."""
    t, h, w = latent_shape[2:]

    def spatial(hh: int, ww: int) -> int:
        if hh > spec.latent_size or ww > spec.latent_size:
            return len(_starts(hh, spec.latent_stride)) * len(_starts(ww, spec.latent_stride))
        return 1

    if t > spec.latent_frames:
        return len(_starts(t, spec.latent_frame_stride)) * spatial(h, w)
    return spatial(h, w)


def spatial_tiled_decode(decode: Decode, z: torch.Tensor, spec: TileSpec = OFFICIAL_TILES, on_tile=None):
    """Official spatial tiling of one [B, C, T, H, W] latent (all its frames at once)."""
    size, stride = spec.latent_size, spec.latent_stride
    keep = spec.sample_size - spec.blend_pixels
    rows = []
    previous_row: list[torch.Tensor] = []
    for i in _starts(z.shape[3], stride):
        row: list[torch.Tensor] = []
        for j in _starts(z.shape[4], stride):
            if on_tile is not None:
                on_tile()
            tile = decode(z[:, :, :, i : i + size, j : j + size])
            if previous_row:
                _blend_into(previous_row[len(row)], tile, spec.blend_pixels, dim=3)
            if row:
                _blend_into(row[-1], tile, spec.blend_pixels, dim=4)
            row.append(tile)
        rows.append(torch.cat([t[:, :, :, :keep, :keep] for t in row], dim=4))
        previous_row = row
    return torch.cat(rows, dim=3)


def tiled_decode(decode: Decode, z: torch.Tensor, spec: TileSpec = OFFICIAL_TILES, on_tile=None) -> torch.Tensor:
    """Decode a [B, C, T, H, W] latent the way the official VAE does with tiling enabled.

    `decode` maps a latent tile to pixels (post-quant conv + decoder, before any clamping);
    `on_tile` is called before every tile decode (progress, cancel).
    """
    if z.ndim != 5:
        raise ValueError(f"latent: expected [B, C, T, H, W], got {tuple(z.shape)}")

    def decode_in_space(part: torch.Tensor) -> torch.Tensor:
        if part.shape[3] > spec.latent_size or part.shape[4] > spec.latent_size:
            return spatial_tiled_decode(decode, part, spec, on_tile)
        if on_tile is not None:
            on_tile()
        return decode(part)

    if z.shape[2] <= spec.latent_frames:
        return decode_in_space(z)
    keep = spec.sample_frames - spec.blend_frames
    pieces = []
    previous = None
    for n, i in enumerate(_starts(z.shape[2], spec.latent_frame_stride)):
        tile = decode_in_space(z[:, :, i : i + spec.latent_frames + 1])
        if n > 0:
            tile = tile[:, :, 1:]  # the frame decoded from the causal context frame
            _blend_into(previous, tile, spec.blend_frames, dim=2)
        pieces.append(tile[:, :, : keep + 1 if n == 0 else keep])
        previous = tile
    return torch.cat(pieces, dim=2)
