"""Per-guidance-pass cost, our HuMo guider vs core's CFGGuider, on tiny shapes (a CPU micro-benchmark).

Ours does more passes per step on purpose (official multi-condition guidance: 17B 3, 1.7B 4; core's CFG
2), so the fair comparison is per pass. Two measurements over the same tiny core ``WAN21_HuMo`` MODEL,
conditioning and sigmas (``humo_step.py``'s set-up), FlowUniPC:

- "with the DiT": seconds per step divided by the passes of the step, and the time inside the model
  per pass;
- "without the DiT": the diffusion model replaced by a wrapper that returns zeros, so what remains is
  everything around it per step (the guider's pass selection and combination, core's conditioning
  batching, the wrappers, the sampler), divided by the passes.

    COMFYUI_PATH=/path/to/ComfyUI python benchmarks/guidance_pass.py [--steps 12] [--repeats 3] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

import torch

NULL_KEY = "guidance_pass_null_dit"


def _null_dit(executor, x, timestep, *args, **kwargs):
    # what the DiT returns in shape, without its work (x may carry the 17B's concatenated condition channels)
    return torch.zeros_like(x[:, :16])


def run(comfyui: str, steps: int, repeats: int, threads: int | None) -> dict:
    import humo_step
    from bench_common import start

    if threads:
        torch.set_num_threads(threads)
    device = start(comfyui, True)
    import comfy.patcher_extension
    from humanvideo.loaders import humo_dit
    from humanvideo.samplers import guidance as gd
    from humanvideo.samplers.humo_guider import humo_sigmas

    base = dict(dim=128, ffn_dim=256, num_layers=2)
    configs = {
        "tiny-17B-style": humo_dit.HumoConfig(in_dim=36, **base),
        "tiny-1.7B-style": humo_dit.HumoConfig(in_dim=16, **base),
    }
    sigmas = humo_sigmas(steps, humo_step.SHIFT)
    vae = humo_step.tiny_wan_vae()
    rows = []
    for name, cfg in configs.items():
        plan = gd.humo_17b_plan() if cfg.in_dim > cfg.out_dim else gd.humo_1_7b_plan()
        inputs = humo_step.make_inputs(vae, 64, 64, 17, 32, cfg.in_dim > cfg.out_dim, seed=11)
        patcher, _, _ = humo_step.build_core_humo(cfg, torch.float32, False, seed=1)
        null = patcher.clone()
        null.add_wrapper_with_key(comfy.patcher_extension.WrappersMP.DIFFUSION_MODEL, NULL_KEY, _null_dit)
        for mode, model in (("with the DiT", patcher), ("without the DiT", null)):
            for path in ("ours", "core"):
                best = None
                for _ in range(repeats):  # the fastest repeat: the least disturbed by other processes
                    r = humo_step.run_path(path, model, inputs, plan, sigmas, device, seed=5, sampler="flow_unipc")
                    if best is None or r["seconds_per_step"] < best["seconds_per_step"]:
                        best = r
                rows.append(
                    {
                        "model": name,
                        "mode": mode,
                        "path": path,
                        "passes_per_step": best["passes_per_step"],
                        "seconds_per_step": best["seconds_per_step"],
                        "seconds_per_pass": best["seconds_per_step"] / best["passes_per_step"],
                        "model_seconds_per_pass": best["seconds_per_pass"],
                    }
                )
                print(json.dumps(rows[-1]), flush=True)
    return {"device": f"CPU, {torch.get_num_threads()} threads", "steps": steps, "repeats": repeats, "rows": rows}


def print_table(result: dict) -> None:
    print(f"\n{result['device']}, {result['steps']} steps (first not counted), best of {result['repeats']}\n")
    print("| model | mode | path | passes / step | ms / step | ms / pass | ours / core per pass |")
    print("|---|---|---|---|---|---|---|")
    rows = {(r["model"], r["mode"], r["path"]): r for r in result["rows"]}
    for (model, mode, path), r in rows.items():
        core = rows.get((model, mode, "core"))
        ratio = f"{r['seconds_per_pass'] / core['seconds_per_pass']:.2f}" if path == "ours" and core else "-"
        print(
            f"| {model} | {mode} | {path} | {r['passes_per_step']:.0f} | {1e3 * r['seconds_per_step']:.2f} "
            f"| {1e3 * r['seconds_per_pass']:.2f} | {ratio} |"
        )


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument(
        "--comfyui", default=os.environ.get("COMFYUI_PATH", ""), help="ComfyUI checkout (default $COMFYUI_PATH)"
    )
    p.add_argument("--steps", type=int, default=12, help="steps per run, the first is warm-up")
    p.add_argument("--repeats", type=int, default=3, help="runs per row; the fastest counts")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads (default torch's)")
    p.add_argument("--json", default=None, help="also write the results here")
    opts = p.parse_args()
    result = run(opts.comfyui, opts.steps, opts.repeats, opts.threads)
    print_table(result)
    if opts.json:
        Path(opts.json).write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
