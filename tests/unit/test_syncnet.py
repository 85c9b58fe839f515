"""SyncNet lip-sync scores: parity with the official evaluation, a negative control, the loader, bad inputs.

Parity numbers (tests/unit/data/syncnet_parity.json) were printed by the official code (LatentSync's
eval/syncnet/syncnet_eval.py and syncnet_python's SyncNetInstance.py) run outside this repository on the
same weight file and clip, which scripts/hv_fixtures/syncnet.py regenerates here.
"""

import json
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch
from humanvideo.loaders.syncnet import load_syncnet
from humanvideo.models import syncnet_eval
from humanvideo.models.syncnet import SyncNet
from hv_fixtures import syncnet as syncnet_fixture
from hv_fixtures.media import synthesized_voice

PARITY = json.loads((Path(__file__).parent / "data" / "syncnet_parity.json").read_text())


@pytest.fixture(scope="module")
def weights_file(tmp_path_factory) -> Path:
    return syncnet_fixture.write_syncnet(tmp_path_factory.mktemp("syncnet") / "syncnet_v2.model", seed=0)


@pytest.fixture(scope="module")
def parity_score(weights_file):
    frames, pcm = syncnet_fixture.parity_clip(30, seed=0)
    model = load_syncnet(str(weights_file))
    return syncnet_eval.score_clip(model, torch.from_numpy(frames), pcm.astype(np.float64))


# -- parity with the official evaluation ----------------------------------------------------------
def test_embeddings_match_official(parity_score):
    """float32 on the CPU: how oneDNN sums the convolutions depends on the thread setup the process starts
    with (OMP_NUM_THREADS=1 moves some entries of these magnitude-3 embeddings by up to 3e-4), so the
    tolerance is that of float32 summation order, far below what any wrong weight or layer would give."""
    s = parity_score
    assert s.lip_embeddings.shape == s.audio_embeddings.shape == (25, 1024)
    np.testing.assert_allclose(s.lip_embeddings[:, :16], PARITY["lip_first16"], rtol=1e-4, atol=5e-4)
    np.testing.assert_allclose(s.audio_embeddings[:, :16], PARITY["aud_first16"], rtol=1e-4, atol=5e-4)
    np.testing.assert_allclose(np.linalg.norm(s.lip_embeddings, axis=1), PARITY["lip_norm"], rtol=1e-4)
    np.testing.assert_allclose(np.linalg.norm(s.audio_embeddings, axis=1), PARITY["aud_norm"], rtol=1e-4)


def test_distances_offset_and_scores_match_official(parity_score):
    s = parity_score
    np.testing.assert_allclose(s.dists, PARITY["dists"], rtol=1e-5)
    np.testing.assert_allclose(s.mean_dists, PARITY["mean_dists"], rtol=1e-5)
    assert s.av_offset == PARITY["av_offset"] == PARITY["syncnet_python"]["av_offset"]
    assert s.sync_d == pytest.approx(PARITY["sync_d"], rel=1e-5)
    assert s.sync_c == pytest.approx(PARITY["sync_c"], rel=1e-4)
    assert PARITY["sync_c"] == PARITY["syncnet_python"]["conf"]
    # syncnet_python prints the frame-wise confidence with 3 decimals
    np.testing.assert_allclose(s.framewise_conf, PARITY["framewise_conf_printed"], atol=6e-4)


def test_mfcc_is_python_speech_features():
    _, pcm = syncnet_fixture.parity_clip(30, seed=0)
    m = syncnet_eval.mfcc(pcm.astype(np.float64))
    assert list(m.shape) == PARITY["mfcc_shape"]
    np.testing.assert_allclose(m[:, :3], PARITY["mfcc_first_cols"], rtol=1e-12)
    assert float(m.sum()) == pytest.approx(PARITY["mfcc_sum"], rel=1e-12)


def test_pcm16_rounds_like_ffmpeg():
    x = np.array([0.0, 0.5 / 32768, 1.5 / 32768, -1.0, 1.0, 2.0, -3.0])
    assert syncnet_eval.pcm16(x).tolist() == [0, 0, 2, -32768, 32767, 32767, -32768]


