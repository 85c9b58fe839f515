"""Batch runner logic (retries, resume, outages, Ctrl-C, results file) and the client's reading of
server replies recorded from a real ComfyUI 0.3.75 (test_batch_data/server_replies.json).

The runner is driven through a scripted stand-in for ComfyClient here; the real client against a
real server is exercised by tests/integration/test_batch.py.
"""

import json
import os
from pathlib import Path

import pytest
from humanvideo.batch import cli
from humanvideo.batch.client import (
    PromptLost,
    PromptRejected,
    RunResult,
    ServerUnavailable,
    WaitTimeout,
    format_rejection,
    normalize_url,
    result_from_history_entry,
)
from humanvideo.batch.jobs import parse_csv
from humanvideo.batch.runner import BatchOptions, BatchRunner, Results, Workflow

DATA = Path(__file__).parent / "test_batch_data"
OBJECT_INFO = json.loads((DATA / "object_info.json").read_text())
REPLIES = json.loads((DATA / "server_replies.json").read_text())

PROMPT = {
    "1": {"class_type": "LoadImage", "inputs": {"image": "example.png"}, "_meta": {"title": "Photo"}},
    "2": {
        "class_type": "ImageScale",
        "inputs": {"image": ["1", 0], "upscale_method": "nearest-exact", "width": 32, "height": 32, "crop": "disabled"},
        "_meta": {"title": "Resize"},
    },
    "3": {
        "class_type": "SaveImage",
        "inputs": {"images": ["2", 0], "filename_prefix": "hv"},
        "_meta": {"title": "Save"},
    },
}


class ScriptedClient:
    """Stands in for ComfyClient; ``script(prompt, attempt_no)`` returns a RunResult or raises."""

    url = "http://scripted"

    def __init__(self, script, ready=True):
        self.script, self.ready = script, ready
        self.submitted, self.uploads, self.interrupted, self.cancelled = [], [], [], []
        self._pending = {}

    def object_info(self, refresh=False):
        return OBJECT_INFO

    def wait_ready(self, timeout=60.0):
        if not self.ready:
            raise ServerUnavailable("ComfyUI at http://scripted is not reachable")
        return {}

    def upload(self, path, subfolder="", name=None, overwrite=True):
        self.uploads.append(name)
        return name

    def submit(self, prompt, extra_data=None, prompt_id=None):
        self.submitted.append(prompt)
        pid = f"p{len(self.submitted)}"
        self._pending[pid] = prompt
        return pid

    def wait(self, prompt_id, timeout=None, on_progress=None, unreachable_grace=60.0):
        return self.script(self._pending[prompt_id], prompt_id)

    def interrupt(self, prompt_id=None):
        self.interrupted.append(prompt_id)

    def cancel(self, ids):
        self.cancelled.extend(ids)

    def free(self, unload_models=True, free_memory=False):
        pass


def ok(prompt, pid):
    prefix = prompt["3"]["inputs"]["filename_prefix"]
    return RunResult(
        pid,
        True,
        {"3": {"images": [{"filename": f"{prefix}_00001_.png", "subfolder": "", "type": "output"}]}},
        seconds=0.5,
    )


def failing(pid):
    return RunResult(
        pid,
        False,
        {},
        error={
            "node_id": "1",
            "node_type": "LoadImage",
            "exception_type": "OSError",
            "exception_message": "cannot identify image file",
        },
    )


def make_jobs(tmp_path, n=5, bad="c"):
    for i in range(n):
        (tmp_path / f"img{i}.png").write_bytes(b"png %d" % i)
    rows = ["id,image,prefix"] + [f"{chr(97 + i)},img{i}.png,out_{chr(97 + i)}" for i in range(n)]
    return parse_csv("\n".join(rows) + "\n")


def run(client, tmp_path, jobs, **opts):
    results = Results(tmp_path / "results.json")
    runner = BatchRunner(
        client, Workflow(PROMPT, None, tmp_path / "wf.json"), results, BatchOptions(**opts), log=lambda s: None
    )
    return runner.run(jobs, tmp_path), results


def by_prefix_fail(bad_prefix):
    return lambda prompt, pid: (
        failing(pid) if prompt["3"]["inputs"]["filename_prefix"] == bad_prefix else ok(prompt, pid)
    )


