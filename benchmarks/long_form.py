"""Long-form HuMo benchmark: peak RAM and device memory for 10 s, 60 s and 300 s of speech, and seconds of
compute per second of video.

Each duration runs in its own process (peak RSS is a per-process high-water mark) through the library the
node uses, ``samplers.humo_long.generate_long_form``: chunks of 97 frames with 3 overlapping latent frames,
latent continuation, the model's official guidance, frames streamed into an H.264 / AAC mp4 as each chunk
is decoded (``media.video_io.Mp4Writer``). The speech's Whisper features are random rows of the right
shape (the encoder runs once per clip and has its own benchmark, ``benchmarks/whisper.py``). Memory is
flat when what the run adds to its floor (peak - floor) agrees across the durations and the RSS after each
chunk stops rising; the floor itself grows with the inputs (the Whisper rows of 300 s are 0.18 GiB). The
300 s run makes 86 chunks.

Reported per duration: frames, chunks, wall seconds, seconds per video second, peak RSS of the process,
RSS after the model was built (the floor), RSS after each chunk, peak device memory (CUDA only). With
``--malloc-trim`` each chunk also logs the RSS after glibc returned its free heap pages: the memory still in
use, as opposed to pages freed by the run and kept by the allocator for reuse (which is what RSS adds over
the first chunks on the CPU). The tiny CPU run uses one torch thread by default: on a shared CPU, OpenMP
threads waiting on each other make the tiny VAE's many small convolutions about ten times slower.

    COMFYUI_PATH=/path/to/ComfyUI python benchmarks/long_form.py                  # CUDA: HuMo-1.7B real size, 480p
    COMFYUI_PATH=/path/to/ComfyUI python benchmarks/long_form.py --model 17B --weight-dtype fp8_e4m3fn
    COMFYUI_PATH=/path/to/ComfyUI python benchmarks/long_form.py --tiny --tiny-size 16   # CPU: tiny networks
"""

from __future__ import annotations

import argparse
import ctypes
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
from bench_common import peak_gib, reset_peak, start  # benchmarks/ is sys.path[0] when a script runs

SECONDS = (10, 60, 300)
SAMPLE_RATE = 16000


def rss_gib() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**30


def trimmed_rss_gib() -> float | None:
    """RSS after glibc hands its free heap pages back (``malloc_trim``): the memory still in use.

    The gap to ``rss_gib`` is memory freed by the program but kept by the allocator for reuse; only the
    ``--malloc-trim`` diagnostic calls this, since trimming changes the peak it is meant to explain.
    """
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:  # not glibc
        return None
    libc.malloc_trim(0)
    return rss_gib()


