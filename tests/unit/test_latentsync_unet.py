"""LatentSync UNet3D: official key manifest, parity with diffusers, motion modules, DeepCache, strict loader."""

from __future__ import annotations

import ast
from contextlib import contextmanager
from pathlib import Path

import pytest
import torch
from humanvideo.loaders import latentsync_unet as loader
from humanvideo.models.latentsync_motion import MotionModule, MotionModuleConfig, sinusoidal_positions
from humanvideo.models.latentsync_unet import DeepCache, LatentSyncUNet3D, LatentSyncUNetConfig
from hv_fixtures import latentsync_unet as fixture
from torch import nn

pytestmark = pytest.mark.usefixtures("one_thread")

# Built from the official configs/unet/stage2.yaml on the meta device.
OFFICIAL_KEYS = Path(__file__).parent / "data" / "latentsync_unet_stage2_keys.txt"
FRAMES = 2
SIZE = 8  # latent side


def official_manifest() -> dict[str, tuple[int, ...]]:
    """stage2 / stage2_512 keys and shapes from the official UNet3DConditionModel (meta device)."""
    text = OFFICIAL_KEYS.read_text()
    out = {}
    for line in text.splitlines():
        if line.strip():
            key, shape, _ = line.split("\t")
            out[key] = tuple(ast.literal_eval(shape))
    return out


def meta_shapes(cfg: LatentSyncUNetConfig) -> dict[str, tuple[int, ...]]:
    return {k: tuple(v.shape) for k, v in LatentSyncUNet3D(cfg, device="meta").state_dict().items()}


# ---------------------------------------------------------------- key / shape manifests (real size)


def test_real_size_keys_and_shapes_equal_official_list():
    ours = meta_shapes(LatentSyncUNetConfig())
    official = official_manifest()
    assert len(official) == 1246
    assert sorted(ours) == sorted(official)
    assert {k: ours[k] for k in official} == official
    assert sum(torch.Size(s).numel() for s in ours.values()) == 1_267_944_644  # 1,267.94 M


def test_config_inferred_from_real_manifest_and_variants():
    meta_sd = LatentSyncUNet3D(LatentSyncUNetConfig(), device="meta").state_dict()
    assert LatentSyncUNetConfig.from_state_dict(meta_sd) == LatentSyncUNetConfig()
    no_motion = LatentSyncUNetConfig(down_motion=(False,) * 4, up_motion=(False,) * 4)
    decoder_only = LatentSyncUNetConfig(down_motion=(False,) * 4)
    for cfg, count in (
        (no_motion, 686),
        (decoder_only, 1022),
    ):  # stage1, stage2_efficient (official configs/unet/stage1.yaml, stage2_efficient.yaml)
        sd = LatentSyncUNet3D(cfg, device="meta").state_dict()
        assert len(sd) == count
        assert LatentSyncUNetConfig.from_state_dict(sd) == cfg
    assert "decoder-only" in decoder_only.variant and "no motion" in no_motion.variant


def diffusers_unet(cfg: LatentSyncUNetConfig, device="cpu"):
    diffusers = pytest.importorskip("diffusers")
    return diffusers.UNet2DConditionModel(
        sample_size=SIZE,
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
    ).to(device)


def test_non_motion_part_has_diffusers_sd15_key_names():
    cfg = LatentSyncUNetConfig()
    with torch.device("meta"):
        ref = diffusers_unet(cfg, device="meta")
    ref_shapes = {k: tuple(v.shape) for k, v in ref.state_dict().items()}
    ours = {k: s for k, s in meta_shapes(cfg).items() if ".motion_modules." not in k}
    assert len(ours) == 686
    assert ours == ref_shapes


# ---------------------------------------------------------------- numerics on tiny random weights


