"""Command line of the batch client."""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from .best_of import RANK_METRICS
from .client import DEFAULT_URL, ComfyClient, ServerUnavailable, normalize_url
from .jobs import JobError, read_jobs
from .runner import BatchOptions, BatchRunner, ProgressLine, Results, load_workflow
from .ui_to_api import WorkflowError

EPILOG = """\
job columns / keys: '<node title or id>.<input>' (e.g. 'Positive.text', '3.seed'), or the shortcuts
prompt, negative, image, audio, video, seed, size (WxH), frames, prefix; 'id' names the job.
exit status: 0 all jobs ok, 1 some job failed or is invalid, 2 bad arguments / workflow / job file,
3 server unreachable, 130 interrupted (Ctrl-C). Re-run the same command to resume."""


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="hv_batch",
        description="Run a ComfyUI workflow once per job of a CSV / JSONL list through a running ComfyUI server.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("workflow", help="workflow JSON, UI format (as saved by the page) or API format")
    p.add_argument("jobs", help="job list: .csv (header + one row per job) or .jsonl (one JSON object per line)")
    p.add_argument(
        "--url",
        action="append",
        help=f"ComfyUI server (default {DEFAULT_URL}); give it several times to spread the jobs over several "
        "servers (a job whose server dies goes to the others)",
    )
    p.add_argument(
        "--per-server", type=int, default=1, help="jobs running at once on each server (default 1: one at a time)"
    )
    p.add_argument(
        "--best-of",
        type=int,
        default=1,
        metavar="N",
        help="run every job N times with seeds seed .. seed+N-1 (jobs <id>@1 .. <id>@N) and pick the best by "
        "--rank-by (scores from a Lip-Sync Score node in the workflow, or --score-workflow)",
    )
    p.add_argument(
        "--rank-by",
        choices=sorted(RANK_METRICS),
        default="sync_c",
        help="metric that picks the best of N: sync_c (higher is better, default) or sync_d (lower is better)",
    )
    p.add_argument(
        "--score-workflow",
        metavar="FILE",
        help="API or UI workflow that scores one video (a video loader + Lip-Sync Score); run on each job's "
        "output video, on the server that made it",
    )
    p.add_argument("--results", help="results file (default: <jobs>.results.json next to the job list)")
    p.add_argument(
        "--dry-run", action="store_true", help="check every job against the server's /object_info, submit nothing"
    )
    p.add_argument("--retries", type=int, default=1, help="extra attempts of a job that fails (default 1)")
    p.add_argument("--retry-failed", action="store_true", help="also re-run jobs that failed in an earlier run")
    p.add_argument("--timeout", type=float, default=None, help="seconds per attempt before it is interrupted")
    p.add_argument(
        "--server-wait",
        type=float,
        default=120.0,
        help="seconds to wait for a server that is down or restarting (default 120)",
    )
    p.add_argument("--download", metavar="DIR", help="also download each job's output files into DIR/<job id>/")
    p.add_argument("--free-between", action="store_true", help="unload models after every job")
    p.add_argument("--no-progress", action="store_true", help="no progress display")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    err = lambda s: print(s, file=sys.stderr)  # noqa: E731
    if args.retries < 0:
        err("error: --retries must be 0 or more")
        return 2
    if args.per_server < 1 or args.best_of < 1:
        err("error: --per-server and --best-of must be 1 or more")
        return 2
    try:
        urls = [normalize_url(u) for u in (args.url or [DEFAULT_URL])]
        jobs_path = Path(args.jobs)
        jobs = read_jobs(jobs_path)
        results = Results(args.results or jobs_path.with_name(jobs_path.name + ".results.json"))
    except (JobError, ValueError) as e:
        err(f"error: {e}")
        return 2
    clients = [ComfyClient(u) for u in dict.fromkeys(urls)]
    try:
        try:
            client = _first_ready(clients, min(args.server_wait, 30.0))
            clients.remove(client)
            clients.insert(0, client)  # jobs are checked against the first server that answers
            workflow = load_workflow(args.workflow, client.object_info())
            score_workflow = (
                load_workflow(args.score_workflow, client.object_info()).prompt if args.score_workflow else None
            )
        except ServerUnavailable as e:
            err(f"error: {e}")
            return 3
        except WorkflowError as e:
            err(f"error: {e}")
            return 2
        opts = BatchOptions(
            retries=args.retries,
            timeout=args.timeout,
            server_wait=args.server_wait,
            download_dir=Path(args.download) if args.download else None,
            free_between=args.free_between,
            dry_run=args.dry_run,
            retry_failed=args.retry_failed,
            per_server=args.per_server,
            best_of=args.best_of,
            rank_by=args.rank_by,
            score_workflow=score_workflow,
        )
        runner = BatchRunner(
            clients, workflow, results, opts, log=err, progress=ProgressLine(sys.stderr, enabled=not args.no_progress)
        )
        summary = runner.run(jobs, jobs_path.resolve().parent)
    except KeyboardInterrupt:
        err("interrupted")
        return 130
    finally:
        for c in clients:
            c.close()
    verb = "would run" if args.dry_run else "ok"
    line = (
        f"{summary.total} job(s): {summary.ok if not args.dry_run else summary.total - summary.invalid} {verb}, "
        f"{summary.failed} failed, {summary.invalid} invalid, {summary.skipped} skipped (done earlier), "
        f"{summary.submitted} submitted"
    )
    err(line)
    if not args.dry_run:
        err(f"results: {results.path}")
    print(
        json.dumps(
            {
                "ok": summary.ok,
                "failed": summary.failed,
                "invalid": summary.invalid,
                "skipped": summary.skipped,
                "submitted": summary.submitted,
                "interrupted": summary.interrupted,
                "aborted": summary.aborted,
            }
        )
    )
    return summary.exit_code


def _first_ready(clients: list[ComfyClient], timeout: float) -> ComfyClient:
    """The first server that answers within ``timeout`` (the others may still come up later)."""
    deadline = time.monotonic() + timeout
    while True:
        for c in clients:
            if c.is_ready():
                return c
        if time.monotonic() >= deadline:
            names = ", ".join(c.url for c in clients)
            raise ServerUnavailable(f"ComfyUI is not reachable: no server answered within {timeout:.0f} s ({names})")
        time.sleep(0.5)
