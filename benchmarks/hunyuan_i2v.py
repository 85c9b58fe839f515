"""HunyuanVideo-I2V DiT benchmark: real size (HYVideo-T/2, ~12.8 B parameters, random weights), 129 frames.

Seconds per denoising step and peak GPU memory at the 720p bucket (1248x704) and at 544p (960x544),
v2 "replace" checkpoint layout, for two sampling paths over the same core MODEL in one run:
- ours: the `samplers.hunyuan_i2v.sample_i2v` path (official sigmas, stability initial latent, token
  replace with the official guidance placement, one-sample-per-forward wrapper);
- core: what core's nodes do (HunyuanImageToVideo "v2 (replace)" conditioning, ModelSamplingSD3,
  BasicScheduler "simple", KSamplerSelect "euler", `comfy.sample.sample_custom`).
The first step of each path is warm-up and is not counted.

    COMFYUI_PATH=/path/to/ComfyUI python benchmarks/hunyuan_i2v.py            # CUDA, real size
    COMFYUI_PATH=/path/to/ComfyUI python benchmarks/hunyuan_i2v.py --tiny     # CPU smoke run
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import dit_flops  # benchmarks/ is sys.path[0] when a script runs
import torch
from bench_common import load_pack

SIZES = {"720p": (704, 1248), "544p": (544, 960)}  # (h, w): official buckets of a 16:9 image


def random_state_dict(cfg, dtype: torch.dtype, device: str) -> dict[str, torch.Tensor]:
    """Official-named random weights (made on `device` for speed, kept on the CPU like a loaded file)."""
    from humanvideo.loaders import hunyuan_dit as hd

    g = torch.Generator(device=device).manual_seed(0)
    sd = {}
    for key, shape in hd.official_manifest(cfg).items():
        fan_in = max(1, int(torch.tensor(shape[1:]).prod().item())) if len(shape) > 1 else 1
        t = torch.randn(shape, generator=g, device=device, dtype=torch.float32) / fan_in**0.5
        if "norm" in key and len(shape) == 1:
            t = t * 0.1 + 1.0
        sd[key] = t.to(dtype).cpu()
    return sd


class StepClock:
    def __init__(self, sync):
        self.sync = sync
        self.stamps: list[float] = []

    def __call__(self, *_):
        self.sync()
        self.stamps.append(time.perf_counter())

    def per_step(self) -> float | None:
        gaps = [b - a for a, b in zip(self.stamps, self.stamps[1:], strict=False)]  # drops the warm-up step
        return sum(gaps) / len(gaps) if gaps else None


def run(args) -> dict:
    cuda = torch.cuda.is_available() and not args.tiny
    load_pack(args.comfyui, cpu=not cuda)
    import comfy.model_management as mm
    import comfy.model_sampling
    import comfy.sample
    import comfy.samplers
    from humanvideo.loaders import hunyuan_dit as hd
    from humanvideo.models import hunyuan_video_spec as hs
    from humanvideo.samplers import hunyuan_i2v as hi

    if args.tiny:
        cfg = hs.HunyuanDiTConfig(hidden_size=128, heads=1, double_blocks=1, single_blocks=1, text_dim=128)
        sizes, frames, steps, text_tokens = {"tiny": (64, 96)}, 9, 3, 20
    else:
        cfg = hs.REAL_V2
        sizes = {k: SIZES[k] for k in args.sizes}
        frames, steps, text_tokens = args.frames, args.steps, 396
    dtype = torch.bfloat16 if cuda else torch.float32
    t0 = time.perf_counter()
    sd = random_state_dict(cfg, dtype, "cuda" if cuda else "cpu")
    model, release = hd.load_state_dict_as_model(sd, "default")
    del sd
    params = sum(p.numel() for p in model.model.diffusion_model.parameters())
    result = {
        "device": torch.cuda.get_device_name() if cuda else "cpu",
        "dtype": str(dtype),
        "parameters": params,
        "release": release.name,
        "frames": frames,
        "steps_timed": steps - 1,
        "build_seconds": round(time.perf_counter() - t0, 1),
        "runs": [],
    }
    sync = torch.cuda.synchronize if cuda else (lambda: None)

    g = torch.Generator().manual_seed(1)
    context = torch.randn(1, text_tokens, cfg.text_dim, generator=g) * 0.5
    pooled = torch.randn(1, 768, generator=g)
    cond = [[context, {"pooled_output": pooled}]]
    for _name, (h, w) in sizes.items():
        image_latent = torch.randn(1, 16, 1, h // 8, w // 8, generator=g)
        for path in ("ours", "core"):
            mm.unload_all_models()
            mm.soft_empty_cache()
            if cuda:
                torch.cuda.reset_peak_memory_stats()
            clock = StepClock(sync)
            if path == "ours":
                pos, neg, latent = hi.assemble_i2v(release, cond, cond, image_latent, frames, stability=True)
                shift = hi.default_shift(True)
                patched = hi.one_sample_per_forward(hi.official_token_replace(hi.with_flow_shift(model, shift)))
                noise = hi.initial_noise(latent["samples"], 0, True, image_latent, patched.model.process_latent_in)
                guider = hi.make_guider(patched, pos, neg, 1.0)
                guider.sample(
                    noise,
                    latent["samples"],
                    comfy.samplers.sampler_object("euler"),
                    hi.flow_sigmas(steps, shift),
                    denoise_mask=latent["noise_mask"],
                    callback=clock,
                    disable_pbar=True,
                    seed=0,
                )
            else:
                # core's HunyuanImageToVideo "v2 (replace)" + ModelSamplingSD3(7) + simple/euler + BasicGuider
                t = (frames - 1) // 4 + 1
                latent = torch.zeros(1, 16, t, h // 8, w // 8)
                latent[:, :, :1] = image_latent
                mask = torch.ones(1, 1, t, h // 8, w // 8)
                mask[:, :, :1] = 0.0
                pos = [[context, {"pooled_output": pooled, "guiding_frame_index": 0}]]
                patched = hi.with_flow_shift(model, 7.0)
                sigmas = comfy.samplers.calculate_sigmas(patched.get_model_object("model_sampling"), "simple", steps)
                noise = comfy.sample.prepare_noise(latent, 0)
                comfy.sample.sample_custom(
                    patched,
                    noise,
                    1.0,
                    comfy.samplers.sampler_object("euler"),
                    sigmas,
                    pos,
                    pos,
                    latent,
                    noise_mask=mask,
                    callback=clock,
                    disable_pbar=True,
                    seed=0,
                )
            run = {
                "size": f"{w}x{h}",
                "path": path,
                "tokens": t_tokens(frames, h, w) + text_tokens,
                "seconds_per_step": clock.per_step(),
                # guidance 1 (embedded guidance): one forward per step on both paths
                "flops_per_step": dit_flops.hunyuan_forward_flops(cfg, t_tokens(frames, h, w), text_tokens),
                "peak_gpu_gib": round(torch.cuda.max_memory_allocated() / 2**30, 2) if cuda else None,
            }
            print(json.dumps(run), flush=True)
            result["runs"].append(run)
    return result


def t_tokens(frames: int, h: int, w: int) -> int:
    return ((frames - 1) // 4 + 1) * (h // 16) * (w // 16)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--comfyui", default=os.environ.get("COMFYUI_PATH", ""), help="ComfyUI checkout (or COMFYUI_PATH)")
    ap.add_argument("--tiny", action="store_true", help="tiny network on the CPU: a smoke run of both paths")
    ap.add_argument("--sizes", nargs="+", default=list(SIZES), choices=list(SIZES), help="buckets to time")
    ap.add_argument("--frames", type=int, default=129, help="video frames (4n+1)")
    ap.add_argument("--steps", type=int, default=3, help="steps per path (the first is warm-up)")
    ap.add_argument("--out", default="", help="also write the JSON result here")
    args = ap.parse_args()
    result = run(args)
    text = json.dumps(result, indent=1)
    print(text)
    if args.out:
        Path(args.out).write_text(text)


if __name__ == "__main__":
    main()
