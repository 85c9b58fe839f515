"""hv_batch over three real ComfyUI servers on loopback: twelve jobs spread over them, one server killed
while it runs a job. Every job must finish exactly once (the lost one on another server), the results
file must be complete, and a re-run must submit nothing. Also measures jobs per second on one server and
on three (written to .artifacts/batch_servers.json and printed)."""

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from comfy_harness import PACK_FOLDER_NAME, PACK_ROOT, ComfyServer

pytestmark = pytest.mark.integration

LAUNCHER = PACK_ROOT / "scripts" / "hv_batch.py"
JOBS = 12
# Upscale (lanczos) then shrink: a fraction of a second of CPU per job, different per job so that no
# server can answer from its cache.
WORKFLOW = {
    "1": {"class_type": "LoadImage", "inputs": {"image": "face.png"}, "_meta": {"title": "Photo"}},
    "2": {
        "class_type": "ImageScaleBy",
        "inputs": {"image": ["1", 0], "upscale_method": "lanczos", "scale_by": 2.0},
        "_meta": {"title": "Upscale"},
    },
    "3": {
        "class_type": "ImageScale",
        "inputs": {"image": ["2", 0], "upscale_method": "area", "width": 32, "height": 32, "crop": "disabled"},
        "_meta": {"title": "Shrink"},
    },
    "4": {
        "class_type": "SaveImage",
        "inputs": {"images": ["3", 0], "filename_prefix": "x"},
        "_meta": {"title": "Save"},
    },
}


def _bare_base(base: Path) -> Path:
    for sub in ("models", "input", "output", "custom_nodes", "temp", "user"):
        (base / sub).mkdir(parents=True, exist_ok=True)
    (base / "custom_nodes" / PACK_FOLDER_NAME).symlink_to(PACK_ROOT, target_is_directory=True)
    return base


@pytest.fixture(scope="module")
def two_more_servers(tmp_path_factory):
    servers = [ComfyServer(_bare_base(tmp_path_factory.mktemp(f"extra{i}"))) for i in range(2)]
    errors = []

    def start(server):
        try:
            server.start()
        except Exception as e:  # reported below, after both tried
            errors.append(e)

    threads = [threading.Thread(target=start, args=(s,)) for s in servers]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    try:
        if errors:
            raise errors[0]
        yield servers
    finally:
        for s in servers:
            s.stop()


def write_jobs(folder: Path, tag: str, scale0: float) -> Path:
    from PIL import Image

    Image.new("RGB", (400, 300), (180, 120, 90)).save(folder / "face.png")
    rows = ["id,image,Upscale.scale_by,prefix"]
    rows += [f"{tag}{i:02d},face.png,{scale0 + 0.01 * i:.2f},{tag}/{tag}{i:02d}" for i in range(JOBS)]
    path = folder / f"{tag}.csv"
    path.write_text("\n".join(rows) + "\n")
    (folder / "wf.json").write_text(json.dumps(WORKFLOW))
    return path


def batch_command(folder: Path, jobs: Path, urls: list[str]) -> list[str]:
    cmd = [sys.executable, str(LAUNCHER), str(folder / "wf.json"), str(jobs), "--no-progress", "--server-wait", "20"]
    for u in urls:
        cmd += ["--url", u]
    return cmd


def run_batch(folder: Path, jobs: Path, urls: list[str]) -> tuple[int, dict, str, float]:
    started = time.monotonic()
    proc = subprocess.run(batch_command(folder, jobs, urls), capture_output=True, text=True, timeout=300)
    seconds = time.monotonic() - started
    last = proc.stdout.strip().splitlines()[-1] if proc.stdout.strip() else "{}"
    return proc.returncode, json.loads(last), proc.stderr, seconds


def outputs_of(servers, tag: str) -> dict[str, list[Path]]:
    found: dict[str, list[Path]] = {}
    for s in servers:
        for f in sorted((s.output_dir / tag).glob("*.png")) if (s.output_dir / tag).is_dir() else []:
            found.setdefault(f.name.rsplit("_", 2)[0], []).append(f)
    return found


def test_twelve_jobs_on_three_servers_one_killed(comfy, two_more_servers, tmp_path):
    servers = [comfy, *two_more_servers]
    urls = [s.url for s in servers]
    victim = two_more_servers[1]

    # Throughput: the same kind of batch on one server, then on three.
    rate = {}
    for tag, use, scale0 in (("one", urls[:1], 2.0), ("three", urls, 2.2)):
        folder = tmp_path / tag
        folder.mkdir()
        rc, summary, err, seconds = run_batch(folder, write_jobs(folder, tag, scale0), use)
        assert rc == 0 and summary["ok"] == JOBS, err
        rate[tag] = JOBS / seconds
    report = {
        "jobs": JOBS,
        "jobs_per_second_1_server": round(rate["one"], 3),
        "jobs_per_second_3_servers": round(rate["three"], 3),
        "machine": f"{os.cpu_count()} CPU cores, all servers on this machine",
    }
    out = PACK_ROOT / ".artifacts" / "batch_servers.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(report, indent=2))
    print(f"\nhv_batch throughput: {report}")

    # One server killed while it runs a job.
    folder = tmp_path / "kill"
    folder.mkdir()
    jobs = write_jobs(folder, "kill", 2.4)
    proc = subprocess.Popen(
        batch_command(folder, jobs, urls), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    deadline = time.monotonic() + 120
    killed = False
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            running = victim.client.queue().get("queue_running") or []
        except Exception:
            running = []
        if running:
            os.kill(victim.process.pid, signal.SIGKILL)
            victim.process.wait()
            killed = True
            break
        time.sleep(0.05)
    out_text, err_text = proc.communicate(timeout=300)
    assert killed, "the victim server never ran a job"
    assert proc.returncode == 0, err_text
    results_path = folder / "kill.csv.results.json"
    saved = json.loads(results_path.read_text())
    records = saved["jobs"]
    assert sorted(records) == [f"kill{i:02d}" for i in range(JOBS)]
    assert all(r["status"] == "ok" and len(r["outputs"]) == 1 for r in records.values()), records
    handed_back = [k for k, r in records.items() if r["attempts"] == 2]
    assert handed_back and all(records[k]["server"] != victim.url for k in handed_back), records
    # each job's one output is on the server the results name, and no job produced a second image anywhere
    by_url = {s.url: s for s in servers}
    for rec in records.values():
        [o] = rec["outputs"]
        assert (by_url[rec["server"]].output_dir / o["subfolder"] / o["filename"]).is_file()
    made = outputs_of(servers, "kill")
    assert sorted(made) == sorted(records) and all(len(v) == 1 for v in made.values()), made

    # Re-run (the victim still down): nothing is submitted.
    rc, summary, err, _ = run_batch(folder, jobs, urls)
    assert rc == 0 and summary["submitted"] == 0 and summary["skipped"] == JOBS, err
