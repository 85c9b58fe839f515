"""Streaming LatentSync benchmark: peak memory against video length, and output frames per second.

Writes a 1080p (by default) H.264 video of a moving face of each requested length, then lip-syncs it
with `lip_sync_video` (the HVLatentSyncVideo node's pipeline: tracking pass, 16-frame sync pass, mp4
out with the sound track) in a fresh process per length, and reports the process's peak RSS, the
device's peak memory on CUDA, the output frames per second and the run time. Flat memory means the
peak RSS does not grow with the length beyond the speech itself (16 kHz mono float32, 64 KB a second,
held by the caller and the writer).

The speech's Whisper-tiny features (real size, random weights) are computed as the node does with its
`whisper` input: one 30 s window at a time as the sync reaches it (--features streamed, the default).
--features whole computes them for the whole speech first, as the node does with `audio_features`
connected (Whisper Audio Features): those are held whole, 0.46 MB a second in float32.

    COMFYUI_PATH=/path/to/ComfyUI python benchmarks/latentsync_streaming.py --tiny --seconds 10 60 600
    COMFYUI_PATH=/path/to/ComfyUI python benchmarks/latentsync_streaming.py --seconds 60 --resolution 256 512

--tiny runs on the CPU with small random-weight networks and 1 DDIM step: the test fixtures' tiny
UNet widths (32, 64, 96, 96) with one layer per block, and an SD VAE of width 32 with one resnet per
level (the narrowest core's 32-group norms allow), and ComfyUI's PyTorch attention (its
--use-pytorch-cross-attention flag; on the CPU the default is sub-quadratic attention, which holds up to a
512 MiB score tensor per 16-frame chunk at 256 px). --preset picks the x264 preset of the output (the
node's is "medium"); --threads 1 suits a CPU other jobs share. Without --tiny, the real-size UNet and
SD VAE (random weights) run on CUDA with the official 20 steps. The sync is checked for one thing only,
that it completes: the weights are random. Each run also reports the RSS every 10% of its output
frames, so growth shows as a trend.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from bench_common import load_pack, peak_gib, reset_peak, sync  # benchmarks/ is sys.path[0] when a script runs

LOOP_SECONDS = 4  # the face's motion repeats every 4 s, so a long input is written without a long render


def write_input(path: Path, seconds: float, width: int, height: int, fps: int = 25) -> None:
    """A face moving over a textured background, [seconds] long, yuv420p H.264 (fast preset)."""
    from humanvideo.media.video_io import Mp4Writer
    from hv_fixtures.media import face_clip_frames

    face_size = height // 2
    faces = face_clip_frames(frames=LOOP_SECONDS * fps, size=face_size, fps=fps)
    yy, xx = np.mgrid[0:height, 0:width]
    background = np.stack([(xx * 255 // width), (yy * 255 // height), ((xx + yy) % 64) * 3], -1).astype(np.uint8)
    top, left = (height - face_size) // 2, (width - face_size) // 2
    count = int(round(seconds * fps))
    with Mp4Writer(str(path), count, (height, width), fps, crf=23, preset="ultrafast") as writer:
        for i in range(count):
            frame = background.copy()
            frame[top : top + face_size, left : left + face_size] = faces[i % len(faces)]
            writer.write_rgb(frame)


def random_vae(folder: Path, widths: tuple[int, ...], layers_per_block: int) -> Path:
    """sd-vae-ft-mse's layout (diffusers' AutoencoderKL, 4 levels) with random weights: at its real size
    widths (128, 256, 512, 512) with 2 resnets per level; the CPU runs use width 32 at every level (core's
    norms have 32 groups) with 1."""
    from diffusers import AutoencoderKL
    from safetensors.torch import save_file

    path = folder / "diffusion_pytorch_model.safetensors"
    if not path.exists():
        torch.manual_seed(7)
        vae = AutoencoderKL(
            block_out_channels=widths,
            down_block_types=("DownEncoderBlock2D",) * 4,
            up_block_types=("UpDecoderBlock2D",) * 4,
            layers_per_block=layers_per_block,
            latent_channels=4,
        )
        folder.mkdir(parents=True, exist_ok=True)
        save_file({k: v.contiguous() for k, v in vae.state_dict().items()}, str(path))
    return path


def random_whisper_tiny(folder: Path):
    """Whisper-tiny at its real size (MLP 1536) with random weights, in OpenAI's release layout, loaded by
    the pack's loader (float32)."""
    from humanvideo.loaders.whisper import load_whisper
    from hv_fixtures.whisper import write_openai_tiny

    path = folder / "whisper_tiny_random.pt"
    if not path.exists():
        write_openai_tiny(path, ffn=1536)
    return load_whisper(str(path), "fp32")


