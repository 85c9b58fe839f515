"""HuMo DiT benchmark: real size (HuMo-1.7B and HuMo-17B, random weights), 97 frames, per denoising step.

Two sampling paths over the same core ``WAN21_HuMo`` MODEL (``HumoWanModel``) in one run:
- ours: ``samplers.humo_guider.HuMoGuider`` with the model's official guidance (17B TIA: 3 passes,
  I -> TI -> TIA before sigma 0.98 and 0 -> TI -> TIA after; 1.7B TIA: 4 passes 0 -> T -> TA -> TIA),
  conditioning from ``samplers.humo_conditioning.build_condition`` (17B: official y with zero-VAE
  latents, the reference frame denoised along), all passes of a step batched by core's
  ``calc_cond_batch``;
- core: what core's nodes do, i.e. ``WanHuMoImageToVideo`` conditioning and ``CFGGuider`` with cfg 5.0
  (2 passes: positive, negative).
Both get the same sigmas (official flow schedule, shift 5) and the euler sampler, so a step is one
guided model evaluation. Reported: seconds per step (the first step is warm-up and is not counted),
seconds per pass (time inside the model divided by the passes it evaluated), forwards per step (core
splits the batch when memory is short), peak GPU memory (weights included), and ours / core.

The DiT is built the way ``comfy.sd.load_diffusion_model_state_dict`` builds it (core's detection on a
meta-tensor state dict of the official key manifest, core's dtype and operation choice), on the meta
device, then materialised directly on the GPU and filled with fan-in-scaled random numbers, so no
CPU copy of 34 GB is ever made. The VAE that supplies reference / zero-VAE latents is a random Wan 2.1
VAE of base width 8: it is outside the timed steps and only provides latents of the right shapes.

    COMFYUI_PATH=/path/to/ComfyUI python benchmarks/humo_step.py                       # CUDA, both models, both sizes
    COMFYUI_PATH=/path/to/ComfyUI python benchmarks/humo_step.py --models 17B --sizes 480p --weight-dtype fp8_e4m3fn
    COMFYUI_PATH=/path/to/ComfyUI python benchmarks/humo_step.py --tiny                # CPU smoke run
"""

from __future__ import annotations

import argparse
import json
import math
import os
import time
from pathlib import Path

import dit_flops  # benchmarks/ is sys.path[0] when a script runs
import torch
from bench_common import peak_gib, reset_peak, start, sync

SIZES = {"480p": (832, 480), "720p": (1280, 720)}  # (width, height), HuMo's two trained resolutions
CORE_CFG = 5.0
SHIFT = 5.0
WEIGHT_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16, "fp8_e4m3fn": torch.float8_e4m3fn}


# --- the model ---------------------------------------------------------------------------------


@torch.no_grad()
def randomize_(module: torch.nn.Module, seed: int) -> None:
    """Fan-in-scaled normal weights, near-one norm gains, small biases, in place on the module's device.

    Drawn in the parameter's own dtype where the RNG supports it (no float32 copy of a 17B model).
    """
    g = None
    for i, (name, p) in enumerate(sorted(module.named_parameters())):
        if g is None or g.device != p.device:
            g = torch.Generator(device=p.device)
        g.manual_seed(seed + i)
        leaf = name.rsplit(".", 1)[-1]
        if p.ndim == 1 and "norm" in name and leaf == "weight":
            mean, std = 1.0, 0.02
        elif leaf == "bias" or p.ndim == 1:
            mean, std = 0.0, 0.02
        else:
            # modulation tables (1, k, d) are added to the time embedding: the official init is randn / sqrt(d)
            fan_in = p.shape[-1] if name.endswith("modulation") else math.prod(p.shape[1:])
            mean, std = 0.0, 1.0 / math.sqrt(max(fan_in, 1))
        if p.dtype in (torch.float8_e4m3fn, torch.float8_e5m2):
            p.copy_(torch.empty(p.shape, dtype=torch.bfloat16, device=p.device).normal_(mean, std, generator=g))
        else:
            p.normal_(mean, std, generator=g)


