"""Whisper encoder benchmark: whisper-tiny (LatentSync) and whisper-large-v3 (HuMo) at real size, random weights.

Ours (``models/whisper_encoder.py`` loaded through ``loaders/whisper.py``, features by
``models/audio_features.extract_audio_features``) against transformers' ``WhisperEncoder`` with the same
weights, in one run, on 30 s and 120 s of audio:

- encoder: one 30 s log-mel window through the network, every hidden state kept (what both video
  models consume): seconds per window, peak memory, ours / transformers, and the largest difference
  between the two sets of states (a parity check, relative to the largest state value);
- features: a whole clip to per-position states on the CPU. Ours in its default "independent" window mode
  (the official back-to-back 30 s windows) and in the "overlap" option (windows overlapping by 2 x 5 s,
  more encoder work for long clips); the reference is the official HuMo recipe, transformers'
  ``WhisperFeatureExtractor`` on each 30 s piece then the encoder. Reported: seconds, real-time factor
  (seconds of compute per second of audio, lower is better), peak memory, ours / transformers.

ComfyUI core has its own Whisper (``comfy/audio_encoders/whisper.py``, large-v3 only), but that module
imports torchaudio at load time, and torchaudio is not available in this project's environment, so core
cannot be imported here; transformers is the independent implementation of the same network.

    COMFYUI_PATH=/path/to/ComfyUI python benchmarks/whisper.py            # CUDA, fp16, real sizes
    COMFYUI_PATH=/path/to/ComfyUI python benchmarks/whisper.py --tiny     # CPU smoke run
"""

from __future__ import annotations

import argparse
import json
import math
import os
import time
from pathlib import Path

import bench_common
import torch
from bench_common import peak_gib, pick_dtype, reset_peak, sync  # benchmarks/ is sys.path[0] when a script runs

SAMPLE_RATE = 16000
WINDOW_SAMPLES = 30 * SAMPLE_RATE
SAMPLES_PER_POSITION = 320


def timed(fn, device: torch.device, repeats: int, warm_up: bool = True):
    if warm_up:  # weights to the device, kernels, attention backend selection
        fn()
    sync(device)
    reset_peak(device)
    start = time.perf_counter()
    for _ in range(repeats):
        out = fn()
    sync(device)
    return (time.perf_counter() - start) / repeats, peak_gib(device), out


# --- the two encoders --------------------------------------------------------------------------


def configs(tiny: bool) -> dict:
    from humanvideo.models.whisper_encoder import WhisperEncoderConfig

    real_tiny = WhisperEncoderConfig(n_mels=80, d_model=384, n_heads=6, n_layers=4, d_ffn=1536)
    if tiny:
        # whisper-tiny is small enough for the CPU; large-v3 is replaced by a 4-layer model with its 128 mels
        return {
            "tiny": real_tiny,
            "large-v3-mini": WhisperEncoderConfig(n_mels=128, d_model=128, n_heads=2, n_layers=4, d_ffn=512),
        }
    return {
        "tiny": real_tiny,
        "large-v3": WhisperEncoderConfig(n_mels=128, d_model=1280, n_heads=20, n_layers=32, d_ffn=5120),
    }