# -- negative control: a hand-built SyncNet whose embeddings encode time ------------------------------
def _identity_norms(model: SyncNet) -> None:
    for m in model.modules():
        if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
            m.weight.fill_(1.0)
            m.bias.zero_()
            m.running_mean.zero_()
            m.running_var.fill_(1.0 - m.eps)


@torch.no_grad()
def time_syncnet(lip_windows: torch.Tensor, mfcc_windows: torch.Tensor) -> SyncNet:
    """Lip stream: mean brightness of the 5 frames; audio stream: the log-energy row of the 20 MFCC frames
    (pooled); each standardised on the given windows into embedding dimension 0. Matching windows then lie
    close, and any other alignment far apart."""
    model = SyncNet().eval()
    for p in model.parameters():
        p.zero_()
    _identity_norms(model)
    lip, aud = model.netcnnlip, model.netcnnaud
    lip[0].weight[0] = 1.0 / lip[0].weight[0].numel()
    lip[4].weight[0, 0] = 1.0 / 25
    for i in (8, 11, 14):
        lip[i].weight[0, 0, 0, 1, 1] = 1.0
    lip[18].weight[0, 0] = 1.0 / 36
    for i in (0, 4, 8, 11, 14):
        aud[i].weight[0, 0, 1, 1] = 1.0
    aud[18].weight[0, 0, 0] = 1.0 / 4  # the top row: where the log-energy coefficient went
    for head, trunk, windows in ((model.netfclip, lip, lip_windows), (model.netfcaud, aud, mfcc_windows)):
        value = trunk(windows).flatten(1)[:, 0]
        head[0].weight[0, 0] = 1.0
        head[1].running_mean[0], head[1].running_var[0] = value.mean(), value.var() - head[1].eps
        head[1].bias[0] = 10.0  # keeps the standardised value positive through the ReLU
        head[3].weight[0, 0], head[3].bias[0] = 1.0, -10.0
        # A shared constant in dimension 1 puts the zero embeddings that pad the offset search about as far
        # away as a mismatched window, so padding neither wins nor loses an offset on its own.
        head[3].bias[1] = 1.0
    return model.eval()