def test_one_bad_job_does_not_stop_the_batch_and_resume_submits_nothing(tmp_path):
    jobs = make_jobs(tmp_path)
    client = ScriptedClient(by_prefix_fail("out_c"))
    summary, results = run(client, tmp_path, jobs, retries=1)
    assert (summary.ok, summary.failed, summary.submitted, summary.exit_code) == (4, 1, 6, 1)
    saved = json.loads((tmp_path / "results.json").read_text())["jobs"]
    assert {k: v["status"] for k, v in saved.items()} == {"a": "ok", "b": "ok", "c": "failed", "d": "ok", "e": "ok"}
    assert saved["c"]["attempts"] == 2 and "cannot identify image file" in saved["c"]["error"]
    assert saved["a"]["outputs"] == [{"filename": "out_a_00001_.png", "subfolder": "", "type": "output"}]
    assert saved["a"]["seconds"] == 0.5
    assert not [p for p in tmp_path.iterdir() if p.suffix == ".tmp"]
    # Uploads are content-addressed and done once per distinct file.
    assert len(client.uploads) == 5 and all(u.startswith("hvb_") for u in client.uploads)

    again = ScriptedClient(by_prefix_fail("out_c"))
    summary2, _ = run(again, tmp_path, make_jobs(tmp_path))
    assert again.submitted == [] and (summary2.ok, summary2.failed, summary2.skipped) == (4, 1, 5)

    retry = ScriptedClient(ok)
    summary3, _ = run(retry, tmp_path, make_jobs(tmp_path), retry_failed=True)
    assert len(retry.submitted) == 1 and summary3.exit_code == 0


def test_changed_job_runs_again(tmp_path):
    jobs = make_jobs(tmp_path, n=2)
    run(ScriptedClient(ok), tmp_path, jobs)
    (tmp_path / "img1.png").write_bytes(b"new content")
    client = ScriptedClient(ok)
    summary, _ = run(client, tmp_path, jobs)
    assert len(client.submitted) == 1 and summary.skipped == 1


def test_server_restart_mid_job_is_retried(tmp_path):
    calls = []

    def script(prompt, pid):
        calls.append(pid)
        if len(calls) == 1:
            raise PromptLost(f"prompt {pid} is neither queued nor in the history")
        return ok(prompt, pid)

    client = ScriptedClient(script)
    summary, results = run(client, tmp_path, make_jobs(tmp_path, n=1), retries=1)
    assert summary.ok == 1 and results.jobs["a"]["attempts"] == 2
    assert len(client.uploads) == 2  # a restarted server may have lost its input folder


def test_server_gone_stops_the_batch_and_resume_continues(tmp_path):
    def script(prompt, pid):
        if prompt["3"]["inputs"]["filename_prefix"] == "out_b":
            client.ready = False
            raise ServerUnavailable("ComfyUI at http://scripted is not reachable (ConnectionError)")
        return ok(prompt, pid)

    client = ScriptedClient(script)
    summary, results = run(client, tmp_path, make_jobs(tmp_path, n=4))
    assert summary.exit_code == 3 and summary.aborted
    assert {k: v["status"] for k, v in results.jobs.items()} == {"a": "ok", "b": "pending"}

    back = ScriptedClient(ok)
    summary2, results2 = run(back, tmp_path, make_jobs(tmp_path, n=4))
    assert len(back.submitted) == 3 and summary2.exit_code == 0
    assert all(v["status"] == "ok" for v in results2.jobs.values())


def test_rejected_prompt_is_not_retried(tmp_path):
    def script(prompt, pid):
        raise AssertionError("never waited on")

    class Rejecting(ScriptedClient):
        def submit(self, prompt, extra_data=None, prompt_id=None):
            self.submitted.append(prompt)
            raise PromptRejected("node 3 (SaveImage): Required input is missing: images")

    client = Rejecting(script)
    summary, results = run(client, tmp_path, make_jobs(tmp_path, n=1), retries=3)
    assert len(client.submitted) == 1 and results.jobs["a"]["status"] == "failed"
    assert "rejected by the server" in results.jobs["a"]["error"]


def test_timeout_interrupts_and_retries(tmp_path):
    def script(prompt, pid):
        raise WaitTimeout(f"prompt {pid} not finished after 5 s")

    client = ScriptedClient(script)
    summary, results = run(client, tmp_path, make_jobs(tmp_path, n=1), retries=1, timeout=5)
    assert client.interrupted == ["p1", "p2"] and client.cancelled == ["p1", "p2"]
    assert results.jobs["a"]["status"] == "failed" and "not finished after 5 s" in results.jobs["a"]["error"]


