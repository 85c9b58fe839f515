"""Wan2.1 VAE (.pth) -> core VAE and official umT5 (.pth + tokenizer) -> core CLIP."""

from __future__ import annotations

import math
from pathlib import Path

import comfy.sd
import comfy.utils
import folder_paths
import hv_fixtures
import pytest
import torch
from humanvideo.loaders import umt5, wan_vae
from humanvideo.nodes import humo_loaders
from hv_fixtures import humo as fx
from safetensors.torch import save_file


@pytest.fixture(scope="module")
def models_dir(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("models")
    hv_fixtures.generate(d, ["wan21_vae", "umt5_xxl"])
    return d


# --- Wan2.1 VAE ------------------------------------------------------------------------------------


def test_official_vae_pth_matches_core_on_repack(models_dir, tmp_path):
    pth = models_dir / "vae" / "Wan2.1_VAE.pth"
    repack = tmp_path / "wan_2.1_vae.safetensors"
    save_file(torch.load(pth, weights_only=True), str(repack))

    ours = wan_vae.load_wan_vae(pth, "fp32")
    core = comfy.sd.VAE(sd=comfy.utils.load_torch_file(str(repack)), dtype=torch.float32)
    assert ours.latent_channels == 16 and type(ours.first_stage_model).__name__ == "WanVAE"
    a, b = ours.first_stage_model.state_dict(), core.first_stage_model.state_dict()
    assert sorted(a) == sorted(b) and all(torch.equal(a[k], b[k]) for k in a)

    video = torch.rand(5, 16, 16, 3, generator=torch.Generator().manual_seed(0))
    lat = ours.encode(video)
    assert lat.shape == (1, 16, 2, 2, 2)  # 4x temporal (causal: 1 + 4), 8x spatial
    assert torch.equal(lat, core.encode(video))
    assert torch.equal(ours.decode(lat), core.decode(lat))


def test_prefixed_vae_loads(models_dir, tmp_path):
    raw = torch.load(models_dir / "vae" / "Wan2.1_VAE.pth", weights_only=True)
    path = tmp_path / "wrapped.pth"
    torch.save({"state_dict": {"first_stage_model." + k: v for k, v in raw.items()}}, path)
    vae = wan_vae.load_wan_vae(path)
    assert torch.equal(vae.first_stage_model.state_dict()["conv2.weight"].float(), raw["conv2.weight"])


def test_wrong_vae_files_are_named(models_dir, tmp_path):
    with pytest.raises(
        ValueError,
        match=r"models_t5_umt5-xxl-enc-bf16.pth is an official Wan umT5 text encoder.*expected the Wan2.1 VAE",
    ):
        wan_vae.load_wan_vae(models_dir / "text_encoders" / "models_t5_umt5-xxl-enc-bf16.pth")
    raw = torch.load(models_dir / "vae" / "Wan2.1_VAE.pth", weights_only=True)
    raw["decoder.upsamples.0.upsamples.0.residual.2.weight"] = torch.zeros(1)
    path = tmp_path / "wan2.2_vae.safetensors"
    save_file(raw, str(path))
    with pytest.raises(ValueError, match=r"wan2.2_vae.safetensors is the Wan2.2 VAE"):
        wan_vae.load_wan_vae(path)


# --- umT5 --------------------------------------------------------------------------------------------


def _rms(x, w, eps=1e-6):
    return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps) * w


def _bucket(rel: torch.Tensor, num_buckets: int = 32, max_dist: int = 128) -> torch.Tensor:
    half = num_buckets // 2
    out = (rel > 0).long() * half
    rel = rel.abs()
    exact = half // 2
    large = exact + (torch.log(rel.float() / exact) / math.log(max_dist / exact) * (half - exact)).long()
    large = torch.clamp(large, max=half - 1)
    return out + torch.where(rel < exact, rel, large)


