"""Speed tools users put in front of HuMo, timed through our HuMo guider (HuMo-1.7B 480p, random weights).

Every row samples the same conditioning and seed with the official 1.7B guidance (4 passes per step) and
FlowUniPC, through ComfyUI core's own tool code (nothing re-implemented here):

- baseline: the MODEL as loaded;
- TorchCompileModel: core's ``set_torch_compile_wrapper`` (what the node calls), inductor on CUDA,
  the "eager" backend on the CPU (inductor's C++ build takes minutes there; eager runs the same
  graph capture without code generation);
- EasyCache / LazyCache: core's nodes with their default settings (skipped steps reuse a cached
  output change, so the result moves by design);
- LoRA: a random rank-16 LoRA in the Wan 2.1 key naming (``diffusion_model.blocks.N...lora_up/down``)
  through core's ``load_lora_for_models`` (what LoraLoaderModelOnly calls);
- fp8 weights: the DiT stored in float8_e4m3fn, core's fast fp8 matrix multiplication where the
  device has it (compute in bf16 otherwise).

Reported per row: seconds per step (first step not counted), passes and forwards per step, peak
memory, speed vs baseline and the largest difference of the sampled latent from the baseline's,
relative to the largest baseline value (0 where the tool is exact).

    COMFYUI_PATH=/path/to/ComfyUI python benchmarks/speed_tools.py            # CUDA
    COMFYUI_PATH=/path/to/ComfyUI python benchmarks/speed_tools.py --tiny     # CPU smoke run
"""

from __future__ import annotations

import argparse
import json
import os
import time
from collections.abc import Callable
from pathlib import Path

import torch

LORA_RANK = 16
LORA_TARGETS = (
    "self_attn.q",
    "self_attn.k",
    "self_attn.v",
    "self_attn.o",
    "cross_attn.q",
    "cross_attn.o",
    "ffn.0",
    "ffn.2",
)


def random_wan_lora(diffusion_model: torch.nn.Module, rank: int = LORA_RANK, seed: int = 3) -> dict[str, torch.Tensor]:
    """A LoRA in the Wan 2.1 naming (``diffusion_model.<module>.lora_up/lora_down.weight`` + ``.alpha``)."""
    g = torch.Generator().manual_seed(seed)
    sd = {}
    for name, module in sorted(diffusion_model.named_modules()):
        if not name.startswith("blocks.") or not name.endswith(LORA_TARGETS) or not hasattr(module, "weight"):
            continue
        out_f, in_f = module.weight.shape
        sd[f"diffusion_model.{name}.lora_down.weight"] = torch.randn(rank, in_f, generator=g) / in_f**0.5
        sd[f"diffusion_model.{name}.lora_up.weight"] = torch.randn(out_f, rank, generator=g) * 0.02
        sd[f"diffusion_model.{name}.alpha"] = torch.tensor(float(rank))
    return sd


def compiled(patcher, backend: str):
    from comfy_api.torch_helpers import set_torch_compile_wrapper

    m = patcher.clone()
    set_torch_compile_wrapper(model=m, backend=backend)
    return m


def with_cache(patcher, node_name: str):
    from comfy_extras import nodes_easycache

    node = getattr(nodes_easycache, node_name)
    defaults = {i.id: i.default for i in node.define_schema().inputs if i.id != "model"}
    return node.execute(patcher, **defaults).args[0]


def with_lora(patcher, strength: float = 1.0):
    import comfy.sd

    lora = random_wan_lora(patcher.model.diffusion_model)
    m, _ = comfy.sd.load_lora_for_models(patcher, None, lora, strength, 0.0)
    return m


