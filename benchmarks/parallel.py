"""Several-GPU benchmark: per-step time and peak memory per device of the parallel path (HV Parallel).

For each model (random weights written once, in the official file layout, to --cache-dir, so the workers
load them with the pack's loaders exactly as in ComfyUI) and each layout (sp_size x cfg_parallel, weights
replicated or sharded) the script samples with the official guidance through ``parallel.runtime`` and
reports seconds per step (a 1-step run is subtracted from an N-step run, so start-up, shipping and
decoding are not counted), the peak memory of every worker's device and the weights it holds, and the
speed-up against sp_size 1 of the same run. The first layout of each model is also timed on the direct
path (this process, no Ray), which gives the overhead of the parallel path at sp_size 1.

Real size needs as many CUDA GPUs as the largest layout and the disk and RAM for the files (HuMo-17B bf16
34 GB, HunyuanVideo-I2V 26 GB). ``--tiny`` runs tiny models on CPU workers (2 processes over gloo): it
checks the whole path and measures weight memory per worker; its timings are not performance figures.

    COMFYUI_PATH=/path/to/ComfyUI python benchmarks/parallel.py --models humo_1.7b --sp 1 2 4
    COMFYUI_PATH=/path/to/ComfyUI python benchmarks/parallel.py --models humo_17b --sp 2 4 --shard
    COMFYUI_PATH=/path/to/ComfyUI python benchmarks/parallel.py --models hunyuan_i2v --sp 1 2 4 --cfg-parallel 1
    COMFYUI_PATH=/path/to/ComfyUI python benchmarks/parallel.py --tiny
"""

from __future__ import annotations

import argparse
import json
import math
import os
import time
from dataclasses import dataclass
from pathlib import Path

import torch
from bench_common import load_pack, peak_gib, reset_peak, sync  # benchmarks/ is sys.path[0] when a script runs

REAL = {  # name -> (size (w, h), frames, default weight dtype)
    "humo_1.7b": ((832, 480), 97, torch.bfloat16),
    "humo_17b": ((1280, 720), 97, torch.bfloat16),
    "hunyuan_i2v": ((1280, 720), 129, torch.bfloat16),
}
TINY_SIZE, TINY_FRAMES = (48, 48), 5


@dataclass
class Layout:
    sp: int
    cfg: int
    shard: bool

    def label(self) -> str:
        return f"sp{self.sp} x cfg{self.cfg}{' sharded' if self.shard else ''}"


# --- model files ---------------------------------------------------------------------------------
def random_state_dict(manifest: dict, dtype: torch.dtype, seed: int) -> dict[str, torch.Tensor]:
    """Fan-in-scaled random tensors for a key -> shape manifest, made directly in ``dtype``."""
    g = torch.Generator().manual_seed(seed)
    out = {}
    for key in sorted(manifest):
        shape = manifest[key]
        if len(shape) == 1 and "norm" in key and key.endswith("weight"):
            out[key] = torch.ones(shape, dtype=dtype)
        elif len(shape) == 1 or key.endswith("bias"):
            out[key] = torch.zeros(shape, dtype=dtype)
        else:
            fan_in = shape[-1] if key.endswith("modulation") else math.prod(shape[1:])
            out[key] = (torch.randn(shape, generator=g, dtype=dtype) / math.sqrt(max(fan_in, 1))).contiguous()
    return out


def model_file(name: str, tiny: bool, cache: Path) -> Path:
    from humanvideo.loaders import humo_dit, hunyuan_dit
    from humanvideo.models import hunyuan_video_spec
    from safetensors.torch import save_file

    cache.mkdir(parents=True, exist_ok=True)
    path = cache / f"{name}{'_tiny' if tiny else ''}.safetensors"
    if path.exists():
        return path
    dtype = torch.float32 if tiny else REAL[name][2]
    if name.startswith("humo"):
        cfg = humo_dit.HUMO_1_7B if name == "humo_1.7b" else humo_dit.HUMO_17B
        if tiny:  # 2 heads of 128, 2 blocks; the audio projection keeps its fixed real size
            cfg = humo_dit.HumoConfig(dim=256, ffn_dim=256, num_layers=2, in_dim=cfg.in_dim)
        sd = random_state_dict(humo_dit.official_key_manifest(cfg), dtype, seed=1)
    else:
        cfg = hunyuan_video_spec.REAL_V2
        if tiny:
            cfg = hunyuan_video_spec.HunyuanDiTConfig(
                in_channels=16, hidden_size=256, heads=2, double_blocks=2, single_blocks=2, text_dim=4096
            )
        sd = random_state_dict(hunyuan_dit.official_manifest(cfg), dtype, seed=2)
    print(f"writing {path} ({sum(t.numel() * t.element_size() for t in sd.values()) / 2**30:.1f} GiB)", flush=True)
    save_file(sd, str(path))
    return path