def one(opts) -> dict:
    """One duration in this process."""
    device = start(opts.comfyui, opts.tiny)
    if opts.threads:
        torch.set_num_threads(opts.threads)
    import comfy.model_management as mm
    from humanvideo.loaders import humo_dit
    from humanvideo.media.video_io import Mp4Writer
    from humanvideo.samplers import guidance as gd
    from humanvideo.samplers import humo_long as hl
    from humo_step import SIZES, WEIGHT_DTYPES, build_core_humo, tiny_wan_vae

    if opts.tiny:
        cfg = humo_dit.HumoConfig(in_dim=36 if opts.model == "17B" else 16, dim=128, ffn_dim=256, num_layers=2)
        (width, height), weight_dtype, tokens = (opts.tiny_size, opts.tiny_size), torch.float32, 32
    else:
        cfg = {"17B": humo_dit.HUMO_17B, "1.7B": humo_dit.HUMO_1_7B}[opts.model]
        (width, height), weight_dtype, tokens = SIZES[opts.size], WEIGHT_DTYPES[opts.weight_dtype], 512
    vae = tiny_wan_vae()  # a random Wan 2.1 VAE of base width 8: latents of the right shapes, cheap to run
    patcher, params, _ = build_core_humo(cfg, weight_dtype, False, seed=1)
    plan = gd.humo_17b_plan() if cfg.in_dim > cfg.out_dim else gd.humo_1_7b_plan()
    g = torch.Generator().manual_seed(3)
    total = hl.video_frames_for(opts.one * SAMPLE_RATE, SAMPLE_RATE)
    speech = torch.randn(total, 5, 1280, generator=g)
    positive = [[torch.randn(1, tokens, 4096, generator=g), {}]]
    negative = [[torch.randn(1, tokens, 4096, generator=g), {}]]
    image = torch.rand(height, width, 3, generator=g)
    audio = torch.sin(torch.arange(opts.one * SAMPLE_RATE) * 0.05)[None] * 0.1
    floor = rss_gib()
    reset_peak(device)
    settings = hl.LongFormSettings(steps=opts.steps)
    trace = []  # (chunk, seconds since the start, RSS GiB, RSS after malloc_trim) when a chunk's sampling ends

    def on_progress(chunk: int, chunks: int, step: int, steps: int) -> None:
        if step == steps:
            rss = rss_gib()
            trimmed = trimmed_rss_gib() if opts.malloc_trim else None
            trace.append((chunk, round(time.perf_counter() - t0, 1), round(rss, 3), trimmed and round(trimmed, 3)))
            print(
                f"CHUNK {chunk + 1}/{chunks} at {trace[-1][1]} s, RSS {trace[-1][2]} GiB"
                + ("" if trimmed is None else f", after malloc_trim {trace[-1][3]} GiB"),
                file=sys.stderr,
                flush=True,
            )

    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        with Mp4Writer(os.path.join(tmp, "long.mp4"), total, (height, width), 25, audio=(audio, SAMPLE_RATE)) as w:
            result = hl.generate_long_form(
                patcher,
                vae,
                positive,
                negative,
                plan,
                width=width,
                height=height,
                total_frames=total,
                speakers=[speech],
                images=[image],
                settings=settings,
                sink=lambda frames: [w.write_image(f) for f in frames],
                on_progress=on_progress,
            )
        wall = time.perf_counter() - t0
    row = {
        "seconds": opts.one,
        "model": f"{'tiny-' if opts.tiny else ''}{opts.model}",
        "params_b": params / 1e9,
        "size": f"{width}x{height}",
        "steps": opts.steps,
        "frames": result.frames,
        "chunks": len(result.chunks),
        "wall_s": wall,
        "s_per_video_s": wall / opts.one,
        "rss_floor_gib": floor,
        "peak_rss_gib": peak_gib(torch.device("cpu")),
        "peak_device_gib": peak_gib(device) if device.type == "cuda" else None,
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU",
        "threads": torch.get_num_threads(),
        "rss_per_chunk_gib": [r for _, _, r, _ in trace],
        "trimmed_rss_per_chunk_gib": [t for _, _, _, t in trace] if opts.malloc_trim else None,
        "seconds_per_chunk": [b - a for (_, a, _, _), (_, b, _, _) in zip(trace, trace[1:], strict=False)],
    }
    mm.unload_all_models()
    return row


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--comfyui", default=os.environ.get("COMFYUI_PATH", ""), help="ComfyUI checkout")
    p.add_argument("--tiny", action="store_true", help="tiny networks on the CPU")
    p.add_argument("--tiny-size", type=int, default=32, help="frame size of the tiny run (multiple of 16)")
    p.add_argument("--model", choices=["1.7B", "17B"], default="1.7B", help="HuMo size (real size needs CUDA)")
    p.add_argument("--size", choices=["480p", "720p"], default="480p", help="resolution of the real-size run")
    p.add_argument("--weight-dtype", choices=["bf16", "fp16", "fp8_e4m3fn"], default="bf16")
    p.add_argument(
        "--threads",
        type=int,
        default=None,
        help="torch CPU threads (--tiny default 1: on a shared CPU, OpenMP threads waiting on each other make the "
        "tiny VAE's many small convolutions about 10x slower)",
    )
    p.add_argument(
        "--malloc-trim",
        action="store_true",
        help="diagnostic: after each chunk return glibc's free heap pages and log the RSS still in use",
    )
    p.add_argument(
        "--steps",
        type=int,
        default=None,
        help="sampling steps per chunk (--tiny: 1, else 2; official 50; memory does not care)",
    )
    p.add_argument("--seconds", type=int, nargs="+", default=list(SECONDS), help="speech durations")
    p.add_argument("--one", type=int, default=None, help=argparse.SUPPRESS)  # a single duration, this process
    p.add_argument("--json", default=None, help="also write the results here")
    opts = p.parse_args()
    if opts.threads is None and opts.tiny:
        opts.threads = 1
    if opts.steps is None:
        opts.steps = 1 if opts.tiny else 2
    if opts.one is not None:
        print("RESULT " + json.dumps(one(opts)), flush=True)
        return
    rows = []
    for seconds in opts.seconds:
        cmd = [sys.executable, __file__, "--one", str(seconds), "--model", opts.model, "--size", opts.size]
        cmd += ["--weight-dtype", opts.weight_dtype, "--steps", str(opts.steps), "--comfyui", opts.comfyui]
        cmd += ["--tiny", "--tiny-size", str(opts.tiny_size)] if opts.tiny else []
        cmd += ["--threads", str(opts.threads)] if opts.threads else []
        cmd += ["--malloc-trim"] if opts.malloc_trim else []
        out = subprocess.run(cmd, stdout=subprocess.PIPE, text=True, check=False)  # progress lines: stderr
        lines = [ln for ln in out.stdout.splitlines() if ln.startswith("RESULT ")]
        if out.returncode or not lines:
            sys.exit(f"{seconds} s run failed:\n{out.stdout[-3000:]}")
        row = json.loads(lines[-1][7:])
        rows.append(row)
        print(json.dumps(row), flush=True)
    print(
        "\n| speech | frames | chunks | steps | wall s | s / video s | s / chunk | RSS floor GiB | peak RSS GiB | "
        "RSS after chunks 1 / last GiB | in use after malloc_trim, min-max GiB | peak device GiB |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        dev = "-" if r["peak_device_gib"] is None else f"{r['peak_device_gib']:.2f}"
        per = r["rss_per_chunk_gib"]
        used = r["trimmed_rss_per_chunk_gib"]
        used = "-" if not used else f"{min(used):.3f}-{max(used):.3f}"
        print(
            f"| {r['seconds']} s | {r['frames']} | {r['chunks']} | {r['steps']} | {r['wall_s']:.1f} | "
            f"{r['s_per_video_s']:.2f} | {r['wall_s'] / r['chunks']:.1f} | {r['rss_floor_gib']:.3f} | "
            f"{r['peak_rss_gib']:.3f} | {per[0]:.3f} / {per[-1]:.3f} | {used} | {dev} |"
        )
    if opts.json:
        Path(opts.json).write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
