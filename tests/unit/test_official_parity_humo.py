"""HuMo pipeline parity with the official code (Phantom-video/HuMo@17094e9), with numbers computed by running it.

data/humo_official_flow_unipc.json holds the official scheduler's trajectories on an analytic velocity model,
its integer timesteps and guidance switch steps, and the guidance scales of the official configs and scripts
(its "about" field says how they were made). Covered here:
1. FlowUniPC reproduces the official FlowUniPCMultistepScheduler step by step, and core lists it as flow_unipc;
2. official integer timesteps: the DiT gets the official integers and the 17B guidance switches on them;
3. the 1.7B text scale: 7.5 (yaml) by default, 7.0 (scripts) named in the tooltips;
4. the invented mask-predictor heads are gone; focus by prediction (an option) finds the faces in a decoded
   x0 estimate with the real detector and focuses the remaining steps on them.
"""

import json
import logging
import math
from pathlib import Path

import comfy.patcher_extension
import comfy.sample
import comfy.samplers
import hv_fixtures.media as fixture_media
import numpy as np
import pytest
import torch
from humanvideo.loaders import humo_dit
from humanvideo.media import face_detect, face_focus
from humanvideo.models import humo_focus as hf
from humanvideo.nodes import guidance as ng
from humanvideo.nodes import humo as nh
from humanvideo.samplers import flow_unipc as fu
from humanvideo.samplers import guidance as gd
from humanvideo.samplers import humo_conditioning as hc
from humanvideo.samplers import humo_guider as hg

OFFICIAL = json.loads((Path(__file__).parent / "data" / "humo_official_flow_unipc.json").read_text())
PACKAGED_68 = face_detect.PACKAGE_PREFIX + face_detect.LANDMARKS_68
W, H, FRAMES = 32, 32, 5  # 2 latent frames of 4x4 -> 2x2 tokens


# --- the analytic model ------------------------------------------------------------------------------


def analytic_x0(x: torch.Tensor, sigma: float) -> torch.Tensor:
    """E[x0 | x_sigma = x] for the per-element two-Gaussian prior stored with the official numbers."""
    p = {k: torch.tensor(v, dtype=torch.float64) for k, v in OFFICIAL["model"].items()}
    a = 1.0 - sigma
    logs, means = [], []
    for mu, s, w in ((p["mu1"], p["s1"], p["w"]), (p["mu2"], p["s2"], 1 - p["w"])):
        var = a * a * s * s + sigma * sigma
        logs.append(torch.log(w) - 0.5 * torch.log(var) - 0.5 * (x - a * mu) ** 2 / var)
        means.append(mu + a * s * s / var * (x - a * mu))
    r = torch.softmax(torch.stack(logs), 0)
    return (r * torch.stack(means)).sum(0)


def _case_id(case):
    return f"{case['steps']}steps-shift{case['shift']:g}"


# --- 1. FlowUniPC --------------------------------------------------------------------------------------


@pytest.mark.parametrize("case", OFFICIAL["trajectories"], ids=_case_id)
def test_flow_unipc_reproduces_the_official_trajectory(case):
    sigmas, _ = fu.official_schedule(case["steps"], case["shift"])
    assert sigmas.dtype == torch.float32 and sigmas.tolist() == case["sigmas"]  # bit-identical schedule
    seen = []

    def model(x, sigma, **kwargs):
        seen.append(x.clone())
        return analytic_x0(x[0], float(sigma[0]))[None]

    noise = torch.tensor(OFFICIAL["model"]["noise"], dtype=torch.float64)[None]
    out = fu.sample_flow_unipc(model, noise, sigmas, disable=True)
    # The official sample after step i is the x the model sees at step i + 1 (before that step's correction).
    ours = [x[0] for x in seen[1:]] + [out[0]]
    assert len(ours) == case["steps"]
    for i, (a, b) in enumerate(zip(ours, case["trajectory"], strict=True)):
        b = torch.tensor(b, dtype=torch.float64)
        rel = float((a - b).abs().max() / b.abs().max())
        assert rel < 1e-6, f"step {i}: relative difference {rel:.2e}"


