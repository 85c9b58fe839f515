"""Lip-sync scoring speed: seconds per minute of video, split into face detection (dlib, CPU), SyncNet
crops, and SyncNet itself (both streams, the real network with random weights), on the CPU and, when
there is one, on the GPU.

A clip of ``--seconds`` (default 4 s) of the test face at 25 fps is scored and the time scaled to one
minute; detection runs on ``--size`` px frames. No reference implementation runs here: the official
evaluation needs S3FD weights and ffmpeg; its SyncNet arithmetic is the same as ours (see
tests/unit/test_syncnet.py), so the SyncNet time is the comparable part.

    python benchmarks/sync_score.py [--seconds 4] [--size 512] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time

import torch
from bench_common import load_pack, peak_gib, reset_peak, sync


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--comfyui", default=os.environ.get("COMFYUI_PATH", ""))
    parser.add_argument("--seconds", type=float, default=4.0, help="clip length to time (scaled to 1 min)")
    parser.add_argument("--size", type=int, default=512, help="frame size for face detection")
    parser.add_argument("--json", help="write the numbers here")
    args = parser.parse_args()
    load_pack(args.comfyui, cpu=not torch.cuda.is_available())

    from humanvideo.media import sync_crop
    from humanvideo.media.face_detect import LANDMARKS_68, PACKAGE_PREFIX, DlibFaceDetector
    from humanvideo.models import syncnet_eval
    from humanvideo.models.syncnet import SyncNet
    from hv_fixtures import media

    frames_n = int(round(args.seconds * 25))
    frames = media.face_clip_frames(frames=frames_n, size=args.size)
    voice = media.synthesized_voice(frames_n / 25.0)
    pcm = syncnet_eval.pcm16(voice)
    scale = 60.0 / (frames_n / 25.0)
    detector = DlibFaceDetector(PACKAGE_PREFIX + LANDMARKS_68)

    t0 = time.perf_counter()
    faces = [detector.detect(f) for f in frames]
    detect_s = time.perf_counter() - t0
    tracks, _ = sync_crop.build_tracks(faces, min_track=min(50, frames_n - 1), min_face_size=0)
    if not tracks:
        raise SystemExit("no face track in the benchmark clip")
    t0 = time.perf_counter()
    crops = sync_crop.crop_track(lambda i: frames[i], tracks[0])
    crop_s = time.perf_counter() - t0

    devices = [torch.device("cpu")] + ([torch.device("cuda")] if torch.cuda.is_available() else [])
    rows = {}
    for device in devices:
        model = SyncNet().eval().to(device)
        syncnet_eval.score_clip(model, crops[:12], pcm[: 12 * 640], device=device)  # warm-up
        reset_peak(device)
        sync(device)
        t0 = time.perf_counter()
        score = syncnet_eval.score_clip(model, crops, pcm[: len(crops) * 640], device=device)
        sync(device)
        seconds = time.perf_counter() - t0
        name = torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor() or "CPU"
        rows[device.type] = {
            "device": f"{name} ({os.cpu_count()} cores)" if device.type == "cpu" else name,
            "syncnet_s_per_min": round(seconds * scale, 2),
            "windows": score.windows,
            "peak_gib": round(peak_gib(device), 2),
        }
    report = {
        "clip_seconds": frames_n / 25.0,
        "frame_size": args.size,
        "face_detection_s_per_min_cpu": round(detect_s * scale, 2),
        "crops_s_per_min_cpu": round(crop_s * scale, 2),
        "syncnet": rows,
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
    }
    for row in rows.values():
        total = report["face_detection_s_per_min_cpu"] + report["crops_s_per_min_cpu"] + row["syncnet_s_per_min"]
        row["total_s_per_min"] = round(total, 2)
    print(json.dumps(report, indent=2))
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(report, fh, indent=2)


if __name__ == "__main__":
    main()