def build_core_humo(cfg, weight_dtype: torch.dtype, fp8_fast: bool, seed: int):
    """Core's WAN21_HuMo MODEL of configuration ``cfg`` with random weights, materialised on the load device."""
    import comfy.model_detection
    import comfy.model_management as mm
    import comfy.model_patcher
    from humanvideo.loaders import humo_dit

    manifest = humo_dit.official_key_manifest(cfg)
    meta_sd = {k: torch.empty(shape, dtype=weight_dtype, device="meta") for k, shape in manifest.items()}
    model_config = comfy.model_detection.model_config_from_unet(meta_sd, "")
    if model_config is None or type(model_config).__name__ != "WAN21_HuMo":
        raise RuntimeError(f"core detected {type(model_config).__name__} from the HuMo manifest, not WAN21_HuMo")
    load_device = mm.get_torch_device()
    manual_cast = mm.unet_manual_cast(weight_dtype, load_device, model_config.supported_inference_dtypes)
    model_config.set_inference_dtype(weight_dtype, manual_cast)
    if fp8_fast:
        model_config.optimizations["fp8"] = True
    model = model_config.get_model(meta_sd, "", device=torch.device("meta"))
    got = {k: tuple(v.shape) for k, v in model.diffusion_model.state_dict().items()}
    if got != manifest:
        diff = sorted(set(got.items()) ^ set(manifest.items()))[:5]
        raise RuntimeError(f"core's HumoWanModel differs from the official manifest: {diff}")
    model.diffusion_model.to_empty(device=load_device)
    randomize_(model.diffusion_model, seed)
    model.device = load_device  # the weights already live there: nothing for ComfyUI to move
    patcher = comfy.model_patcher.ModelPatcher(model, load_device=load_device, offload_device=mm.unet_offload_device())
    params = sum(v.numel() for v in model.diffusion_model.state_dict().values())
    return patcher, params, manual_cast


# --- conditioning ------------------------------------------------------------------------------