def official_umt5_encoder(sd: dict[str, torch.Tensor], ids: torch.Tensor, heads: int) -> torch.Tensor:
    """The official Wan T5Encoder forward, written against the official parameter names."""
    sd = {k: v.float() for k, v in sd.items()}
    x = sd["token_embedding.weight"][ids]
    n = ids.shape[1]
    rel = _bucket(torch.arange(n)[None, :] - torch.arange(n)[:, None])
    i = 0
    while f"blocks.{i}.attn.q.weight" in sd:
        p = f"blocks.{i}."
        h = _rms(x, sd[p + "norm1.weight"])
        q, k, v = (h @ sd[p + f"attn.{m}.weight"].T for m in "qkv")
        q, k, v = (t.view(1, n, heads, -1) for t in (q, k, v))
        bias = sd[p + "pos_embedding.embedding.weight"][rel].permute(2, 0, 1)[None]
        attn = torch.softmax(torch.einsum("binc,bjnc->bnij", q, k) + bias, -1)  # no 1/sqrt(d): T5
        x = x + torch.einsum("bnij,bjnc->binc", attn, v).reshape(1, n, -1) @ sd[p + "attn.o.weight"].T
        h = _rms(x, sd[p + "norm2.weight"])
        gate = torch.nn.functional.gelu(h @ sd[p + "ffn.gate.0.weight"].T, approximate="tanh")
        x = x + ((h @ sd[p + "ffn.fc1.weight"].T) * gate) @ sd[p + "ffn.fc2.weight"].T
        i += 1
    return _rms(x, sd["norm.weight"])


@pytest.fixture(scope="module")
def official_umt5(models_dir):
    path = models_dir / "text_encoders" / "models_t5_umt5-xxl-enc-bf16.pth"
    return path, torch.load(path, weights_only=True)


def test_umt5_matches_official_forward(official_umt5, models_dir):
    path, sd = official_umt5
    clip = umt5.load_umt5(path, models_dir / "text_encoders" / "google" / "umt5-xxl", "fp32")
    heads = fx.TINY_UMT5["num_heads"]
    ids = torch.tensor([[5, 17, 3, 42, 9, 1]])
    ref = official_umt5_encoder(sd, ids, heads)
    out, _ = clip.cond_stage_model.umt5xxl.transformer(ids, attention_mask=None)
    torch.testing.assert_close(out.float(), ref, rtol=1e-4, atol=1e-4)

    # Whole prompt path: the tokenizer comes from spiece.model; padding is zeroed as in Wan.
    tokens = clip.tokenize("a person talks to the camera")
    ids_real = [t[0] for t in tokens["umt5xxl"][0] if t[0] != 0]
    cond = clip.encode_from_tokens(tokens)
    assert cond.shape == (1, 512, fx.TINY_UMT5["d_model"])
    n = len(ids_real)
    torch.testing.assert_close(
        cond[0, :n].float(), official_umt5_encoder(sd, torch.tensor([ids_real]), heads)[0], rtol=1e-4, atol=1e-4
    )
    assert cond[0, n:].abs().max() == 0


def test_umt5_matches_transformers(official_umt5):
    transformers = pytest.importorskip("transformers")
    path, sd = official_umt5
    core_sd = umt5.official_to_core(sd)
    cfg = umt5.infer_umt5_config(core_sd)
    hf = transformers.UMT5EncoderModel(
        transformers.UMT5Config(
            vocab_size=cfg["vocab_size"],
            d_model=cfg["d_model"],
            d_kv=cfg["d_kv"],
            d_ff=cfg["d_ff"],
            num_layers=cfg["num_layers"],
            num_heads=cfg["num_heads"],
            feed_forward_proj="gated-gelu",
            relative_attention_num_buckets=32,
            dropout_rate=0.0,
        )
    ).eval()
    missing, unexpected = hf.load_state_dict({k: v.float() for k, v in core_sd.items()}, strict=False)
    assert unexpected == [] and set(missing) <= {"encoder.embed_tokens.weight"}
    ids = torch.tensor([[5, 17, 3, 42, 9, 1]])
    with torch.no_grad():
        ref = hf(input_ids=ids).last_hidden_state
    clip = umt5.build_umt5_clip(
        core_sd, torch.frombuffer(bytearray(fx.train_spiece_model()), dtype=torch.uint8), torch.float32
    )
    out, _ = clip.cond_stage_model.umt5xxl.transformer(ids, attention_mask=None)
    torch.testing.assert_close(out.float(), ref, rtol=1e-4, atol=1e-4)