def test_ctrl_c_stops_the_running_prompt_and_keeps_results(tmp_path):
    def script(prompt, pid):
        if prompt["3"]["inputs"]["filename_prefix"] == "out_b":
            raise KeyboardInterrupt
        return ok(prompt, pid)

    client = ScriptedClient(script)
    summary, results = run(client, tmp_path, make_jobs(tmp_path, n=3))
    assert summary.interrupted and summary.exit_code == 130
    assert client.interrupted == ["p2"]
    saved = json.loads((tmp_path / "results.json").read_text())["jobs"]
    assert {k: v["status"] for k, v in saved.items()} == {"a": "ok", "b": "interrupted"}
    again = ScriptedClient(ok)
    run(again, tmp_path, make_jobs(tmp_path, n=3))
    assert len(again.submitted) == 2


def test_invalid_jobs_are_recorded_and_dry_run_submits_nothing(tmp_path):
    (tmp_path / "img0.png").write_bytes(b"x")
    jobs = parse_csv(
        "id,image,Resize.width,Nobody.text\na,img0.png,64,\nb,nothere.png,64,\nc,img0.png,abc,\nd,img0.png,64,hi\n"
    )
    client = ScriptedClient(ok)
    summary, _ = run(client, tmp_path, jobs, dry_run=True)
    assert client.submitted == [] and summary.invalid == 3 and not (tmp_path / "results.json").exists()
    summary, results = run(client, tmp_path, jobs)
    assert len(client.submitted) == 1 and summary.exit_code == 1
    assert "file 'nothere.png' not found" in results.jobs["b"]["error"]
    assert "'abc' is not an integer" in results.jobs["c"]["error"]
    assert "no node titled or numbered 'Nobody'" in results.jobs["d"]["error"]
    assert results.jobs["b"]["status"] == "invalid"