def make_inputs(vae, width: int, height: int, frames: int, text_tokens: int, concat_y: bool, seed: int) -> dict:
    """Both paths' conditioning from the same random text embeddings, reference image and audio."""
    from comfy_extras.nodes_wan import WanHuMoImageToVideo
    from humanvideo.models.audio_features import HUMO_SAMPLES_PER_FRAME
    from humanvideo.samplers import humo_conditioning as hc

    g = torch.Generator().manual_seed(seed)
    context = torch.randn(1, text_tokens, 4096, generator=g) * 0.2
    neg_context = torch.randn(1, text_tokens, 4096, generator=g) * 0.2
    image = torch.rand(height, width, 3, generator=g)
    samples = frames * HUMO_SAMPLES_PER_FRAME
    hidden = torch.randn(33, 1, 2 * frames, 1280, generator=g) * 0.5  # whisper-large-v3 states at 50 Hz

    # ours: per-video-frame HuMo features, as humo_audio_embedding makes them from the same states
    groups = [hidden[a:b].mean(0) for a, b in ((0, 8), (8, 16), (16, 24), (24, 32), (32, 33))]
    flat = torch.stack(groups, dim=2)[0].reshape(2 * frames, -1).T[None]
    feats = torch.nn.functional.interpolate(flat, size=frames, mode="linear", align_corners=True)[0].T
    cond = hc.build_condition(vae, width, height, frames, images=[image], speakers=[feats.reshape(frames, 5, 1280)])
    if concat_y:  # fill the zero-VAE cache now, so no VAE runs once the DiT occupies the GPU
        hc.zero_vae_latents(vae, width, height, cond.latent_frames + cond.n_ref)
    ours = dict(
        positive=[[context, {hc.COND_KEY: cond}]],
        negative=[[neg_context, {hc.COND_KEY: cond}]],
        latent=torch.zeros(1, 16, cond.latent_frames, height // 8, width // 8),
    )

    audio_out = {"encoded_audio": hidden[-1], "encoded_audio_all_layers": tuple(hidden), "audio_samples": samples}
    res = WanHuMoImageToVideo.execute(
        [[context, {}]],
        [[neg_context, {}]],
        vae,
        width,
        height,
        frames,
        1,
        ref_image=image[None],
        audio_encoder_output=audio_out,
    )
    pos, neg, latent = res.args
    core = dict(positive=pos, negative=neg, latent=latent["samples"])
    return dict(ours=ours, core=core, latent_frames=cond.latent_frames, n_ref=cond.n_ref)


# --- timing ------------------------------------------------------------------------------------


class Clock:
    """Step stamps from the sampler callback and per-forward timings from a model function wrapper."""

    def __init__(self, device: torch.device):
        self.device = device
        self.stamps: list[float] = []
        self.forwards: list[tuple[int, float, int]] = []  # (step, seconds, passes in the batch)

    def on_step(self, *_):
        sync(self.device)
        self.stamps.append(time.perf_counter())

    def wrap(self, apply_model, args: dict):
        sync(self.device)
        start = time.perf_counter()
        out = apply_model(args["input"], args["timestep"], **args["c"])
        sync(self.device)
        self.forwards.append((len(self.stamps), time.perf_counter() - start, len(args["cond_or_uncond"])))
        return out

    def summary(self) -> dict:
        gaps = [b - a for a, b in zip(self.stamps, self.stamps[1:], strict=False)]  # drops the warm-up step
        timed = [(s, n) for step, s, n in self.forwards if step >= 1]
        steps = max(1, len(gaps))
        passes = sum(n for _, n in timed)
        return {
            "seconds_per_step": sum(gaps) / len(gaps) if gaps else None,
            "seconds_per_pass": sum(s for s, _ in timed) / passes if passes else None,
            "passes_per_step": passes / steps if gaps else None,
            "forwards_per_step": len(timed) / steps if gaps else None,
        }


def run_path(
    path: str,
    patcher,
    inputs: dict,
    plan,
    sigmas: torch.Tensor,
    device: torch.device,
    seed: int,
    sampler: str = "euler",
    keep_output: bool = False,
) -> dict:
    """One sampling run of ``path`` ("ours" or "core") on ``patcher``; ``sampler`` is a HuMo solver name.

    ``keep_output`` adds the sampled latent under "output" (a tensor: take it out before writing JSON).
    """
    import comfy.sample
    from humanvideo.samplers.humo_guider import HuMoGuider, solver_object

    clock = Clock(device)
    m = patcher.clone()

    def timed_forward(apply_model, args):  # a plain function: patcher clones deep-copy model_options
        return clock.wrap(apply_model, args)

    m.set_model_unet_function_wrapper(timed_forward)
    data = inputs[path]
    latent = data["latent"]
    noise = comfy.sample.prepare_noise(latent, seed)
    if path == "ours":
        guider = HuMoGuider(m, plan)
    else:
        import comfy.samplers

        guider = comfy.samplers.CFGGuider(m)
        guider.set_cfg(CORE_CFG)
    guider.set_conds(data["positive"], data["negative"])
    reset_peak(device)
    out = guider.sample(
        noise,
        latent,
        solver_object(sampler),
        sigmas,
        callback=clock.on_step,
        disable_pbar=True,
        seed=seed,
    )
    sync(device)
    result = {
        **clock.summary(),
        "peak_gib": round(peak_gib(device), 2),
        "finite": bool(torch.isfinite(out).all()),
        "out_frames": int(out.shape[2]),
    }
    if keep_output:
        result["output"] = out
    return result


def run(opts) -> dict:
    device = start(opts.comfyui, opts.tiny)
    import comfy.model_management as mm
    from humanvideo.loaders import humo_dit
    from humanvideo.samplers import guidance as gd
    from humanvideo.samplers.humo_guider import humo_sigmas

    if opts.tiny:
        base = dict(dim=128, ffn_dim=256, num_layers=2)
        tiny = {"17B": humo_dit.HumoConfig(in_dim=36, **base), "1.7B": humo_dit.HumoConfig(in_dim=16, **base)}
        configs = {f"tiny-{name}-style": tiny[name] for name in sorted(opts.models, reverse=True)}
        sizes, frames, steps, text_tokens = {"tiny": (64, 64)}, opts.frames or 97, 2, 32
        weight_dtype = torch.float32
    else:
        known = {"17B": humo_dit.HUMO_17B, "1.7B": humo_dit.HUMO_1_7B}
        configs = {name: known[name] for name in opts.models}
        sizes = {k: SIZES[k] for k in opts.sizes}
        frames, steps, text_tokens = opts.frames or 97, opts.steps, 512
        weight_dtype = WEIGHT_DTYPES[opts.weight_dtype]
    device_name = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU"
    result = {
        "device": device_name,
        "weight_dtype": str(weight_dtype),
        "frames": frames,
        "steps": steps,
        "steps_timed": steps - 1,
        "core_cfg": CORE_CFG,
        "sampler": opts.sampler,
        "runs": [],
    }
    sigmas = humo_sigmas(steps, SHIFT)
    from hv_fixtures.humo import tiny_wan_vae

    vae = tiny_wan_vae()
    for model_name, cfg in configs.items():
        plan = gd.humo_17b_plan() if cfg.in_dim > cfg.out_dim else gd.humo_1_7b_plan()
        # conditioning first (VAE work), so the DiT never shares the GPU with the VAE
        inputs = {
            size: make_inputs(vae, w, h, frames, text_tokens, cfg.in_dim > cfg.out_dim, seed=11)
            for size, (w, h) in sizes.items()
        }
        mm.unload_all_models()
        mm.soft_empty_cache()
        t0 = time.perf_counter()
        patcher, params, manual_cast = build_core_humo(cfg, weight_dtype, opts.fp8_fast, seed=1)
        build_s = time.perf_counter() - t0
        print(
            f"{model_name}: {params / 1e9:.3f} B parameters, weights {weight_dtype}, compute "
            f"{manual_cast or weight_dtype}, built in {build_s:.1f} s, plan {plan.name}",
            flush=True,
        )
        for size, (w, h) in sizes.items():
            tokens = (inputs[size]["latent_frames"] + inputs[size]["n_ref"]) * (h // 16) * (w // 16)
            for path in ("ours", "core"):
                r = run_path(path, patcher, inputs[size], plan, sigmas, device, seed=5, sampler=opts.sampler)
                row = {
                    "model": model_name,
                    "size": f"{w}x{h}",
                    "path": path,
                    "video_tokens": tokens,
                    "latent_frames": inputs[size]["latent_frames"] + inputs[size]["n_ref"],
                    "text_tokens": text_tokens,
                    "flops_per_pass": dit_flops.humo_forward_flops(
                        cfg, tokens, text_tokens, inputs[size]["latent_frames"] + inputs[size]["n_ref"]
                    ),
                    **r,
                }
                print(json.dumps(row), flush=True)
                result["runs"].append(row)
        del patcher
        mm.unload_all_models()
        mm.soft_empty_cache()
    return result


def ratio(a, b) -> str:
    return f"{a / b:.2f}" if a and b else "n/a"


def fmt(v, spec: str) -> str:
    return "n/a" if v is None else format(v, spec)


def print_table(result: dict, cuda: bool) -> None:
    print()
    print("| model | size | path | passes / step | forwards / step | s / step | s / pass | peak GiB | finite |")
    print("|---|---|---|---|---|---|---|---|---|")
    for r in result["runs"]:
        print(
            f"| {r['model']} | {r['size']} | {r['path']} | {fmt(r['passes_per_step'], '.0f')} "
            f"| {fmt(r['forwards_per_step'], '.0f')} | {fmt(r['seconds_per_step'], '.3f')} "
            f"| {fmt(r['seconds_per_pass'], '.3f')} | {r['peak_gib']:.2f} | {r['finite']} |"
        )
    print()
    print("| model | size | ours / core per step | ours / core per pass | ours / core peak memory |")
    print("|---|---|---|---|---|")
    runs = {(r["model"], r["size"], r["path"]): r for r in result["runs"]}
    for (model, size, path), r in runs.items():
        if path != "ours" or (model, size, "core") not in runs:
            continue
        c = runs[(model, size, "core")]
        print(
            f"| {model} | {size} | {ratio(r['seconds_per_step'], c['seconds_per_step'])} "
            f"| {ratio(r['seconds_per_pass'], c['seconds_per_pass'])} | {ratio(r['peak_gib'], c['peak_gib'])} |"
        )
    if not cuda:
        print("\n(CPU: peak memory is the process's max RSS, not per run)")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument(
        "--comfyui", default=os.environ.get("COMFYUI_PATH", ""), help="ComfyUI checkout (default $COMFYUI_PATH)"
    )
    p.add_argument(
        "--tiny", action="store_true", help="tiny 17B- and 1.7B-style networks, 64x64, 2 steps: CPU smoke run"
    )
    p.add_argument(
        "--models",
        nargs="+",
        default=["1.7B", "17B"],
        choices=["1.7B", "17B"],
        help="real sizes to build (17B needs ~34 GiB of weights in bf16, ~17 GiB in fp8)",
    )
    p.add_argument("--sizes", nargs="+", default=list(SIZES), choices=list(SIZES), help="resolutions (480p = 832x480)")
    p.add_argument(
        "--frames", type=int, default=None, help="video frames, 4n+1 (default 97: 25 latent frames + 1 reference)"
    )
    p.add_argument("--steps", type=int, default=3, help="steps per path, the first is warm-up (tiny: 2)")
    p.add_argument(
        "--weight-dtype",
        choices=list(WEIGHT_DTYPES),
        default="bf16",
        help="DiT weight dtype; fp8_e4m3fn computes in bf16 (core's manual cast)",
    )
    p.add_argument("--fp8-fast", action="store_true", help="with fp8 weights: core's fp8 matrix multiplication")
    p.add_argument(
        "--sampler",
        choices=["euler", "flow_unipc"],
        default="euler",
        help="solver of both paths (one model evaluation per step either way); flow_unipc is HuMo's official one",
    )
    p.add_argument("--json", default=None, help="also write the results here")
    opts = p.parse_args()
    if opts.steps < 2:
        p.error("--steps: at least 2 (the first step is warm-up)")
    result = run(opts)
    print_table(result, cuda=result["device"] != "CPU")
    if opts.json:
        Path(opts.json).write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
