"""Whisper encoder: numerics against transformers, the three checkpoint layouts, real-size manifests."""

from __future__ import annotations

import fractions
import math

import hv_fixtures
import pytest
import torch
from humanvideo.loaders import whisper as lw
from humanvideo.models.whisper_encoder import WhisperEncoder, WhisperEncoderConfig, WhisperModel, sinusoids
from safetensors.torch import save_file
from transformers import WhisperConfig, WhisperForConditionalGeneration
from transformers.models.whisper.modeling_whisper import WhisperEncoder as HFWhisperEncoder

# Real encoder sizes (openai/whisper-* config.json): d_model, layers, heads, mel bands.
REAL_SIZES = {
    "tiny": (384, 4, 6, 80),
    "base": (512, 6, 8, 80),
    "small": (768, 12, 12, 80),
    "medium": (1024, 24, 16, 80),
    "large-v2": (1280, 32, 20, 80),
    "large-v3": (1280, 32, 20, 128),
}


def hf_config(d=128, layers=2, heads=2, ffn=96, mels=80) -> WhisperConfig:
    return WhisperConfig(
        d_model=d,
        encoder_layers=layers,
        encoder_attention_heads=heads,
        encoder_ffn_dim=ffn,
        decoder_layers=1,
        decoder_attention_heads=heads,
        decoder_ffn_dim=ffn,
        num_mel_bins=mels,
        max_source_positions=1500,
        vocab_size=16,
        max_target_positions=8,
        pad_token_id=1,
        bos_token_id=2,
        eos_token_id=3,
        decoder_start_token_id=2,
    )


def random_hf_encoder(seed=0, **kw) -> HFWhisperEncoder:
    torch.manual_seed(seed)
    enc = HFWhisperEncoder(hf_config(**kw)).eval()
    with torch.no_grad():
        for name, p in enc.named_parameters():
            if "embed_positions" in name:
                continue  # keep the real sinusoids
            scale = 0.2 if p.ndim == 1 else 1.0 / math.sqrt(p[0].numel())
            p.copy_(torch.randn_like(p) * scale + (1.0 if "layer_norm.weight" in name else 0.0))
    return enc


def hf_reference_states(enc: HFWhisperEncoder, mel: torch.Tensor) -> tuple[tuple[torch.Tensor, ...], torch.Tensor]:
    """(HF hidden_states, last block output before the final LayerNorm)."""
    captured = {}
    hook = enc.layers[-1].register_forward_hook(
        lambda m, i, o: captured.__setitem__("x", o[0] if isinstance(o, tuple) else o)
    )
    with torch.no_grad():
        out = enc(mel, output_hidden_states=True)
    hook.remove()
    return out.hidden_states, captured["x"]


def test_sinusoids_match_hf_checkpoint_table():
    # Hugging Face checkpoints store OpenAI's fixed table as embed_positions.weight; the default
    # HF init is also this table, so equality proves our formula.
    enc = HFWhisperEncoder(hf_config(d=384, heads=6))
    assert torch.allclose(sinusoids(1500, 384), enc.embed_positions.weight.detach(), atol=1e-5)


def test_encoder_matches_transformers_all_hidden_states():
    enc = random_hf_encoder(d=128, layers=3, heads=2, ffn=96)
    sd = {f"encoder.{k}": v for k, v in enc.state_dict().items()}
    converted, layout = lw.convert_state_dict(sd)
    assert layout == "hf"
    ckpt = lw.WhisperCheckpoint(converted, lw.infer_config(converted), layout, "test")
    assert ckpt.config == WhisperEncoderConfig(n_mels=80, n_ctx=1500, d_model=128, n_heads=2, n_layers=3, d_ffn=96)
    ours = lw.build_encoder(ckpt, dtype=torch.float32)
    mel = torch.randn(2, 80, 3000)
    hidden, pre_norm_last = hf_reference_states(enc, mel)
    with torch.no_grad():
        states = ours(mel)
    assert states.shape == (2, 1500, 5, 128)
    ref = torch.stack(list(hidden[:-1]) + [pre_norm_last, hidden[-1]], dim=2)
    assert torch.allclose(states, ref, atol=2e-5, rtol=1e-4), (states - ref).abs().max()


