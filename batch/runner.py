"""A batch: check every job, then run them with retries on one or more servers, keeping a results file.

The results file (JSON) is rewritten after every job through a temporary file and a rename, so it is
always complete and readable, even after Ctrl-C or a crash. A re-run skips every job recorded as
``ok`` or ``failed`` (after all its retries) whose fingerprint (prompt + contents of its uploaded
files) has not changed; ``--retry-failed`` runs the failed ones again. Jobs that were interrupted,
stopped by a server outage, never reached, or changed since, always run again.

Several servers (``--url`` more than once) share one queue of jobs: each server runs ``per_server``
jobs at a time (one client connection each, in a thread), uploads go to the server that runs the job,
and a job whose server dies or restarts while it runs goes back to the queue for any server. The batch
stops early only when every server is gone. With one server the jobs run one after the other in the
calling thread, exactly as before.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from . import best_of
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
        self._lock = threading.RLock()  # several servers' workers record into one file
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
        with self._lock:
            rec = self.jobs.setdefault(job_id, {})
            rec.update(fields)
            rec["updated"] = time.strftime("%Y-%m-%dT%H:%M:%S")
            self.save()

    def save(self) -> None:
        with self._lock:
            self._write()

    def _write(self) -> None:
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
    per_server: int = 1  # jobs running at once on each server
    best_of: int = 1  # seeds per job
    rank_by: str = "sync_c"  # metric that picks the best of a job's variants
    score_workflow: dict | None = None  # API prompt scoring one output video (see best_of.score_prompt)


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


class _ServerLost(Exception):
    """The worker's server stopped answering, or forgot the prompt, while a job ran on it."""


@dataclass
class _Slot:
    """One worker: a client connection to one server (a server has ``per_server`` of them)."""

    client: ComfyClient
    progress: ProgressLine


class _Queue:
    """The jobs left to run, shared by the workers of every server."""

    def __init__(self, plans: list[JobPlan], workers: int):
        self.pending: deque[JobPlan] = deque(plans)
        self.running = 0
        self.alive = workers
        self.attempts: dict[str, int] = {}
        self.cond = threading.Condition()

    def take(self) -> JobPlan | None:
        """The next job, or None when none is left and none is running (nothing can come back)."""
        with self.cond:
            while not self.pending and self.running:
                self.cond.wait(0.5)
            if not self.pending:
                return None
            self.running += 1
            return self.pending.popleft()

    def finished(self, plan: JobPlan, requeue: bool = False) -> None:
        with self.cond:
            self.running -= 1
            if requeue:
                self.pending.appendleft(plan)
            self.cond.notify_all()

    def idle(self) -> bool:
        with self.cond:
            return not self.pending and not self.running


