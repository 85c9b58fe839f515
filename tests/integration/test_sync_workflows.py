"""The lip-sync scoring nodes in the real server: the shipped scoring workflows on the test face clip
(random SyncNet weights in the real file format, so the numbers only have to be well-formed), a wrong
weight file, and hv_batch --best-of with a scoring workflow run on each output where it was made."""

import json
import shutil
import subprocess
import sys

import pytest
from comfy_harness import PACK_ROOT, node_of, shipped_api_workflow

pytestmark = pytest.mark.integration

SHORT = {"min_track": 6, "min_face_size": 0}  # the 0.4 s test clip, 10 frames of a 256 px face


def test_score_a_video(comfy):
    prompt = shipped_api_workflow("sync_score_video")
    node_of(prompt, "LoadVideo")["inputs"]["file"] = "face_short.mp4"
    node_of(prompt, "HVSyncScore")["inputs"].update(SHORT)
    result = comfy.run(prompt, timeout=600)
    assert result.ok, result.error
    [shown] = [o for o in result.outputs.values() if "hv_sync" in o]
    scores = shown["hv_sync"][0]
    assert set(scores) >= {"sync_c", "sync_d", "av_offset", "speakers"}
    assert scores["speakers"][0]["frames"] == [0, 9] and scores["speakers"][0]["windows"] == 5
    assert "Sync-C" in shown["text"][0] and shown["images"][0]["type"] == "temp"


def test_wrong_weights_are_a_clear_error(comfy):
    prompt = shipped_api_workflow("sync_score_video")
    # A LatentSync UNet under a SyncNet-like name (a name outside the list is refused before any loading).
    wrong = comfy.models_dir / "latentsync" / "wrong_weights.model"
    if not wrong.exists():
        shutil.copyfile(comfy.models_dir / "latentsync" / "1.5" / "latentsync_unet.pt", wrong)
    node_of(prompt, "HVLoadSyncNet")["inputs"]["syncnet_name"] = "wrong_weights.model"
    node_of(prompt, "LoadVideo")["inputs"]["file"] = "face_short.mp4"
    result = comfy.run(prompt, timeout=300)
    assert not result.ok
    assert "choose syncnet_v2.model" in result.error["exception_message"]


# A cheap seeded "generator": the test clip with seeded noise, saved as an mp4 with its sound.
GENERATE = {
    "1": {"class_type": "LoadVideo", "inputs": {"file": "face_short.mp4"}, "_meta": {"title": "Video"}},
    "2": {"class_type": "GetVideoComponents", "inputs": {"video": ["1", 0]}, "_meta": {"title": "Parts"}},
    "3": {
        "class_type": "ImageAddNoise",
        "inputs": {"image": ["2", 0], "seed": 0, "strength": 0.03},
        "_meta": {"title": "Noise"},
    },
    "4": {
        "class_type": "CreateVideo",
        "inputs": {"images": ["3", 0], "fps": ["2", 2], "audio": ["2", 1]},
        "_meta": {"title": "Video out"},
    },
    "5": {
        "class_type": "SaveVideo",
        "inputs": {"video": ["4", 0], "filename_prefix": "x", "format": "auto", "codec": "auto"},
        "_meta": {"title": "Save"},
    },
}


def test_batch_best_of_two_scored_on_the_server_that_made_them(comfy, tmp_path):
    generate = json.loads(json.dumps(GENERATE))
    score = shipped_api_workflow("sync_score_video")
    node_of(score, "HVSyncScore")["inputs"].update(SHORT)
    (tmp_path / "gen.json").write_text(json.dumps(generate))
    (tmp_path / "score.json").write_text(json.dumps(score))
    (tmp_path / "jobs.csv").write_text("id,seed,prefix\nclip,7,bestof/clip\n")
    cmd = [
        sys.executable,
        str(PACK_ROOT / "scripts" / "hv_batch.py"),
        str(tmp_path / "gen.json"),
        str(tmp_path / "jobs.csv"),
        "--url",
        comfy.url,
        "--best-of",
        "2",
        "--rank-by",
        "sync_d",
        "--score-workflow",
        str(tmp_path / "score.json"),
        "--download",
        str(tmp_path / "dl"),
        "--no-progress",
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr
    saved = json.loads((tmp_path / "jobs.csv.results.json").read_text())
    runs = saved["jobs"]
    assert sorted(runs) == ["clip@1", "clip@2"]
    assert all(r["status"] == "ok" and "sync_d" in r["scores"] for r in runs.values()), runs
    best = saved["best"]["clip"]
    expected = min(runs, key=lambda v: (runs[v]["scores"]["sync_d"], v))
    assert best["variant"] == expected and best["rank_by"] == "sync_d"
    assert best["copied"] and all(
        (tmp_path / "dl" / "clip").joinpath(p.split("/")[-1]).is_file() for p in best["copied"]
    )
    again = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert again.returncode == 0 and json.loads(again.stdout.strip().splitlines()[-1])["submitted"] == 0