def run(comfyui: str, tiny: bool, steps: int | None = None) -> dict:
    import humo_step
    from bench_common import start

    device = start(comfyui, tiny)
    import comfy.model_management as mm
    from humanvideo.loaders import humo_dit
    from humanvideo.samplers import guidance as gd
    from humanvideo.samplers.humo_guider import humo_sigmas

    if tiny:
        cfg = humo_dit.HumoConfig(in_dim=16, dim=128, ffn_dim=256, num_layers=2)
        (w, h), frames, text_tokens, weight = (64, 64), 9, 32, torch.float32
    else:
        cfg = humo_dit.HUMO_1_7B
        (w, h), frames, text_tokens, weight = humo_step.SIZES["480p"], 97, 512, torch.bfloat16
    steps = steps or (3 if tiny else 5)
    cuda = device.type == "cuda"
    plan = gd.humo_1_7b_plan()
    sigmas = humo_sigmas(steps, humo_step.SHIFT)
    inputs = humo_step.make_inputs(humo_step.tiny_wan_vae(), w, h, frames, text_tokens, False, seed=11)
    mm.unload_all_models()
    base, _, _ = humo_step.build_core_humo(cfg, weight, False, seed=1)

    variants: list[tuple[str, Callable[[], object]]] = [
        ("baseline", lambda: base),
        (
            f"TorchCompileModel ({'inductor' if cuda else 'eager backend'})",
            lambda: compiled(base, "inductor" if cuda else "eager"),
        ),
        ("EasyCache (defaults)", lambda: with_cache(base, "EasyCacheNode")),
        ("LazyCache (defaults)", lambda: with_cache(base, "LazyCacheNode")),
        (f"LoRA rank {LORA_RANK} (Wan 2.1 keys, core loader)", lambda: with_lora(base)),
    ]
    rows, reference = [], None
    for label, make in variants:
        rows.append(_row(label, make, inputs, plan, sigmas, device, reference))
        if label == "baseline":
            reference = rows[-1].pop("output_tensor")
        rows[-1].pop("output_tensor", None)
        print(json.dumps(rows[-1]), flush=True)
    base = None  # the bf16 model goes before the fp8 one is built
    mm.unload_all_models()
    mm.soft_empty_cache()

    def fp8():
        patcher, _, _ = humo_step.build_core_humo(cfg, torch.float8_e4m3fn, True, seed=1)
        return patcher

    rows.append(_row("fp8 e4m3fn weights, core's fast fp8 matmul", fp8, inputs, plan, sigmas, device, reference))
    rows[-1].pop("output_tensor", None)
    print(json.dumps(rows[-1]), flush=True)
    base_s = rows[0]["seconds_per_step"]
    for r in rows:
        r["speed_vs_baseline"] = base_s / r["seconds_per_step"] if base_s and r.get("seconds_per_step") else None
    return {
        "device": torch.cuda.get_device_name(device) if cuda else "CPU",
        "model": "HuMo-1.7B" if not tiny else "tiny-1.7B-style",
        "size": f"{w}x{h}",
        "frames": frames,
        "steps": steps,
        "rows": rows,
    }


def _row(label, make, inputs, plan, sigmas, device, reference) -> dict:
    import humo_step

    t0 = time.perf_counter()
    try:
        patcher = make()
        r = humo_step.run_path(
            "ours", patcher, inputs, plan, sigmas, device, seed=5, sampler="flow_unipc", keep_output=True
        )
    except Exception as e:  # one tool failing must not hide the others
        return {"tool": label, "status": "failed", "reason": f"{type(e).__name__}: {e}"}
    out = r.pop("output")
    diff = None
    if reference is not None:
        diff = float((out.float() - reference.float()).abs().max() / reference.float().abs().max().clamp_min(1e-12))
    return {
        "tool": label,
        "status": "ok",
        **r,
        "wall_seconds": round(time.perf_counter() - t0, 2),
        "max_rel_diff_vs_baseline": diff,
        "output_tensor": out.cpu(),
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument(
        "--comfyui", default=os.environ.get("COMFYUI_PATH", ""), help="ComfyUI checkout (default $COMFYUI_PATH)"
    )
    p.add_argument("--tiny", action="store_true", help="tiny network on the CPU: a smoke run of every tool")
    p.add_argument("--steps", type=int, default=None, help="steps per row, the first is warm-up (default 5; tiny 3)")
    p.add_argument("--json", default=None, help="also write the results here")
    opts = p.parse_args()
    result = run(opts.comfyui, opts.tiny, opts.steps)
    if opts.json:
        Path(opts.json).write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