class BatchRunner:
    def __init__(
        self,
        client: ComfyClient | list[ComfyClient],
        workflow: Workflow,
        results: Results,
        options: BatchOptions,
        log: Callable[[str], None] = lambda s: print(s, file=sys.stderr),
        progress: ProgressLine | None = None,
    ):
        self.clients = list(client) if isinstance(client, list | tuple) else [client]
        self.client = self.clients[0]  # checks the jobs against its /object_info
        self.workflow, self.results, self.opt = workflow, results, options
        self.log = log
        self.progress = progress or ProgressLine(enabled=False)
        self._uploaded: dict[str, dict[str, str]] = {}  # server -> file digest -> name on that server
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._running: dict[str, tuple[str, str]] = {}  # job id -> (server url, prompt id)

    # -- public ----------------------------------------------------------------------------------------
    def run(self, jobs: list[Job], base_dir: Path) -> BatchSummary:
        summary = BatchSummary(total=len(jobs))
        object_info = self.client.object_info()
        plans, invalid = plan_all(self.workflow, object_info, jobs, base_dir)
        plans, groups, more_invalid = best_of.expand(plans, self.opt.best_of, object_info)
        invalid.update(more_invalid)
        for job_id, problem in invalid.items():
            summary.invalid += 1
            summary.problems[job_id] = problem
            self.log(f"invalid job {job_id}: {problem}")
        if self.opt.dry_run:
            for plan in plans:
                ups = f", uploads {[str(u.path) for u in plan.uploads]}" if plan.uploads else ""
                self.log(f"ok      job {plan.job.id} ({plan.job.source}){ups}")
            return summary
        urls = [c.url for c in self.clients]
        self.results.meta.update(workflow=str(self.workflow.path), server=urls[0])
        if len(set(urls)) > 1:
            self.results.meta["servers"] = sorted(set(urls), key=urls.index)
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
        self._total = len(todo)
        self._started = 0
        slots = self._slots()
        queue = _Queue(todo, len(slots))
        try:
            if len(slots) == 1:
                self._work(slots[0], queue, summary)
            else:
                self._work_in_threads(slots, queue, summary)
        except KeyboardInterrupt:
            summary.interrupted = True
            self._stop.set()
            self._stop_running()
            self.log("interrupted: the running job(s) were stopped on the server; re-run to resume")
        if not summary.interrupted and queue.pending:
            summary.aborted = "every server is gone"
            for plan in queue.pending:
                if queue.attempts.get(plan.job.id):
                    summary.problems[plan.job.id] = self.results.jobs.get(plan.job.id, {}).get("error", "")
            self.log(f"batch stopped: {summary.aborted}; re-run to resume")
        if groups:
            self._pick_best(groups)
        return summary

    # -- workers ---------------------------------------------------------------------------------------
    def _slots(self) -> list[_Slot]:
        from .client import ComfyClient as _Client

        slots = []
        several = len(self.clients) * max(self.opt.per_server, 1) > 1
        for client in self.clients:
            for k in range(max(self.opt.per_server, 1)):
                c = client if k == 0 else _Client(client.url, http_timeout=client.http_timeout)
                # several jobs at once: one plain line per event, never a redrawn line
                line = ProgressLine(self.progress.stream, enabled=self.progress.enabled) if several else self.progress
                if several:
                    line.tty = False
                slots.append(_Slot(c, line))
        return slots

    def _work_in_threads(self, slots: list[_Slot], queue: _Queue, summary: BatchSummary) -> None:
        threads = [
            threading.Thread(target=self._work, args=(slot, queue, summary), name=f"hv_batch-{n}", daemon=True)
            for n, slot in enumerate(slots)
        ]
        for t in threads:
            t.start()
        try:
            while any(t.is_alive() for t in threads):
                for t in threads:
                    t.join(0.2)
        finally:
            for slot in slots[1:]:
                if slot.client not in self.clients:
                    slot.client.close()

    def _work(self, slot: _Slot, queue: _Queue, summary: BatchSummary) -> None:
        """One worker: takes jobs until none is left; when its server is lost, hands the job back and waits
        for the server (up to --server-wait, or until the other servers have finished everything)."""
        server = slot.client.url
        try:
            while not self._stop.is_set():
                plan = queue.take()
                if plan is None:
                    return
                with self._lock:
                    self._started += 1
                    label = f"[{self._started}/{self._total}] {plan.job.id}"
                if len(self.clients) > 1:
                    label += f" on {server}"
                try:
                    self._run_job(plan, slot, label, summary, queue)
                except _ServerLost:
                    queue.finished(plan, requeue=True)
                    if not self._wait_for_server(slot.client, queue):
                        self.log(f"server {server} gone: its jobs go to the other servers")
                        return
                    with self._lock:
                        self._uploaded.pop(server, None)  # a restarted server may have a fresh input folder
                    continue
                except KeyboardInterrupt:
                    queue.finished(plan)
                    raise
                queue.finished(plan)
        finally:
            with queue.cond:
                queue.alive -= 1
                queue.cond.notify_all()

    def _wait_for_server(self, client: ComfyClient, queue: _Queue) -> bool:
        if len(self.clients) == 1:
            try:
                client.wait_ready(self.opt.server_wait)
                return True
            except ServerUnavailable:
                return False
        deadline = time.monotonic() + self.opt.server_wait
        while time.monotonic() < deadline and not self._stop.is_set():
            if client.is_ready():
                return True
            with queue.cond:
                others = queue.alive > 1
            if others and queue.idle():
                return False  # the others finished everything: nothing to come back for
            time.sleep(0.5)
        return False

    def _stop_running(self) -> None:
        from .client import ComfyClient as _Client

        with self._lock:
            running = dict(self._running)
        for job_id, (url, prompt_id) in running.items():
            with _Client(url, http_timeout=10) as c:
                try:
                    c.cancel([prompt_id])
                    c.interrupt(prompt_id)
                except ComfyError:
                    pass
            if self.results.jobs.get(job_id, {}).get("status") != STATUS_OK:
                self.results.record(job_id, status=STATUS_INTERRUPTED, error="interrupted by the user")

    # -- one job -----------------------------------------------------------------------------------------
    def _run_job(self, plan: JobPlan, slot: _Slot, label: str, summary: BatchSummary, queue: _Queue) -> None:
        job_id = plan.job.id
        client, progress = slot.client, slot.progress
        fingerprint = plan.fingerprint()
        last_error = self.results.jobs.get(job_id, {}).get("error") or ""
        transient = False
        while queue.attempts.get(job_id, 0) <= self.opt.retries:
            with self._lock:
                queue.attempts[job_id] = attempts = queue.attempts.get(job_id, 0) + 1
            progress.start(label + (f" (attempt {attempts})" if attempts > 1 else ""))
            started = time.monotonic()
            prompt_id, transient = None, False
            try:
                prompt = self._with_uploads(plan, client)
                extra = {"extra_pnginfo": {"workflow": self.workflow.ui}} if self.workflow.ui else None
                prompt_id = client.submit(prompt, extra_data=extra)
                with self._lock:
                    summary.submitted += 1
                    self._running[job_id] = (client.url, prompt_id)
                result = client.wait(
                    prompt_id,
                    timeout=self.opt.timeout,
                    on_progress=progress.update,
                    unreachable_grace=self.opt.server_wait
                    if len(self.clients) == 1
                    else min(self.opt.server_wait, 5.0),
                )
            except KeyboardInterrupt:
                self._stop_prompt(client, prompt_id)
                self.results.record(job_id, status=STATUS_INTERRUPTED, error="interrupted by the user")
                raise
            except PromptRejected as e:
                # The server's validation is deterministic: retrying cannot help.
                last_error = f"rejected by the server: {e}"
                break
            except WaitTimeout as e:
                self._stop_prompt(client, prompt_id)
                last_error = str(e)
                continue
            except (ServerUnavailable, PromptLost) as e:
                last_error, transient = str(e), True
                progress.done(f"server problem: {e}")
                self.results.record(
                    job_id,
                    status=STATUS_PENDING,
                    error=last_error,
                    attempts=attempts,
                    fingerprint=fingerprint,
                    source=plan.job.source,
                )
                if attempts <= self.opt.retries:
                    raise _ServerLost(str(e)) from e
                break
            except (ComfyError, OSError) as e:
                last_error = f"{type(e).__name__}: {e}"
                continue
            finally:
                with self._lock:
                    self._running.pop(job_id, None)
            if self._stop.is_set():
                return
            if result.ok:
                outputs = self._collect(result, job_id, client)
                seconds = result.seconds or (time.monotonic() - started)
                fields: dict[str, Any] = {}
                scores = best_of.scores_from_outputs(result.outputs)
                if scores is None and self.opt.score_workflow is not None:
                    scores, score_error = self._score(client, outputs)
                    if score_error:
                        fields["score_error"] = score_error
                if scores is not None:
                    fields["scores"] = scores
                self.results.record(
                    job_id,
                    status=STATUS_OK,
                    error=None,
                    attempts=attempts,
                    outputs=outputs,
                    seconds=round(seconds, 3),
                    prompt_id=prompt_id,
                    server=client.url,
                    fingerprint=fingerprint,
                    source=plan.job.source,
                    **fields,
                )
                shown = f", {self.opt.rank_by} {scores[self.opt.rank_by]:.3f}" if scores else ""
                progress.done(f"ok in {seconds:.1f} s, {len(outputs)} file(s){shown}")
                with self._lock:
                    summary.ok += 1
                if self.opt.free_between:
                    client.free(unload_models=True)
                return
            last_error = result.error_message
            progress.done(f"failed: {last_error}")
        # A job that only met server outages is not the job's fault: a re-run tries it again.
        self.results.record(
            job_id,
            status=STATUS_PENDING if transient else STATUS_FAILED,
            error=last_error,
            attempts=queue.attempts.get(job_id, 0),
            outputs=[],
            fingerprint=fingerprint,
            source=plan.job.source,
        )
        progress.done(f"FAILED after {queue.attempts.get(job_id, 0)} attempt(s): {last_error}")
        with self._lock:
            summary.failed += 1
            summary.problems[job_id] = last_error

    def _stop_prompt(self, client: ComfyClient, prompt_id: str | None) -> None:
        if prompt_id is None:
            return
        try:
            client.cancel([prompt_id])
            client.interrupt(prompt_id)
        except ComfyError:
            pass  # the server is gone: nothing left to stop

    def _with_uploads(self, plan: JobPlan, client: ComfyClient) -> dict:
        prompt = json.loads(json.dumps(plan.prompt))
        for up in plan.uploads:
            digest = file_digest(up.path)
            with self._lock:
                name = self._uploaded.get(client.url, {}).get(digest)
            if name is None:
                # Content-addressed names: two local files called face.png never overwrite each other.
                name = client.upload(up.path, name=f"hvb_{digest}_{up.path.name}")
                with self._lock:
                    self._uploaded.setdefault(client.url, {})[digest] = name
            prompt[up.node_id]["inputs"][up.input] = name
        return prompt

    def _collect(self, result: RunResult, job_id: str, client: ComfyClient) -> list[dict]:
        outputs = []
        for info in result.files():
            if info.get("type", "output") != "output":
                continue  # previews in temp/ are not results
            rec = {k: info.get(k, "") for k in ("filename", "subfolder", "type")}
            if self.opt.download_dir is not None:
                rec["local"] = str(client.download(info, Path(self.opt.download_dir) / job_id))
            outputs.append(rec)
        return outputs

    # -- scores and the best of N --------------------------------------------------------------------
    def _score(self, client: ComfyClient, outputs: list[dict]) -> tuple[dict | None, str | None]:
        """Runs the scoring workflow on the first output video, on the server that holds it."""
        videos = best_of.video_outputs(outputs)
        if not videos:
            return None, "no video output to score"
        try:
            prompt = best_of.score_prompt(self.opt.score_workflow, client.object_info(), videos[0])
            result = client.run(prompt, timeout=self.opt.timeout)
        except (ComfyError, JobError) as e:
            return None, f"scoring failed: {e}"
        if not result.ok:
            return None, f"scoring failed: {result.error_message}"
        scores = best_of.scores_from_outputs(result.outputs)
        return scores, None if scores else "the scoring workflow reported no lip-sync score"

    def _pick_best(self, groups: dict[str, list[str]]) -> None:
        best = dict(self.results.meta.get("best") or {})
        for job_id, variant_ids in groups.items():
            variants = {v: self.results.jobs.get(v, {}) for v in variant_ids}
            best[job_id] = best_of.best_record(job_id, variants, self.opt.rank_by, self.opt.download_dir)
            chosen = best[job_id]["variant"]
            self.log(f"best of {job_id}: {chosen or 'none'} ({best[job_id]['why']})")
        with self.results._lock:
            self.results.meta["best"] = best
            self.results.save()