@torch.no_grad()
def build_pair(cfg, dtype: torch.dtype, device: torch.device, seed: int):
    """(transformers WhisperEncoder, our WhisperModel) holding the same random weights."""
    import comfy.model_management as mm
    from humanvideo.loaders import whisper as lw
    from humanvideo.models.whisper_encoder import WhisperModel, sinusoids
    from transformers import WhisperConfig
    from transformers.models.whisper.modeling_whisper import WhisperEncoder as HFWhisperEncoder

    hf_cfg = WhisperConfig(
        d_model=cfg.d_model,
        encoder_layers=cfg.n_layers,
        encoder_attention_heads=cfg.n_heads,
        encoder_ffn_dim=cfg.d_ffn,
        num_mel_bins=cfg.n_mels,
        max_source_positions=cfg.n_ctx,
        decoder_layers=1,
        decoder_attention_heads=cfg.n_heads,
        decoder_ffn_dim=cfg.d_ffn,
        vocab_size=16,
        max_target_positions=8,
        pad_token_id=1,
        bos_token_id=2,
        eos_token_id=3,
        decoder_start_token_id=2,
        attn_implementation="sdpa",
    )
    with torch.device("meta"):
        hf = HFWhisperEncoder(hf_cfg)
    hf.to_empty(device=device)
    g = torch.Generator(device=device)
    for i, (name, p) in enumerate(sorted(hf.named_parameters())):
        g.manual_seed(seed + i)
        if "embed_positions" in name:
            p.copy_(sinusoids(cfg.n_ctx, cfg.d_model))
        elif p.ndim == 1 and "layer_norm" in name and name.endswith("weight"):
            p.normal_(1.0, 0.1, generator=g)
        elif p.ndim == 1:
            p.normal_(0.0, 0.02, generator=g)
        else:
            p.normal_(0.0, 1.0 / math.sqrt(math.prod(p.shape[1:])), generator=g)
    hf = hf.to(dtype).eval().requires_grad_(False)

    # ours through the real loader path: layout detection, renaming, size inference, strict load
    sd, layout = lw.convert_state_dict(hf.state_dict(), source="benchmark")
    inferred = lw.infer_config(sd, n_heads=cfg.n_heads, source="benchmark")
    if inferred != cfg:
        raise RuntimeError(f"loader inferred {inferred}, expected {cfg}")
    ckpt = lw.WhisperCheckpoint(state_dict=sd, config=inferred, layout=layout, source="random weights")
    offload = mm.text_encoder_offload_device()
    encoder = lw.build_encoder(ckpt, dtype=dtype, device=offload)
    ours = WhisperModel(
        encoder, compute_dtype=dtype, load_device=device, offload_device=offload, layout=layout, source="random weights"
    )
    return hf, ours


def test_audio(seconds: float, seed: int) -> torch.Tensor:
    """Speech-like 16 kHz signal: a few drifting harmonics under noise, at a normal level."""
    g = torch.Generator().manual_seed(seed)
    t = torch.arange(int(seconds * SAMPLE_RATE)) / SAMPLE_RATE
    f0 = 140.0 + 30.0 * torch.sin(2 * math.pi * 0.7 * t)
    phase = 2 * math.pi * torch.cumsum(f0, 0) / SAMPLE_RATE
    voice = sum(torch.sin(k * phase) / k for k in range(1, 6)) * (0.5 + 0.5 * torch.sin(2 * math.pi * 3.0 * t)) ** 2
    return (0.2 * voice + 0.01 * torch.randn(t.shape, generator=g)).float()


# --- the two pipelines -------------------------------------------------------------------------


