"""SyncNet (Chung & Zisserman, "Out of time: automated lip sync in the wild", 2016): the audio-visual
network behind the Sync-C / Sync-D lip-sync metrics.

Two VGG-M style streams map 0.2 s of speech and 5 video frames of a mouth into one 1024-d space, where
matching pairs lie close. This is the ``syncnet_v2.model`` network of syncnet_python
(joonson/syncnet_python:SyncNetModel.py, copied as bytedance/LatentSync:eval/syncnet/syncnet.py);
the layer order below reproduces its ``nn.Sequential`` indices, so the official weight names load
unchanged.

- lip stream: (B, 3, 5, 224, 224) BGR pixel values 0..255, not normalised -> (B, 1024)
- audio stream: (B, 1, 13, 20) MFCC (13 coefficients x 20 frames at 100 Hz) -> (B, 1024)
"""

from __future__ import annotations

import torch
from torch import nn

EMBED_DIM = 1024  # num_layers_in_fc_layers of the released model
WINDOW_FRAMES = 5  # video frames per lip window (0.2 s at 25 fps)
MFCC_PER_WINDOW = 20  # MFCC frames per audio window (0.2 s at 100 Hz)


def _conv_bn_relu(conv: nn.Module, norm: nn.Module) -> list[nn.Module]:
    return [conv, norm, nn.ReLU(inplace=True)]


def _audio_trunk() -> nn.Sequential:
    """13 x 20 MFCC patch -> 512 x 1 x 1. The 1x1 max-pool at index 3 is a no-op kept for the indices."""
    layers: list[nn.Module] = []
    layers += _conv_bn_relu(nn.Conv2d(1, 64, 3, padding=1), nn.BatchNorm2d(64))
    layers += [nn.MaxPool2d(1, 1)]
    layers += _conv_bn_relu(nn.Conv2d(64, 192, 3, padding=1), nn.BatchNorm2d(192))
    layers += [nn.MaxPool2d(3, stride=(1, 2))]
    layers += _conv_bn_relu(nn.Conv2d(192, 384, 3, padding=1), nn.BatchNorm2d(384))
    layers += _conv_bn_relu(nn.Conv2d(384, 256, 3, padding=1), nn.BatchNorm2d(256))
    layers += _conv_bn_relu(nn.Conv2d(256, 256, 3, padding=1), nn.BatchNorm2d(256))
    layers += [nn.MaxPool2d(3, stride=2)]
    layers += _conv_bn_relu(nn.Conv2d(256, 512, (5, 4)), nn.BatchNorm2d(512))
    return nn.Sequential(*layers)


def _lip_trunk() -> nn.Sequential:
    """5 x 224 x 224 BGR frames -> 512 x 1 x 1 x 1; only the first convolution sees time (all 5 frames)."""
    layers: list[nn.Module] = []
    layers += _conv_bn_relu(nn.Conv3d(3, 96, (5, 7, 7), stride=(1, 2, 2)), nn.BatchNorm3d(96))
    layers += [nn.MaxPool3d((1, 3, 3), stride=(1, 2, 2))]
    layers += _conv_bn_relu(nn.Conv3d(96, 256, (1, 5, 5), stride=(1, 2, 2), padding=(0, 1, 1)), nn.BatchNorm3d(256))
    layers += [nn.MaxPool3d((1, 3, 3), stride=(1, 2, 2), padding=(0, 1, 1))]
    layers += _conv_bn_relu(nn.Conv3d(256, 256, (1, 3, 3), padding=(0, 1, 1)), nn.BatchNorm3d(256))
    layers += _conv_bn_relu(nn.Conv3d(256, 256, (1, 3, 3), padding=(0, 1, 1)), nn.BatchNorm3d(256))
    layers += _conv_bn_relu(nn.Conv3d(256, 256, (1, 3, 3), padding=(0, 1, 1)), nn.BatchNorm3d(256))
    layers += [nn.MaxPool3d((1, 3, 3), stride=(1, 2, 2))]
    layers += _conv_bn_relu(nn.Conv3d(256, 512, (1, 6, 6)), nn.BatchNorm3d(512))
    return nn.Sequential(*layers)


def _head(embed_dim: int) -> nn.Sequential:
    return nn.Sequential(nn.Linear(512, 512), nn.BatchNorm1d(512), nn.ReLU(inplace=True), nn.Linear(512, embed_dim))


class SyncNet(nn.Module):
    """The two-stream SyncNet; weight names as in ``syncnet_v2.model`` (netcnnaud / netfcaud / netcnnlip / netfclip)."""

    def __init__(self, embed_dim: int = EMBED_DIM):
        super().__init__()
        self.embed_dim = embed_dim
        self.netcnnaud = _audio_trunk()
        self.netfcaud = _head(embed_dim)
        self.netcnnlip = _lip_trunk()
        self.netfclip = _head(embed_dim)

    def forward_aud(self, mfcc: torch.Tensor) -> torch.Tensor:
        """(B, 1, 13, 20) MFCC windows -> (B, embed_dim) audio embeddings (not normalised)."""
        return self.netfcaud(self.netcnnaud(mfcc).flatten(1))

    def forward_lip(self, frames: torch.Tensor) -> torch.Tensor:
        """(B, 3, 5, 224, 224) BGR 0..255 frame windows -> (B, embed_dim) lip embeddings (not normalised)."""
        return self.netfclip(self.netcnnlip(frames).flatten(1))