# --- inputs --------------------------------------------------------------------------------------
def humo_inputs(model, size, frames, device):
    from humanvideo.samplers import humo_conditioning as hc
    from hv_fixtures.humo import tiny_wan_vae

    vae = tiny_wan_vae(0)
    w, h = size
    g = torch.Generator().manual_seed(1)
    cond = hc.build_condition(
        vae,
        w,
        h,
        frames,
        images=[torch.rand(h, w, 3, generator=g)],
        speakers=[torch.randn(frames, 5, 1280, generator=g)],
    )
    text = [torch.randn(1, 512, 4096, generator=g) * 0.2 for _ in range(2)]
    latent = {"samples": torch.zeros(1, 16, cond.latent_frames, h // 8, w // 8)}
    return [[text[0], {hc.COND_KEY: cond}]], [[text[1], {hc.COND_KEY: cond}]], latent


def hunyuan_inputs(release, size, frames):
    from humanvideo.samplers import hunyuan_i2v as hi

    w, h = size
    g = torch.Generator().manual_seed(1)

    def text():
        ctx = torch.randn(1, 256, 4096, generator=g) * 0.2
        return [[ctx, {"pooled_output": torch.randn(1, 768, generator=g), hi.INTERLEAVE_KEY: release.image_interleave}]]

    image = torch.randn(1, 16, 1, h // 8, w // 8, generator=g)
    return hi.assemble_i2v(release, text(), text(), image, frames, True)


def sampler_call(name: str, model, inputs):
    """(function, args, kwargs, returns) of the sampler the nodes would call."""
    from humanvideo.samplers import guidance as gd
    from humanvideo.samplers import humo_guider as hg
    from humanvideo.samplers import hunyuan_i2v as hi

    if name.startswith("humo"):
        plan = gd.humo_1_7b_plan() if name == "humo_1.7b" else gd.humo_17b_plan()
        return hg.sample_humo, (*inputs, plan), {"seed": 1, "solver": "euler"}, 0
    pos, neg, latent = inputs
    return hi.sample_i2v, (pos, neg, latent, 1), {"cfg": 6.0}, 0  # real CFG: 2 passes per step


# --- timing --------------------------------------------------------------------------------------
def per_step(run, steps: int) -> float:
    run(1)  # warm-up: workers, model loading, first-call allocations
    start = time.perf_counter()
    run(1)
    one = time.perf_counter() - start
    start = time.perf_counter()
    run(steps)
    return (time.perf_counter() - start - one) / (steps - 1)


def bench_model(name: str, layouts: list[Layout], steps: int, tiny: bool, cache: Path, devices: str, direct: bool):
    from humanvideo.loaders import hunyuan_dit
    from humanvideo.loaders.humo_dit import load_humo_model
    from humanvideo.parallel import runtime as rt

    path = model_file(name, tiny, cache)
    device = torch.device("cpu") if tiny else torch.device("cuda")
    if name.startswith("humo"):
        model = load_humo_model(path)[0]
        size, frames = (TINY_SIZE, TINY_FRAMES) if tiny else REAL[name][:2]
        inputs = humo_inputs(model, size, frames, device)
    else:
        model, release = hunyuan_dit.load_hunyuan_dit(str(path))
        size, frames = (TINY_SIZE, TINY_FRAMES) if tiny else REAL[name][:2]
        inputs = hunyuan_inputs(release, size, frames)
    fn, args, kwargs, returns = sampler_call(name, model, inputs)
    rows = []
    if direct:
        reset_peak(device)

        def run_direct(n):
            with torch.inference_mode():
                fn(model, *args, steps=n, **kwargs)
            sync(device)

        rows.append({"model": name, "layout": "direct (this process)", "s_per_step": per_step(run_direct, steps)})
        rows[-1]["peak_gib"] = [peak_gib(device)]
    for layout in layouts:
        cfg = rt.ParallelConfig(layout.sp, layout.cfg, layout.shard, "cpu" if tiny else devices)

        def run_parallel(n):
            rt.run(cfg, model, fn, *args, returns=returns, steps=n, **kwargs)

        seconds = per_step(run_parallel, steps)
        stats, loads = rt.RUNTIME.stats(), rt.RUNTIME.last_load
        rows.append(
            {
                "model": name,
                "layout": layout.label(),
                "workers": layout.sp * layout.cfg,
                "s_per_step": seconds,
                "peak_gib": [s.get("cuda_peak", 0) / 2**30 for s in stats] if not tiny else None,
                "weights_gib_per_worker": [m["weights_local"] / 2**30 for m in loads],
                "weights_fraction": [m["weights_local"] / m["weights_full"] for m in loads],
            }
        )
        print(json.dumps(rows[-1]), flush=True)
    base = next((r["s_per_step"] for r in rows if r["layout"].startswith("sp1 x cfg1")), None)
    for r in rows:
        r["speedup_vs_sp1"] = base / r["s_per_step"] if base and r["s_per_step"] > 0 else None
    return rows


def table(rows: list[dict]) -> str:
    lines = [
        "| model | layout | s / step | speed-up vs sp1 | peak GiB per device | weights GiB per worker |",
        "|---|---|---|---|---|---|",
    ]
    for r in rows:
        peak = ", ".join(f"{p:.1f}" for p in r["peak_gib"]) if r.get("peak_gib") else "-"
        weights = ", ".join(f"{w:.2f}" for w in r.get("weights_gib_per_worker", []) or []) or "-"
        speed = f"{r['speedup_vs_sp1']:.2f}x" if r.get("speedup_vs_sp1") else "-"
        lines.append(f"| {r['model']} | {r['layout']} | {r['s_per_step']:.3f} | {speed} | {peak} | {weights} |")
    return "\n".join(lines)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--models", nargs="+", default=list(REAL), choices=list(REAL))
    p.add_argument("--sp", nargs="+", type=int, default=[1, 2, 4])
    p.add_argument("--cfg-parallel", nargs="+", type=int, default=[1])
    p.add_argument("--shard", action="store_true", help="shard the weights (FSDP2) in every layout")
    p.add_argument("--steps", type=int, default=4, help="steps of the timed run (a 1-step run is subtracted)")
    p.add_argument("--devices", default="", help="CUDA indices for the workers (HV Parallel's devices)")
    p.add_argument("--no-direct", action="store_true", help="skip the direct-path run")
    p.add_argument("--cache-dir", type=Path, default=Path(os.environ.get("HV_BENCH_CACHE", "/tmp/hv_parallel_bench")))
    p.add_argument("--tiny", action="store_true", help="CPU smoke run: tiny models, 2 CPU workers")
    p.add_argument("--out", type=Path, help="write the rows as JSON")
    args = p.parse_args()
    cuda = torch.cuda.is_available() and not args.tiny
    if not cuda and not args.tiny:
        raise SystemExit("no CUDA device: the real-size benchmark needs GPUs; use --tiny for a CPU smoke run")
    load_pack(os.environ.get("COMFYUI_PATH", ""), cpu=not cuda)
    if args.tiny:
        layouts = [Layout(1, 1, False), Layout(2, 1, False), Layout(1, 2, False), Layout(2, 1, True)]
    else:
        gpus = torch.cuda.device_count()
        layouts = [Layout(s, c, args.shard) for s in args.sp for c in args.cfg_parallel if s * c <= gpus]
        print(f"{gpus} x {torch.cuda.get_device_name(0)}; layouts {[lay.label() for lay in layouts]}", flush=True)
    rows = []
    for name in args.models:
        rows += bench_model(name, layouts, args.steps, args.tiny, args.cache_dir, args.devices, not args.no_direct)
    print(table(rows))
    if args.out:
        args.out.write_text(json.dumps(rows, indent=2) + "\n")


if __name__ == "__main__":
    main()
