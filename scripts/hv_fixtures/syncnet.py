"""Random-weight SyncNet in the real ``syncnet_v2.model`` format, in `models/latentsync`.

The file is what syncnet_python and LatentSync ship: a bare ``torch.save`` of the network's state dict
(``netcnnaud.*``, ``netfcaud.*``, ``netcnnlip.*``, ``netfclip.*``), written with torch's legacy
serialisation as files from before torch 1.6 are, and without BatchNorm ``num_batches_tracked``
counters, as files from before torch 0.4.1 are. SyncNet has one size, so the file has the real shapes
(13.6 M weights, 55 MB); only the values are random.

The values come from a seeded generator key by key (He-scaled weights), independent of how any
implementation initialises its layers; BatchNorm statistics are then measured on a generated clip. The
official code and ours load the same numbers from the file.
"""

from __future__ import annotations

import math
from pathlib import Path

import torch

from . import register

FILE_NAME = "syncnet_v2.model"


def _model_shapes() -> dict[str, tuple[int, ...]]:
    try:
        from humanvideo.models.syncnet import SyncNet  # loaded by tests/conftest.py
    except ImportError as e:  # pragma: no cover - only outside the test harness
        raise RuntimeError("the SyncNet fixture needs the pack loaded as `humanvideo` (tests/conftest.py)") from e
    with torch.device("meta"):
        model = SyncNet()
    return {k: tuple(v.shape) for k, v in model.state_dict().items() if not k.endswith(".num_batches_tracked")}


def _draw(seed: int) -> dict[str, torch.Tensor]:
    """He-scaled weights and small biases, one generator draw per key in the network's order."""
    gen = torch.Generator().manual_seed(seed)
    sd: dict[str, torch.Tensor] = {}
    for key, shape in _model_shapes().items():
        kind = key.rsplit(".", 1)[1]
        noise = torch.randn(shape, generator=gen, dtype=torch.float64)
        if kind == "weight" and len(shape) > 1:
            value = noise * math.sqrt(2.0 / math.prod(shape[1:]))
        elif kind in ("weight", "running_var"):  # BatchNorm scale and variance
            value = 1.0 + 0.1 * noise.abs()
        else:
            value = 0.1 * noise
        sd[key] = value.to(torch.float32).contiguous()
    # One output bias shared by both heads: embeddings sit around a common point, so the zero embeddings
    # that pad the +-15 frame offset search at the clip ends are never the closest match.
    common = 4.0 * torch.randn(sd["netfclip.3.bias"].shape, generator=gen, dtype=torch.float64)
    sd["netfclip.3.bias"] = sd["netfcaud.3.bias"] = common.to(torch.float32)
    return sd


@torch.no_grad()
def random_state_dict(seed: int = 0) -> dict[str, torch.Tensor]:
    """Deterministic random SyncNet weights whose BatchNorm statistics are measured on a generated clip
    (one training-mode pass, as real statistics are measured on data), so activations stay near unit
    scale through both streams."""
    from humanvideo.models import syncnet_eval
    from humanvideo.models.syncnet import SyncNet

    sd = _draw(seed)
    model = SyncNet()
    model.load_state_dict(sd, strict=False)
    for m in model.modules():
        if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
            m.momentum = 1.0  # the running statistics become this one batch's
    model.train()
    frames, pcm = parity_clip(16, seed=seed + 1)
    video = torch.from_numpy(frames).float().permute(3, 0, 1, 2)
    cc = torch.from_numpy(syncnet_eval.mfcc(pcm.astype("float64"))).float()[None]
    model.forward_lip(torch.stack([video[:, i : i + 5] for i in range(0, 10)]))
    model.forward_aud(torch.stack([cc[:, :, 4 * i : 4 * i + 20] for i in range(0, 10)]))
    out = model.state_dict()
    # Statistics rounded to 1/1024: a last-bit difference between machines in the measuring pass does
    # not reach the file.
    stats = {k: torch.round(out[k] * 1024) / 1024 for k in sd if k.endswith(("running_mean", "running_var"))}
    return {k: stats.get(k, out[k]).detach().clone().contiguous() for k in sd}


def write_syncnet(path: Path, seed: int = 0) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(random_state_dict(seed), path, _use_new_zipfile_serialization=False)
    return path


@register("syncnet")
def gen(models_dir: Path) -> list[Path]:
    return [write_syncnet(Path(models_dir) / "latentsync" / FILE_NAME, seed=0)]


def parity_clip(frames: int = 30, seed: int = 0):
    """A generated 25 fps face-crop clip for parity checks: (frames, 224, 224, 3) uint8 BGR crops whose
    lower middle (the mouth region of a SyncNet crop) opens and closes with the loudness of a synthesized
    voice, and that voice as 16 kHz int16 PCM (640 samples per frame)."""
    import numpy as np

    from .media import synthesized_voice

    rng = np.random.default_rng(seed)
    voice = synthesized_voice(frames / 25.0, 16000, seed=seed)
    pcm = np.clip(np.rint(voice.astype(np.float64) * 32768.0), -32768, 32767).astype(np.int16)
    loudness = np.sqrt((voice.reshape(frames, 640).astype(np.float64) ** 2).mean(1))
    opening = loudness / (loudness.max() + 1e-9)
    base = rng.integers(40, 216, size=(224, 224, 3)).astype(np.float64)
    out = np.empty((frames, 224, 224, 3), dtype=np.uint8)
    for t in range(frames):
        img = base + rng.normal(0.0, 6.0, size=base.shape)
        half = int(8 + 30 * opening[t])
        img[150 - half : 150 + half, 72:152] = (20.0, 30.0, 90.0)  # dark red mouth, BGR
        out[t] = np.clip(np.rint(img), 0, 255).astype(np.uint8)
    return out, pcm