def test_core_uni_pc_bh2_is_not_the_official_solver():
    """Why flow_unipc exists: core's UniPC (order 3, another lambda) leaves the official trajectory."""
    import comfy.extra_samplers.uni_pc as core_uni_pc

    case = OFFICIAL["trajectories"][2]  # 8 steps, shift 5
    sigmas, _ = fu.official_schedule(case["steps"], case["shift"])

    def denoiser(x, sigma, **kwargs):  # core's UniPC runs in float32
        return analytic_x0(x[0].double(), float(sigma[0]))[None].float()

    noise = torch.tensor(OFFICIAL["model"]["noise"], dtype=torch.float32)[None]
    core = core_uni_pc.sample_unipc_bh2(denoiser, noise, sigmas.clone(), {}, disable=True)
    ours = fu.sample_flow_unipc(denoiser, noise, sigmas, disable=True)
    expected = torch.tensor(case["trajectory"][-1], dtype=torch.float32)

    def rel(x):
        return float((x[0] - expected).abs().max() / expected.abs().max())

    assert rel(core) > 1e-3 and rel(ours) < 1e-6


def test_flow_unipc_takes_any_flow_sigmas_and_refuses_others():
    calls = []

    def model(x, sigma, **kwargs):
        calls.append(float(sigma[0]))
        return analytic_x0(x[0], float(sigma[0]))[None]

    noise = torch.tensor(OFFICIAL["model"]["noise"], dtype=torch.float64)[None]
    # core's "simple" flow schedule starts at sigma 1 (log-SNR -inf): the limits keep every step finite
    sigmas = torch.tensor([1.0, 0.9, 0.6, 0.3, 0.1, 0.0], dtype=torch.float64)
    out = fu.sample_flow_unipc(model, noise, sigmas, disable=True)
    assert calls == sigmas[:-1].tolist() and torch.isfinite(out).all()
    # a partial run (long-form continuation) ends where its sigmas end
    part = fu.sample_flow_unipc(model, noise, sigmas[:3], disable=True)
    assert torch.isfinite(part).all() and not torch.allclose(part, out)
    with pytest.raises(ValueError, match="outside \\[0, 1\\].*flow-matching"):
        fu.sample_flow_unipc(model, noise, torch.tensor([14.6, 1.0, 0.0]), disable=True)


def test_flow_unipc_is_a_core_sampler_name():
    import nodes
    from comfy_extras import nodes_custom_sampler

    fu.register()
    fu.register()  # idempotent
    for names in (comfy.samplers.KSAMPLER_NAMES, comfy.samplers.SAMPLER_NAMES, comfy.samplers.KSampler.SAMPLERS):
        assert names.count("flow_unipc") == 1
    select = nodes_custom_sampler.KSamplerSelect.define_schema().inputs[0]
    assert "flow_unipc" in select.options
    assert "flow_unipc" in nodes.KSampler.INPUT_TYPES()["required"]["sampler_name"][0]
    assert comfy.samplers.sampler_object("flow_unipc").sampler_function is fu.sample_flow_unipc
    assert "uni_pc_bh2" in comfy.samplers.SAMPLER_NAMES and callable(
        comfy.samplers.sampler_object("euler").sampler_function
    )


# --- tiny HuMo set-up -----------------------------------------------------------------------------------


def _text(seed):
    return torch.randn(1, 6, 4096, generator=torch.Generator().manual_seed(seed))


def _conds(vae, speakers=1, masks=None, image=True):
    tracks = [torch.randn(9, 5, 1280, generator=torch.Generator().manual_seed(4 + k)) for k in range(speakers)]
    cond = hc.build_condition(
        vae,
        W,
        H,
        FRAMES,
        images=[torch.rand(40, 56, 3, generator=torch.Generator().manual_seed(3))] if image else None,
        speakers=tracks,
        speaker_masks=masks,
    )
    return cond, [[_text(1), {hc.COND_KEY: cond}]], [[_text(2), {hc.COND_KEY: cond}]]


@pytest.fixture(scope="module")
def single(vae):
    return _conds(vae)


