"""A batch: check every job, then run them one by one with retries, keeping a results file.

The results file (JSON) is rewritten after every job through a temporary file and a rename, so it is
always complete and readable, even after Ctrl-C or a crash. A re-run skips every job recorded as
``ok`` or ``failed`` (after all its retries) whose fingerprint (prompt + contents of its uploaded
files) has not changed; ``--retry-failed`` runs the failed ones again. Jobs that were interrupted,
stopped by a server outage, never reached, or changed since, always run again.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from .client import (
    ComfyClient,
    ComfyError,
    Progress,
    PromptLost,
    PromptRejected,
    RunResult,
    ServerUnavailable,
    WaitTimeout,
)
from .jobs import Job, JobError, JobPlan, file_digest, plan_job, validate_prompt
from .ui_to_api import WorkflowError, convert, is_api_prompt, is_ui_workflow

STATUS_OK, STATUS_FAILED, STATUS_INVALID = "ok", "failed", "invalid"
STATUS_INTERRUPTED, STATUS_PENDING = "interrupted", "pending"  # not finished: always run again


class BatchAborted(RuntimeError):
    """The batch cannot go on (server gone for good); finished results are saved."""


# -- workflow ---------------------------------------------------------------------------------------
@dataclass
class Workflow:
    prompt: dict  # API format
    ui: dict | None  # the UI graph when given one (kept as output metadata)
    path: Path


def load_workflow(path: str | Path, object_info: dict) -> Workflow:
    path = Path(path)
    if not path.is_file():
        raise WorkflowError(f"workflow: file {str(path)!r} does not exist")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except ValueError as e:
        raise WorkflowError(f"workflow: {str(path)!r} is not valid JSON ({e})") from e
    if isinstance(data, dict) and is_api_prompt(data.get("prompt")):
        data = data["prompt"]
    if is_ui_workflow(data):
        return Workflow(convert(data, object_info), data, path)
    if is_api_prompt(data):
        return Workflow({str(k): v for k, v in data.items()}, None, path)
    raise WorkflowError(
        f"workflow: {str(path)!r} is neither a UI workflow (nodes, links) nor an API prompt "
        "({id: {class_type, inputs}})"
    )


# -- results file -----------------------------------------------------------------------------------
class Results:
    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.jobs: dict[str, dict] = {}
        self.meta: dict[str, Any] = {}
        if self.path.exists():
            try:
                data = json.loads(self.path.read_text(encoding="utf-8"))
                self.jobs = dict(data.get("jobs") or {})
                self.meta = {k: v for k, v in data.items() if k != "jobs"}
            except (ValueError, AttributeError) as e:
                raise ValueError(
                    f"--results: {str(self.path)!r} exists but is not a results file ({e}); "
                    "move it away or name another file"
                ) from e

    def finished_status(self, job_id: str, fingerprint: str) -> str | None:
        """ "ok" / "failed" when the job already ran to an end with this fingerprint, else None."""
        rec = self.jobs.get(job_id) or {}
        if rec.get("fingerprint") == fingerprint and rec.get("status") in (STATUS_OK, STATUS_FAILED):
            return rec["status"]
        return None

    def record(self, job_id: str, **fields: Any) -> None:
        rec = self.jobs.setdefault(job_id, {})
        rec.update(fields)
        rec["updated"] = time.strftime("%Y-%m-%dT%H:%M:%S")
        self.save()

    def save(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        body = json.dumps({**self.meta, "jobs": self.jobs}, indent=2, sort_keys=False)
        fd, tmp = tempfile.mkstemp(prefix=self.path.name + ".", suffix=".tmp", dir=self.path.parent)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                fh.write(body + "\n")
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, self.path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise


# -- progress display -------------------------------------------------------------------------------
class ProgressLine:
    """One status line per job on a terminal (redrawn in place), plain lines otherwise."""

    def __init__(self, stream: TextIO = sys.stderr, enabled: bool = True):
        self.stream, self.enabled = stream, enabled
        self.tty = enabled and hasattr(stream, "isatty") and stream.isatty()
        self.prefix = ""
        self._last_node: str | None = None

    def start(self, prefix: str) -> None:
        self.prefix, self._last_node = prefix, None
        self._draw(f"{prefix} queued")

    def update(self, p: Progress) -> None:
        frac = (p.nodes_done + (p.value / p.max if p.max else 0)) / p.nodes_total if p.nodes_total else 0
        frac = min(max(frac, 0.0), 1.0)
        bar = "#" * int(frac * 20) + "." * (20 - int(frac * 20))
        step = f" step {p.value}/{p.max}" if p.max > 1 else ""
        line = f"{self.prefix} [{bar}] {int(frac * 100):3d}% node {p.node or '-'}{step}"
        if self.tty or p.node != self._last_node:
            self._draw(line)
        self._last_node = p.node

    def done(self, text: str) -> None:
        self._draw(f"{self.prefix} {text}", final=True)

    def _draw(self, text: str, final: bool = False) -> None:
        if not self.enabled:
            return
        if self.tty:
            self.stream.write("\r\033[K" + text + ("\n" if final else ""))
        else:
            self.stream.write(text + "\n")
        self.stream.flush()


# -- the batch ---------------------------------------------------------------------------------------
@dataclass
class BatchOptions:
    retries: int = 1  # extra attempts of a job that failed on the server
    timeout: float | None = None  # per attempt
    server_wait: float = 120.0  # how long a down / restarting server is waited for
    download_dir: Path | None = None
    free_between: bool = False
    dry_run: bool = False
    retry_failed: bool = False


@dataclass
class BatchSummary:
    total: int = 0
    ok: int = 0
    failed: int = 0
    invalid: int = 0
    skipped: int = 0
    submitted: int = 0
    interrupted: bool = False
    aborted: str | None = None
    problems: dict[str, str] = field(default_factory=dict)  # job id -> error

    @property
    def exit_code(self) -> int:
        if self.interrupted:
            return 130
        if self.aborted:
            return 3
        return 0 if self.failed == 0 and self.invalid == 0 else 1


def plan_all(
    workflow: Workflow, object_info: dict, jobs: list[Job], base_dir: Path
) -> tuple[list[JobPlan], dict[str, str]]:
    """Checks every job; returns the runnable plans and job id -> problem for the others."""
    base_problems = validate_prompt(workflow.prompt, object_info)
    plans, invalid = [], {}
    for job in jobs:
        try:
            plans.append(plan_job(workflow.prompt, object_info, job, base_dir))
        except JobError as e:
            invalid[job.id] = f"{job.source}: {e}" if not str(e).startswith(job.source) else str(e)
    if base_problems and not plans and not invalid:
        invalid["<workflow>"] = "; ".join(base_problems)
    return plans, invalid


class BatchRunner:
    def __init__(
        self,
        client: ComfyClient,
        workflow: Workflow,
        results: Results,
        options: BatchOptions,
        log: Callable[[str], None] = lambda s: print(s, file=sys.stderr),
        progress: ProgressLine | None = None,
    ):
        self.client, self.workflow, self.results, self.opt = client, workflow, results, options
        self.log = log
        self.progress = progress or ProgressLine(enabled=False)
        self._uploaded: dict[str, str] = {}  # file digest -> name on the server

    def run(self, jobs: list[Job], base_dir: Path) -> BatchSummary:
        summary = BatchSummary(total=len(jobs))
        plans, invalid = plan_all(self.workflow, self.client.object_info(), jobs, base_dir)
        for job_id, problem in invalid.items():
            summary.invalid += 1
            summary.problems[job_id] = problem
            self.log(f"invalid job {job_id}: {problem}")
        if self.opt.dry_run:
            for plan in plans:
                ups = f", uploads {[str(u.path) for u in plan.uploads]}" if plan.uploads else ""
                self.log(f"ok      job {plan.job.id} ({plan.job.source}){ups}")
            return summary
        self.results.meta.update(workflow=str(self.workflow.path), server=self.client.url)
        for job_id, problem in invalid.items():
            self.results.record(job_id, status=STATUS_INVALID, error=problem, attempts=0, outputs=[], seconds=0.0)

        todo = []
        for plan in plans:
            done = self.results.finished_status(plan.job.id, plan.fingerprint())
            if done == STATUS_OK or (done == STATUS_FAILED and not self.opt.retry_failed):
                summary.skipped += 1
                if done == STATUS_OK:
                    summary.ok += 1
                else:
                    summary.failed += 1
                    summary.problems[plan.job.id] = self.results.jobs[plan.job.id].get("error") or "failed"
            else:
                todo.append(plan)
        if summary.skipped:
            self.log(f"resuming: {summary.skipped} job(s) finished in an earlier run, {len(todo)} to run")
        current = None
        try:
            for n, plan in enumerate(todo, start=1):
                current = plan
                try:
                    self._run_job(plan, f"[{n}/{len(todo)}] {plan.job.id}", summary)
                except BatchAborted as e:
                    summary.aborted = str(e)
                    summary.problems[plan.job.id] = str(e)
                    self.log(f"batch stopped: {e}; re-run to resume")
                    break
        except KeyboardInterrupt:
            summary.interrupted = True
            if current is not None and self.results.jobs.get(current.job.id, {}).get("status") != STATUS_OK:
                self.results.record(current.job.id, status=STATUS_INTERRUPTED, error="interrupted by the user")
            self.log("interrupted: the running job was stopped on the server; re-run to resume")
        return summary

    def _run_job(self, plan: JobPlan, label: str, summary: BatchSummary) -> None:
        job_id = plan.job.id
        fingerprint = plan.fingerprint()
        attempts, last_error, transient = 0, "", False
        while attempts <= self.opt.retries:
            attempts += 1
            self.progress.start(label + (f" (attempt {attempts})" if attempts > 1 else ""))
            started = time.monotonic()
            prompt_id, transient = None, False
            try:
                prompt = self._with_uploads(plan)
                extra = {"extra_pnginfo": {"workflow": self.workflow.ui}} if self.workflow.ui else None
                prompt_id = self.client.submit(prompt, extra_data=extra)
                summary.submitted += 1
                result = self.client.wait(
                    prompt_id,
                    timeout=self.opt.timeout,
                    on_progress=self.progress.update,
                    unreachable_grace=self.opt.server_wait,
                )
            except KeyboardInterrupt:
                self._stop(prompt_id)
                raise
            except PromptRejected as e:
                # The server's validation is deterministic: retrying cannot help.
                last_error = f"rejected by the server: {e}"
                break
            except WaitTimeout as e:
                self._stop(prompt_id)
                last_error = str(e)
                continue
            except (ServerUnavailable, PromptLost) as e:
                last_error, transient = str(e), True
                self.progress.done(f"server problem: {e}; waiting up to {self.opt.server_wait:.0f} s")
                try:
                    self.client.wait_ready(self.opt.server_wait)
                except ServerUnavailable as gone:
                    self.results.record(
                        job_id,
                        status=STATUS_PENDING,
                        error=last_error,
                        attempts=attempts,
                        fingerprint=fingerprint,
                        source=plan.job.source,
                    )
                    raise BatchAborted(str(gone)) from e
                self._uploaded.clear()  # a restarted server may have a fresh input folder
                continue
            except (ComfyError, OSError) as e:
                last_error = f"{type(e).__name__}: {e}"
                continue
            if result.ok:
                outputs = self._collect(result, job_id)
                seconds = result.seconds or (time.monotonic() - started)
                self.results.record(
                    job_id,
                    status=STATUS_OK,
                    error=None,
                    attempts=attempts,
                    outputs=outputs,
                    seconds=round(seconds, 3),
                    prompt_id=prompt_id,
                    fingerprint=fingerprint,
                    source=plan.job.source,
                )
                self.progress.done(f"ok in {seconds:.1f} s, {len(outputs)} file(s)")
                summary.ok += 1
                if self.opt.free_between:
                    self.client.free(unload_models=True)
                return
            last_error = result.error_message
            self.progress.done(f"failed: {last_error}")
        # A job that only met server outages is not the job's fault: a re-run tries it again.
        self.results.record(
            job_id,
            status=STATUS_PENDING if transient else STATUS_FAILED,
            error=last_error,
            attempts=attempts,
            outputs=[],
            fingerprint=fingerprint,
            source=plan.job.source,
        )
        self.progress.done(f"FAILED after {attempts} attempt(s): {last_error}")
        summary.failed += 1
        summary.problems[job_id] = last_error

    def _stop(self, prompt_id: str | None) -> None:
        if prompt_id is None:
            return
        try:
            self.client.cancel([prompt_id])
            self.client.interrupt(prompt_id)
        except ComfyError:
            pass  # the server is gone: nothing left to stop

    def _with_uploads(self, plan: JobPlan) -> dict:
        prompt = json.loads(json.dumps(plan.prompt))
        for up in plan.uploads:
            digest = file_digest(up.path)
            name = self._uploaded.get(digest)
            if name is None:
                # Content-addressed names: two local files called face.png never overwrite each other.
                name = self.client.upload(up.path, name=f"hvb_{digest}_{up.path.name}")
                self._uploaded[digest] = name
            prompt[up.node_id]["inputs"][up.input] = name
        return prompt

    def _collect(self, result: RunResult, job_id: str) -> list[dict]:
        outputs = []
        for info in result.files():
            if info.get("type", "output") != "output":
                continue  # previews in temp/ are not results
            rec = {k: info.get(k, "") for k in ("filename", "subfolder", "type")}
            if self.opt.download_dir is not None:
                rec["local"] = str(self.client.download(info, Path(self.opt.download_dir) / job_id))
            outputs.append(rec)
        return outputs