@torch.no_grad()
def hf_features(extractor, hf, audio: torch.Tensor, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    """Official HuMo recipe: feature extractor per 30 s piece (zero-padded), encoder, hidden states [T50, L+1, d]."""
    positions = audio.shape[0] // SAMPLES_PER_POSITION
    pieces = []
    for start in range(0, audio.shape[0], WINDOW_SAMPLES):
        mel = extractor(
            audio[start : start + WINDOW_SAMPLES].numpy(), sampling_rate=SAMPLE_RATE, return_tensors="pt"
        ).input_features
        states = hf(mel.to(device=device, dtype=dtype), output_hidden_states=True).hidden_states
        pieces.append(torch.stack(states, dim=2)[0].cpu())
    return torch.cat(pieces)[:positions]


def hf_order(n_layers: int) -> list[int]:
    """Our states (embedding, every block, ln_post) -> transformers' hidden_states order."""
    return list(range(n_layers)) + [n_layers + 1]


def rel_diff(a: torch.Tensor, b: torch.Tensor) -> float:
    a, b = a.float(), b.float()
    return float((a - b).abs().max() / b.abs().max().clamp_min(1e-12))


def bench_model(name: str, cfg, durations: list[float], dtype, device, repeats: int) -> list[dict]:
    from humanvideo.models.audio_features import extract_audio_features
    from humanvideo.models.log_mel import log_mel_spectrogram
    from transformers import WhisperFeatureExtractor

    hf, ours = build_pair(cfg, dtype, device, seed=1)
    extractor = WhisperFeatureExtractor(feature_size=cfg.n_mels)
    keep = hf_order(cfg.n_layers)
    rows = []

    # encoder alone, one 30 s window on the device
    audio = test_audio(30.0, seed=2)
    mel = log_mel_spectrogram(audio, cfg.n_mels)[None].to(device=device, dtype=dtype)
    net = ours.patcher

    def run_ours():
        import comfy.model_management as mm

        mm.load_models_gpu([net])
        with torch.no_grad():
            return net.model(mel)

    def run_hf():
        with torch.no_grad():
            return torch.stack(hf(mel, output_hidden_states=True).hidden_states, dim=2)

    s_ours, m_ours, st_ours = timed(run_ours, device, repeats)
    s_hf, m_hf, st_hf = timed(run_hf, device, repeats)
    diff = rel_diff(st_ours[:, :, keep], st_hf)
    rows.append(
        dict(
            model=name,
            audio_s=30.0,
            run="encoder, one 30 s window",
            ours_s=s_ours,
            ref_s=s_hf,
            ours_rtf=s_ours / 30.0,
            ref_rtf=s_hf / 30.0,
            ours_peak_gib=m_ours,
            ref_peak_gib=m_hf,
            max_rel_diff=diff,
        )
    )
    del st_ours, st_hf

    for seconds in durations:
        audio = test_audio(seconds, seed=3)
        # the encoder runs above warmed both networks up on these shapes
        s_hf, m_hf, ref = timed(lambda: hf_features(extractor, hf, audio, dtype, device), device, repeats, False)
        for mode in ("overlap", "independent"):
            s, m, feats = timed(
                lambda: extract_audio_features(ours, audio, window_mode=mode, convention="humo"), device, repeats, False
            )
            # identical recipe only in "independent" mode (or within one window): compare there
            diff = rel_diff(feats.hidden_states(), ref) if mode == "independent" or seconds <= 30 else None
            rows.append(
                dict(
                    model=name,
                    audio_s=seconds,
                    run=f"features, ours {mode}",
                    ours_s=s,
                    ref_s=s_hf,
                    ours_rtf=s / seconds,
                    ref_rtf=s_hf / seconds,
                    ours_peak_gib=m,
                    ref_peak_gib=m_hf,
                    max_rel_diff=diff,
                )
            )
    return rows


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--tiny", action="store_true", help="CPU smoke run: real whisper-tiny and a 4-layer 128-mel model")
    p.add_argument(
        "--comfyui", default=os.environ.get("COMFYUI_PATH", ""), help="ComfyUI checkout (default $COMFYUI_PATH)"
    )
    p.add_argument("--models", nargs="+", default=None, help="subset of the sizes (real: tiny large-v3)")
    p.add_argument("--durations", type=float, nargs="+", default=[30.0, 120.0], help="audio lengths in seconds")
    p.add_argument("--dtype", choices=["fp16", "bf16", "fp32"], default=None, help="default fp16 on CUDA, fp32 on CPU")
    p.add_argument("--repeats", type=int, default=None, help="timed repeats after one warm-up (default 3; tiny: 1)")
    p.add_argument("--json", default=None, help="also write the results here")
    opts = p.parse_args()

    device = bench_common.start(opts.comfyui, opts.tiny)
    cuda = device.type == "cuda"
    dtype = pick_dtype(opts.dtype, device)
    repeats = opts.repeats or (1 if opts.tiny else 3)
    sizes = configs(opts.tiny)
    if opts.models:
        unknown = [m for m in opts.models if m not in sizes]
        if unknown:
            p.error(f"--models: unknown {unknown}; choose from {list(sizes)}")
        sizes = {m: sizes[m] for m in opts.models}
    device_name = torch.cuda.get_device_name(device) if cuda else "CPU"
    print(f"Whisper encoder: {device_name}, {dtype}, {repeats} timed repeat(s), audio {opts.durations} s", flush=True)

    rows = []
    for name, cfg in sizes.items():
        print(f"{name}: {cfg.name}", flush=True)
        rows += bench_model(name, cfg, opts.durations, dtype, device, repeats)

    print()
    print(
        "| model | audio s | run | ours s | transformers s | ours RTF | transformers RTF | ours peak GiB "
        "| transformers peak GiB | ours / transformers time | max rel. diff |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        diff = "-" if r["max_rel_diff"] is None else f"{r['max_rel_diff']:.1e}"
        print(
            f"| {r['model']} | {r['audio_s']:g} | {r['run']} | {r['ours_s']:.3f} | {r['ref_s']:.3f} "
            f"| {r['ours_rtf']:.4f} | {r['ref_rtf']:.4f} | {r['ours_peak_gib']:.2f} | {r['ref_peak_gib']:.2f} "
            f"| {r['ours_s'] / r['ref_s']:.2f} | {diff} |"
        )
    if not cuda:
        print("\n(CPU: peak memory is the process's max RSS, not per run)")
    if opts.json:
        Path(opts.json).write_text(json.dumps(dict(device=device_name, dtype=str(dtype), rows=rows), indent=2))


if __name__ == "__main__":
    main()
