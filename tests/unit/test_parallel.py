"""Several workers equal one process: 2 Ray CPU actors over gloo against the single-process samplers.

Tiny random-weight models with two attention heads are written in the official file layouts; the
ComfyUI-side models come from the pack's loaders and every worker loads the same file itself. One Ray
runtime serves the whole test session; the tests are ordered so the 2-worker group is started once and a
1-worker group (sp_size 1) replaces it after the killed-worker test.
"""

import os
import signal

import comfy.lora
import comfy.model_management as mm
import comfy.samplers
import comfy.sd
import comfy.utils
import hv_fixtures.humo as fh
import hv_fixtures.hunyuan as fx
import pytest
import torch
from humanvideo.loaders import hunyuan_dit as hd
from humanvideo.loaders.humo_dit import load_humo_model
from humanvideo.models import hunyuan_video_spec as hs
from humanvideo.parallel import guider as pguider
from humanvideo.parallel import runtime as rt
from humanvideo.parallel import sequence as sq
from humanvideo.samplers import guidance as gd
from humanvideo.samplers import humo_conditioning as hc
from humanvideo.samplers import humo_guider as hg
from humanvideo.samplers import hunyuan_i2v as hi
from hv_fixtures.humo import tiny_wan_vae

W, H, FRAMES = 48, 48, 5  # 2 video latent frames + 1 reference of 3x3 tokens: 27 tokens, odd, frames cut by shards
TOLERANCE = 1e-5


def rel_err(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).abs().max() / a.abs().max())


def cpu(sp=2, cfg=1, shard=False) -> rt.ParallelConfig:
    return rt.ParallelConfig(sp_size=sp, cfg_parallel=cfg, shard_weights=shard, devices="cpu")


@pytest.fixture(scope="module", autouse=True)
def ray_for_this_module():
    yield
    rt.RUNTIME.shutdown()  # the integration tests' server starts its own


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    from safetensors.torch import save_file

    d = tmp_path_factory.mktemp("parallel_models")
    out = {}
    for name, in_dim in (("humo_17b", 36), ("humo_1_7b", 16)):
        out[name] = d / f"{name}.safetensors"
        save_file(fh.humo_state_dict(in_dim=in_dim, seed=in_dim, dim=256, ffn_dim=256, num_layers=2), out[name])
    for i, release in enumerate(("v1", "v2")):
        cfg = hs.HunyuanDiTConfig(**{**fx.tiny_dit_config(release).__dict__, "hidden_size": 256, "heads": 2})
        g = torch.Generator().manual_seed(40 + i)
        sd = {}
        for key, shape in sorted(hd.official_manifest(cfg).items()):
            fan_in = max(1, int(torch.tensor(shape[1:]).prod()) if len(shape) > 1 else 1)
            base = 1.0 if "norm" in key and len(shape) == 1 else 0.0
            sd[key] = base + torch.randn(shape, generator=g) / (fan_in**0.5 if base == 0.0 else 10.0)
        out[release] = d / f"hunyuan_{release}.pt"
        torch.save({"module": sd}, out[release])
    return out


