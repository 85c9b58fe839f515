"""HTTP + websocket client for one ComfyUI server.

The websocket tells us progress and completion quickly, but it is only a hint: the server's
``/history`` is the record of truth (outputs, status, timings), and it is what we fall back to when
the socket drops. A server that restarts loses its queue and history, so a prompt that is in
neither any more is reported as lost instead of being waited on forever.
"""

from __future__ import annotations

import json
import os
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import requests
import websocket

DEFAULT_URL = "http://127.0.0.1:8188"


class ComfyError(RuntimeError):
    """The server answered, but not with what was asked for."""


class ServerUnavailable(ComfyError):
    """The server cannot be reached (not started, down, or restarting)."""


class WaitTimeout(ComfyError, TimeoutError):
    """A prompt did not finish within the time given."""


class PromptLost(ComfyError):
    """The server no longer knows a prompt it accepted (it restarted or the queue was cleared)."""


class PromptRejected(ComfyError, ValueError):
    """``POST /prompt`` refused the prompt; ``node_errors`` holds the server's per-node reasons."""

    def __init__(self, message: str, error: dict | None = None, node_errors: dict | None = None):
        super().__init__(message)
        self.error = error or {}
        self.node_errors = node_errors or {}


@dataclass
class Progress:
    """One progress report of a running prompt, for progress bars."""

    prompt_id: str
    node: str | None  # node executing now
    value: int  # step within that node (sampler steps, frames ...)
    max: int
    nodes_done: int  # nodes finished or taken from cache
    nodes_total: int  # nodes in the submitted prompt (0 when unknown)


@dataclass
class RunResult:
    prompt_id: str
    ok: bool
    outputs: dict[str, dict] = field(default_factory=dict)  # node id -> UI output (images, gifs, audio, text)
    error: dict | None = None  # the execution_error / execution_interrupted payload
    seconds: float = 0.0  # execution time on the server (queue wait excluded when known)
    interrupted: bool = False

    def files(self) -> list[dict]:
        """File records ({filename, subfolder, type}) of every output, in node order."""
        found: list[dict] = []
        for node_id in sorted(self.outputs, key=_node_sort_key):
            for value in self.outputs[node_id].values():
                if isinstance(value, list):
                    found.extend(v for v in value if isinstance(v, dict) and "filename" in v)
        return found

    @property
    def error_message(self) -> str:
        if self.ok:
            return ""
        if self.interrupted:
            return "interrupted"
        if not self.error:
            return "failed without an error message"
        where = f"node {self.error.get('node_id')} ({self.error.get('node_type')})" if self.error.get("node_id") else ""
        msg = f"{self.error.get('exception_type', 'error')}: {self.error.get('exception_message', '').strip()}"
        return f"{where}: {msg}" if where else msg


def _node_sort_key(node_id: str) -> tuple:
    return (0, int(node_id), "") if str(node_id).isdigit() else (1, 0, str(node_id))


def normalize_url(url: str) -> str:
    """'127.0.0.1:8188', 'localhost', 'http://h:1/' -> 'http://h:port' (no trailing slash)."""
    url = (url or DEFAULT_URL).strip()
    if "://" not in url:
        url = "http://" + url
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018  (raises ValueError for a port that is not a number in 0..65535)
    except ValueError as e:
        raise ValueError(f"--url: {url!r} is not a valid address ({e})") from e
    if parts.scheme not in ("http", "https") or not parts.hostname or any(c.isspace() for c in url):
        raise ValueError(f"--url: {url!r} is not an http(s) address of a ComfyUI server")
    return url.rstrip("/")


@dataclass
class _PromptState:
    nodes_total: int = 0
    submitted_at: float = field(default_factory=time.monotonic)
    started_at: float | None = None
    finished: bool = False
    current: str | None = None
    done_nodes: set = field(default_factory=set)
    outputs: dict = field(default_factory=dict)
    error: dict | None = None
    interrupted: bool = False