def current_rss_gib() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**30


def run_one(args) -> dict:
    """One lip sync in this process (called in a child process per length)."""
    cuda = torch.cuda.is_available() and not args.tiny
    if args.tiny:  # before ComfyUI's model management reads its flags (see the module notes)
        sys.path.insert(0, str(Path(os.environ["COMFYUI_PATH"]).resolve()))
        import comfy.options

        comfy.options.enable_args_parsing(False)
        from comfy.cli_args import args as comfy_args

        comfy_args.use_pytorch_cross_attention = True
    load_pack(os.environ["COMFYUI_PATH"], cpu=not cuda)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device("cuda" if cuda else "cpu")
    from humanvideo.loaders.sd_vae import load_sd_vae
    from humanvideo.media import face_detect
    from humanvideo.media.face_track import FaceTracker
    from humanvideo.media.video_io import Mp4Writer
    from humanvideo.media.video_stream import HeldFrameWriter, VideoReader
    from humanvideo.media.watermark import make_label, provenance_metadata
    from humanvideo.models.audio_features import extract_audio_features, streamed_audio_features
    from humanvideo.models.latentsync_unet import LatentSyncUNet3D, LatentSyncUNetConfig
    from humanvideo.samplers.latentsync_denoise import DenoiseSettings
    from humanvideo.samplers.latentsync_pipeline import lip_sync_audio_windows
    from humanvideo.samplers.latentsync_stream import lip_sync_video
    from hv_fixtures.latentsync_unet import randomize, tiny_unet

    work = Path(args.work)
    if args.tiny:
        unet = tiny_unet(seed=0, layers_per_block=1).eval()
        vae_file = random_vae(work / "vae_small", (32, 32, 32, 32), 1)
    else:
        unet = randomize(LatentSyncUNet3D(LatentSyncUNetConfig(), dtype=torch.float16, device=device), 0).eval()
        vae_file = random_vae(work / "vae_real", (128, 256, 512, 512), 2)
    vae = load_sd_vae(str(vae_file))
    reader = VideoReader(args.video)
    layout = reader.info.layout
    frames = int(round(args.length * 25))
    speech = (torch.sin(torch.arange(frames * 640) * 0.05) * 0.2)[None]  # 16 kHz mono, one frame = 640 samples
    whisper = random_whisper_tiny(work)
    features_started = time.monotonic()
    if args.features == "streamed":
        features = streamed_audio_features(whisper, speech[0])
    else:
        features = extract_audio_features(whisper, speech[0])
    features_seconds = time.monotonic() - features_started
    tokens = lip_sync_audio_windows(features, "audio", lazy=True)  # one window per video frame
    out = str(work / f"out_{args.length:g}_{args.resolution}.mp4")
    writers = []

    def open_sink(count, rate):
        writer = Mp4Writer(
            out,
            count,
            (layout.height, layout.width),
            rate,
            audio=(speech, 16000),
            metadata=provenance_metadata("benchmark"),
            pix_fmt=layout.format,
            colour=layout.colour_tags,
            preset=args.preset,
        )
        writers.append(writer)
        return HeldFrameWriter(writer, layout)

    rss_trace: list[float] = []

    def progress(stage: str, done: int, total: int) -> None:
        if stage == "lip sync" and done * 10 // total > len(rss_trace):
            rss_trace.append(round(current_rss_gib(), 3))

    detector = face_detect.DlibFaceDetector(face_detect.PACKAGE_PREFIX + face_detect.LANDMARKS_68, upsample=0)
    reset_peak(device)
    started = time.monotonic()
    result = lip_sync_video(
        reader,
        FaceTracker(detector, args.resolution),
        tokens,
        unet,
        vae,
        DenoiseSettings(steps=args.steps, guidance=1.0 if args.tiny else 1.5),
        1247,
        open_sink,
        label=make_label(layout.height, layout.width),
        disk_dir=str(work),
        progress=progress,
    )
    written = writers[0].close()
    sync(device)
    seconds = time.monotonic() - started
    return {
        "length_s": args.length,
        "size": f"{layout.width}x{layout.height}",
        "resolution": args.resolution,
        "device": torch.cuda.get_device_name(device) if cuda else "cpu",
        "unet": "tiny" if args.tiny else "real size (random weights, fp16)",
        "steps": args.steps,
        "features": args.features,
        "features_first_s": round(features_seconds, 1),
        "whisper_windows_encoded": getattr(tokens.states, "encodes", None),
        "frames_out": written.frames,
        "run_s": round(seconds, 1),
        "track_s": round(result.track_seconds, 1),
        "sync_s": round(result.sync_seconds, 1),
        "output_fps": round(written.frames / result.sync_seconds, 3),
        "peak_rss_gib": round(peak_gib(torch.device("cpu")), 3),
        "peak_device_gib": round(peak_gib(device), 3) if cuda else None,
        "output_mib": round(os.path.getsize(out) / 2**20, 1),
        "x264_preset": args.preset,
        "threads": torch.get_num_threads(),
        "rss_every_10pct_gib": rss_trace,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, nargs="+", default=[10, 60, 600], help="video lengths")
    parser.add_argument("--size", default="1920x1080", help="input video size, WxH")
    parser.add_argument(
        "--resolution",
        type=int,
        nargs="+",
        default=[256],
        choices=[64, 256, 512],
        help="face crop size: 256 (LatentSync 1.5), 512 (1.6); 64 is not a LatentSync size, for CPU runs where "
        "the networks would otherwise hide the streaming costs",
    )
    parser.add_argument("--tiny", action="store_true", help="CPU run with the tiny UNet")
    parser.add_argument("--steps", type=int, default=None, help="DDIM steps (1 with --tiny, else 20)")
    parser.add_argument("--preset", default="medium", help="x264 preset of the output (the node's: medium)")
    parser.add_argument(
        "--threads",
        type=int,
        default=0,
        help="torch CPU threads (0: torch's default); 1 on a CPU other jobs share, where threads waiting for "
        "each other cost more than they bring",
    )
    parser.add_argument(
        "--features",
        choices=["streamed", "whole"],
        default="streamed",
        help="Whisper features a 30 s window at a time during the sync (the node's whisper input), or of the "
        "whole speech first (its audio_features input)",
    )
    parser.add_argument("--json", default=None, help="write the results here")
    parser.add_argument("--work", default=None, help="folder for the videos (default: a temporary one)")
    parser.add_argument("--one", action="store_true", help=argparse.SUPPRESS)  # the child process
    parser.add_argument("--video", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--length", type=float, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.steps is None:
        args.steps = 1 if args.tiny else 20
    if args.one:
        args.resolution = args.resolution[0]
        print(json.dumps(run_one(args)))
        return
    if not args.tiny and not torch.cuda.is_available():
        sys.exit("no CUDA device: the real-size benchmark needs a GPU; use --tiny for a CPU run")
    try:
        results = measure(args)
    except RuntimeError as e:
        sys.exit(str(e))
    peaks = [r["peak_rss_gib"] for r in results]
    if len(peaks) > 1:
        spread = (max(peaks) - min(peaks)) / min(peaks)
        print(f"peak RSS from {min(peaks):.3f} to {max(peaks):.3f} GiB: spread {100 * spread:.1f}%")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))
    if not math.isfinite(sum(peaks)):
        sys.exit(1)