class FrameGroupNorm(nn.Module):
    """Reference for upstream's 5-D nn.GroupNorm: statistics over all frames of a batch item."""

    def __init__(self, norm: nn.GroupNorm, frames: int):
        super().__init__()
        self.norm, self.frames = norm, frames

    def forward(self, x):
        bf, c, h, w = x.shape
        v = x.reshape(bf // self.frames, self.frames, c, h, w).permute(0, 2, 1, 3, 4)
        return self.norm(v).permute(0, 2, 1, 3, 4).reshape(bf, c, h, w)


@pytest.fixture(scope="module")
def pair():
    """Our tiny UNet (motion modules zeroed) and diffusers' UNet2DConditionModel with the same weights."""
    cfg = fixture.tiny_config()
    ref = diffusers_unet(cfg).eval()
    fixture.randomize(ref, seed=3)
    ours = fixture.tiny_unet(seed=4).eval()
    sd = ours.state_dict()
    for k, v in ref.state_dict().items():
        sd[k] = v.clone()
    for k in sd:
        if "temporal_transformer.proj_out" in k:
            sd[k] = torch.zeros_like(sd[k])  # zero-init motion modules are the identity
    ours.load_state_dict(sd, strict=True)
    return cfg, ours, ref


@contextmanager
def chunk_wide_groupnorm(ref: nn.Module, frames: int):
    """Patch diffusers' resnet and output GroupNorms to upstream's 5-D statistics, then restore."""
    saved = []
    for module in [m for m in ref.modules() if m.__class__.__name__ == "ResnetBlock2D"]:
        for name in ("norm1", "norm2"):
            saved.append((module, name, getattr(module, name)))
            setattr(module, name, FrameGroupNorm(getattr(module, name), frames))
    saved.append((ref, "conv_norm_out", ref.conv_norm_out))
    ref.conv_norm_out = FrameGroupNorm(ref.conv_norm_out, frames)
    try:
        yield ref
    finally:
        for module, name, norm in saved:
            setattr(module, name, norm)


def inputs(cfg, batch=2, frames=FRAMES, seed=0, size=SIZE):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(batch, cfg.in_channels, frames, size, size, generator=g)
    audio = torch.randn(batch, frames, 50, cfg.cross_attention_dim, generator=g)
    t = torch.tensor([951.0, 401.0][:batch])
    return x, t, audio


def run_diffusers_per_frame(ref, x, t, audio):
    b, c, f, h, w = x.shape
    frames = x.transpose(1, 2).reshape(b * f, c, h, w)
    out = ref(frames, t.repeat_interleave(f), encoder_hidden_states=audio.reshape(b * f, *audio.shape[2:])).sample
    return out.reshape(b, f, -1, h, w).transpose(1, 2)


@torch.no_grad()
def test_single_frame_chunks_equal_diffusers_unet2d_per_frame(pair):
    cfg, ours, ref = pair
    x, t, audio = inputs(cfg)
    expected = run_diffusers_per_frame(ref, x, t, audio)
    got = torch.cat([ours(x[:, :, i : i + 1], t, audio[:, i : i + 1]) for i in range(FRAMES)], dim=2)
    assert expected.abs().mean() > 1e-2
    torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-4 * expected.abs().max().item())


@torch.no_grad()
def test_chunk_equals_diffusers_with_chunk_wide_resnet_groupnorm(pair):
    """A multi-frame chunk: frames folded into the batch, per-frame audio tokens, resnet / output
    GroupNorm statistics over the chunk (upstream's 5-D GroupNorm) - diffusers does the rest."""
    cfg, ours, ref = pair
    x, t, audio = inputs(cfg, seed=1)
    got = ours(x, t, audio)
    with chunk_wide_groupnorm(ref, FRAMES):
        expected = run_diffusers_per_frame(ref, x, t, audio)
    torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-4 * expected.abs().max().item())
    # and the chunk-wide statistics do matter (the plain per-frame UNet differs)
    assert not torch.allclose(run_diffusers_per_frame(ref, x, t, audio), got, atol=1e-3)


@torch.no_grad()
def test_odd_latent_size_upsamples_to_skip_size(pair):
    cfg, ours, ref = pair
    x, t, audio = inputs(cfg, batch=1, frames=1, size=7)
    expected = run_diffusers_per_frame(ref, x, t, audio)
    torch.testing.assert_close(ours(x, t, audio), expected, rtol=1e-4, atol=1e-4 * expected.abs().max().item())


