"""Speed tools users already put in front of HuMo run through our HuMo guider, on tiny random-weight core
MODELs on the CPU, and give the same result as without them wherever the tool is exact: core's
TorchCompileModel (its ``set_torch_compile_wrapper``, "eager" backend: inductor's C++ build takes minutes on a
CPU), EasyCache / LazyCache, fp8 weight storage, core's attention dispatch (what --use-sage-attention and
--use-flash-attention switch), and a Wan 2.1 LoRA through core's LoraLoaderModelOnly."""

import comfy.ldm.wan.model
import comfy.sample
import comfy.samplers
import comfy.sd
import folder_paths
import pytest
import safetensors.torch
import torch
from comfy_api.torch_helpers import set_torch_compile_wrapper
from comfy_extras import nodes_easycache
from humanvideo.samplers import guidance as gd
from humanvideo.samplers import humo_conditioning as hc
from humanvideo.samplers import humo_guider as hg
from humo_tiny import tiny_humo

W, H, FRAMES = 32, 32, 5


def _conds(vae):
    g = torch.Generator().manual_seed(3)
    cond = hc.build_condition(
        vae, W, H, FRAMES, images=[torch.rand(20, 28, 3, generator=g)], speakers=[torch.randn(9, 5, 1280, generator=g)]
    )
    pos = [[torch.randn(1, 6, 4096, generator=g), {hc.COND_KEY: cond}]]
    neg = [[torch.randn(1, 6, 4096, generator=g), {hc.COND_KEY: cond}]]
    return cond, pos, neg