def test_heads_come_from_config_json_of_a_hf_folder(tmp_path):
    # 4 heads of 32: the shapes alone would suggest 2 heads of 64, so only config.json gives the right result
    torch.manual_seed(1)
    hf = WhisperForConditionalGeneration(hf_config(d=128, layers=2, heads=4, ffn=64)).eval()
    with torch.no_grad():
        for name, p in hf.model.encoder.named_parameters():
            if "embed_positions" not in name:
                p.add_(torch.randn_like(p) * 0.2)
    hf.save_pretrained(tmp_path / "whisper-test")
    ckpt = lw.read_checkpoint(str(tmp_path / "whisper-test"))
    assert ckpt.config.n_heads == 4 and ckpt.layout == "hf"
    model = lw.load_whisper(str(tmp_path / "whisper-test"), "fp32")
    mel = torch.randn(1, 80, 3000)
    hidden, _ = hf_reference_states(hf.model.encoder, mel)
    states = model.encode(mel)
    assert torch.allclose(states[:, :, -1], hidden[-1], atol=2e-5, rtol=1e-4)
    assert torch.allclose(states[:, :, 0], hidden[0], atol=1e-5)


def openai_names_from_hf(sd: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Test-side renaming written out per tensor, to check the loader's table independently."""
    out = {
        "encoder.conv1.weight": sd["conv1.weight"],
        "encoder.conv1.bias": sd["conv1.bias"],
        "encoder.conv2.weight": sd["conv2.weight"],
        "encoder.conv2.bias": sd["conv2.bias"],
        "encoder.positional_embedding": sd["embed_positions.weight"],
        "encoder.ln_post.weight": sd["layer_norm.weight"],
        "encoder.ln_post.bias": sd["layer_norm.bias"],
    }
    n = 1 + max(int(k.split(".")[1]) for k in sd if k.startswith("layers."))
    for i in range(n):
        src, dst = f"layers.{i}.", f"encoder.blocks.{i}."
        pairs = {
            "self_attn.q_proj": "attn.query",
            "self_attn.k_proj": "attn.key",
            "self_attn.v_proj": "attn.value",
            "self_attn.out_proj": "attn.out",
            "self_attn_layer_norm": "attn_ln",
            "fc1": "mlp.0",
            "fc2": "mlp.2",
            "final_layer_norm": "mlp_ln",
        }
        for a, b in pairs.items():
            for leaf in ("weight", "bias"):
                if src + a + "." + leaf in sd:
                    out[dst + b + "." + leaf] = sd[src + a + "." + leaf]
    return out


def test_openai_pt_loads_with_weights_only_and_matches_transformers(tmp_path):
    enc = random_hf_encoder(seed=3, d=128, layers=2, heads=2, ffn=64)
    state = openai_names_from_hf(enc.state_dict())
    state["decoder.token_embedding.weight"] = torch.zeros(16, 128)  # decoder tensors must be ignored
    dims = {
        "n_mels": 80,
        "n_audio_ctx": 1500,
        "n_audio_state": 128,
        "n_audio_head": 2,
        "n_audio_layer": 2,
        "n_vocab": 16,
        "n_text_ctx": 8,
        "n_text_state": 128,
        "n_text_head": 2,
        "n_text_layer": 1,
    }
    path = tmp_path / "small-test.pt"
    torch.save({"dims": dims, "model_state_dict": {k: v.half() for k, v in state.items()}}, path)
    model = lw.load_whisper(str(path), "fp32")
    assert model.layout == "openai" and model.config.n_heads == 2
    # same fp16-rounded weights on both sides
    enc.load_state_dict({k: v.half().float() for k, v in enc.state_dict().items()})
    mel = torch.randn(1, 80, 3000)
    hidden, pre = hf_reference_states(enc, mel)
    states = model.encode(mel)
    ref = torch.stack(list(hidden[:-1]) + [pre, hidden[-1]], dim=2)
    assert torch.allclose(states, ref, atol=2e-5, rtol=1e-4)


def test_fixtures_load_in_their_layouts(tmp_path):
    written = hv_fixtures.generate(tmp_path, ["whisper_tiny", "whisper_large_v3"])
    tiny = lw.read_checkpoint(str(written["whisper_tiny"][0]))
    assert tiny.layout == "openai" and written["whisper_tiny"][0].name == "whisper_tiny_test.pt"
    assert tiny.config == WhisperEncoderConfig(n_mels=80, n_ctx=1500, d_model=384, n_heads=6, n_layers=4, d_ffn=64)
    large = lw.read_checkpoint(str(written["whisper_large_v3"][0]))
    assert large.layout == "hf"
    assert large.config == WhisperEncoderConfig(n_mels=128, n_ctx=1500, d_model=1280, n_heads=20, n_layers=4, d_ffn=64)
    # the OpenAI file is a plain-tensor pickle: weights_only loading must accept it
    raw = torch.load(written["whisper_tiny"][0], weights_only=True)
    assert set(raw) == {"dims", "model_state_dict"}
    model = lw.load_whisper(str(written["whisper_tiny"][0]))
    assert isinstance(model, WhisperModel) and model.compute_dtype == torch.float32  # CPU: auto -> fp32
    assert model.patcher.model.positional_embedding.shape == (1500, 384)


@pytest.mark.parametrize("size", list(REAL_SIZES))
def test_real_size_manifests_convert_exactly(size):
    """Every released size, in the HF / Comfy-Org layout (full model incl. decoder, on the meta device)
    and the OpenAI layout, maps onto our encoder with no missing, extra or mis-shaped tensor."""
    d, layers, heads, mels = REAL_SIZES[size]
    cfg = WhisperConfig(
        d_model=d,
        encoder_layers=layers,
        encoder_attention_heads=heads,
        encoder_ffn_dim=4 * d,
        decoder_layers=layers,
        decoder_attention_heads=heads,
        decoder_ffn_dim=4 * d,
        num_mel_bins=mels,
        vocab_size=51866 if mels == 128 else 51865,
    )
    with torch.device("meta"):
        hf = WhisperForConditionalGeneration(cfg)
    hf_sd = hf.state_dict()
    with torch.device("meta"):
        expected = WhisperEncoder(
            WhisperEncoderConfig(n_mels=mels, d_model=d, n_heads=heads, n_layers=layers, d_ffn=4 * d), device="meta"
        ).state_dict()
    expected_shapes = {k: tuple(v.shape) for k, v in expected.items()}

    converted, layout = lw.convert_state_dict(hf_sd)  # Comfy-Org: model.encoder.* + model.decoder.* + proj_out
    assert layout == "hf"
    assert {k: tuple(v.shape) for k, v in converted.items()} == expected_shapes
    inferred = lw.infer_config(converted)
    assert (inferred.d_model, inferred.n_layers, inferred.n_heads, inferred.n_mels, inferred.d_ffn) == (
        d,
        layers,
        heads,
        mels,
        4 * d,
    )
    assert inferred.name == f"whisper-{size}"

    converted_hf, layout = lw.convert_state_dict(
        {k[len("model.") :]: v for k, v in hf_sd.items() if k.startswith("model.")}
    )
    assert layout == "hf" and converted_hf.keys() == converted.keys()

    # OpenAI release names (openai/whisper model.py), with the decoder the .pt files also carry
    openai = {
        "encoder.conv1.weight": (d, mels, 3),
        "encoder.conv1.bias": (d,),
        "encoder.conv2.weight": (d, d, 3),
        "encoder.conv2.bias": (d,),
        "encoder.positional_embedding": (1500, d),
        "encoder.ln_post.weight": (d,),
        "encoder.ln_post.bias": (d,),
        "decoder.token_embedding.weight": (cfg.vocab_size, d),
        "decoder.positional_embedding": (448, d),
        "decoder.ln.weight": (d,),
        "decoder.ln.bias": (d,),
    }
    for i in range(layers):
        for part, with_bias in (("query", True), ("key", False), ("value", True), ("out", True)):
            for side in ("encoder", "decoder"):
                openai[f"{side}.blocks.{i}.attn.{part}.weight"] = (d, d)
                if with_bias:
                    openai[f"{side}.blocks.{i}.attn.{part}.bias"] = (d,)
        for side in ("encoder", "decoder"):
            openai.update(
                {
                    f"{side}.blocks.{i}.attn_ln.weight": (d,),
                    f"{side}.blocks.{i}.attn_ln.bias": (d,),
                    f"{side}.blocks.{i}.mlp.0.weight": (4 * d, d),
                    f"{side}.blocks.{i}.mlp.0.bias": (4 * d,),
                    f"{side}.blocks.{i}.mlp.2.weight": (d, 4 * d),
                    f"{side}.blocks.{i}.mlp.2.bias": (d,),
                    f"{side}.blocks.{i}.mlp_ln.weight": (d,),
                    f"{side}.blocks.{i}.mlp_ln.bias": (d,),
                }
            )
        openai[f"decoder.blocks.{i}.cross_attn.query.weight"] = (d, d)
    converted_oa, layout = lw.convert_state_dict({k: torch.empty(s, device="meta") for k, s in openai.items()})
    assert layout == "openai"
    assert {k: tuple(v.shape) for k, v in converted_oa.items()} == expected_shapes


def test_wav2vec_file_gets_a_clear_error(tmp_path):
    sd = {
        "wav2vec2.feature_extractor.conv_layers.0.conv.weight": torch.zeros(4, 1, 10),
        "wav2vec2.encoder.pos_conv_embed.conv.bias": torch.zeros(4),
        "wav2vec2.encoder.layer_norm.bias": torch.zeros(4),
    }
    path = tmp_path / "wav2vec2_large.safetensors"
    save_file(sd, str(path))
    with pytest.raises(ValueError, match="wav2vec2 audio encoder, not Whisper.*large-v3"):
        lw.load_whisper(str(path))


def test_other_bad_files_get_clear_errors(tmp_path):
    save_file({"unet.conv_in.weight": torch.zeros(2, 2)}, str(tmp_path / "unet.safetensors"))
    with pytest.raises(ValueError, match="holds no Whisper encoder"):
        lw.read_checkpoint(str(tmp_path / "unet.safetensors"))
    with pytest.raises(ValueError, match="does not exist"):
        lw.read_checkpoint(str(tmp_path / "missing.pt"))
    (tmp_path / "garbage.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match="cannot be read"):
        lw.read_checkpoint(str(tmp_path / "garbage.pt"))
    # a pickle that needs arbitrary code is refused (weights_only=True), with a clear message
    torch.save({"dims": {"n_mels": 80}, "obj": fractions.Fraction(1, 3)}, tmp_path / "unsafe.pt")
    with pytest.raises(ValueError, match="cannot be read"):
        lw.read_checkpoint(str(tmp_path / "unsafe.pt"))
    (tmp_path / "folder").mkdir()
    with pytest.raises(ValueError, match="no config.json"):
        lw.read_checkpoint(str(tmp_path / "folder"))
    with pytest.raises(ValueError, match="precision"):
        lw.load_whisper(str(tmp_path / "unet.safetensors"), "fp64")


def test_truncated_encoder_is_rejected():
    enc = random_hf_encoder(d=128, layers=2, heads=2, ffn=64)
    sd = {f"encoder.{k}": v for k, v in enc.state_dict().items() if "layers.1.fc2" not in k}
    converted, layout = lw.convert_state_dict(sd)
    ckpt = lw.WhisperCheckpoint(converted, lw.infer_config(converted), layout, "cut.safetensors")
    with pytest.raises(ValueError, match="cut.safetensors.*missing"):
        lw.build_encoder(ckpt, torch.float32)


def test_encoder_rejects_wrong_mel_shape():
    model = WhisperEncoder(WhisperEncoderConfig(d_model=64, n_heads=1, n_layers=1, d_ffn=32))
    with pytest.raises(ValueError, match=r"expects log-mel \[batch, 80, 3000\]"):
        model(torch.zeros(1, 128, 3000))


def test_half_precision_runs_and_stays_close(tmp_path):
    enc = random_hf_encoder(seed=4, d=128, layers=2, heads=2, ffn=64)
    path = tmp_path / "enc.safetensors"
    save_file({f"encoder.{k}": v.contiguous() for k, v in enc.state_dict().items()}, str(path))
    mel = torch.randn(1, 80, 3000)
    full = lw.load_whisper(str(path), "fp32").encode(mel)
    half = lw.load_whisper(str(path), "bf16").encode(mel)
    assert half.dtype == torch.bfloat16 and full.dtype == torch.float32
    rel = (half.float() - full).norm() / full.norm()
    assert rel < 0.03, rel