def reference_motion_module(mm: MotionModule, x: torch.Tensor, frames: int) -> torch.Tensor:
    """Independent reading of AnimateDiff's VanillaTemporalModule with plain torch ops."""
    tt = mm.temporal_transformer
    bf, c, h, w = x.shape
    b = bf // frames
    heads = 8
    hs = torch.nn.functional.group_norm(x, 32, tt.norm.weight, tt.norm.bias, 1e-6)
    hs = hs.permute(0, 2, 3, 1).reshape(bf, h * w, c) @ tt.proj_in.weight.T + tt.proj_in.bias
    for block in tt.transformer_blocks:
        for attn, norm in zip(block.attention_blocks, block.norms, strict=True):
            n = torch.nn.functional.layer_norm(hs, (c,), norm.weight, norm.bias)
            n = n.reshape(b, frames, h * w, c).permute(0, 2, 1, 3).reshape(b * h * w, frames, c)
            n = n + attn.pos_encoder.pe[:, :frames]
            q, k, v = (n @ lin.weight.T for lin in (attn.to_q, attn.to_k, attn.to_v))
            split = lambda z: z.reshape(z.shape[0], frames, heads, c // heads).transpose(1, 2)  # noqa: E731
            o = torch.nn.functional.scaled_dot_product_attention(split(q), split(k), split(v))
            o = o.transpose(1, 2).reshape(-1, frames, c) @ attn.to_out[0].weight.T + attn.to_out[0].bias
            hs = hs + o.reshape(b, h * w, frames, c).permute(0, 2, 1, 3).reshape(bf, h * w, c)
        n = torch.nn.functional.layer_norm(hs, (c,), block.ff_norm.weight, block.ff_norm.bias)
        proj = n @ block.ff.net[0].proj.weight.T + block.ff.net[0].proj.bias
        a, gate = proj.chunk(2, dim=-1)
        hs = hs + (a * torch.nn.functional.gelu(gate)) @ block.ff.net[2].weight.T + block.ff.net[2].bias
    hs = hs @ tt.proj_out.weight.T + tt.proj_out.bias
    return hs.reshape(bf, h, w, c).permute(0, 3, 1, 2) + x


@torch.no_grad()
def test_motion_module_matches_reference_and_mixes_frames():
    mm = fixture.randomize(MotionModule(64, MotionModuleConfig()), seed=5).eval()
    pe = mm.temporal_transformer.transformer_blocks[0].attention_blocks[0].pos_encoder.pe
    assert pe.shape == (1, 24, 64)
    assert torch.allclose(pe[0, 3, 0::2], torch.sin(3 * torch.exp(torch.arange(0, 64, 2) * -(9.210340371976184 / 64))))
    assert torch.equal(sinusoidal_positions(24, 64), pe)
    x = torch.randn(2 * 5, 64, 3, 4)
    got = mm(x, frames=5)
    torch.testing.assert_close(got, reference_motion_module(mm, x, 5), rtol=1e-4, atol=1e-4)
    y = x.clone()
    y[4] += torch.randn_like(y[4])  # change frame 4 of item 0: frames 0-3 of item 0 change, item 1 does not
    changed = mm(y, frames=5)
    assert not torch.allclose(changed[0], got[0])
    torch.testing.assert_close(changed[5:], got[5:])


@torch.no_grad()
def test_trained_style_motion_modules_change_the_output(pair):
    cfg, zeroed, _ = pair
    active = LatentSyncUNet3D(cfg).eval()
    active.load_state_dict(zeroed.state_dict())
    for name, p in active.named_parameters():
        if "temporal_transformer.proj_out" in name:
            p.data.normal_(0.0, 0.1)
    x, t, audio = inputs(cfg, batch=1)
    assert not torch.allclose(zeroed(x, t, audio), active(x, t, audio), atol=1e-3)


@torch.no_grad()
def test_deepcache_reuse_reproduces_full_step_at_same_inputs():
    unet = fixture.tiny_unet(seed=6).eval()
    x, t, audio = inputs(unet.config, frames=4)
    cache = DeepCache()
    full = unet(x, t, audio, deep_cache=cache)
    assert cache.features is not None
    torch.testing.assert_close(unet(x, t, audio, deep_cache=cache, reuse_cache=True), full, rtol=1e-5, atol=1e-5)
    # the next step's latents reach the output through conv_in -> last up layer -> conv_out only
    x2 = x.clone()
    x2[:, :4] = torch.randn_like(x2[:, :4])
    reused = unet(x2, t, audio, deep_cache=cache, reuse_cache=True)
    assert not torch.allclose(reused, full, atol=1e-4)
    assert not torch.allclose(reused, unet(x2, t, audio), atol=1e-4)
    with pytest.raises(ValueError, match="DeepCache"):
        unet(x, t, audio, deep_cache=DeepCache(), reuse_cache=True)


@torch.no_grad()
def test_half_precision_close_to_fp32():
    unet = fixture.tiny_unet(seed=7).eval()
    x, t, audio = inputs(unet.config)
    ref = unet(x, t, audio)
    half = LatentSyncUNet3D(unet.config, dtype=torch.bfloat16)
    half.load_state_dict(unet.state_dict())
    out = half(x, t, audio)
    assert out.dtype == torch.bfloat16
    rel = (out.float() - ref).norm() / ref.norm()
    assert rel < 0.05


def test_forward_rejects_bad_shapes():
    unet = fixture.tiny_unet(seed=8)
    x, t, audio = inputs(unet.config)
    with pytest.raises(ValueError, match="input must be"):
        unet(x[:, :4], t, audio)
    with pytest.raises(ValueError, match="audio must be"):
        unet(x, t, audio[:, :1])
    long = torch.zeros(1, unet.config.in_channels, 25, SIZE, SIZE)
    with pytest.raises(ValueError, match="at most 24"):
        unet(long, 1, None)


# ---------------------------------------------------------------- strict loader


def test_loader_reads_official_file_format_into_model_patcher(tmp_path):
    import comfy.model_patcher

    path = fixture.gen(tmp_path)[0]
    assert path == tmp_path / "latentsync" / "1.5" / "latentsync_unet.pt"
    raw = torch.load(path, weights_only=True)
    assert set(raw) == {"state_dict", "global_step"}
    patcher = loader.load_latentsync_unet(str(path), dtype="fp32")
    assert isinstance(patcher, comfy.model_patcher.ModelPatcher)
    model = patcher.model
    assert isinstance(model, LatentSyncUNet3D)
    assert model.config == fixture.tiny_config()
    # the tiny fixture has the official key names (same count as the real stage2 file)
    assert sorted(raw["state_dict"]) == sorted(official_manifest())
    for k, v in model.state_dict().items():
        assert torch.equal(v, raw["state_dict"][k]), k
    bf16 = loader.load_latentsync_unet(str(path), dtype="bf16").model
    assert next(bf16.parameters()).dtype == torch.bfloat16


def test_loader_accepts_safetensors_and_prefixed_repacks(tmp_path):
    import safetensors.torch

    sd = fixture.tiny_state_dict(seed=9, down_motion=(False,) * 4)
    path = tmp_path / "ls_efficient.safetensors"
    safetensors.torch.save_file({"module." + k: v for k, v in sd.items()}, str(path))
    model = loader.load_latentsync_unet(str(path), dtype="fp32").model
    assert model.config.down_motion == (False,) * 4 and all(model.config.up_motion)
    assert "decoder-only" in model.config.variant


def test_strict_loader_lists_missing_unexpected_and_misshaped_keys():
    sd = fixture.tiny_state_dict(seed=10)
    del sd["up_blocks.3.attentions.2.transformer_blocks.0.attn2.to_v.weight"]
    sd["up_blocks.3.extra.weight"] = torch.zeros(3)
    sd["mid_block.resnets.0.conv1.bias"] = torch.zeros(7)
    with pytest.raises(ValueError) as err:
        loader.build_unet(sd, dtype="fp32", name="broken.pt")
    msg = str(err.value)
    assert "broken.pt" in msg
    assert "1 missing keys: up_blocks.3.attentions.2.transformer_blocks.0.attn2.to_v.weight" in msg
    assert "1 unexpected keys: up_blocks.3.extra.weight" in msg
    assert "mid_block.resnets.0.conv1.bias (file (7,), expected (96,))" in msg


def test_strict_loader_rejects_partial_motion_modules():
    sd = fixture.tiny_state_dict(seed=11)
    for k in [k for k in sd if k.startswith("down_blocks.1.motion_modules.1.")]:
        del sd[k]
    with pytest.raises(ValueError, match=r"28 missing keys: down_blocks\.1\.motion_modules\.1\."):
        loader.build_unet(sd, dtype="fp32", name="partial.pt")


@pytest.mark.parametrize(
    "make, words",
    [
        (
            lambda: {"dims": {"n_mels": 80}, "model_state_dict": {"encoder.conv1.weight": torch.zeros(1)}},
            "OpenAI Whisper",
        ),
        (
            lambda: {"encoder.conv1.weight": torch.zeros(1), "encoder.blocks.0.attn.query.weight": torch.zeros(1)},
            "Whisper",
        ),
        (lambda: {"model.diffusion_model.input_blocks.0.0.weight": torch.zeros(1)}, "LDM"),
        (lambda: {"audio_encoder.0.weight": torch.zeros(1), "visual_encoder.0.weight": torch.zeros(1)}, "SyncNet"),
        (lambda: {"encoder.down_blocks.0.resnets.0.conv1.weight": torch.zeros(1)}, "VAE"),
        (
            lambda: {"down_blocks.0.motion_modules.0.temporal_transformer.proj_in.weight": torch.zeros(1)},
            "motion-module",
        ),
        (lambda: {"something.else": torch.zeros(1)}, "no 'conv_in.weight'"),
    ],
)
def test_loader_names_foreign_files(make, words):
    with pytest.raises(ValueError, match="not a LatentSync UNet") as err:
        loader.build_unet(make(), name="x.pt")
    assert words in str(err.value)


def test_loader_names_sd15_diffusers_unet():
    with torch.device("meta"):
        sd15 = diffusers_unet(LatentSyncUNetConfig(in_channels=4, cross_attention_dim=768), device="meta").state_dict()
    with pytest.raises(ValueError, match="SD-1.5 UNet .4 input channels, 768-d"):
        loader.build_unet(sd15, name="sd15.safetensors")


def test_loader_rejects_unreadable_and_missing_files(tmp_path):
    bad = tmp_path / "garbage.pt"
    bad.write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match="garbage.pt: cannot be read"):
        loader.load_latentsync_unet(str(bad))
    with pytest.raises(ValueError, match="not found"):
        loader.load_latentsync_unet(str(tmp_path / "nope.pt"))
    with pytest.raises(ValueError, match="dtype must be one of"):
        loader.load_latentsync_unet(str(fixture.gen(tmp_path)[0]), dtype="fp8")