def _sample(model, vae, plan, steps=3, count=None):
    """Our guider, official integer timesteps, FlowUniPC; ``count`` collects the batch of every DiT block-0 call."""
    cond, pos, neg = _conds(vae)
    hook = None
    if count is not None:  # inside the DiT: a cache that skips a forward skips this too
        block = model.model.diffusion_model.blocks[0]
        hook = block.register_forward_pre_hook(lambda _, args: count.append(int(args[0].shape[0])))
    sigmas, timesteps = hg.flow_unipc.official_schedule(steps, 5.0)
    guider = hg.HuMoGuider(model, plan)
    guider.set_conds(pos, neg)
    guider.use_official_timesteps(sigmas, timesteps)
    latent = torch.zeros(1, 16, cond.latent_frames, H // 8, W // 8)
    noise = comfy.sample.prepare_noise(latent, 5)
    try:
        return guider.sample(noise, latent, hg.solver_object("flow_unipc"), sigmas, disable_pbar=True, seed=5)
    finally:
        if hook is not None:
            hook.remove()


def test_torch_compile_model_is_exact_and_compiles_once_per_shape(model_17b, vae, monkeypatch):
    import comfy.ldm.modules.attention
    import torch._dynamo
    from torch._dynamo.utils import counters

    # PyTorch attention as on a GPU: core's CPU choice (sub-quadratic) guards on the free memory and recompiles
    monkeypatch.setattr(comfy.ldm.wan.model, "optimized_attention", comfy.ldm.modules.attention.attention_pytorch)
    plan = gd.humo_17b_plan()
    want = _sample(model_17b, vae, plan)
    compiled = model_17b.clone()
    set_torch_compile_wrapper(model=compiled, backend="eager")  # what the TorchCompileModel node does
    torch._dynamo.reset()
    counters.clear()
    got = _sample(compiled, vae, plan, steps=3)
    graphs = counters["stats"]["unique_graphs"]
    _sample(compiled, vae, plan, steps=5)  # other sigmas and integer timesteps, same shapes
    torch.testing.assert_close(got, want, rtol=0, atol=1e-6)
    # the integer timestep travels as a tensor: new steps do not recompile the DiT. A Python number would add a
    # graph for each of the 4 new integers of the 5-step run; core 0.33 on the CPU may add one of its own.
    assert counters["stats"]["unique_graphs"] - graphs <= 1
    torch._dynamo.reset()


@pytest.mark.parametrize("node", ["EasyCacheNode", "LazyCacheNode"])
def test_core_caches_run_through_our_guider(model_1_7b, vae, node):
    plan = gd.humo_1_7b_plan()
    base_passes: list[int] = []
    want = _sample(model_1_7b, vae, plan, steps=8, count=base_passes)
    cls = getattr(nodes_easycache, node)
    exact = cls.execute(model_1_7b, reuse_threshold=0.0, start_percent=0.0, end_percent=1.0, verbose=False).args[0]
    torch.testing.assert_close(_sample(exact, vae, plan, steps=8), want, rtol=0, atol=1e-6)
    passes: list[int] = []
    caching = cls.execute(model_1_7b, reuse_threshold=3.0, start_percent=0.0, end_percent=1.0, verbose=False).args[0]
    out = _sample(caching, vae, plan, steps=8, count=passes)
    assert torch.isfinite(out).all()
    assert sum(passes) < sum(base_passes), "the cache skipped no forward"


def test_fp8_weights_equal_the_rounded_weights(vae):
    plan = gd.humo_1_7b_plan()
    sd = tiny_humo(16, seed=2).model.diffusion_model.state_dict()
    fp8 = comfy.sd.load_diffusion_model_state_dict(dict(sd), model_options={"dtype": torch.float8_e4m3fn})
    assert fp8.model.diffusion_model.blocks[0].self_attn.q.weight.dtype == torch.float8_e4m3fn
    rounded = {
        k: v.to(torch.float8_e4m3fn).float()
        if fp8.model.diffusion_model.state_dict()[k].dtype == torch.float8_e4m3fn
        else v
        for k, v in sd.items()
    }
    full = comfy.sd.load_diffusion_model_state_dict(rounded, model_options={"dtype": torch.float32})
    torch.testing.assert_close(_sample(fp8, vae, plan), _sample(full, vae, plan), rtol=1e-5, atol=1e-5)


def test_attention_goes_through_cores_dispatch(model_17b, vae, monkeypatch):
    # --use-sage-attention / --use-flash-attention replace the function behind this name at start-up
    calls = []
    original = comfy.ldm.wan.model.optimized_attention

    def recording(*args, **kwargs):
        calls.append(args[0].shape)
        return original(*args, **kwargs)

    monkeypatch.setattr(comfy.ldm.wan.model, "optimized_attention", recording)
    _sample(model_17b, vae, gd.humo_17b_plan(), steps=2)
    # self, text and audio attention in both blocks of every forward: 2 steps x 2 blocks x 3
    assert len(calls) >= 12


def _random_wan_lora(net, rank=4, seed=9):
    g = torch.Generator().manual_seed(seed)
    lora = {}
    for name in ("blocks.0.self_attn.q", "blocks.1.cross_attn.o", "blocks.0.ffn.0"):
        w = net.get_submodule(name).weight
        lora[f"diffusion_model.{name}.lora_down.weight"] = torch.randn(rank, w.shape[1], generator=g) * 0.1
        lora[f"diffusion_model.{name}.lora_up.weight"] = torch.randn(w.shape[0], rank, generator=g) * 0.1
        lora[f"diffusion_model.{name}.alpha"] = torch.tensor(2.0)
    return lora


def test_wan_lora_through_cores_loader_equals_merging_by_hand(model_1_7b, vae, tmp_path):
    import nodes

    net = model_1_7b.model.diffusion_model
    lora = _random_wan_lora(net)
    safetensors.torch.save_file(lora, str(tmp_path / "wan21_tiny_lora.safetensors"))
    folder_paths.add_model_folder_path("loras", str(tmp_path))
    strength = 0.8
    (patched,) = nodes.LoraLoaderModelOnly().load_lora_model_only(model_1_7b, "wan21_tiny_lora.safetensors", strength)

    sd = {k: v.clone() for k, v in net.state_dict().items()}
    for key in [k for k in lora if k.endswith(".lora_down.weight")]:
        name = key[len("diffusion_model.") : -len(".lora_down.weight")]
        down, up = lora[key], lora[f"diffusion_model.{name}.lora_up.weight"]
        scale = float(lora[f"diffusion_model.{name}.alpha"]) / down.shape[0]
        sd[f"{name}.weight"] += strength * scale * (up @ down)
    by_hand = comfy.sd.load_diffusion_model_state_dict(sd)

    plan = gd.humo_1_7b_plan()
    got = _sample(patched, vae, plan)
    torch.testing.assert_close(got, _sample(by_hand, vae, plan), rtol=1e-5, atol=1e-5)
    assert (got - _sample(model_1_7b, vae, plan)).abs().max() > 1e-4  # the LoRA did change the result