def _latent(cond):
    return torch.zeros(1, 16, cond.latent_frames, H // 8, W // 8)


def test_flow_unipc_under_core_noise_mask(model_1_7b, single):
    """Core's inpainting machinery wraps flow_unipc like any sampler: the kept region comes back unchanged."""
    fu.register()
    cond, pos, neg = single
    guider = hg.HuMoGuider(model_1_7b, gd.humo_1_7b_plan())
    guider.set_conds(pos, neg)
    latent = torch.randn(_latent(cond).shape, generator=torch.Generator().manual_seed(9))
    mask = torch.zeros(1, 1, cond.latent_frames, H // 8, W // 8)
    mask[..., :, W // 16 :] = 1.0  # regenerate the right half only
    noise = torch.randn(latent.shape, generator=torch.Generator().manual_seed(1))
    sigmas = hg.humo_sigmas(3, 5.0)
    out = guider.sample(noise, latent, comfy.samplers.sampler_object("flow_unipc"), sigmas, denoise_mask=mask, seed=1)
    torch.testing.assert_close(out[..., : W // 16], latent[..., : W // 16])
    assert not torch.allclose(out[..., W // 16 :], latent[..., W // 16 :])


# --- 2. official integer timesteps ------------------------------------------------------------------------


@pytest.mark.parametrize("case", OFFICIAL["timesteps"], ids=_case_id)
def test_official_schedule_and_integer_timesteps(case):
    sigmas, timesteps = fu.official_schedule(case["steps"], case["shift"])
    assert sigmas.tolist() == case["sigmas"] and timesteps.tolist() == case["timesteps"]
    table = {s: t for s, t in zip(sigmas.tolist(), timesteps.tolist(), strict=False)}
    assert [hg.model_timestep(s, table) for s in sigmas[:-1].tolist()] == case["timesteps"]
    # Without the table (sigmas from elsewhere) the truncated float32 timestep is used: the same integers
    # except where 1000 x sigma lies within float32 rounding of an integer (one step of 198 at shift 5).
    plain = [hg.model_timestep(s) for s in sigmas[:-1].tolist()]
    differ = [i for i, (a, b) in enumerate(zip(plain, case["timesteps"], strict=True)) if a != b]
    assert differ == ([19] if case["steps"] == 198 else [])


def _record_dit_timesteps(guider) -> list[float]:
    fed = []

    def record(executor, x, timestep, *args, **kwargs):
        fed.append(float(timestep.flatten()[0]))
        return executor(x, timestep, *args, **kwargs)

    # added after the guider's own wrapper, so it runs inside it and sees what the DiT gets
    guider.model_patcher.add_wrapper_with_key(comfy.patcher_extension.WrappersMP.DIFFUSION_MODEL, "test", record)
    return fed


def _switch_step(guider, sigmas) -> int:
    early = guider.schedule.segments[0].chain
    return next(i for i, s in enumerate(sigmas) if guider.select(s, i)[0] != early)


@pytest.mark.parametrize("steps", [50, 80, 100, 198])
def test_17b_switches_guidance_on_the_official_integer(model_17b, single, steps):
    case = next(c for c in OFFICIAL["timesteps"] if c["steps"] == steps and c["shift"] == 5.0)
    cond, pos, neg = single
    sigmas, timesteps = fu.official_schedule(steps, 5.0)
    guider = hg.HuMoGuider(model_17b, gd.humo_17b_plan())
    guider.set_conds(pos, neg)
    guider.use_official_timesteps(sigmas, timesteps)
    assert [guider.select(s, i)[1] for i, s in enumerate(case["sigmas"][:-1])] == case["timesteps"]
    assert _switch_step(guider, case["sigmas"][:-1]) == case["switch_step"]
    # The float rule (sigma > 0.98) switches one step later at 80, 100 and 198 steps.
    floats = hg.HuMoGuider(model_17b, gd.humo_17b_plan(), integer_timesteps=False)
    floats.set_conds(pos, neg)
    assert floats.select(0.5, 0)[1] is None
    by_sigma = next(i for i, s in enumerate(case["sigmas"]) if not s > 0.98)
    assert _switch_step(floats, case["sigmas"][:-1]) == by_sigma
    assert by_sigma == case["switch_step"] + (0 if steps == 50 else 1)


def test_the_dit_gets_the_official_integers_around_the_switch(model_17b, single):
    """Two real steps of an 80-step run across the switch (t 983 -> 980): what the DiT gets, which chain runs."""
    case = next(c for c in OFFICIAL["timesteps"] if c["steps"] == 80)
    cond, pos, neg = single
    sigmas, timesteps = fu.official_schedule(80, 5.0)
    k = case["switch_step"]
    window = sigmas[k - 1 : k + 2]  # the sampler takes the sigmas it is given: steps k - 1 and k
    runs = {}
    for integer in (True, False):
        guider = hg.HuMoGuider(model_17b, gd.humo_17b_plan(), integer_timesteps=integer)
        guider.set_conds(pos, neg)
        guider.use_official_timesteps(sigmas, timesteps)
        fed = _record_dit_timesteps(guider)
        noise = torch.randn(_latent(cond).shape, generator=torch.Generator().manual_seed(5))
        guider.sample(noise, _latent(cond), hg.solver_object("flow_unipc"), window, disable_pbar=True, seed=5)
        runs[integer] = (fed, [chain == guider.schedule.segments[0].chain for _, _, chain in guider.trace])
    assert runs[True] == ([float(t) for t in case["timesteps"][k - 1 : k + 1]], [True, False])
    assert runs[False] == ([float(torch.tensor(s) * 1000) for s in case["sigmas"][k - 1 : k + 1]], [True, True])


def test_sample_humo_defaults_are_official(model_17b, single):
    cond, pos, neg = single
    first = []

    def record(executor, x, *args, **kwargs):
        first.append(x[:1, :16, : cond.latent_frames].clone())  # x of the first pass, without y
        return executor(x, *args, **kwargs)

    model = model_17b.clone()
    model.add_wrapper_with_key(comfy.patcher_extension.WrappersMP.DIFFUSION_MODEL, "test", record)
    out, guider = hg.sample_humo(model, pos, neg, {"samples": _latent(cond)}, gd.humo_17b_plan(), 7, steps=2)
    assert guider.integer_timesteps and guider.model_timesteps == fu.official_schedule(2, 5.0)[1].tolist()
    assert hg.DEFAULT_SOLVER == "flow_unipc" and torch.isfinite(out["samples"]).all()
    # generate.py:592: the loop starts from the noise itself
    noise = comfy.sample.prepare_noise(_latent(cond), 7)
    torch.testing.assert_close(first[0], noise, rtol=1e-6, atol=1e-6)
    schema = nh.HVHuMoSampler.define_schema()
    inputs = {i.id: i for i in schema.inputs}
    assert inputs["solver"].default == "flow_unipc" and inputs["official_integer_timesteps"].default is True
    assert inputs["steps"].default == 50 and inputs["shift"].default == 5.0 and inputs["seed"].default == 666666
    assert {i.id: i for i in nh.HVHuMoGuider.define_schema().inputs}["official_integer_timesteps"].default is True


# --- 3. guidance scales of the official configs ---------------------------------------------------------------


def test_guidance_defaults_follow_the_official_yaml_and_name_the_scripts():
    cfg17 = OFFICIAL["guidance"]["humo/configs/inference/generate.yaml"]
    cfg1_7 = OFFICIAL["guidance"]["humo/configs/inference/generate_1_7B.yaml"]
    script = OFFICIAL["guidance"]["scripts/infer_tia_1_7B.sh"]
    tia17 = gd.humo_17b_plan().resolve({gd.TEXT, gd.IMAGE, gd.AUDIO})
    assert tia17.segments[0].chain.scales == (cfg17["scale_t"], cfg17["scale_a"])
    assert tia17.segments[0].until * 1000 == cfg17["step_change"]
    chain = gd.humo_1_7b_plan().default.segments[0].chain
    assert chain.scales == (cfg1_7["scale_t"], cfg1_7["scale_a"], cfg1_7["scale_i"])
    assert script["scale_t"] != cfg1_7["scale_t"]
    inputs = {i.id: i for i in ng.HVGuidanceSchedule.define_schema().inputs}
    for name in ("preset", "scale_t"):
        tip = inputs[name].tooltip
        assert f"{cfg1_7['scale_t']:g}" in tip and f"{script['scale_t']:.1f}" in tip, name


# --- 4. no mask-predictor heads; focus by prediction ---------------------------------------------------------


def test_mask_predictor_heads_are_gone(caplog):
    import importlib

    with pytest.raises(ModuleNotFoundError):
        importlib.import_module("humanvideo.models.humo_mask_predictor")
    assert [o.display_name for o in nh.HVHuMoSampler.define_schema().outputs] == ["latent"]
    # A file carrying such tensors loads as the DiT it is; the extra tensors are named and ignored.
    cfg = humo_dit.HumoConfig(dim=128, ffn_dim=256, num_layers=2, in_dim=16)
    sd = {k: torch.empty(s, device="meta") for k, s in humo_dit.official_key_manifest(cfg).items()}
    sd["mask_predictor.0.proj.weight"] = torch.empty(1, 128, device="meta")
    with caplog.at_level(logging.WARNING):
        humo_dit.check_humo_state_dict(sd, "heads.safetensors")
    assert "mask_predictor.0.proj.weight" not in sd and "mask_predictor.0.proj.weight" in caplog.text


@pytest.fixture(scope="module")
def detector():
    return face_detect.DlibFaceDetector(PACKAGED_68)


class StandIn:
    """Decodes nothing: returns a real face clip as the frames of the x0 estimate, and notes what it got."""

    def __init__(self, frames: np.ndarray) -> None:
        self.frames = torch.from_numpy(frames).float() / 255.0
        self.latents = []

    def __call__(self, raw: torch.Tensor) -> torch.Tensor:
        self.latents.append(raw.shape)
        return self.frames[None]  # like a video VAE: [1, frames, H, W, 3]


def _run(model, pos, neg, cond, focus, steps=3):
    x0s = []
    guider = hg.HuMoGuider(model, gd.humo_17b_plan(), focus)
    guider.set_conds(pos, neg)
    sigmas, timesteps = fu.official_schedule(steps, 5.0)
    guider.use_official_timesteps(sigmas, timesteps)
    noise = torch.randn(_latent(cond).shape, generator=torch.Generator().manual_seed(5))
    guider.sample(
        noise,
        _latent(cond),
        hg.solver_object("flow_unipc"),
        sigmas,
        callback=lambda i, x0, x, total: x0s.append(x0.clone()),
        seed=5,
    )
    return guider, x0s


@pytest.fixture(scope="module")
def plain_x0s(model_17b, single):
    """x0 estimates of a 3-step run without any focus."""
    cond, pos, neg = single
    return _run(model_17b, pos, neg, cond, None)[1]


def test_focus_by_prediction_finds_the_face_in_the_x0_estimate(model_17b, single, plain_x0s, detector):
    clip = fixture_media.face_clip_frames(FRAMES, 256)
    face = detector.detect(clip[0])[0].box / 256.0  # the astronaut's face, unit coordinates
    cond, pos, neg = single
    stand_in = StandIn(clip)
    prediction = hg.FocusPrediction(step=1, detector=detector, decode=stand_in)
    guider, x0s = _run(model_17b, pos, neg, cond, hg.FocusOptions(prediction=prediction))

    assert stand_in.latents == [torch.Size([1, 16, cond.latent_frames, H // 8, W // 8])]  # video frames only
    cfg = guider.focus_config
    assert cfg.strength == 1.0 and cfg.masks[0].shape == (cond.latent_frames, H // 8, W // 8)
    mask = cfg.masks[0][0]
    cx, cy = (face[0] + face[2]) / 2 * (W // 8), (face[1] + face[3]) / 2 * (H // 8)
    assert float(mask[int(cy), int(cx)]) == float(mask.max()) > 0.5  # on the face
    assert float(mask[-1, -1]) == 0.0 and float(mask.mean()) < 0.8  # not everywhere
    blocks = [p for p in guider.model_patcher.object_patches.values() if isinstance(p, hf.FocusedAudioCrossAttention)]
    assert blocks and all(b.cfg is cfg for b in blocks)
    assert "focus by prediction at step 1" in guider.notes[-1]
    # Up to the prediction the run is the official one, bit for bit; after it the focus changes the result.
    for i in (0, 1):
        assert torch.equal(x0s[i], plain_x0s[i])
    assert not torch.allclose(x0s[2], plain_x0s[2])


def test_focus_by_prediction_without_a_face_keeps_the_focus(model_17b, single, plain_x0s, detector):
    """The real (tiny, random) VAE decodes the x0 estimate; noise has no face, so nothing changes."""
    cond, pos, neg = single
    prediction = hg.FocusPrediction(step=1, detector=detector)
    guider, x0s = _run(model_17b, pos, neg, cond, hg.FocusOptions(prediction=prediction))
    assert guider.focus_config.is_identity and "no face" in guider.notes[-1]
    assert all(torch.equal(a, b) for a, b in zip(x0s, plain_x0s, strict=True))
    with pytest.raises(ValueError, match="focus_prediction_step: 2 leaves no step"):
        _run(model_17b, pos, neg, cond, hg.FocusOptions(prediction=hg.FocusPrediction(step=2, detector=detector)), 3)


def _two_faces(frames: int) -> np.ndarray:
    """Two people side by side: the face clip and its mirror image, 256 x 512."""
    clip = fixture_media.face_clip_frames(frames, 256)
    return np.ascontiguousarray(np.concatenate([clip, clip[:, :, ::-1]], axis=2))


def _halves(swap: bool):
    left = torch.zeros(1, H, W)
    left[:, :, : W // 2] = 1.0
    return [1 - left, left] if swap else [left, 1 - left]


def test_focus_by_prediction_gives_each_speaker_the_face_in_their_region(model_17b, vae, detector):
    cond, pos, neg = _conds(vae, speakers=2, masks=_halves(swap=False))
    prediction = hg.FocusPrediction(step=1, detector=detector, decode=StandIn(_two_faces(FRAMES)))
    guider, _ = _run(model_17b, pos, neg, cond, hg.FocusOptions(prediction=prediction))
    first, second = (m[0] for m in guider.focus_config.masks)
    centre_of_mass_x = [float((m.sum(0) * torch.arange(W // 8)).sum() / m.sum()) for m in (first, second)]
    assert centre_of_mass_x[0] < centre_of_mass_x[1]
    # each mask is a face, not the half it was given
    assert all(0.0 < float(m.mean()) < 0.45 for m in (first, second))
    assert "speaker(s) [1, 2]" in guider.notes[-1]


@pytest.mark.parametrize("swap", [False, True], ids=["left-right", "right-left"])
def test_faces_follow_the_speakers_regions(detector, swap):
    frames = _two_faces(5)
    hints = [m.numpy() for m in _halves(swap)]
    found = face_focus.find_speaker_faces(frames, detector, speakers=2, hints=hints)
    x_centres = (found.boxes[:, :, 0] + found.boxes[:, :, 2]) / 2
    assert ((x_centres[0] < 256) & (x_centres[1] > 256)).all() != swap
    assert ((x_centres[0] > 256) & (x_centres[1] < 256)).all() == swap


def test_faces_go_left_to_right_without_hints_and_masks_are_soft(detector):
    frames = _two_faces(6)
    found = face_focus.find_speaker_faces(frames, detector, speakers=2, stride=4)
    assert found.detected_frames == [0, 4, 5]
    boxes = found.boxes[:, :, 0]
    assert np.isfinite(boxes).all() and (boxes[0] < 256).all() and (boxes[1] >= 256).all()
    masks = face_focus.soft_box_masks(found.boxes[0], 512, 256, dilation=0.25, feather=0.2)
    values = np.unique(np.round(masks[0], 3))
    assert masks.shape == (6, 256, 512) and values[0] == 0.0 and values[-1] == 1.0 and len(values) > 10
    assert math.isclose(float(masks[0][:, 300:].max()), 0.0)  # the other person is outside


def test_focus_by_prediction_node_inputs():
    for node in (nh.HVHuMoSampler, nh.HVHuMoGuider):
        inputs = {i.id: i for i in node.define_schema().inputs}
        assert inputs["focus_by_prediction"].default is False and inputs["focus_prediction_step"].default == 10
        assert all(i.tooltip for i in inputs.values())


def test_prompts_linking_the_removed_output_lose_only_that_link():
    from humanvideo.nodes import removed_outputs

    prompt = {
        "5": {"class_type": "HVHuMoSampler", "inputs": {"seed": 1}},
        "6": {"class_type": "HVHuMoConditioning", "inputs": {"focus_mask": ["5", 1], "vae": ["8", 1]}},
        "7": {"class_type": "VAEDecode", "inputs": {"samples": ["5", 0]}},
        "8": {"class_type": "HVLoadWanVAE", "inputs": {}},
    }
    [message] = removed_outputs.drop_removed_output_links(prompt)
    assert prompt["6"]["inputs"] == {"vae": ["8", 1]} and prompt["7"]["inputs"] == {"samples": ["5", 0]}
    assert "node 6 (HVHuMoConditioning) input 'focus_mask'" in message and "focus_by_prediction" in message