@pytest.fixture(scope="module")
def humo_inputs():
    vae = tiny_wan_vae()
    g = torch.Generator().manual_seed(3)
    cond = hc.build_condition(
        vae, W, H, FRAMES, images=[torch.rand(20, 28, 3, generator=g)], speakers=[torch.randn(9, 5, 1280, generator=g)]
    )
    text = [torch.randn(1, 6, 4096, generator=g) for _ in range(2)]
    pos, neg = [[text[0], {hc.COND_KEY: cond}]], [[text[1], {hc.COND_KEY: cond}]]
    latent = {"samples": torch.zeros(1, 16, cond.latent_frames, H // 8, W // 8)}
    return pos, neg, latent


def humo_direct(model, inputs, plan, steps=2):
    with torch.inference_mode():
        return hg.sample_humo(model, *inputs, plan, seed=5, steps=steps, solver="euler", progress=False)[0]["samples"]


def humo_parallel(config, model, inputs, plan, steps=2):
    return rt.run(config, model, hg.sample_humo, *inputs, plan, returns=0, seed=5, steps=steps, solver="euler")[
        "samples"
    ]


def with_lora(model):
    """A core LoRA (diffusers lora_A / lora_B names) on a few layers, loaded by core's LoRA code."""
    g = torch.Generator().manual_seed(9)
    lora = {}
    for key in ("blocks.0.self_attn.q", "blocks.1.ffn.0", "blocks.1.audio_cross_attn_wrapper.audio_cross_attn.k"):
        w = model.get_model_object(f"diffusion_model.{key}").weight
        lora[f"diffusion_model.{key}.lora_A.weight"] = torch.randn(4, w.shape[1], generator=g) * 0.1
        lora[f"diffusion_model.{key}.lora_B.weight"] = torch.randn(w.shape[0], 4, generator=g) * 0.1
    patches = comfy.lora.load_lora(lora, comfy.lora.model_lora_keys_unet(model.model, {}))
    m = model.clone()
    assert len(m.add_patches(patches, 0.8)) == 3
    return m


def test_humo_17b_tia_sp2_with_lora_equals_one_process(files, humo_inputs):
    model = with_lora(load_humo_model(files["humo_17b"])[0])
    plan = gd.humo_17b_plan()
    ref = humo_direct(model, humo_inputs, plan)
    out = humo_parallel(cpu(sp=2), model, humo_inputs, plan)
    assert rel_err(ref, out) < TOLERANCE
    assert rel_err(ref, humo_direct(load_humo_model(files["humo_17b"])[0], humo_inputs, plan)) > 1e-3  # LoRA counts
    stats = rt.RUNTIME.stats()
    assert [s["forwards"] for s in stats] == [6, 6]  # 3 passes x 2 steps on both ranks of the group
    # warm workers: the second run reuses them and their model
    group = rt.RUNTIME.group
    assert rel_err(ref, humo_parallel(cpu(sp=2), model, humo_inputs, plan)) < TOLERANCE
    assert rt.RUNTIME.group is group


def test_humo_1_7b_tia_sp2_and_cfg_parallel_equal_one_process(files, humo_inputs):
    model = load_humo_model(files["humo_1_7b"])[0]
    plan = gd.humo_1_7b_plan()
    ref = humo_direct(model, humo_inputs, plan)
    assert rel_err(ref, humo_parallel(cpu(sp=2), model, humo_inputs, plan)) < TOLERANCE
    assert rel_err(ref, humo_parallel(cpu(sp=1, cfg=2), model, humo_inputs, plan)) < TOLERANCE
    assert [s["forwards"] for s in rt.RUNTIME.stats()] == [4, 4]  # 4 passes per step, 2 per group


def hunyuan_inputs(release):
    g = torch.Generator().manual_seed(4)

    def text(interleave):
        ctx = torch.randn(1, 12, fx.TINY_TEXT_DIM, generator=g)
        return [[ctx, {"pooled_output": torch.randn(1, 768, generator=g), hi.INTERLEAVE_KEY: interleave}]]

    image = torch.randn(1, 16, 1, 6, 10, generator=g)  # 9 frames -> 3 latent frames of 3x5 tokens: 45, odd
    return hi.assemble_i2v(release, text(release.image_interleave), text(release.image_interleave), image, 9, True)


@pytest.mark.parametrize("release", ["v1", "v2"])
def test_hunyuan_i2v_sp2_with_real_cfg_equals_one_process(files, release):
    model, rel = hd.load_hunyuan_dit(str(files[release]))
    pos, neg, latent = hunyuan_inputs(rel)
    with torch.inference_mode():
        ref = hi.sample_i2v(model, pos, neg, latent, 3, steps=2, cfg=3.0, progress=False)[0]["samples"]
    out, out_release, shift = rt.run(cpu(sp=2), model, hi.sample_i2v, pos, neg, latent, 3, steps=2, cfg=3.0)
    assert out_release == rel and shift == hi.SHIFT_STABILITY
    assert rel_err(ref, out["samples"]) < TOLERANCE
    assert out[hi.LATENT_KEY]["release"] == rel.name


def test_sharded_weights_equal_unsharded_and_hold_half_each(files, humo_inputs):
    model = with_lora(load_humo_model(files["humo_17b"])[0])
    plan = gd.humo_17b_plan()
    ref = humo_direct(model, humo_inputs, plan)
    out = humo_parallel(cpu(sp=2, shard=True), model, humo_inputs, plan)
    assert rel_err(ref, out) < TOLERANCE
    for mem, after in zip(rt.RUNTIME.last_load, rt.RUNTIME.stats(), strict=True):
        assert abs(mem["weights_local"] / mem["weights_full"] - 0.5) < 0.01, mem
        assert after["weights_local"] == mem["weights_local"]  # every unit gave its gathered weights back


def test_guider_for_sampler_custom_advanced_equals_one_process(files, humo_inputs):
    model = load_humo_model(files["humo_1_7b"])[0]
    pos, neg, latent = humo_inputs
    noise = torch.randn(latent["samples"].shape, generator=torch.Generator().manual_seed(2))
    sigmas = hg.humo_sigmas(3, 5.0)
    sampler = comfy.samplers.sampler_object("euler")
    local = hg.HuMoGuider(model, gd.humo_1_7b_plan())
    local.set_conds(pos, neg)
    with torch.inference_mode():
        ref = local.sample(noise, latent["samples"], sampler, sigmas, disable_pbar=True, seed=2)
    steps = []
    guider = pguider.ParallelGuider(cpu(sp=2), model, hg.HuMoGuider, (gd.humo_1_7b_plan(),), pos, neg)
    out = guider.sample(noise, latent["samples"], sampler, sigmas, callback=lambda *a: steps.append(a[0]), seed=2)
    assert rel_err(ref, out) < TOLERANCE
    assert steps and steps[-1] == 2  # previews of x0 reached the caller, up to the last step


def test_cancel_stops_every_worker_within_one_step_and_they_stay_warm(files, humo_inputs):
    model = load_humo_model(files["humo_1_7b"])[0]
    plan = gd.humo_1_7b_plan()
    seen = []

    def hook(value, total, preview, node_id=None):
        seen.append(value)
        if value >= 2:
            mm.interrupt_current_processing(True)

    comfy.utils.set_progress_bar_global_hook(hook)
    try:
        with pytest.raises(mm.InterruptProcessingException):
            humo_parallel(cpu(sp=2), model, humo_inputs, plan, steps=400)
        assert not mm.processing_interrupted()  # cleared, as core does, so the next prompt runs
    finally:
        comfy.utils.set_progress_bar_global_hook(None)
        mm.interrupt_current_processing(False)
    evaluations = [s["evaluations"] for s in rt.RUNTIME.stats()]
    assert len(set(evaluations)) == 1  # every rank stopped at the same model evaluation
    assert evaluations[0] < 400 and evaluations[0] <= max(seen) + 3
    group = rt.RUNTIME.group
    ref = humo_direct(model, humo_inputs, plan)
    assert rel_err(ref, humo_parallel(cpu(sp=2), model, humo_inputs, plan)) < TOLERANCE
    assert rt.RUNTIME.group is group


def test_killed_worker_is_a_clear_error_and_the_next_run_starts_fresh(files, humo_inputs):
    """Rank 1 is killed mid-run: rank 0, stuck in a collective, is stopped too and the error names the dead
    worker. The next run (here sp_size 1: one worker, which also shows that the parallel path at sp_size 1
    equals the direct path) starts fresh workers."""
    model = load_humo_model(files["humo_17b"])[0]
    plan = gd.humo_17b_plan()
    victim = [rt.RUNTIME.group.infos[1]["pid"]]

    def hook(value, total, preview, node_id=None):
        if value >= 2 and victim:  # progress is polled: the same step can be reported more than once
            os.kill(victim.pop(), signal.SIGKILL)

    comfy.utils.set_progress_bar_global_hook(hook)
    try:
        with pytest.raises(rt.WorkerError, match=r"rank 1 .* died .*next run starts fresh"):
            humo_parallel(cpu(sp=2), model, humo_inputs, plan, steps=400)
    finally:
        comfy.utils.set_progress_bar_global_hook(None)
    assert rt.RUNTIME.group is None
    ref = humo_direct(model, humo_inputs, plan)
    assert rel_err(ref, humo_parallel(cpu(sp=1), model, humo_inputs, plan)) < TOLERANCE
    assert rt.RUNTIME.group.world == 1 and rt.RUNTIME.group.alive


# ------------------------------------------------------------------------------------------ no workers
def test_clear_errors_before_any_worker_starts(humo_inputs):
    core_model = comfy.sd.load_diffusion_model_state_dict(fh.humo_state_dict(in_dim=16, seed=1))
    with pytest.raises(ValueError, match="needs a model from this pack's loaders"):
        rt.shipment_of(core_model, None)
    with pytest.raises(ValueError, match="devices: 1 device"):
        rt.ParallelConfig(sp_size=2, devices="0")
    with pytest.raises(ValueError, match="must be empty, 'cpu' or CUDA indices"):
        rt.ParallelConfig(devices="gpu0")
    with pytest.raises(ValueError, match="sp_size: must be at least 1"):
        rt.ParallelConfig(sp_size=0)


def test_modulation_ranges_follow_the_shard():
    # HunyuanVideo v2: the first frame's tokens (0..6) use modulation 0, the rest 1; text after video
    segments = [(7, 14, 0), (20, 23, 7)]  # rank 1 of 2 over 20 video tokens (local 10, 7 real) + 3 text
    dims = sq._map_ranges([(0, 6, 0), (6, None, 1)], segments)
    assert dims == [(0, 7, 1), (7, 10, 1)]
    segments = [(0, 7, 0), (20, 23, 10)]
    assert sq._map_ranges([(0, 6, 0), (6, None, 1)], segments) == [(0, 6, 0), (6, 7, 1), (10, 13, 1)]


def test_focus_mask_with_sequence_parallelism_is_refused(files, humo_inputs):
    """Focus replaces HuMo's audio cross-attention, which sequence parallelism must own: a clear error."""
    model = load_humo_model(files["humo_17b"])[0]
    mask = torch.zeros(1, H, W)
    mask[:, :, : W // 2] = 1.0
    parallel = sq.apply_sequence_parallel(model, None, 2, 0)
    guider = hg.HuMoGuider(parallel, gd.humo_17b_plan(), hg.FocusOptions(1.0, [mask]))
    guider.set_conds(*humo_inputs[:2])
    patched = guider.model_patcher
    patched.patch_model(load_weights=False)
    try:
        with pytest.raises(ValueError, match="focus masks .* sequence parallelism"):
            sq._check_humo_audio(patched.model.diffusion_model)
    finally:
        patched.unpatch_model(unpatch_weights=False)
