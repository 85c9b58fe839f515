"""Audio features: official windows and layer groups for HuMo and LatentSync, long-audio windowing."""

from __future__ import annotations

import math

import hv_fixtures
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from humanvideo.loaders import whisper as lw
from humanvideo.models import audio_features as af
from humanvideo.models.audio_features import AudioFeatures
from humanvideo.models.log_mel import log_mel_spectrogram
from humanvideo.models.whisper_encoder import WhisperEncoder, WhisperEncoderConfig, WhisperModel
from transformers import WhisperConfig, WhisperFeatureExtractor
from transformers.models.whisper.modeling_whisper import WhisperEncoder as HFWhisperEncoder


def features(
    n_positions: int, n_layers: int, d: int, n_mels: int = 80, num_samples: int | None = None, seed: int = 0
) -> AudioFeatures:
    g = torch.Generator().manual_seed(seed)
    return AudioFeatures(
        states=torch.randn(n_positions, n_layers + 2, d, generator=g),
        n_layers=n_layers,
        model_name="test",
        num_samples=num_samples if num_samples is not None else n_positions * 320,
        n_mels=n_mels,
    )


def as_model(encoder: torch.nn.Module) -> WhisperModel:
    return WhisperModel(
        encoder.eval(),
        compute_dtype=torch.float32,
        load_device=torch.device("cpu"),
        offload_device=torch.device("cpu"),
        layout="test",
        source="test",
    )


# ---------------------------------------------------------------------------------------------
# HuMo


