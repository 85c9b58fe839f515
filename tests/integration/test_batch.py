"""The batch client against the real ComfyUI server: five jobs, one of them a corrupt image that
fails inside the server; then a resumed re-run that must submit nothing. Runs the command-line
launcher in a subprocess, as a user does (it must work without importing ComfyUI or the pack)."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

pytestmark = pytest.mark.integration

PACK_ROOT = Path(__file__).resolve().parents[2]
LAUNCHER = PACK_ROOT / "scripts" / "hv_batch.py"

API_WORKFLOW = {
    "1": {"class_type": "LoadImage", "inputs": {"image": "face.png"}, "_meta": {"title": "Photo"}},
    "2": {
        "class_type": "ImageScale",
        "inputs": {"image": ["1", 0], "upscale_method": "nearest-exact", "width": 32, "height": 32, "crop": "disabled"},
        "_meta": {"title": "Resize"},
    },
    "3": {
        "class_type": "SaveImage",
        "inputs": {"images": ["2", 0], "filename_prefix": "batch/x"},
        "_meta": {"title": "Save"},
    },
}


def ui_workflow() -> dict:
    """The same graph as the page saves it (positional widgets_values, upload placeholder, links)."""
    return {
        "last_node_id": 3,
        "last_link_id": 2,
        "version": 0.4,
        "groups": [],
        "config": {},
        "extra": {},
        "links": [[1, 1, 0, 2, 0, "IMAGE"], [2, 2, 0, 3, 0, "IMAGE"]],
        "nodes": [
            {
                "id": 1,
                "type": "LoadImage",
                "title": "Photo",
                "mode": 0,
                "inputs": [],
                "outputs": [
                    {"name": "IMAGE", "type": "IMAGE", "links": [1]},
                    {"name": "MASK", "type": "MASK", "links": []},
                ],
                "widgets_values": ["face.png", "image"],
            },
            {
                "id": 2,
                "type": "ImageScale",
                "title": "Resize",
                "mode": 0,
                "inputs": [{"name": "image", "type": "IMAGE", "link": 1}],
                "outputs": [{"name": "IMAGE", "type": "IMAGE", "links": [2]}],
                "widgets_values": ["nearest-exact", 32, 32, "disabled"],
            },
            {
                "id": 3,
                "type": "SaveImage",
                "title": "Save",
                "mode": 0,
                "inputs": [{"name": "images", "type": "IMAGE", "link": 2}],
                "outputs": [],
                "widgets_values": ["batch/ui"],
            },
        ],
    }


def hv_batch(*args: str, timeout: float = 240) -> tuple[int, dict, str]:
    proc = subprocess.run(
        [sys.executable, str(LAUNCHER), *args, "--no-progress"], capture_output=True, text=True, timeout=timeout
    )
    last = proc.stdout.strip().splitlines()[-1] if proc.stdout.strip() else "{}"
    return proc.returncode, json.loads(last), proc.stderr


def history_size(comfy) -> int:
    return len(comfy.client.history())


def test_batch_of_five_with_one_bad_job_then_resume(comfy, tmp_path):
    for i in range(4):
        Image.new("RGB", (40 + 8 * i, 24 + 4 * i), (50 * i, 120, 200)).save(tmp_path / f"person{i}.png")
    (tmp_path / "broken.png").write_bytes(b"this is not a png")
    (tmp_path / "wf.json").write_text(json.dumps(API_WORKFLOW))
    (tmp_path / "jobs.csv").write_text(
        "id,image,size,prefix\n"
        "p0,person0.png,32x16,batch/p0\n"
        "p1,person1.png,48x32,batch/p1\n"
        "broken,broken.png,,batch/broken\n"
        "p2,person2.png,,batch/p2\n"
        "p3,person3.png,16x16,batch/p3\n"
    )
    results_path = tmp_path / "results.json"
    common = [str(tmp_path / "wf.json"), str(tmp_path / "jobs.csv"), "--url", comfy.url, "--results", str(results_path)]

    rc, summary, err = hv_batch(*common, "--dry-run")
    assert rc == 0, err
    assert summary["submitted"] == 0 and not results_path.exists()

    rc, summary, err = hv_batch(*common, "--retries", "1", "--download", str(tmp_path / "dl"))
    assert rc == 1, err
    assert (summary["ok"], summary["failed"], summary["submitted"]) == (4, 1, 6), err
    jobs = json.loads(results_path.read_text())["jobs"]
    assert {k: v["status"] for k, v in jobs.items()} == {
        "p0": "ok",
        "p1": "ok",
        "broken": "failed",
        "p2": "ok",
        "p3": "ok",
    }
    assert jobs["broken"]["attempts"] == 2
    assert "node 1 (LoadImage)" in jobs["broken"]["error"] and "cannot identify image file" in jobs["broken"]["error"]
    sizes = {"p0": (32, 16), "p1": (48, 32), "p2": (32, 32), "p3": (16, 16)}
    for job_id, size in sizes.items():
        [out] = jobs[job_id]["outputs"]
        on_server = comfy.output_dir / out["subfolder"] / out["filename"]
        assert on_server.is_file() and out["subfolder"] == "batch"
        with Image.open(out["local"]) as im:
            assert im.size == size
        assert jobs[job_id]["seconds"] >= 0

    before = history_size(comfy)
    rc, summary, err = hv_batch(*common)
    assert rc == 1, err
    assert summary["submitted"] == 0 and summary["skipped"] == 5, err
    assert history_size(comfy) == before


def test_ui_format_workflow_and_bad_jobs(comfy, tmp_path):
    Image.new("RGB", (20, 20), (10, 200, 30)).save(tmp_path / "me.png")
    (tmp_path / "wf_ui.json").write_text(json.dumps(ui_workflow()))
    (tmp_path / "jobs.jsonl").write_text(
        '{"id": "good", "Photo.image": "me.png", "Resize.width": 24, "prefix": "batch/ui_good"}\n'
        '{"id": "no-such-node", "Portrait.image": "me.png"}\n'
        '{"id": "no-such-input", "Resize.colour": 3}\n'
        '{"id": "wrong-type", "Resize.width": "wide"}\n'
        '{"id": "missing-file", "image": "nothere.png"}\n'
        '{"id": "broken-line", \n'
    )
    rc, summary, err = hv_batch(str(tmp_path / "wf_ui.json"), str(tmp_path / "jobs.jsonl"), "--url", comfy.url)
    assert rc == 1, err
    assert (summary["ok"], summary["invalid"], summary["submitted"]) == (1, 5, 1), err
    jobs = json.loads((tmp_path / "jobs.jsonl.results.json").read_text())["jobs"]
    assert jobs["good"]["status"] == "ok"
    with Image.open(comfy.output_dir / "batch" / jobs["good"]["outputs"][0]["filename"]) as im:
        assert im.size == (24, 32)
    assert "no node titled or numbered 'Portrait'" in jobs["no-such-node"]["error"]
    assert "has no input 'colour'" in jobs["no-such-input"]["error"]
    assert "'wide' is not an integer" in jobs["wrong-type"]["error"]
    assert "file 'nothere.png' not found" in jobs["missing-file"]["error"]
    assert "not valid JSON" in jobs["row6"]["error"]


def test_unknown_node_in_workflow_is_a_clear_error(comfy, tmp_path):
    wf = ui_workflow()
    wf["nodes"][1]["type"] = "HVDoesNotExist"
    (tmp_path / "wf.json").write_text(json.dumps(wf))
    (tmp_path / "jobs.csv").write_text("prefix\nx\n")
    proc = subprocess.run(
        [sys.executable, str(LAUNCHER), str(tmp_path / "wf.json"), str(tmp_path / "jobs.csv"), "--url", comfy.url],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 2
    assert "node types not installed on the server: ['HVDoesNotExist']" in proc.stderr
