"""The GPU suite in --tiny mode on the CPU: every section runs (or is skipped with its reason) and writes one
JSON, the tables are generated from it into the output folder only, and the committed documents stay as
the committed JSON (or its absence) makes them. FLOPs per forward from the shapes match torch's counter."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[2]
BENCH = ROOT / "benchmarks"
sys.path.insert(0, str(BENCH))

import dit_flops  # noqa: E402
import suite_tables  # noqa: E402

# speed_tools (TorchCompileModel tracing alone takes over a minute on 2 cores) is covered by test_speed_tools.py
SECTIONS = [
    "humo_1_7b_480p",
    "humo_17b_720p_fp8",
    "latentsync",
    "hunyuan_i2v_720p",
    "whisper_large_v3",
    "streaming_memory",
    "attention_sage",
    "parallel_sp1",
    "long_form_memory",
]
SKIPPED = ("attention_sage", "parallel_sp1", "long_form_memory")  # no package / measured by their own scripts


def test_tiny_suite_writes_json_and_tables_outside_the_checkout(tmp_path):
    committed = {p: p.read_bytes() for p in (ROOT / "README.md", BENCH / "RESULTS.md")}
    proc = subprocess.run(
        [sys.executable, str(BENCH / "gpu_suite.py"), "--tiny", "--out", str(tmp_path), "--sections", *SECTIONS],
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, "COMFYUI_PATH": os.environ["COMFYUI_PATH"]},
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    result = json.loads((tmp_path / "gpu_suite.json").read_text())
    assert result["mode"] == "tiny" and result["device"].startswith("CPU")
    assert result["torch"] == torch.__version__ and result["date"] and result["comfyui"]
    sections = result["sections"]
    assert list(sections) == SECTIONS
    for name in SECTIONS:
        assert sections[name]["status"] == ("skipped" if name in SKIPPED else "ok"), (name, sections[name])
    for name in ("parallel_sp1", "long_form_memory"):
        assert "no" in sections[name]["reason"]
    humo = sections["humo_1_7b_480p"]["result"]
    paths = {r["path"]: r for r in humo["runs"]}
    assert paths["ours"]["passes_per_step"] == 4 and paths["core"]["passes_per_step"] == 2
    assert humo["sampler"] == "flow_unipc" and all(r["finite"] and r["flops_per_pass"] > 0 for r in humo["runs"])
    assert sections["humo_17b_720p_fp8"]["result"]["runs"][0]["passes_per_step"] == 3
    runs = {r["run"] for r in sections["latentsync"]["result"]["rows"]}
    assert {"ours", "ours+DeepCache3"} <= runs
    [stream] = sections["streaming_memory"]["result"]["rows"]
    assert (stream["frames_out"], stream["features"], stream["whisper_windows_encoded"]) == (25, "streamed", 1)

    readme, results = (tmp_path / "README.md").read_text(), (tmp_path / "RESULTS.md").read_text()
    assert "| tiny-1.7B-style 64x64 float32, ours |" in readme and "MFU n/a" in readme
    assert "not a performance figure" in readme and "not a performance figure" in results
    for needle in (
        "#### HuMo",
        "#### LatentSync",
        "#### HunyuanVideo-I2V",
        "#### Whisper",
        "#### Streaming LatentSync",
        "| parallel_sp1 | skipped |",
    ):
        assert needle in results
    assert {p: p.read_bytes() for p in committed} == committed  # tiny numbers never reach the checkout


def test_committed_documents_match_the_committed_json():
    result = suite_tables.load(suite_tables.DEFAULT_JSON)
    want_results, want_readme = suite_tables.render(
        result, (BENCH / "RESULTS.md").read_text(), (ROOT / "README.md").read_text()
    )
    assert want_results == (BENCH / "RESULTS.md").read_text()
    assert want_readme == (ROOT / "README.md").read_text()
    if result is not None:
        assert result["mode"] == "real"


def test_failed_and_timed_out_sections_are_listed():
    result = {
        "mode": "real",
        "date": "d",
        "device": "NVIDIA H100 80GB HBM3",
        "torch": "t",
        "python": "p",
        "pack_commit": "c",
        "sections": {
            "latentsync": {"status": "failed", "reason": "OutOfMemoryError: CUDA out of memory", "seconds": 3.0},
            "hunyuan_i2v_720p": {"status": "timeout", "reason": "over its 150 s limit", "seconds": 150.0},
        },
    }
    text = "\n".join(suite_tables.results_part(result))
    assert "| latentsync | failed | 3.0 |" in text and "| hunyuan_i2v_720p | timeout |" in text
    assert "989 TFLOP/s" in text


def test_bf16_peaks_by_device_name():
    assert dit_flops.bf16_peak("NVIDIA H100 80GB HBM3") == 989e12
    assert dit_flops.bf16_peak("NVIDIA H100 PCIe") == 756e12
    assert dit_flops.bf16_peak("NVIDIA A100-SXM4-80GB") == 312e12
    assert dit_flops.bf16_peak("CPU (2 cores)") is None
    assert dit_flops.mfu(1e12, "CPU") is None


@pytest.mark.parametrize("in_dim", [16, 36])
def test_humo_block_flops_match_torch_flop_counter(in_dim, monkeypatch):
    import comfy.ldm.modules.attention
    import comfy.ldm.wan.model
    from humanvideo.loaders import humo_dit
    from humo_tiny import tiny_humo
    from torch.utils.flop_counter import FlopCounterMode

    # Plain matmul attention: torch's flop counter has no formula for the CPU flash-attention kernel that
    # PyTorch attention runs here (it has the CUDA ones, which the GPU suite's MFU relies on).
    monkeypatch.setattr(comfy.ldm.wan.model, "optimized_attention", comfy.ldm.modules.attention.attention_basic)
    net = tiny_humo(in_dim).model.diffusion_model
    cfg = humo_dit.HumoConfig(dim=128, ffn_dim=256, num_layers=2, in_dim=in_dim)
    t, h, w, text = 3, 8, 12, 7
    x = torch.randn(1, in_dim, t, h, w)
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        net(x, torch.tensor([500.0]), torch.randn(1, text, 4096), audio_embed=torch.randn(1, t, 8, 5, 1280))
    counts = counter.get_flop_counts()
    blocks = sum(sum(counts[f"HumoWanModel.blocks.{i}"].values()) for i in range(cfg.num_layers))
    video_tokens = t * (h // 2) * (w // 2)
    assert blocks == cfg.num_layers * dit_flops.humo_block_flops(cfg, video_tokens, text, t)