class ComfyClient:
    """A connection to one ComfyUI server. Not thread-safe: use one client per thread."""

    def __init__(self, url: str = DEFAULT_URL, client_id: str | None = None, http_timeout: float = 60.0):
        self.url = normalize_url(url)
        self.client_id = client_id or uuid.uuid4().hex
        self.http_timeout = http_timeout
        self._session = requests.Session()
        self._ws: websocket.WebSocket | None = None
        self._ws_retry_at = 0.0
        self._states: dict[str, _PromptState] = {}
        self._object_info: dict | None = None

    # -- plumbing ---------------------------------------------------------------------------------
    def _request(self, method: str, path: str, **kw: Any) -> requests.Response:
        kw.setdefault("timeout", self.http_timeout)
        try:
            resp = self._session.request(method, self.url + path, **kw)
        except (requests.ConnectionError, requests.Timeout) as e:
            raise ServerUnavailable(f"ComfyUI at {self.url} is not reachable ({type(e).__name__})") from e
        if resp.status_code in (502, 503, 504):
            raise ServerUnavailable(f"ComfyUI at {self.url} answered {resp.status_code} to {method} {path}")
        return resp

    def _json(self, method: str, path: str, **kw: Any) -> Any:
        resp = self._request(method, path, **kw)
        if resp.status_code != 200:
            raise ComfyError(f"{method} {path} -> HTTP {resp.status_code}: {resp.text[:500]}")
        try:
            return resp.json()
        except ValueError as e:
            raise ComfyError(f"{method} {path} returned no JSON: {resp.text[:200]!r}") from e

    def _ws_url(self) -> str:
        parts = urlsplit(self.url)
        scheme = "wss" if parts.scheme == "https" else "ws"
        return f"{scheme}://{parts.netloc}{parts.path}/ws?clientId={self.client_id}"

    def _ensure_ws(self) -> bool:
        """Connects the websocket if it is not; never raises (history polling covers a missing socket)."""
        if self._ws is not None:
            return True
        if time.monotonic() < self._ws_retry_at:
            return False
        try:
            self._ws = websocket.create_connection(self._ws_url(), timeout=10)
            self._ws.settimeout(0.5)
            return True
        except (OSError, websocket.WebSocketException):
            self._ws = None
            self._ws_retry_at = time.monotonic() + 2.0
            return False

    def _drop_ws(self) -> None:
        if self._ws is not None:
            try:
                self._ws.close()
            except Exception:  # closing a broken socket may raise anything; it is gone either way
                pass
        self._ws = None

    def close(self) -> None:
        self._drop_ws()
        self._session.close()

    def __enter__(self) -> ComfyClient:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    # -- server information -----------------------------------------------------------------------
    def is_ready(self) -> bool:
        try:
            return self._request("GET", "/system_stats", timeout=5).status_code == 200
        except ServerUnavailable:
            return False

    def wait_ready(self, timeout: float = 60.0, interval: float = 0.5) -> dict:
        """Waits until the server answers ``/system_stats``; returns it. Raises ServerUnavailable."""
        deadline = time.monotonic() + timeout
        last = "no answer"
        while True:
            try:
                resp = self._request("GET", "/system_stats", timeout=5)
                if resp.status_code == 200:
                    return resp.json()
                last = f"HTTP {resp.status_code}"
            except ServerUnavailable as e:
                last = str(e)
            if time.monotonic() >= deadline:
                raise ServerUnavailable(f"ComfyUI at {self.url} not ready after {timeout:.0f} s: {last}")
            time.sleep(interval)

    def object_info(self, refresh: bool = False) -> dict:
        """Every node's schema (``GET /object_info``), cached per client."""
        if self._object_info is None or refresh:
            self._object_info = self._json("GET", "/object_info")
        return self._object_info

    def queue(self) -> dict:
        return self._json("GET", "/queue")

    def history(self, prompt_id: str | None = None, max_items: int | None = None) -> dict:
        if prompt_id:
            return self._json("GET", f"/history/{prompt_id}")
        return self._json("GET", "/history", params={"max_items": max_items} if max_items else None)

    # -- files --------------------------------------------------------------------------------------
    def upload(
        self, path: str | os.PathLike, subfolder: str = "", name: str | None = None, overwrite: bool = True
    ) -> str:
        """Uploads a local file into the server's input folder; returns the value a loader widget takes
        ("name" or "subfolder/name"). Any file type works (the endpoint is named for images only)."""
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"cannot upload {str(path)!r}: no such file")
        with path.open("rb") as fh:
            resp = self._request(
                "POST",
                "/upload/image",
                files={"image": (name or path.name, fh, "application/octet-stream")},
                data={"type": "input", "subfolder": subfolder, "overwrite": "true" if overwrite else "false"},
            )
        if resp.status_code != 200:
            raise ComfyError(f"upload of {str(path)!r} refused: HTTP {resp.status_code} {resp.text[:200]}")
        info = resp.json()
        return f"{info['subfolder']}/{info['name']}" if info.get("subfolder") else info["name"]

    def download(self, file_info: dict, dest_dir: str | os.PathLike, name: str | None = None) -> Path:
        """Saves one output file ({filename, subfolder, type} as in RunResult.files()) into dest_dir."""
        dest_dir = Path(dest_dir)
        dest_dir.mkdir(parents=True, exist_ok=True)
        # Only the base name: a server-provided name must not escape dest_dir.
        target = dest_dir / Path(name or file_info["filename"]).name
        params = {
            "filename": file_info["filename"],
            "subfolder": file_info.get("subfolder", ""),
            "type": file_info.get("type", "output"),
        }
        resp = self._request("GET", "/view", params=params, stream=True)
        if resp.status_code != 200:
            raise ComfyError(f"download of {file_info['filename']!r} failed: HTTP {resp.status_code}")
        tmp = target.with_name(target.name + ".part")
        with tmp.open("wb") as fh:
            for chunk in resp.iter_content(1 << 20):
                fh.write(chunk)
        os.replace(tmp, target)
        return target

    # -- prompts ------------------------------------------------------------------------------------
    def submit(self, prompt: dict, extra_data: dict | None = None, prompt_id: str | None = None) -> str:
        """Queues an API-format prompt; returns its id. Raises PromptRejected with the server's reasons."""
        # Connect first: events of a prompt go only to the socket that exists when they are sent.
        self._ensure_ws()
        body: dict[str, Any] = {"prompt": prompt, "client_id": self.client_id}
        if extra_data:
            body["extra_data"] = extra_data
        if prompt_id:
            body["prompt_id"] = prompt_id
        resp = self._request("POST", "/prompt", json=body)
        try:
            data = resp.json()
        except ValueError:
            data = {}
        if resp.status_code == 400:
            raise PromptRejected(format_rejection(data), data.get("error"), data.get("node_errors"))
        if resp.status_code != 200 or "prompt_id" not in data:
            raise ComfyError(f"POST /prompt -> HTTP {resp.status_code}: {resp.text[:500]}")
        pid = data["prompt_id"]
        self._states[pid] = _PromptState(nodes_total=len(prompt))
        return pid

    def run(
        self,
        prompt: dict,
        timeout: float | None = None,
        extra_data: dict | None = None,
        on_progress: Callable[[Progress], None] | None = None,
    ) -> RunResult:
        return self.wait(self.submit(prompt, extra_data), timeout, on_progress)

    def interrupt(self, prompt_id: str | None = None) -> None:
        """Stops the running prompt (only if it is prompt_id, when given)."""
        self._request("POST", "/interrupt", json={"prompt_id": prompt_id} if prompt_id else {})

    def cancel(self, prompt_ids: list[str]) -> None:
        """Removes prompts that have not started from the queue."""
        if prompt_ids:
            self._request("POST", "/queue", json={"delete": list(prompt_ids)})

    def free(self, unload_models: bool = True, free_memory: bool = False) -> None:
        """Asks the server to unload models / drop caches once the current prompt ends."""
        self._request("POST", "/free", json={"unload_models": unload_models, "free_memory": free_memory})

    def wait(
        self,
        prompt_id: str,
        timeout: float | None = None,
        on_progress: Callable[[Progress], None] | None = None,
        poll_interval: float = 5.0,
        unreachable_grace: float = 60.0,
    ) -> RunResult:
        """Follows a prompt to its end. Raises WaitTimeout, PromptLost, or ServerUnavailable when the
        server stays unreachable for longer than ``unreachable_grace`` seconds."""
        state = self._states.setdefault(prompt_id, _PromptState())
        deadline = None if timeout is None else time.monotonic() + timeout
        next_poll = 0.0
        unreachable_since: float | None = None
        while True:
            now = time.monotonic()
            if state.finished or now >= next_poll or self._ws is None:
                try:
                    result = self._result_from_history(prompt_id, state)
                    unreachable_since = None
                except ServerUnavailable:
                    result = None
                    unreachable_since = unreachable_since or now
                    if now - unreachable_since > unreachable_grace:
                        raise
                if result is not None:
                    self._states.pop(prompt_id, None)
                    return result
                next_poll = now + (0.2 if state.finished else poll_interval)
            if deadline is not None and now >= deadline:
                raise WaitTimeout(f"prompt {prompt_id} not finished after {timeout:.0f} s")
            if self._ensure_ws():
                self._pump(on_progress)
            else:
                time.sleep(0.5)

    def _pump(self, on_progress: Callable[[Progress], None] | None) -> None:
        """Reads websocket messages for up to ~0.5 s and applies them to the prompt states."""
        try:
            raw = self._ws.recv()
        except websocket.WebSocketTimeoutException:
            return
        except (OSError, websocket.WebSocketException):
            self._drop_ws()
            return
        if not isinstance(raw, str):
            return  # binary latent previews
        try:
            msg = json.loads(raw)
        except ValueError:
            return
        kind, data = msg.get("type"), msg.get("data") or {}
        pid = data.get("prompt_id")
        state = self._states.get(pid) if pid else None
        if state is None:
            return
        if kind == "execution_start":
            state.started_at = time.monotonic()
        elif kind == "execution_cached":
            state.done_nodes.update(data.get("nodes") or [])
        elif kind == "executing":
            if state.current is not None:
                state.done_nodes.add(state.current)
            state.current = data.get("node")
            if state.current is None:
                state.finished = True
        elif kind == "executed":
            state.outputs[str(data.get("node"))] = data.get("output") or {}
        elif kind == "execution_error":
            state.error = data
        elif kind == "execution_interrupted":
            state.error, state.interrupted = data, True
        elif kind == "execution_success":
            state.finished = True
        if on_progress is not None and kind in ("executing", "progress", "execution_cached"):
            on_progress(
                Progress(
                    prompt_id=pid,
                    node=data.get("node", state.current),
                    value=int(data.get("value", 0)) if kind == "progress" else 0,
                    max=int(data.get("max", 1)) if kind == "progress" else 1,
                    nodes_done=len(state.done_nodes),
                    nodes_total=state.nodes_total,
                )
            )

    def _result_from_history(self, prompt_id: str, state: _PromptState) -> RunResult | None:
        entry = self.history(prompt_id).get(prompt_id)
        if entry is None:
            if state.finished:
                return None  # history is written before the completion event; a moment more
            q = self.queue()
            queued = {item[1] for key in ("queue_running", "queue_pending") for item in q.get(key, [])}
            if prompt_id in queued:
                return None
            # It may have finished between the two requests.
            entry = self.history(prompt_id).get(prompt_id)
            if entry is None:
                raise PromptLost(
                    f"prompt {prompt_id} is neither queued nor in the history of {self.url} "
                    "(the server restarted or the queue was cleared)"
                )
        status = entry.get("status") or {}
        if not status.get("completed") and status.get("status_str") not in ("success", "error"):
            return None
        return result_from_history_entry(prompt_id, entry, fallback_seconds=_elapsed(state))