def test_comfy_repack_with_embedded_tokenizer_loads_same(official_umt5, models_dir, tmp_path):
    path, sd = official_umt5
    spiece = (models_dir / "text_encoders" / "google" / "umt5-xxl" / "spiece.model").read_bytes()
    repack = {k: v for k, v in umt5.official_to_core(sd).items()}
    repack["spiece_model"] = torch.frombuffer(bytearray(spiece), dtype=torch.uint8)
    rp = tmp_path / "umt5_xxl_bf16.safetensors"
    save_file(repack, str(rp))
    a = umt5.load_umt5(path, dtype="fp32")  # auto: finds google/umt5-xxl beside the .pth
    b = umt5.load_umt5(rp, dtype="fp32")  # tokenizer embedded
    t = a.tokenize("a woman sings")
    assert t == b.tokenize("a woman sings")
    assert torch.equal(a.encode_from_tokens(t), b.encode_from_tokens(t))


def test_umt5_errors(official_umt5, models_dir, tmp_path):
    path, sd = official_umt5
    lone = tmp_path / "models_t5_umt5-xxl-enc-bf16.pth"
    torch.save(sd, lone)
    with pytest.raises(ValueError, match=r"carries no tokenizer and none was found"):
        umt5.load_umt5(lone)
    with pytest.raises(ValueError, match=r"has no spiece.model"):
        umt5.load_umt5(lone, tokenizer=tmp_path)
    core = umt5.official_to_core(sd)
    shared_pos = {k: v for k, v in core.items() if not ("relative_attention_bias" in k and ".block.0." not in k)}
    t5 = tmp_path / "t5xxl.safetensors"
    save_file(shared_pos, str(t5))
    with pytest.raises(ValueError, match=r"T5-XXL, not umT5"):
        umt5.load_umt5(t5, models_dir / "text_encoders" / "google" / "umt5-xxl")
    with pytest.raises(ValueError, match=r"Wan2.1_VAE.pth is a Wan2.1 VAE.*expected the umT5-xxl text encoder"):
        umt5.load_umt5(models_dir / "vae" / "Wan2.1_VAE.pth")


def test_nodes(models_dir, monkeypatch):
    for key in ("vae", "text_encoders"):
        exts = folder_paths.folder_names_and_paths[key][1]
        monkeypatch.setitem(folder_paths.folder_names_and_paths, key, ([str(models_dir / key)], exts))
    folder_paths.filename_list_cache.clear()
    try:
        assert humo_loaders.tokenizer_choices()[1:] == [str(Path("google") / "umt5-xxl")]
        vae = humo_loaders.HVLoadWanVAE.execute("Wan2.1_VAE.pth", "default").result[0]
        assert vae.latent_channels == 16
        clip = humo_loaders.HVLoadUMT5.execute(
            "models_t5_umt5-xxl-enc-bf16.pth", humo_loaders.AUTO_TOKENIZER, "default"
        ).result[0]
        assert clip.encode_from_tokens(clip.tokenize("hi")).shape[-1] == fx.TINY_UMT5["d_model"]
        for node in (humo_loaders.HVLoadWanVAE, humo_loaders.HVLoadUMT5):
            schema = node.GET_SCHEMA()
            assert schema.category == "HumanVideo/loaders"
            assert all(i.tooltip for i in schema.inputs) and all(o.tooltip for o in schema.outputs)
    finally:
        folder_paths.filename_list_cache.clear()
