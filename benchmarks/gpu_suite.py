"""Every model family at real size with random weights, on one GPU, in one command; one JSON of results.

Each section runs in its own Python process with its own time limit, so a section that fails, runs out
of memory or out of time is recorded (status, reason, the tail of its output) and the next one starts on
a clean device. The sections reuse the functions of the single-model scripts next to this file:

- HuMo-1.7B 480p and HuMo-17B 720p (fp8 weights, bf16 compute), ours vs core's path in the same
  process, FlowUniPC (``humo_step.py``); model FLOP utilisation per pass;
- LatentSync 256 and 512 px, DeepCache off / on, seconds per 16-frame chunk and output fps
  (``latentsync.py``);
- HunyuanVideo-I2V 720p bucket, ours vs core per step, MFU (``hunyuan_i2v.py``);
- Whisper large-v3 encoder, real-time factor (``whisper.py``);
- speed tools users put in front of our HuMo guider: core's TorchCompileModel, EasyCache, LazyCache,
  fp8 weights with core's fast fp8 matmul, a Wan 2.1 LoRA through core's LoraLoaderModelOnly, and
  sage / flash attention through core's attention switch when those packages are installed;
- streaming LatentSync (the video-file node's pipeline) on 4 s of 1080p at 256 and 512 px, output fps,
  device memory and RSS (``latentsync_streaming.py``);
- paths measured by their own scripts only (sequence parallel, long-form) are listed as skipped with
  the reason.

After the run the tables of ``benchmarks/RESULTS.md`` and README's performance table are regenerated
from the JSON (``suite_tables.py``). ``--tiny`` runs the same code on the CPU with tiny shapes in a
minute or two and writes everything, the regenerated documents included, under ``--out``: the
committed documents only ever get numbers from a real run.

    bash benchmarks/gpu_suite.sh                      # CUDA: benchmarks/gpu_suite.json, RESULTS.md, README.md
    bash benchmarks/gpu_suite.sh --out $OUT           # CUDA: the JSON and both documents under $OUT as well
    bash benchmarks/gpu_suite.sh --tiny --out /tmp/s  # CPU smoke run
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
import traceback
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace

BENCH_DIR = Path(__file__).resolve().parent
PACK_ROOT = BENCH_DIR.parent
DEFAULT_JSON = BENCH_DIR / "gpu_suite.json"
TOTAL_BUDGET_S = 540  # the sections' own limits add up to more; the suite stops starting sections after this
TINY_TOTAL_BUDGET_S = 1500  # tiny limits only catch hangs: a shared CPU can be several times slower


@dataclass(frozen=True)
class Section:
    name: str
    title: str
    budget_s: int  # real size, one H100 (estimates: no GPU run has measured them yet)
    tiny_budget_s: int


SECTIONS = (
    Section("humo_1_7b_480p", "HuMo-1.7B 480p, bf16, ours vs core, FlowUniPC", 90, 300),
    Section("humo_17b_720p_fp8", "HuMo-17B 720p, fp8 weights (bf16 compute), ours vs core, FlowUniPC", 200, 300),
    Section("latentsync", "LatentSync 256 / 512 px, DeepCache off / on", 60, 300),
    Section("hunyuan_i2v_720p", "HunyuanVideo-I2V 720p bucket, ours vs core", 150, 300),
    Section("whisper_large_v3", "Whisper large-v3 encoder RTF", 40, 300),
    Section("streaming_memory", "Streaming LatentSync, 4 s of 1080p, 256 / 512 px: fps, memory", 150, 300),
    Section("speed_tools", "Speed tools on our HuMo-1.7B guider (480p)", 150, 300),
    Section("attention_sage", "HuMo-1.7B 480p with core's sage attention", 40, 60),
    Section("attention_flash", "HuMo-1.7B 480p with core's flash attention", 40, 60),
    Section("parallel_sp1", "Sequence-parallel path at sp_size 1", 5, 5),
    Section("long_form_memory", "Long-form generation memory", 5, 5),
)
ABSENT = {  # paths measured by their own scripts, not run inside the one-GPU suite yet
    "parallel_sp1": "not in the one-GPU suite yet: run benchmarks/parallel.py --sp 1",
    "long_form_memory": "not in the one-GPU suite yet: run benchmarks/long_form.py",
}
ATTENTION_PACKAGES = {
    "attention_sage": ("sageattention", "use_sage_attention"),
    "attention_flash": ("flash_attn", "use_flash_attention"),
}


# --- environment ---------------------------------------------------------------------------------


def git_commit() -> str:
    try:
        out = subprocess.run(
            ["git", "-C", str(PACK_ROOT), "rev-parse", "--short", "HEAD"], capture_output=True, text=True
        )
        dirty = subprocess.run(["git", "-C", str(PACK_ROOT), "status", "--porcelain"], capture_output=True, text=True)
        return out.stdout.strip() + ("+changes" if dirty.stdout.strip() else "") or "unknown"
    except OSError:
        return "unknown"


def driver_version() -> str | None:
    if shutil.which("nvidia-smi") is None:
        return None
    out = subprocess.run(
        ["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"], capture_output=True, text=True
    )
    return out.stdout.strip().splitlines()[0] if out.returncode == 0 and out.stdout.strip() else None


def environment(comfyui: str, tiny: bool) -> dict:
    import torch

    cuda = torch.cuda.is_available() and not tiny
    version_file = Path(comfyui) / "comfyui_version.py"
    comfy_version = None
    if version_file.is_file():
        for line in version_file.read_text().splitlines():
            if line.startswith("__version__"):
                comfy_version = line.split("=", 1)[1].strip().strip("\"'")
    return {
        "date": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "mode": "tiny" if tiny else "real",
        "device": torch.cuda.get_device_name() if cuda else f"CPU ({os.cpu_count()} cores)",
        "torch": torch.__version__,
        "cuda": torch.version.cuda if cuda else None,
        "driver": driver_version() if cuda else None,
        "python": platform.python_version(),
        "comfyui": comfy_version,
        "pack_commit": git_commit(),
    }


# --- sections (each runs in a child process) ------------------------------------------------------


def _humo_opts(comfyui: str, tiny: bool, **kw) -> SimpleNamespace:
    base = dict(
        comfyui=comfyui,
        tiny=tiny,
        models=["1.7B"],
        sizes=["480p"],
        frames=9 if tiny else None,
        steps=2 if tiny else 3,
        weight_dtype="bf16",
        fp8_fast=False,
        sampler="flow_unipc",
    )
    return SimpleNamespace(**{**base, **kw})


def section_humo_1_7b(comfyui: str, tiny: bool) -> dict:
    import humo_step

    return humo_step.run(_humo_opts(comfyui, tiny))


def section_humo_17b(comfyui: str, tiny: bool) -> dict:
    import humo_step

    # 17B 720p: one timed step per path (about 30-50 s each on one H100 by the FLOP count), fp8 storage
    return humo_step.run(_humo_opts(comfyui, tiny, models=["17B"], sizes=["720p"], steps=2, weight_dtype="fp8_e4m3fn"))


def section_latentsync(comfyui: str, tiny: bool) -> dict:
    import latentsync

    opts = SimpleNamespace(
        comfyui=comfyui,
        tiny=tiny,
        resolutions=None,
        steps=2 if tiny else 20,
        frames=2 if tiny else 16,
        guidance=1.5,
        dtype=None,
        repeats=1,
    )
    return latentsync.run(opts)


def section_hunyuan(comfyui: str, tiny: bool) -> dict:
    import hunyuan_i2v

    return hunyuan_i2v.run(SimpleNamespace(comfyui=comfyui, tiny=tiny, sizes=["720p"], frames=129, steps=3))


def section_whisper(comfyui: str, tiny: bool) -> dict:
    import bench_common
    import torch
    import whisper

    device = bench_common.start(comfyui, tiny)
    dtype = bench_common.pick_dtype(None, device)
    name = "large-v3-mini" if tiny else "large-v3"
    rows = whisper.bench_model(name, whisper.configs(tiny)[name], [30.0], dtype, device, repeats=1 if tiny else 3)
    device_name = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU"
    return {"device": device_name, "dtype": str(dtype), "rows": rows}


def section_streaming(comfyui: str, tiny: bool) -> dict:
    """The streamed video node's pipeline on 1080p input, each crop size in a fresh process: output fps, peak
    device memory and peak RSS at real size (20 steps); tiny: 1 s of 960x540 at 64 px on the CPU, in this
    process."""
    import latentsync_streaming

    os.environ["COMFYUI_PATH"] = comfyui
    opts = SimpleNamespace(
        seconds=[1.0] if tiny else [4.0],
        size="960x540" if tiny else "1920x1080",
        resolution=[64] if tiny else [256, 512],
        tiny=tiny,
        steps=1 if tiny else 20,
        preset="ultrafast" if tiny else "medium",
        threads=1 if tiny else 0,
        features="streamed",
        work=None,
        in_process=tiny,  # the tiny smoke run skips a fresh process's start-up
    )
    return {"rows": latentsync_streaming.measure(opts)}


def section_speed_tools(comfyui: str, tiny: bool) -> dict:
    import speed_tools

    return speed_tools.run(comfyui, tiny)


def section_attention(comfyui: str, tiny: bool, name: str) -> dict:
    import importlib.util

    package, flag = ATTENTION_PACKAGES[name]
    if importlib.util.find_spec(package) is None:
        return {"skipped": f"{package} is not installed"}
    if tiny:
        return {"skipped": f"{package} kernels need a GPU"}
    set_comfy_flag(comfyui, flag)
    import comfy.ldm.modules.attention as attention
    import humo_step

    result = humo_step.run(_humo_opts(comfyui, tiny))
    result["attention"] = attention.optimized_attention.__name__
    return result


def set_comfy_flag(comfyui: str, flag: str) -> None:
    """Sets a ComfyUI command-line switch before ComfyUI picks its attention function at import."""
    sys.path.insert(0, str(Path(comfyui).resolve()))
    import comfy.options

    comfy.options.enable_args_parsing(False)
    from comfy.cli_args import args

    setattr(args, flag, True)


RUNNERS = {
    "humo_1_7b_480p": section_humo_1_7b,
    "humo_17b_720p_fp8": section_humo_17b,
    "latentsync": section_latentsync,
    "hunyuan_i2v_720p": section_hunyuan,
    "whisper_large_v3": section_whisper,
    "streaming_memory": section_streaming,
    "speed_tools": section_speed_tools,
    "attention_sage": lambda c, t: section_attention(c, t, "attention_sage"),
    "attention_flash": lambda c, t: section_attention(c, t, "attention_flash"),
}


def run_section_here(name: str, comfyui: str, tiny: bool, part: Path) -> None:
    """Child process: runs one section and writes its result (or the error) to ``part``."""
    try:
        result = RUNNERS[name](comfyui, tiny)
        try:
            import comfy.ldm.modules.attention as attention

            result.setdefault("attention", attention.optimized_attention.__name__)
        except ImportError:
            pass
        part.write_text(json.dumps({"status": "ok", "result": result}, default=str))
    except SectionTimeout:
        raise
    except BaseException as e:  # recorded for the suite, which goes on with the next section
        part.write_text(
            json.dumps(
                {"status": "failed", "reason": f"{type(e).__name__}: {e}", "trace": traceback.format_exc()[-4000:]}
            )
        )
        raise


# --- the driver ---------------------------------------------------------------------------------


def run_suite(opts) -> dict:
    result = {"suite": "gpu_suite", **environment(opts.comfyui, opts.tiny), "sections": {}}
    deadline = time.monotonic() + (opts.total_budget or (TINY_TOTAL_BUDGET_S if opts.tiny else TOTAL_BUDGET_S))
    work = Path(opts.work_dir)
    work.mkdir(parents=True, exist_ok=True)
    chosen = [s for s in SECTIONS if not opts.sections or s.name in opts.sections]
    for section in chosen:
        budget = section.tiny_budget_s if opts.tiny else section.budget_s
        entry: dict = {"title": section.title, "budget_s": budget}
        if section.name in ABSENT:
            entry.update(status="skipped", reason=ABSENT[section.name], seconds=0.0)
        elif time.monotonic() + 10 > deadline:
            entry.update(status="skipped", reason="the suite's total time budget was spent", seconds=0.0)
        else:
            limit = max(10, min(budget, int(deadline - time.monotonic())))
            run = run_child if opts.isolate else run_in_process
            entry.update(run(section.name, opts, work, limit))
        result["sections"][section.name] = entry
        print(
            f"[gpu_suite] {section.name}: {entry['status']} in {entry['seconds']:.1f} s"
            + (f" ({entry['reason']})" if entry.get("reason") else ""),
            flush=True,
        )
    return result


class SectionTimeout(Exception):
    pass


def run_in_process(name: str, opts, work: Path, limit: int) -> dict:
    """One section in this process (tiny mode: ComfyUI is imported once), stopped by an alarm at its limit."""
    import signal

    part = work / f"{name}.json"
    part.unlink(missing_ok=True)

    def on_alarm(*_):
        raise SectionTimeout(f"over its {limit} s limit")

    previous = signal.signal(signal.SIGALRM, on_alarm)
    signal.alarm(limit)
    t0 = time.perf_counter()
    try:
        run_section_here(name, opts.comfyui, opts.tiny, part)
    except SectionTimeout as e:
        return {"status": "timeout", "reason": str(e), "seconds": round(time.perf_counter() - t0, 1)}
    except Exception:
        pass  # recorded in the part file
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)
    data = json.loads(part.read_text())
    data["seconds"] = round(time.perf_counter() - t0, 1)
    if data["status"] == "ok" and "skipped" in data["result"]:
        return {"status": "skipped", "reason": data["result"]["skipped"], "seconds": data["seconds"]}
    return data


def run_child(name: str, opts, work: Path, limit: int) -> dict:
    part = work / f"{name}.json"
    part.unlink(missing_ok=True)
    cmd = [
        sys.executable,
        str(Path(__file__).resolve()),
        "--section",
        name,
        "--part",
        str(part),
        "--comfyui",
        opts.comfyui,
    ]
    if opts.tiny:
        cmd.append("--tiny")
    t0 = time.perf_counter()
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=limit, cwd=PACK_ROOT)
        rc, out = proc.returncode, (proc.stdout or "") + (proc.stderr or "")
        timed_out = False
    except subprocess.TimeoutExpired as e:
        rc, timed_out = None, True
        out = "".join(x.decode(errors="replace") if isinstance(x, bytes) else (x or "") for x in (e.stdout, e.stderr))
    seconds = round(time.perf_counter() - t0, 1)
    (work / f"{name}.log").write_text(out)
    if timed_out:
        return {"status": "timeout", "reason": f"over its {limit} s limit", "seconds": seconds, "log_tail": out[-2000:]}
    if part.is_file():
        data = json.loads(part.read_text())
        if data["status"] == "ok" and "skipped" in data["result"]:
            return {"status": "skipped", "reason": data["result"]["skipped"], "seconds": seconds}
        data.setdefault("seconds", seconds)
        data["seconds"] = seconds
        if data["status"] != "ok":
            data["log_tail"] = out[-2000:]
        return data
    return {
        "status": "failed",
        "reason": f"exit code {rc}, no result written",
        "seconds": seconds,
        "log_tail": out[-2000:],
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument(
        "--comfyui", default=os.environ.get("COMFYUI_PATH", ""), help="ComfyUI checkout (default $COMFYUI_PATH)"
    )
    p.add_argument("--tiny", action="store_true", help="tiny shapes on the CPU; everything is written under --out")
    p.add_argument("--out", default=None, help="folder for the JSON, logs and (tiny) regenerated documents")
    p.add_argument("--sections", nargs="+", default=None, choices=[s.name for s in SECTIONS], help="run only these")
    p.add_argument("--total-budget", type=int, default=None, help="seconds after which no section starts")
    p.add_argument(
        "--isolate",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="each section in its own process (default on a GPU; tiny runs share one process unless --isolate)",
    )
    p.add_argument("--section", default=None, help=argparse.SUPPRESS)  # child process: one section
    p.add_argument("--part", default=None, help=argparse.SUPPRESS)
    opts = p.parse_args()
    sys.path.insert(0, str(BENCH_DIR))

    if opts.section:
        run_section_here(opts.section, opts.comfyui, opts.tiny, Path(opts.part))
        return
    if not opts.comfyui or not (Path(opts.comfyui) / "main.py").is_file():
        p.error(f"--comfyui / COMFYUI_PATH must point at a ComfyUI checkout (got {opts.comfyui!r})")
    if opts.tiny and not opts.out:
        p.error("--tiny needs --out: tiny numbers never go into the committed documents")
    import torch

    if not opts.tiny and not torch.cuda.is_available():
        p.error("no CUDA device: the real-size suite needs a GPU; use --tiny --out DIR for a CPU smoke run")

    if opts.isolate is None:
        opts.isolate = not opts.tiny
    out = Path(opts.out) if opts.out else None
    opts.work_dir = str(out / "sections") if out else tempfile.mkdtemp(prefix="gpu_suite_")
    result = run_suite(opts)
    text = json.dumps(result, indent=1, default=str)

    import suite_tables

    if opts.tiny:
        out.mkdir(parents=True, exist_ok=True)
        (out / "gpu_suite.json").write_text(text)
        suite_tables.regenerate(result, out / "RESULTS.md", out / "README.md", sources=PACK_ROOT)
    else:
        DEFAULT_JSON.write_text(text)
        suite_tables.regenerate(result, BENCH_DIR / "RESULTS.md", PACK_ROOT / "README.md")
        if out:
            out.mkdir(parents=True, exist_ok=True)
            (out / "gpu_suite.json").write_text(text)
            shutil.copy(BENCH_DIR / "RESULTS.md", out / "RESULTS.md")
            shutil.copy(PACK_ROOT / "README.md", out / "README.md")
    failed = [k for k, v in result["sections"].items() if v["status"] in ("failed", "timeout")]
    print(f"[gpu_suite] done: {len(result['sections'])} sections, {len(failed)} failed or timed out {failed or ''}")


if __name__ == "__main__":
    main()