# ---------------------------------------------------------------- node


def test_load_node_schema_and_execute(tmp_path):
    import comfy.model_patcher
    import folder_paths
    from humanvideo.nodes.latentsync_unet import NODES, HVLoadLatentSyncUNet

    assert NODES == [HVLoadLatentSyncUNet]
    schema = HVLoadLatentSyncUNet.GET_SCHEMA()
    assert schema.node_id == "HVLoadLatentSyncUNet" and schema.category.startswith("HumanVideo/")
    assert all(i.tooltip for i in schema.inputs) and all(o.tooltip for o in schema.outputs)
    assert schema.outputs[0].io_type == "HV_LATENTSYNC_UNET"

    fixture.gen(tmp_path)
    paths = folder_paths.folder_names_and_paths["latentsync"][0]
    paths.insert(0, str(tmp_path / "latentsync"))
    try:
        folder_paths.filename_list_cache.pop("latentsync", None)
        assert "1.5/latentsync_unet.pt" in folder_paths.get_filename_list("latentsync")
        out = HVLoadLatentSyncUNet.execute(unet_name="1.5/latentsync_unet.pt", dtype="fp32")
        patcher = out.result[0]
        assert isinstance(patcher, comfy.model_patcher.ModelPatcher)
        assert isinstance(patcher.model, LatentSyncUNet3D)
        with pytest.raises(ValueError, match="unet_name"):
            HVLoadLatentSyncUNet.execute(unet_name="", dtype="fp32")
    finally:
        paths.remove(str(tmp_path / "latentsync"))
        folder_paths.filename_list_cache.pop("latentsync", None)