def measure(args) -> list[dict]:
    """Every (length, crop size) of `args`, each lip sync in a fresh process (so each peak is its own), or
    in this one with `args.in_process` (a smoke run)."""
    width, height = (int(v) for v in args.size.split("x"))
    results = []
    with tempfile.TemporaryDirectory(prefix="hv_stream_bench_") as scratch:
        work = Path(args.work or scratch)
        work.mkdir(parents=True, exist_ok=True)
        load_pack(os.environ["COMFYUI_PATH"], cpu=True)
        for seconds in args.seconds:
            video = work / f"in_{seconds:g}s_{width}x{height}.mp4"
            if not video.exists():
                write_input(video, seconds, width, height)
            for resolution in args.resolution:
                if getattr(args, "in_process", False):  # smoke runs: no fresh process, so the peak is not its own
                    one = {"video": str(video), "length": seconds, "resolution": resolution, "work": str(work)}
                    results.append(run_one(argparse.Namespace(**{**vars(args), **one})))
                    continue
                command = [sys.executable, __file__, "--one", "--video", str(video), "--length", str(seconds)]
                command += ["--resolution", str(resolution), "--steps", str(args.steps), "--work", str(work)]
                command += ["--preset", args.preset, "--threads", str(args.threads), "--features", args.features]
                command += ["--tiny"] if args.tiny else []
                child = subprocess.run(command, capture_output=True, text=True)
                if child.returncode:
                    raise RuntimeError(f"the {seconds:g} s run at {resolution} px failed:\n{child.stderr[-4000:]}")
                row = json.loads(child.stdout.strip().splitlines()[-1])
                results.append(row)
                print(json.dumps(row), flush=True)
    return results


if __name__ == "__main__":
    main()