def _time_clip(frames: int, audio_delay: int, seed: int = 2):
    """Frames of one brightness each, random and held for 2 frames, and a buzz whose loudness follows the
    same sequence, delayed by ``audio_delay`` frames (negative: the audio comes early)."""
    rng = np.random.default_rng(seed)
    level = np.repeat(rng.uniform(60, 200, frames // 2 + 20), 2)[: frames + 40]
    video = np.repeat(level[20 : 20 + frames, None, None, None], 224, 1).repeat(224, 2).repeat(3, 3)
    amplitude = 300 * np.exp((level - 60) / 140 * np.log(30))
    n = np.arange(len(level) * 640)
    buzz = np.zeros(n.shape)
    for k in range(6):  # decaying pulses every 5 ms: the same spectrum in every 10 ms MFCC frame
        buzz += ((n - k) % 80 == 0) * 0.9**k
    loud = buzz * np.repeat(amplitude, 640)
    start = (20 - audio_delay) * 640
    pcm = np.clip(np.rint(loud[start : start + frames * 640]), -32768, 32767)
    return torch.from_numpy(video.astype(np.uint8)), pcm


def test_negative_control_offset_follows_audio_shift():
    frames = 30
    video, pcm0 = _time_clip(frames, 0)
    windows = frames - 5
    vid = video.float().permute(3, 0, 1, 2)
    lip_in = torch.stack([vid[:, i : i + 5] for i in range(windows)])
    cc = torch.from_numpy(syncnet_eval.mfcc(pcm0)).float()[None]
    aud_in = torch.stack([cc[:, :, 4 * i : 4 * i + 20] for i in range(windows)])
    with torch.no_grad():
        model = time_syncnet(lip_in, aud_in)
        lip = model.forward_lip(lip_in)

    offsets = {}
    for delay in (-5, -2, 0, 1, 3, 5):
        _, pcm = _time_clip(frames, delay)
        cc = torch.from_numpy(syncnet_eval.mfcc(pcm)).float()[None]
        with torch.no_grad():
            aud = model.forward_aud(torch.stack([cc[:, :, 4 * i : 4 * i + 20] for i in range(windows)]))
        offsets[delay] = syncnet_eval.summarise(lip, aud).av_offset
    assert offsets == {-5: 5, -2: 2, 0: 0, 1: -1, 3: -3, 5: -5}


# -- loader -----------------------------------------------------------------------------------------
def test_loads_legacy_and_zip_files_weights_only(weights_file, tmp_path):
    sd = torch.load(weights_file, weights_only=True)
    assert not any(k.endswith("num_batches_tracked") for k in sd)
    zipped = tmp_path / "zip.model"
    torch.save(SyncNet().state_dict(), zipped)  # with num_batches_tracked, zip serialisation
    for path in (weights_file, zipped):
        model = load_syncnet(str(path))
        assert isinstance(model, SyncNet) and not model.training
    assert torch.equal(load_syncnet(str(weights_file)).netfcaud[3].weight, sd["netfcaud.3.weight"])


def test_loader_is_strict(weights_file, tmp_path):
    sd = torch.load(weights_file, weights_only=True)
    cases = {
        "missing": {k: v for k, v in sd.items() if k != "netcnnlip.0.weight"},
        "unexpected": {**sd, "extra.weight": torch.zeros(2)},
        "mis-shaped": {**sd, "netfclip.0.weight": torch.zeros(512, 256)},
    }
    for word, broken in cases.items():
        path = tmp_path / f"{word}.model"
        torch.save(broken, path)
        with pytest.raises(ValueError, match=rf"{word}.*(netcnnlip\.0\.weight|extra\.weight|netfclip\.0\.weight)"):
            load_syncnet(str(path))


def test_loader_names_other_files(tmp_path):
    stable = tmp_path / "stable_syncnet.pt"
    torch.save(
        {"state_dict": {"audio_encoder.conv.weight": torch.zeros(1), "visual_encoder.x": torch.zeros(1)}}, stable
    )
    with pytest.raises(ValueError, match="StableSyncNet"):
        load_syncnet(str(stable))
    unet = tmp_path / "unet.pt"
    torch.save({"conv_in.weight": torch.zeros(1), "down_blocks.0.x": torch.zeros(1)}, unet)
    with pytest.raises(ValueError, match="UNet"):
        load_syncnet(str(unet))
    garbage = tmp_path / "garbage.model"
    garbage.write_bytes(b"not a torch file at all")
    with pytest.raises(ValueError, match="cannot be read as a torch weights file"):
        load_syncnet(str(garbage))


def test_loader_refuses_pickled_module(tmp_path):
    path = tmp_path / "module.model"
    with path.open("wb") as fh:
        torch.save(torch.nn.Linear(2, 2), fh, pickle_module=pickle)
    with pytest.raises(ValueError, match="pickled Python objects.*not loaded"):
        load_syncnet(str(path))


# -- bad inputs -----------------------------------------------------------------------------------------
def test_too_short_and_silent():
    model = SyncNet().eval()
    frames = torch.zeros((5, 224, 224, 3), dtype=torch.uint8)
    pcm = syncnet_eval.pcm16(synthesized_voice(0.4))
    with pytest.raises(ValueError, match="too short.*at least 6"):
        syncnet_eval.score_clip(model, frames, pcm)
    frames = torch.zeros((10, 224, 224, 3), dtype=torch.uint8)
    with pytest.raises(ValueError, match="too short.*at least 6"):
        syncnet_eval.score_clip(model, frames, pcm[: 5 * 640])
    with pytest.raises(ValueError, match="silent"):
        syncnet_eval.score_clip(model, frames, np.zeros(10 * 640) + 1.0)
