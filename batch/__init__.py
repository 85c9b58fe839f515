"""Batch runs of ComfyUI workflows through the HTTP + websocket API.

This package is deliberately independent of the rest of the pack (whose root imports ComfyUI): it
needs only ``requests`` and ``websocket-client`` and runs against any ComfyUI server, local or remote.

- ``client``: one server connection (upload, submit, follow, history, download, interrupt, free).
- ``ui_to_api``: UI-format workflow -> API-format prompt, using the server's ``/object_info``.
- ``jobs``: job lists (CSV / JSONL) and how a job's overrides address inputs of the prompt.
- ``runner``: validation, submission, retries, resume and the results file.

Command line: ``python scripts/hv_batch.py --help`` or, from the pack folder, ``python -m batch --help``.
"""

from .client import ComfyClient, ComfyError, Progress, PromptRejected, RunResult, ServerUnavailable

__all__ = ["ComfyClient", "ComfyError", "Progress", "PromptRejected", "RunResult", "ServerUnavailable"]
