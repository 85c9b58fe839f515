"""LatentSync UNet3D benchmark: real size (1.27 B parameters, random weights), 20 DDIM steps per 16-frame chunk.

Measures output frames per second and peak memory of our chunked denoising loop at 256 and 512 px,
with DeepCache off and on (interval 3), and, in the same run, an independent reference of the same
network: diffusers' UNet2DConditionModel with the SD-1.5 layout LatentSync uses (13 input channels,
384-d audio cross-attention), the same weights, applied frame by frame. The reference has no motion
modules and uses per-frame GroupNorm statistics, so it does strictly less work than LatentSync needs;
the ratio shows what the temporal layers cost on top of a plain per-frame UNet.

    COMFYUI_PATH=/path/to/ComfyUI python benchmarks/latentsync.py            # CUDA, real size
    COMFYUI_PATH=/path/to/ComfyUI python benchmarks/latentsync.py --tiny     # CPU smoke run
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import torch
from bench_common import peak_gib, pick_dtype, reset_peak, start, sync  # benchmarks/ is sys.path[0] when a script runs


def build_models(cfg, dtype: torch.dtype, device: torch.device, seed: int):
    import diffusers
    from humanvideo.models.latentsync_unet import LatentSyncUNet3D
    from hv_fixtures.latentsync_unet import randomize

    ours = randomize(LatentSyncUNet3D(cfg, dtype=dtype, device=device), seed).eval()
    ref = diffusers.UNet2DConditionModel(
        in_channels=cfg.in_channels,
        out_channels=cfg.out_channels,
        down_block_types=tuple("CrossAttnDownBlock2D" if a else "DownBlock2D" for a in cfg.down_attention),
        up_block_types=tuple("CrossAttnUpBlock2D" if a else "UpBlock2D" for a in cfg.up_attention),
        block_out_channels=cfg.block_out_channels,
        layers_per_block=cfg.layers_per_block,
        cross_attention_dim=cfg.cross_attention_dim,
        attention_head_dim=cfg.num_heads,
        norm_num_groups=cfg.norm_num_groups,
        norm_eps=cfg.norm_eps,
    )
    shared = {k: v for k, v in ours.state_dict().items() if ".motion_modules." not in k}
    ref.load_state_dict(shared, strict=True)
    return ours, ref.to(device=device, dtype=dtype).eval()


@torch.no_grad()
def reference_chunk(ref, sampler, masked, refl, mask, audio, noise, guidance):
    """Same loop (zero-audio CFG batch, DDIM), the UNet applied per frame (frames folded into the batch)."""
    f = masked.shape[0]
    x = noise.expand(f, -1, -1, -1).float()
    cond = torch.cat([mask.expand(f, -1, -1, -1), masked, refl], dim=1)
    a = audio
    if guidance > 1:
        cond, a = torch.cat([cond, cond]), torch.cat([torch.zeros_like(a), a])
    for t in sampler.timesteps:
        x_in = torch.cat([x, x]) if guidance > 1 else x
        inp = torch.cat([x_in.to(cond.dtype), cond], dim=1)
        eps = ref(inp, torch.full((inp.shape[0],), t, device=inp.device), encoder_hidden_states=a).sample.float()
        if guidance > 1:
            u, c = eps.chunk(2)
            eps = u + guidance * (c - u)
        x = sampler.step(eps, t, x)
    return x


def timed(fn, device, repeats: int):
    fn()  # warm-up (kernels, allocator, attention backend selection)
    sync(device)
    reset_peak(device)
    start = time.perf_counter()
    for _ in range(repeats):
        out = fn()
    sync(device)
    return (time.perf_counter() - start) / repeats, peak_gib(device), out


def run(opts) -> dict:
    """Times both DeepCache settings of our loop and the per-frame reference at every resolution."""

    device = start(opts.comfyui, opts.tiny)
    cuda = device.type == "cuda"
    from humanvideo.models.latentsync_unet import LatentSyncUNetConfig
    from humanvideo.samplers.ddim import DDIMSampler
    from humanvideo.samplers.latentsync_denoise import DenoiseSettings, denoise_latents, initial_noise

    dtype = pick_dtype(opts.dtype, device)
    cfg = LatentSyncUNetConfig(block_out_channels=(32, 64, 96, 96)) if opts.tiny else LatentSyncUNetConfig()
    resolutions = opts.resolutions or ([64] if opts.tiny else [256, 512])

    ours, ref = build_models(cfg, dtype, device, seed=1247)
    params = sum(t.numel() for t in ours.state_dict().values())
    device_name = torch.cuda.get_device_name(device) if cuda else "CPU"
    print(
        f"LatentSync UNet3D: {params / 1e6:.2f} M parameters, {dtype}, {device_name}, "
        f"{opts.steps} steps, guidance {opts.guidance}, {opts.frames}-frame chunks"
    )

    rows = []
    g = torch.Generator().manual_seed(0)
    for res in resolutions:
        h = res // 8
        f = opts.frames
        masked = torch.randn(f, 4, h, h, generator=g)
        refl = torch.randn(f, 4, h, h, generator=g)
        mask = torch.ones(1, 1, h, h)
        mask[..., h // 2 :, :] = 0
        audio = torch.randn(f, 50, cfg.cross_attention_dim, generator=g)
        noise = initial_noise(1247, h, h)
        results = {}
        for label, interval in (("ours", 0), ("ours+DeepCache3", 3)):
            settings = DenoiseSettings(
                steps=opts.steps, guidance=opts.guidance, deepcache_interval=interval, chunk_frames=f
            )
            sec, peak, out = timed(
                lambda: denoise_latents(ours, masked, refl, mask, audio, noise, settings), device, opts.repeats
            )
            results[label] = (sec, peak, bool(torch.isfinite(out).all()))
        sampler = DDIMSampler(opts.steps)
        dev = lambda t: t.to(device=device, dtype=dtype)  # noqa: E731
        sec, peak, out = timed(
            lambda: reference_chunk(
                ref, sampler, dev(masked), dev(refl), dev(mask), dev(audio), noise.to(device), opts.guidance
            ),
            device,
            opts.repeats,
        )
        results["diffusers UNet2D per frame"] = (sec, peak, bool(torch.isfinite(out).all()))
        base = results["diffusers UNet2D per frame"][0]
        for label, (sec, peak, finite) in results.items():
            rows.append(
                dict(
                    resolution=res,
                    run=label,
                    seconds_per_chunk=sec,
                    fps=f / sec,
                    peak_gib=peak,
                    speed_vs_reference=base / sec,
                    finite=finite,
                )
            )

    return dict(device=device_name, dtype=str(dtype), params=params, rows=rows)


def print_table(result: dict) -> None:
    rows = result["rows"]
    print()
    print("| res | run | s / 16-frame chunk | output fps | peak mem GiB | speed vs reference | finite |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['resolution']} | {r['run']} | {r['seconds_per_chunk']:.3f} | {r['fps']:.2f} | {r['peak_gib']:.2f} "
            f"| {r['speed_vs_reference']:.2f}x | {r['finite']} |"
        )
    if result["device"] == "CPU":
        print("\n(CPU: peak memory is the process's max RSS, not per run)")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--tiny", action="store_true", help="tiny widths (32, 64, 96, 96), 64 px, CPU smoke run")
    p.add_argument(
        "--comfyui", default=os.environ.get("COMFYUI_PATH", ""), help="ComfyUI checkout (default $COMFYUI_PATH)"
    )
    p.add_argument("--resolutions", type=int, nargs="+", default=None, help="pixel sizes (default 256 512; tiny: 64)")
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--frames", type=int, default=16, help="frames per chunk (LatentSync: 16)")
    p.add_argument("--guidance", type=float, default=1.5)
    p.add_argument("--dtype", choices=["fp16", "bf16", "fp32"], default=None, help="default fp16 on CUDA, fp32 on CPU")
    p.add_argument("--repeats", type=int, default=1)
    p.add_argument("--json", default=None, help="also write the results here")
    opts = p.parse_args()
    result = run(opts)
    print_table(result)
    if opts.json:
        Path(opts.json).write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