def official_humo_window(audio_emb: torch.Tensor, frame_num: int, f0: int = 0) -> torch.Tensor:
    """`get_audio_emb_window(audio_emb, frame_num, frame0_idx=f0, audio_shift=2)` written from its definition."""
    zero = torch.zeros(audio_emb.shape[1:])
    rows_of = lambda st, ed: [audio_emb[i] if 0 <= i < audio_emb.shape[0] else zero for i in range(st, ed)]  # noqa: E731
    out = []
    for lt in range(1 + (frame_num - 1) // 4):
        if lt == 0:
            out.append(torch.stack([zero] * 3 + rows_of(f0 + lt - 2, f0 + lt + 3)))
        else:
            out.append(torch.stack(rows_of(f0 + 1 + 4 * (lt - 1) - 2, f0 + 1 + 4 * lt + 2)))
    return torch.stack(out)


def test_humo_window_rows_hand_checked():
    idx = af.humo_window_indices(97)
    assert idx.shape == (25, 8)
    # latent 0 = video frame 0: 3 zero rows, then frames -2, -1 (zero: before the audio), 0, 1, 2
    assert (idx[0, :5] < 0).all() and idx[0, 5:].tolist() == [0, 1, 2]
    # latent 1 = frames 1..4 with 2 of context each side; latent i = frames 4i-5 .. 4i+2
    assert idx[1].tolist() == [-1, 0, 1, 2, 3, 4, 5, 6]
    assert idx[5].tolist() == list(range(15, 23))
    assert idx[24].tolist() == list(range(91, 99))

    emb = torch.arange(1, 31, dtype=torch.float32)[:, None, None].expand(30, 5, 3).clone()  # row j holds j + 1
    win = af.humo_audio_windows(emb, 97, n_ref=1)
    assert win.shape == (26, 8, 5, 3)
    assert win[0, :, 0, 0].tolist() == [0, 0, 0, 0, 0, 1, 2, 3]
    assert win[1, :, 0, 0].tolist() == [0, 1, 2, 3, 4, 5, 6, 7]
    assert win[7, :, 0, 0].tolist() == [24, 25, 26, 27, 28, 29, 30, 0]  # frames 23..30; frame 30 is past the audio
    assert win[8, :, 0, 0].tolist() == [28, 29, 30, 0, 0, 0, 0, 0]
    assert (win[9:] == 0).all()  # past the audio, and the reference slot


@pytest.mark.parametrize("frame_num,audio_rows", [(97, 120), (97, 40), (1, 5), (5, 3), (33, 33)])
def test_humo_windows_equal_official_definition(frame_num, audio_rows):
    emb = torch.randn(audio_rows, 5, 4)
    ours = af.humo_audio_windows(emb, frame_num, n_ref=2)
    ref = official_humo_window(emb, frame_num)
    assert torch.equal(ours[:-2], ref) and (ours[-2:] == 0).all()


@pytest.mark.parametrize("frame_num,audio_rows,frame0", [(97, 300, 88), (97, 120, 1), (33, 100, 90), (5, 40, 37)])
def test_humo_windows_from_a_later_frame_equal_official_frame0_idx(frame_num, audio_rows, frame0):
    emb = torch.randn(audio_rows, 5, 4)
    ours = af.humo_audio_windows(emb, frame_num, n_ref=1, frame0=frame0)
    assert torch.equal(ours[:-1], official_humo_window(emb, frame_num, frame0)) and (ours[-1] == 0).all()


def test_humo_layer_groups_and_25hz_equal_official_definition():
    num_samples = 16000 * 3 + 500  # 3.03 s -> 75 video frames, 150 positions kept of 151
    feats = features(num_samples // 320, 32, 1280, n_mels=128, num_samples=num_samples)
    emb = af.humo_audio_embedding(feats)
    # official: 33 HF hidden states (last one post-LayerNorm), truncated to 2 x (samples // 640)
    hidden = torch.cat([feats.states[:, :32], feats.states[:, 33:34]], dim=1)[None, : 2 * (num_samples // 640)]

    def to25(x):  # [1, T, C] 50 Hz -> 25 Hz, linear, align_corners=True
        return F.interpolate(
            x.transpose(1, 2), size=int(x.shape[1] / 50 * 25), mode="linear", align_corners=True
        ).transpose(1, 2)

    groups = [
        hidden[:, :, 0:8].mean(2),
        hidden[:, :, 8:16].mean(2),
        hidden[:, :, 16:24].mean(2),
        hidden[:, :, 24:32].mean(2),
        hidden[:, :, 32],
    ]
    ref = torch.stack([to25(g) for g in groups], dim=2)[0]
    assert emb.shape == (75, 5, 1280)
    assert torch.allclose(emb, ref, atol=1e-6)
    assert af.humo_layer_groups(32) == [(0, 8), (8, 16), (16, 24), (24, 32), (32, 33)]
    cond = af.humo_audio_conditioning(feats, 97, n_ref=1)
    assert cond.shape == (26, 8, 5, 1280)


def test_humo_rejects_wrong_encoders_and_short_audio():
    with pytest.raises(
        ValueError, match="HuMo needs audio features from whisper-large-v3.*whisper-tiny|HuMo needs.*test"
    ):
        af.humo_audio_embedding(features(100, 4, 384))  # a whisper-tiny
    with pytest.raises(ValueError, match="128 mel bands"):
        af.humo_audio_embedding(features(100, 32, 1280, n_mels=80))  # large-v2
    with pytest.raises(ValueError, match="shorter than one 25 fps video frame"):
        af.humo_audio_embedding(features(1, 32, 1280, n_mels=128, num_samples=500))
    with pytest.raises(ValueError, match="expected HV_AUDIO_FEATURES"):
        af.humo_audio_embedding(torch.zeros(3))


# ---------------------------------------------------------------------------------------------
# LatentSync


def test_latentsync_windows_hand_checked():
    idx = af.latentsync_window_indices(500, 25, 101)
    assert idx[0].tolist() == [0, 0, 0, 0, 0, 1, 2, 3, 4, 5]
    assert idx[100].tolist() == list(range(196, 206))
    feats = features(500, 4, 384)
    win = af.latentsync_audio_windows(feats, 25, n_frames=101)
    assert win.shape == (101, 50, 384)
    pre = feats.states[:, :5]  # embedding + 4 block outputs before ln_post
    # tokens are position-major: token 5 k + l = position (centre - 4 + k), state l
    assert torch.equal(win[100].reshape(10, 5, 384), pre[196:206])
    assert torch.equal(win[0, :5], pre[0]) and torch.equal(win[0, 45:], pre[5])


def test_latentsync_official_frame_count_and_clamp_at_the_end():
    assert af.latentsync_official_frame_count(100, 25) == 52  # floor(T / 2) + 2
    assert af.latentsync_official_frame_count(101, 25) == 52
    feats = features(100, 4, 384)
    win = af.latentsync_audio_windows(feats, 25)
    assert win.shape == (52, 50, 384)
    last = win[-1].reshape(10, 5, 384)
    assert torch.equal(last[0], feats.states[98, :5]) and torch.equal(last[-1], feats.states[99, :5])  # clamped


def test_latentsync_any_fps_maps_frame_timestamps():
    # 30 fps: frame i is at i / 30 s -> 50 Hz position int(i * 50 / 30)
    idx = af.latentsync_window_indices(1000, 30, 31)
    assert idx[3, 4].item() == 5 and idx[30, 4].item() == 50
    ntsc = af.latentsync_window_indices(10_000, 30000 / 1001, 3000)
    centres = ntsc[:, 4]
    expected = torch.tensor([int(i * 50 * 1001 / 30000) for i in range(3000)])
    assert torch.equal(centres, expected)
    with pytest.raises(ValueError, match="fps must be a positive"):
        af.latentsync_window_indices(10, 0, 1)


def test_latentsync_rejects_wrong_encoders_and_short_audio():
    with pytest.raises(ValueError, match="LatentSync needs audio features from whisper-tiny"):
        af.latentsync_audio_windows(features(100, 32, 1280, n_mels=128), 25)
    with pytest.raises(ValueError, match="shorter than one video frame at 25 fps"):
        af.latentsync_audio_windows(features(1, 4, 384, num_samples=600), 25)


# ---------------------------------------------------------------------------------------------
# Extraction and windowing


def random_hf_encoder(seed: int, d=64, layers=2, heads=1, ffn=64, mels=80) -> HFWhisperEncoder:
    torch.manual_seed(seed)
    cfg = WhisperConfig(
        d_model=d,
        encoder_layers=layers,
        encoder_attention_heads=heads,
        encoder_ffn_dim=ffn,
        num_mel_bins=mels,
        max_source_positions=1500,
    )
    enc = HFWhisperEncoder(cfg).eval()
    with torch.no_grad():
        for name, p in enc.named_parameters():
            if "embed_positions" not in name:
                p.add_(torch.randn_like(p) * 0.2)
    return enc


def ours_from_hf(enc: HFWhisperEncoder) -> WhisperModel:
    converted, layout = lw.convert_state_dict({f"encoder.{k}": v for k, v in enc.state_dict().items()})
    ckpt = lw.WhisperCheckpoint(
        converted, lw.infer_config(converted, n_heads=enc.config.encoder_attention_heads), layout, "test"
    )
    return as_model(lw.build_encoder(ckpt, torch.float32))


def hf_states(enc: HFWhisperEncoder, mel: torch.Tensor) -> torch.Tensor:
    """[1500, L + 2, d]: HF hidden states plus the last block output before the final LayerNorm."""
    grab = {}
    hook = enc.layers[-1].register_forward_hook(
        lambda m, i, o: grab.__setitem__("x", o[0] if isinstance(o, tuple) else o)
    )
    with torch.no_grad():
        hidden = enc(mel, output_hidden_states=True).hidden_states
    hook.remove()
    return torch.stack(list(hidden[:-1]) + [grab["x"], hidden[-1]], dim=2)[0]


def speechlike(seconds: float, seed: int = 0) -> torch.Tensor:
    rng = np.random.default_rng(seed)
    n = int(seconds * 16000)
    t = np.arange(n) / 16000
    env = 0.5 + 0.5 * np.sin(2 * np.pi * 3.0 * t)
    return torch.from_numpy(
        (env * (0.3 * np.sin(2 * np.pi * 180 * t) + 0.05 * rng.standard_normal(n))).astype(np.float32)
    )


def test_humo_extraction_equals_official_chunks_on_long_audio():
    """HuMo's pipeline: 30 s audio chunks through the HF feature extractor (each padded to 30 s),
    the encoder per 3000-frame window, all hidden states, truncated: equal to our 'independent' mode."""
    enc = random_hf_encoder(5)
    audio = speechlike(61.3)  # three windows, the last one 1.3 s
    fe = WhisperFeatureExtractor(feature_size=80)
    mels = [
        fe(audio[i : i + 480000].numpy(), sampling_rate=16000, return_tensors="pt").input_features
        for i in range(0, audio.shape[0], 480000)
    ]
    mel = torch.cat(mels, dim=-1)
    ref = torch.cat([hf_states(enc, mel[:, :, i : i + 3000]) for i in range(0, mel.shape[-1], 3000)])
    ours = af.extract_audio_features(ours_from_hf(enc), audio, window_mode="independent", convention="humo")
    assert ours.num_positions == audio.shape[0] // 320 == 3065
    assert torch.allclose(ours.states, ref[: ours.num_positions], atol=3e-5, rtol=1e-4)
    hf_hidden = ref[: ours.num_positions][:, [0, 1, 3]]  # HF order: embedding, block 1, LayerNorm(block 2)
    assert torch.allclose(ours.hidden_states(), hf_hidden, atol=3e-5, rtol=1e-4)


def test_latentsync_extraction_equals_official_segments():
    """LatentSync's pipeline: one log-mel of the whole clip, 3000-frame segments padded with zeros in
    the log-mel domain, embedding + block outputs before ln_post, int(len / 2) positions per segment."""
    enc = random_hf_encoder(6)
    audio = speechlike(33.7, seed=1)
    fe = WhisperFeatureExtractor(feature_size=80)
    mel = fe(
        audio.numpy(), sampling_rate=16000, padding="longest", truncation=False, return_tensors="pt"
    ).input_features
    assert mel.shape[-1] == audio.shape[0] // 160
    parts = []
    for seek in range(0, mel.shape[-1], 3000):
        seg = mel[:, :, seek : seek + 3000]
        kept = seg.shape[-1] // 2
        parts.append(hf_states(enc, F.pad(seg, (0, 3000 - seg.shape[-1])))[:kept, :3])
    ref = torch.cat(parts)
    ours = af.extract_audio_features(ours_from_hf(enc), audio, window_mode="independent", convention="latentsync")
    assert ours.pre_norm_states().shape == ref.shape
    assert torch.allclose(ours.pre_norm_states(), ref, atol=3e-5, rtol=1e-4)


@pytest.mark.parametrize("convention", ["humo", "latentsync"])
def test_overlap_and_independent_identical_up_to_30_s(convention):
    model = ours_from_hf(random_hf_encoder(7))
    audio = speechlike(30.0, seed=2)
    a = af.extract_audio_features(model, audio, window_mode="overlap", convention=convention)
    b = af.extract_audio_features(model, audio, window_mode="independent", convention=convention)
    assert a.num_positions == 1500 and torch.equal(a.states, b.states)


@pytest.mark.parametrize("n", [1, 1500, 1501, 2001, 3500, 9999, 30_001])
def test_window_plan_gives_every_position_context(n):
    starts, owner = af.plan_windows(n, "overlap")
    t = torch.arange(n)
    s = torch.tensor(starts)[owner]
    assert ((t >= s) & (t < s + 1500)).all()
    assert starts[-1] + 1500 >= n and (n <= 1500 or starts[-1] + 1500 == n)
    left = torch.where(s > 0, t - s, torch.full_like(t, 10**9))
    right = torch.where(s + 1500 < n, s + 1499 - t, torch.full_like(t, 10**9))
    assert torch.minimum(left, right).min() >= (af.OVERLAP_CONTEXT if n > 1500 else 0)
    ind_starts, ind_owner = af.plan_windows(n, "independent")
    assert ind_starts == list(range(0, n, 1500)) and torch.equal(ind_owner, t // 1500)


def test_official_windows_are_the_default():
    """Defaults reproduce the official inference: back-to-back 30 s windows in the library and in the node."""
    from humanvideo.nodes.whisper import HVWhisperFeatures

    (starts, owner), (official_starts, official_owner) = af.plan_windows(3001), af.plan_windows(3001, "independent")
    assert starts == official_starts and torch.equal(owner, official_owner)
    model = ours_from_hf(random_hf_encoder(7))
    assert af.extract_audio_features(model, speechlike(0.5, seed=1)).window_mode == "independent"
    windows = next(i for i in HVWhisperFeatures.define_schema().inputs if i.id == "windows")
    assert windows.default == "independent 30 s (official)"


def test_overlap_has_no_seams_where_independent_windows_do():
    """With a position-free, attention-free encoder the exact whole-clip answer is computable; the
    overlapping windows reproduce it everywhere, the official back-to-back windows break at 30 s."""
    cfg = WhisperEncoderConfig(n_mels=80, d_model=32, n_heads=1, n_layers=1, d_ffn=32)
    torch.manual_seed(8)
    enc = WhisperEncoder(cfg, dtype=torch.float32)
    with torch.no_grad():
        for p in enc.parameters():
            p.copy_(torch.randn_like(p) * 0.3)
        enc.blocks[0].attn.out.weight.zero_()
        enc.blocks[0].attn.out.bias.zero_()
        enc.positional_embedding.zero_()
    model = as_model(enc)
    audio = speechlike(62.0, seed=3)
    with torch.no_grad():
        mel = log_mel_spectrogram(audio, 80)[None]
        x = F.gelu(enc.conv2(F.gelu(enc.conv1(mel)))).transpose(1, 2)
        exact = torch.stack([x[0], enc.blocks[0](x)[0]], dim=1)
    over = af.extract_audio_features(model, audio, window_mode="overlap", convention="latentsync")
    ind = af.extract_audio_features(model, audio, window_mode="independent", convention="latentsync")
    assert torch.allclose(over.pre_norm_states(), exact, atol=1e-5)
    err = (ind.pre_norm_states() - exact).abs().amax(dim=(1, 2))
    assert set(torch.nonzero(err > 1e-4).flatten().tolist()) == {1499, 1500, 2999, 3000}


def test_short_empty_silent_and_bad_audio():
    model = ours_from_hf(random_hf_encoder(9, d=64, layers=1))
    with pytest.raises(ValueError, match="too short for Whisper.*20 ms"):
        af.extract_audio_features(model, torch.randn(300))
    with pytest.raises(ValueError, match="NaN"):
        af.extract_audio_features(model, torch.full((16000,), float("nan")))
    with pytest.raises(ValueError, match="1-D"):
        af.extract_audio_features(model, torch.zeros(2, 16000))
    silent = af.extract_audio_features(model, torch.zeros(16000))
    assert silent.silent and torch.isfinite(silent.states).all() and silent.num_positions == 50
    with pytest.raises(ValueError, match="window mode"):
        af.extract_audio_features(model, torch.zeros(16000), window_mode="sliding")


def test_nodes_load_fixture_and_encode_stereo_44k(tmp_path):
    import folder_paths
    from humanvideo.nodes.whisper import HVLoadWhisper, HVWhisperFeatures, resolve_whisper, whisper_choices

    hv_fixtures.generate(tmp_path, ["whisper_tiny"])
    folder = str(tmp_path / "audio_encoders")
    (tmp_path / "audio_encoders" / "hf-folder").mkdir()
    (tmp_path / "audio_encoders" / "hf-folder" / "config.json").write_text("{}")
    saved = folder_paths.folder_names_and_paths["audio_encoders"]
    folder_paths.add_model_folder_path("audio_encoders", folder, is_default=True)
    try:
        assert {"whisper_tiny_test.pt", "hf-folder"} <= set(whisper_choices())
        assert resolve_whisper("hf-folder") == str(tmp_path / "audio_encoders" / "hf-folder")
        whisper = HVLoadWhisper.execute(model="whisper_tiny_test.pt", precision="auto").result[0]
    finally:
        folder_paths.folder_names_and_paths["audio_encoders"] = saved
    t = torch.arange(int(44100 * 1.2)) / 44100
    wave = torch.stack([torch.sin(2 * math.pi * 200 * t), torch.sin(2 * math.pi * 300 * t)])[None] * 0.3
    feats, core = HVWhisperFeatures.execute(
        audio={"waveform": wave, "sample_rate": 44100},
        whisper=whisper,
        windows="overlapping (no seams)",
        convention="auto",
    ).result
    assert feats.num_samples == math.ceil(wave.shape[-1] * 16000 / 44100) and feats.convention == "latentsync"
    assert feats.states.shape == (feats.num_samples // 320, 6, 384)
    assert af.latentsync_audio_windows(feats, 25, n_frames=30).shape == (30, 50, 384)
    # core's WanHuMoImageToVideo stacks encoded_audio_all_layers on dim 2 and cuts audio_samples // 640 * 2
    assert torch.equal(torch.stack(core["encoded_audio_all_layers"], dim=2)[0], feats.hidden_states())
    assert core["audio_samples"] == feats.num_samples and torch.equal(core["encoded_audio"][0], feats.states[:, -1])
    with pytest.raises(ValueError, match="empty"):
        HVWhisperFeatures.execute(
            audio={"waveform": torch.zeros(1, 1, 0), "sample_rate": 16000},
            whisper=whisper,
            windows="overlapping (no seams)",
            convention="auto",
        )
    with pytest.raises(ValueError, match="batch of 2 clips"):
        HVWhisperFeatures.execute(
            audio={"waveform": torch.zeros(2, 1, 16000), "sample_rate": 16000},
            whisper=whisper,
            windows="overlapping (no seams)",
            convention="auto",
        )


def test_lazy_latentsync_windows_equal_the_whole_tensor():
    feats = features(120, 4, 384)
    eager = af.latentsync_audio_windows(feats, 25, n_frames=40)
    lazy = af.latentsync_audio_windows(feats, 25, n_frames=40, lazy=True)
    assert lazy.shape == tuple(eager.shape) and len(lazy) == 40
    for rows in (slice(0, 16), slice(16, 32), slice(32, 40)):
        assert torch.equal(lazy[rows], eager[rows])


@pytest.mark.parametrize("mode", ["independent", "overlap"])
def test_streamed_features_equal_the_whole_clip_read_a_chunk_at_a_time(mode):
    """The features a long lip sync computes as it goes: window for window the same encoder calls as the
    whole-clip extraction, so every 16-frame chunk's tokens are equal; each 30 s window is encoded once,
    and at most two are held."""
    model = ours_from_hf(random_hf_encoder(11, d=384, layers=4, ffn=64))
    audio = speechlike(75.3, seed=4)
    whole = af.extract_audio_features(model, audio, window_mode=mode)
    streamed = af.streamed_audio_features(model, audio, window_mode=mode)
    assert streamed.convention == whole.convention == "latentsync"
    assert (streamed.num_positions, streamed.duration) == (whole.num_positions, whole.duration)
    eager = af.latentsync_audio_windows(whole, 25)
    lazy = af.latentsync_audio_windows(streamed, 25, lazy=True)
    assert lazy.shape == tuple(eager.shape)
    for start in range(0, len(lazy), 16):
        assert torch.equal(lazy[start : start + 16], eager[start : start + 16])
        assert len(lazy.states._encoded) <= 2
    assert lazy.states.encodes == len(af.plan_windows(whole.num_positions, mode)[0]) >= 3


def test_streamed_features_serve_latentsync_only():
    model = ours_from_hf(random_hf_encoder(12, d=384, layers=4, ffn=64))
    streamed = af.streamed_audio_features(model, speechlike(2.0, seed=5))
    with pytest.raises(ValueError, match="whole clip's features"):
        af.humo_audio_embedding(streamed)
    with pytest.raises(ValueError, match="whole clip's features"):
        af.to_audio_encoder_output(streamed)
    states = streamed.pre_norm_states()
    with pytest.raises(IndexError, match="100 Whisper positions"):
        states[torch.tensor([0, 100])]
    assert states[torch.tensor([[0, 99]])].shape == (1, 2, 5, 384) and states.encodes == 1