def _elapsed(state: _PromptState) -> float:
    return time.monotonic() - (state.started_at or state.submitted_at)


def result_from_history_entry(prompt_id: str, entry: dict, fallback_seconds: float = 0.0) -> RunResult:
    """A RunResult from one ``/history`` record."""
    status = entry.get("status") or {}
    messages = status.get("messages") or []
    error, interrupted, start_ms, end_ms = None, False, None, None
    for event, data in messages:
        ts = data.get("timestamp") if isinstance(data, dict) else None
        if event == "execution_start":
            start_ms = ts
        elif event in ("execution_success", "execution_error", "execution_interrupted"):
            end_ms = ts
            if event != "execution_success":
                error, interrupted = data, event == "execution_interrupted"
    ok = status.get("status_str") == "success" and error is None
    seconds = (end_ms - start_ms) / 1000.0 if start_ms is not None and end_ms is not None else fallback_seconds
    return RunResult(
        prompt_id=prompt_id,
        ok=ok,
        outputs=entry.get("outputs") or {},
        error=error,
        seconds=max(0.0, seconds),
        interrupted=interrupted,
    )


def format_rejection(data: dict) -> str:
    """One readable line per problem of a ``POST /prompt`` 400 answer."""
    err = data.get("error") or {}
    lines = [err.get("message") or "prompt rejected"]
    if err.get("details"):
        lines[0] += f": {err['details']}"
    for node_id, ne in sorted((data.get("node_errors") or {}).items(), key=lambda kv: _node_sort_key(kv[0])):
        for e in ne.get("errors", []):
            text = e.get("message") or e.get("type") or "invalid"
            if e.get("details"):
                text += f": {e['details']}"
            lines.append(f"node {node_id} ({ne.get('class_type')}): {text}")
    return "; ".join(lines)
