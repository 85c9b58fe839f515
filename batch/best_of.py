"""Best-of-N runs: N seeds per job, lip-sync scores per output, and the best output per job.

A job run ``--best-of N`` becomes N variants ``<id>@1`` .. ``<id>@N`` whose seeds are the job's seed
(or the workflow's) plus 0 .. N-1; each variant is an ordinary job for the runner (results, resume,
retries). Scores come from a Lip-Sync Score node (``HVSyncScore``) in the workflow itself, or from a
separate scoring workflow run on the server that made the output, with the output video as its input
(``"<subfolder>/<name> [output]"``, which ComfyUI's video loader reads from the output folder).
"""

from __future__ import annotations

import copy
import dataclasses
from pathlib import Path

from .jobs import JobError, JobPlan, resolve_key

SCORE_KEY = "hv_sync"  # the UI output key HVSyncScore reports its numbers under
RANK_METRICS = {"sync_c": max, "sync_d": min}  # higher Sync-C, lower Sync-D is better
VIDEO_SUFFIXES = (".mp4", ".webm", ".mov", ".mkv", ".avi", ".gif")
VARIANT_SEP = "@"


def variant_id(job_id: str, k: int) -> str:
    return f"{job_id}{VARIANT_SEP}{k}"


def expand(plans: list[JobPlan], n: int, object_info: dict) -> tuple[list[JobPlan], dict[str, list[str]], dict]:
    """(variant plans, job id -> variant ids, job id -> problem). With n == 1 the plans are returned as they are."""
    if n <= 1:
        return plans, {}, {}
    out, groups, problems = [], {}, {}
    for plan in plans:
        try:
            targets = resolve_key(plan.prompt, object_info, "seed")
        except JobError as e:
            problems[plan.job.id] = f"{plan.job.source}: --best-of needs a seed input to vary ({e})"
            continue
        nid, name = targets[0]
        base = plan.prompt[nid]["inputs"][name]
        if not isinstance(base, int):
            problems[plan.job.id] = f"{plan.job.source}: --best-of: seed input {nid}.{name} is linked, not a number"
            continue
        groups[plan.job.id] = []
        for k in range(1, n + 1):
            prompt = copy.deepcopy(plan.prompt)
            for tid, tname in targets:
                prompt[tid]["inputs"][tname] = base + k - 1
            vid = variant_id(plan.job.id, k)
            job = dataclasses.replace(plan.job, id=vid, source=f"{plan.job.source} (seed {base + k - 1})")
            out.append(JobPlan(job, prompt, list(plan.uploads)))
            groups[plan.job.id].append(vid)
    return out, groups, problems


def scores_from_outputs(outputs: dict) -> dict | None:
    """The numbers of the Lip-Sync Score node in a prompt's outputs (node id -> UI output), or None. With
    several (a "before" and an "after" score), the last by node id: the one that scores the final video
    in the shipped workflows."""
    for node_id in sorted(outputs, key=lambda n: (0, int(n)) if str(n).isdigit() else (1, str(n)), reverse=True):
        found = (outputs[node_id] or {}).get(SCORE_KEY)
        if isinstance(found, list) and found and isinstance(found[0], dict):
            return dict(found[0], node=str(node_id))
    return None


def video_outputs(records: list[dict]) -> list[dict]:
    return [r for r in records if str(r.get("filename", "")).lower().endswith(VIDEO_SUFFIXES)]


def score_prompt(score_workflow: dict, object_info: dict, output: dict) -> dict:
    """The scoring workflow with its video input pointed at one output file of the server."""
    targets = resolve_key(score_workflow, object_info, "video")
    name = "/".join(p for p in (output.get("subfolder", ""), output["filename"]) if p) + " [output]"
    prompt = copy.deepcopy(score_workflow)
    for nid, inp in targets:
        prompt[nid]["inputs"][inp] = name
    return prompt


def pick_best(variants: dict[str, dict], rank_by: str) -> tuple[str | None, str]:
    """(best variant id, why) among finished variants' result records, by ``rank_by``."""
    choose = RANK_METRICS[rank_by]
    scored = {
        vid: rec["scores"][rank_by]
        for vid, rec in variants.items()
        if rec.get("status") == "ok" and isinstance(rec.get("scores"), dict) and rank_by in rec["scores"]
    }
    if not scored:
        return None, "no variant has a score (add a Lip-Sync Score node or --score-workflow)"
    best = choose(
        scored, key=lambda v: (scored[v], -_variant_number(v)) if choose is max else (scored[v], _variant_number(v))
    )
    return best, f"{rank_by} {scored[best]:.4f} (best of {len(scored)} scored)"


def _variant_number(vid: str) -> int:
    tail = vid.rsplit(VARIANT_SEP, 1)[-1]
    return int(tail) if tail.isdigit() else 0


def best_record(job_id: str, variants: dict[str, dict], rank_by: str, download_dir: Path | None) -> dict:
    """The ``best`` entry of one job for the results file; copies the best files to ``download_dir/<job>/``."""
    best, why = pick_best(variants, rank_by)
    entry: dict = {"rank_by": rank_by, "variant": best, "why": why}
    if best is None:
        return entry
    rec = variants[best]
    entry.update(scores=rec.get("scores"), outputs=rec.get("outputs", []))
    if download_dir is not None:
        import shutil

        dest = Path(download_dir) / job_id
        copied = []
        for out in rec.get("outputs", []):
            local = out.get("local")
            if local and Path(local).is_file():
                dest.mkdir(parents=True, exist_ok=True)
                target = dest / Path(local).name
                shutil.copyfile(local, target)
                copied.append(str(target))
        entry["copied"] = copied
    return entry