def test_results_file_is_replaced_atomically(tmp_path, monkeypatch):
    results = Results(tmp_path / "r.json")
    results.record("a", status="ok")
    before = (tmp_path / "r.json").read_text()

    def broken_replace(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", broken_replace)
    with pytest.raises(OSError):
        results.record("b", status="ok")
    assert (tmp_path / "r.json").read_text() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r.json"]
    (tmp_path / "junk.json").write_text("[1, 2")
    with pytest.raises(ValueError, match="not a results file"):
        Results(tmp_path / "junk.json")


# -- client: reading real server replies ---------------------------------------------------------------
def test_history_entries_become_run_results():
    [(pid, entry)] = REPLIES["history_success"].items()
    r = result_from_history_entry(pid, entry)
    assert r.ok and not r.interrupted and r.error is None
    assert r.files() == [{"filename": "a_00001_.png", "subfolder": "bt", "type": "output"}]
    assert r.seconds == pytest.approx(0.005)
    [(pid, entry)] = REPLIES["history_error"].items()
    r = result_from_history_entry(pid, entry)
    assert not r.ok and r.files() == []
    assert r.error_message.startswith("node 1 (LoadImage): PIL.UnidentifiedImageError: cannot identify image file")


def test_rejection_message_names_node_and_problem():
    msg = format_rejection(REPLIES["prompt_rejected"])
    assert msg.startswith("Prompt outputs failed validation")
    assert msg.endswith("; node 2 (SaveImage): Required input is missing: images")


def test_url_forms():
    assert normalize_url("127.0.0.1:8188") == "http://127.0.0.1:8188"
    assert normalize_url("https://host/comfy/") == "https://host/comfy"
    with pytest.raises(ValueError, match="--url"):
        normalize_url("ftp://x")


def test_cli_reports_server_down_and_bad_files(tmp_path, capsys):
    wf = tmp_path / "wf.json"
    wf.write_text(json.dumps(PROMPT))
    jobs = tmp_path / "jobs.csv"
    jobs.write_text("id,prefix\na,x\n")
    assert cli.main([str(wf), str(jobs), "--url", "127.0.0.1:9", "--server-wait", "0.5", "--no-progress"]) == 3
    assert "is not reachable" in capsys.readouterr().err
    assert cli.main([str(wf), str(tmp_path / "missing.jsonl"), "--url", "127.0.0.1:9"]) == 2
    assert "does not exist" in capsys.readouterr().err


# -- several servers, best of N -------------------------------------------------------------------------
class ThreadedScripted(ScriptedClient):
    """A scripted server for the multi-server runner: one per server URL, shared by its worker slots."""

    def __init__(self, url, script, ready=True):
        super().__init__(script, ready)
        self.url = url
        self.http_timeout = 60.0

    def is_ready(self):
        return self.ready


def test_several_servers_share_the_jobs_and_a_dead_one_hands_its_job_back(tmp_path, monkeypatch):
    import threading
    import time

    from humanvideo.batch import runner as runner_mod

    lock = threading.Lock()
    ran_on: dict[str, list[str]] = {}

    def script_for(name):
        def script(prompt, pid):
            prefix = prompt["3"]["inputs"]["filename_prefix"]
            time.sleep(0.05)
            if name == "dead" and len(ran_on.get("dead", [])) >= 1:
                servers["dead"].ready = False
                raise ServerUnavailable("ComfyUI at http://dead is not reachable (ConnectionError)")
            with lock:
                ran_on.setdefault(name, []).append(prefix)
            return ok(prompt, pid)

        return script

    servers = {n: ThreadedScripted(f"http://{n}", script_for(n)) for n in ("a", "b", "dead")}
    # extra worker slots of a server reuse its scripted stand-in
    monkeypatch.setattr(runner_mod, "ComfyClient", lambda url, **kw: servers[url.split("//")[1]], raising=False)
    jobs = make_jobs(tmp_path, n=9)
    results = Results(tmp_path / "results.json")
    opts = BatchOptions(server_wait=1.0)
    summary = BatchRunner(
        list(servers.values()), Workflow(PROMPT, None, tmp_path / "wf.json"), results, opts, log=lambda s: None
    ).run(jobs, tmp_path)
    assert summary.exit_code == 0 and summary.ok == 9
    done = [p for prefixes in ran_on.values() for p in prefixes]
    assert sorted(done) == sorted(f"out_{chr(97 + i)}" for i in range(9))  # each job exactly once
    saved = json.loads((tmp_path / "results.json").read_text())
    assert {v["status"] for v in saved["jobs"].values()} == {"ok"}
    assert {v["server"] for v in saved["jobs"].values()} <= {"http://a", "http://b", "http://dead"}
    handed_back = [k for k, v in saved["jobs"].items() if v["attempts"] == 2]
    assert len(handed_back) == 1 and saved["jobs"][handed_back[0]]["server"] in ("http://a", "http://b")
    assert saved["servers"] == ["http://a", "http://b", "http://dead"]


def scored(prompt, pid):
    result = ok(prompt, pid)
    seed = prompt["4"]["inputs"]["seed"]
    result.outputs["5"] = {"hv_sync": [{"sync_c": float(seed % 7), "sync_d": float(10 - seed % 7), "av_offset": 0}]}
    return result


def test_best_of_n_keeps_every_score_and_marks_the_best(tmp_path):
    seeded = dict(PROMPT, **{"4": {"class_type": "SeedNode", "inputs": {"seed": 5}, "_meta": {"title": "Sampler"}}})
    info = dict(OBJECT_INFO, SeedNode={"input": {"required": {"seed": ["INT", {"default": 0, "min": 0}]}}})
    client = ScriptedClient(scored)
    client.object_info = lambda refresh=False: info
    jobs = parse_csv("id,prefix\nx,out_x\n")
    results = Results(tmp_path / "results.json")
    opts = BatchOptions(best_of=4, rank_by="sync_c")
    summary = BatchRunner(client, Workflow(seeded, None, tmp_path / "wf.json"), results, opts, log=lambda s: None).run(
        jobs, tmp_path
    )
    assert summary.ok == 4 and [p["4"]["inputs"]["seed"] for p in client.submitted] == [5, 6, 7, 8]
    saved = json.loads((tmp_path / "results.json").read_text())
    assert {k: v["scores"]["sync_c"] for k, v in saved["jobs"].items()} == {"x@1": 5, "x@2": 6, "x@3": 0, "x@4": 1}
    assert saved["best"]["x"]["variant"] == "x@2" and saved["best"]["x"]["rank_by"] == "sync_c"
    # by Sync-D (lower is better) the same scores pick the same variant; a re-run submits nothing
    again = ScriptedClient(scored)
    again.object_info = client.object_info
    opts = BatchOptions(best_of=4, rank_by="sync_d")
    BatchRunner(again, Workflow(seeded, None, tmp_path / "wf.json"), Results(tmp_path / "results.json"), opts).run(
        jobs, tmp_path
    )
    saved = json.loads((tmp_path / "results.json").read_text())
    assert (
        again.submitted == [] and saved["best"]["x"]["variant"] == "x@2" and saved["best"]["x"]["rank_by"] == "sync_d"
    )
