"""Job lists and how a job's values address the inputs of a prompt.

A job list is a CSV file (header row, one job per row) or a JSONL file (one JSON object per line).
Each column / key is one override:

- ``<node>.<input>``: the node by its title or its id, then the input name, e.g. ``Positive.text``,
  ``3.seed``, ``Load Image.image``. The last dot splits, so titles may contain dots.
- shortcuts that find their input by name: ``prompt`` / ``negative`` (the text of the positive /
  negative text node), ``image``, ``audio``, ``video`` (the one loader input of that name),
  ``seed`` (every ``seed`` / ``noise_seed``), ``size`` (``WxH`` into every node with width and
  height), ``frames`` (every ``length`` / ``num_frames`` / ``frames`` / ``video_length``),
  ``prefix`` (every ``filename_prefix``).
- ``id`` names the job (default ``row<N>``); results and resume are keyed by it.

An empty CSV cell means "keep the workflow's value". Values are converted to the input's type from
``/object_info`` and checked (range, choices). A value for a file input that names a local file
(relative paths are taken from the job file's folder) is uploaded before the job is submitted.
Every problem of a job is reported at once, naming the job, the column and the problem.
"""

from __future__ import annotations

import copy
import csv
import hashlib
import io
import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .ui_to_api import UPLOAD_FLAGS

RESERVED = {"id"}
SEED_NAMES = ("seed", "noise_seed")
FRAME_NAMES = ("length", "num_frames", "frames", "video_length", "frame_count")
PROMPT_NAMES = ("text", "prompt", "positive_prompt")
NEGATIVE_NAMES = ("text", "prompt", "negative_prompt")
FILE_SHORTCUTS = {"image": ("image",), "audio": ("audio", "audio_file"), "video": ("video", "file")}


class JobError(ValueError):
    """A job that cannot be run as written; the message lists every problem."""


@dataclass
class Job:
    id: str
    source: str  # "jobs.csv:4": where the job was written, for messages
    values: dict[str, Any] = field(default_factory=dict)
    error: str | None = None  # the row itself could not be read


@dataclass
class Upload:
    node_id: str
    input: str
    path: Path


@dataclass
class JobPlan:
    """A job ready to submit: its prompt, and the local files to upload into it first."""

    job: Job
    prompt: dict
    uploads: list[Upload] = field(default_factory=list)

    def fingerprint(self) -> str:
        """Changes whenever what the job would compute changes (prompt or uploaded file contents)."""
        h = hashlib.sha256(json.dumps(self.prompt, sort_keys=True, default=str).encode())
        for up in sorted(self.uploads, key=lambda u: (u.node_id, u.input)):
            h.update(f"{up.node_id}.{up.input}={file_digest(up.path)}".encode())
        return h.hexdigest()[:16]


def file_digest(path: Path) -> str:
    h = hashlib.sha256()
    with Path(path).open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()[:12]


# -- reading job lists -------------------------------------------------------------------------------
def read_jobs(path: str | Path) -> list[Job]:
    """Reads a .csv or .jsonl/.ndjson job list. A file that cannot be read at all raises JobError; a
    bad row becomes a Job with ``error`` set so the rest of the batch still runs."""
    path = Path(path)
    if not path.is_file():
        raise JobError(f"jobs: file {str(path)!r} does not exist")
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as e:
        raise JobError(f"jobs: {str(path)!r} is not UTF-8 text ({e})") from e
    suffix = path.suffix.lower()
    if suffix == ".csv":
        jobs = parse_csv(text, path.name)
    elif suffix in (".jsonl", ".ndjson", ".json"):
        jobs = parse_jsonl(text, path.name)
    else:
        raise JobError(f"jobs: {str(path)!r} must end in .csv or .jsonl")
    return _check_ids(jobs)


def parse_csv(text: str, name: str = "jobs.csv") -> list[Job]:
    # strict: an unbalanced quote is an error, instead of one field that swallows every following row.
    reader = csv.reader(io.StringIO(text), strict=True)
    rows = []
    try:
        for row in reader:
            rows.append(row)
    except csv.Error as e:
        raise JobError(
            f'jobs: {name}:{reader.line_num}: {e} (a quote is not closed? write a quote inside a quoted field as "")'
        ) from e
    while rows and not any(c.strip() for c in rows[0]):
        rows.pop(0)
    if not rows:
        raise JobError(f"jobs: {name} is empty (expected a header row and one row per job)")
    header = [h.strip() for h in rows[0]]
    if any(not h for h in header):
        raise JobError(f"jobs: {name} header has an empty column name: {rows[0]}")
    dupes = sorted({h for h in header if header.count(h) > 1})
    if dupes:
        raise JobError(f"jobs: {name} header repeats columns {dupes}")
    jobs: list[Job] = []
    for n, row in enumerate(rows[1:], start=1):
        if not any(c.strip() for c in row):
            continue
        where = f"{name}:{n + 1}"
        job = Job(id=f"row{n}", source=where)
        if len(row) != len(header):
            job.error = f"{where}: has {len(row)} fields, the header has {len(header)}"
        else:
            for key, cell in zip(header, row, strict=True):
                if key == "id":
                    job.id = cell.strip() or job.id
                elif cell.strip() != "":
                    job.values[key] = cell
        jobs.append(job)
    return jobs


def parse_jsonl(text: str, name: str = "jobs.jsonl") -> list[Job]:
    jobs: list[Job] = []
    n = 0
    for lineno, line in enumerate(text.splitlines(), start=1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        n += 1
        where = f"{name}:{lineno}"
        job = Job(id=f"row{n}", source=where)
        try:
            obj = json.loads(line)
        except ValueError as e:
            job.error = f"{where}: not valid JSON ({e})"
            jobs.append(job)
            continue
        if not isinstance(obj, dict):
            job.error = f"{where}: expected a JSON object, got {type(obj).__name__}"
        else:
            if "id" in obj:
                job.id = str(obj.pop("id"))
            job.values = {k: v for k, v in obj.items() if v is not None}
        jobs.append(job)
    if not jobs:
        raise JobError(f"jobs: {name} has no jobs")
    return jobs


def job_folder(root: str | os.PathLike, job_id: str) -> Path:
    """``root/<job id>`` with the id made a plain folder name: only letters, digits and ``._@+-`` are
    kept (others become ``_``), no leading dot, so no id can name a path outside ``root``."""
    name = re.sub(r"[^\w.@+-]", "_", job_id, flags=re.ASCII).lstrip(".") or "job"
    return Path(root) / name


def check_local_file(path: Path, allowed: list[Path], what: str) -> Path:
    """``path`` resolved (symlinks followed), if it lies inside one of the ``allowed`` folders."""
    real = path.resolve()
    for folder in allowed:
        root = folder.resolve()
        if real == root or root in real.parents:
            return real
    raise JobError(f"{what}: {str(path)!r} is outside the job file's folder; allow its folder with --allow-dir")


def _check_ids(jobs: list[Job]) -> list[Job]:
    seen: dict[str, str] = {}
    for job in jobs:
        if job.id in seen and job.error is None:
            job.error = f"{job.source}: job id {job.id!r} already used at {seen[job.id]}"
        seen.setdefault(job.id, job.source)
    return jobs


# -- addressing and checking -------------------------------------------------------------------------
def input_spec(object_info: dict, class_type: str, name: str) -> tuple[Any, dict] | None:
    inputs = (object_info.get(class_type) or {}).get("input") or {}
    for section in ("required", "optional"):
        spec = (inputs.get(section) or {}).get(name)
        if spec:
            return spec[0], (spec[1] if len(spec) > 1 and isinstance(spec[1], dict) else {})
    return None


def is_upload_input(object_info: dict, class_type: str, name: str) -> bool:
    spec = input_spec(object_info, class_type, name)
    return bool(spec) and any(spec[1].get(f) for f in UPLOAD_FLAGS)


def find_nodes(prompt: dict, ref: str) -> list[str]:
    """Node ids whose title is ``ref`` (exactly, else ignoring case), or the node with id ``ref``."""
    ref = ref.strip()
    if ref in prompt:
        return [ref]
    titles = {nid: ((n.get("_meta") or {}).get("title") or "") for nid, n in prompt.items()}
    exact = [nid for nid, t in titles.items() if t == ref]
    return exact or [nid for nid, t in titles.items() if t.lower() == ref.lower()]


def _title(prompt: dict, nid: str) -> str:
    return (prompt[nid].get("_meta") or {}).get("title") or prompt[nid]["class_type"]


def resolve_key(prompt: dict, object_info: dict, key: str) -> list[tuple[str, str]]:
    """(node id, input name) pairs a job key sets. Raises JobError when it addresses nothing or is
    ambiguous."""
    key = key.strip()
    if "." not in key:
        return _resolve_shortcut(prompt, object_info, key)
    node_ref, name = key.rsplit(".", 1)
    ids = find_nodes(prompt, node_ref)
    if not ids:
        titles = sorted({_title(prompt, n) for n in prompt})
        raise JobError(f"column {key!r}: no node titled or numbered {node_ref!r}; titles are {titles}")
    if len(ids) > 1:
        raise JobError(
            f"column {key!r}: {len(ids)} nodes are titled {node_ref!r} (ids {sorted(ids)}); "
            f"use the node id instead, e.g. '{ids[0]}.{name}'"
        )
    nid = ids[0]
    class_type = prompt[nid]["class_type"]
    if input_spec(object_info, class_type, name) is None:
        known = [
            k
            for sec in ("required", "optional")
            for k in ((object_info.get(class_type) or {}).get("input") or {}).get(sec, {}) or {}
        ]
        raise JobError(f"column {key!r}: node {nid} ({class_type}) has no input {name!r}; its inputs are {known}")
    return [(nid, name)]


def _inputs_named(prompt: dict, object_info: dict, names: tuple[str, ...], widget_only: bool = True):
    found = []
    for nid in sorted(prompt, key=lambda x: (0, int(x)) if x.isdigit() else (1, x)):
        ct = prompt[nid]["class_type"]
        for name in names:
            spec = input_spec(object_info, ct, name)
            if spec is None:
                continue
            if widget_only and not _is_widget(spec):
                continue
            found.append((nid, name))
            break
    return found


def _is_widget(spec: tuple[Any, dict]) -> bool:
    return isinstance(spec[0], list) or spec[0] in ("INT", "FLOAT", "STRING", "BOOLEAN", "COMBO")


def _resolve_shortcut(prompt: dict, object_info: dict, key: str) -> list[tuple[str, str]]:
    k = key.lower()
    if k == "seed":
        hits = _inputs_named(prompt, object_info, SEED_NAMES)
    elif k in ("prefix", "output_prefix", "filename_prefix"):
        hits = _inputs_named(prompt, object_info, ("filename_prefix",))
    elif k in ("frames", "length"):
        hits = _inputs_named(prompt, object_info, FRAME_NAMES)
    elif k == "size":
        hits = [
            h
            for h in _inputs_named(prompt, object_info, ("width",))
            if input_spec(object_info, prompt[h[0]]["class_type"], "height")
        ]
    elif k in ("prompt", "positive"):
        hits = _pick_text(prompt, object_info, PROMPT_NAMES, "positive", key)
    elif k in ("negative", "negative_prompt"):
        hits = _pick_text(prompt, object_info, NEGATIVE_NAMES, "negative", key)
    elif k in FILE_SHORTCUTS:
        hits = _inputs_named(prompt, object_info, FILE_SHORTCUTS[k])
        if len(hits) > 1:
            raise JobError(
                f"column {key!r}: {len(hits)} nodes have a {k} input "
                f"({', '.join(f'{n} {_title(prompt, n)!r}' for n, _ in hits)}); use '<title>.{hits[0][1]}'"
            )
    else:
        raise JobError(
            f"column {key!r}: not a shortcut (prompt, negative, image, audio, video, seed, size, frames, "
            "prefix, id) and not '<node title or id>.<input>'"
        )
    if not hits:
        raise JobError(f"column {key!r}: the workflow has no input this shortcut sets")
    return hits


def _pick_text(prompt, object_info, names, polarity, key):
    hits = [
        h
        for h in _inputs_named(prompt, object_info, names)
        if input_spec(object_info, prompt[h[0]]["class_type"], h[1])[0] == "STRING"
    ]
    titled = [h for h in hits if polarity in _title(prompt, h[0]).lower()]
    if polarity == "positive":
        untitled = [h for h in hits if "negative" not in _title(prompt, h[0]).lower()]
        choice = titled or untitled
    else:
        choice = titled
    if len(choice) != 1:
        where = ", ".join(f"{n} {_title(prompt, n)!r}" for n, _ in hits) or "none"
        raise JobError(
            f"column {key!r}: cannot tell which text input is the {polarity} prompt "
            f"(text inputs: {where}); title the node '{polarity.capitalize()}' or use '<title>.text'"
        )
    return choice


DYNAMIC_COMBO = "COMFY_DYNAMICCOMBO_V3"  # ComfyUI 0.33 `io.DynamicCombo` (comfy_api/latest/_io.py)


def coerce(value: Any, spec: tuple[Any, dict], what: str) -> Any:
    """Converts a CSV string / JSON value to the input's type and checks it. Raises JobError."""
    kind, opts = spec
    if kind == DYNAMIC_COMBO:  # newer core: a choice whose options bring inputs of their own (SaveVideo format)
        keys = [o["key"] for o in opts.get("options", []) if isinstance(o, dict) and "key" in o]
        v = value if isinstance(value, str) else json.dumps(value)
        if keys and v not in keys:
            raise JobError(f"{what}: {v!r} is not one of {keys}")
        return v
    if isinstance(kind, list) or kind == "COMBO":
        choices = kind if isinstance(kind, list) else opts.get("options", [])
        v = value if isinstance(value, str) else json.dumps(value)
        if choices and v not in choices:
            shown = choices if len(choices) <= 12 else choices[:12] + ["..."]
            raise JobError(f"{what}: {v!r} is not one of {shown}")
        return v
    if kind == "INT":
        try:
            if isinstance(value, bool):
                raise ValueError
            if isinstance(value, int):
                v = value
            else:
                # int() first: seeds up to 2**64 lose digits through float.
                try:
                    v = int(str(value).strip())
                except ValueError:
                    f = float(value)
                    if f != int(f):
                        raise
                    v = int(f)
        except (TypeError, ValueError, OverflowError):
            raise JobError(f"{what}: {value!r} is not an integer") from None
    elif kind == "FLOAT":
        try:
            if isinstance(value, bool):
                raise ValueError
            v = float(value)
        except (TypeError, ValueError):
            raise JobError(f"{what}: {value!r} is not a number") from None
    elif kind == "BOOLEAN":
        if isinstance(value, bool):
            v = value
        elif str(value).strip().lower() in ("1", "true", "yes", "on"):
            v = True
        elif str(value).strip().lower() in ("0", "false", "no", "off"):
            v = False
        else:
            raise JobError(f"{what}: {value!r} is not true/false")
    elif kind == "STRING":
        if not isinstance(value, (str, int, float)) or isinstance(value, bool):
            raise JobError(f"{what}: expected text, got {type(value).__name__}")
        v = str(value)
    else:
        raise JobError(f"{what}: the input is a {kind} connection, it takes a link, not a value")
    if kind in ("INT", "FLOAT"):
        lo, hi = opts.get("min"), opts.get("max")
        if lo is not None and v < lo or hi is not None and v > hi:
            raise JobError(f"{what}: {v} is outside [{lo}, {hi}]")
    return v


def parse_size(value: Any, what: str) -> tuple[int, int]:
    s = str(value).lower().replace("*", "x").replace(" ", "")
    parts = s.split("x")
    if len(parts) != 2 or not all(p.isdigit() and int(p) > 0 for p in parts):
        raise JobError(f"{what}: {value!r} is not a size like 832x480")
    return int(parts[0]), int(parts[1])


def plan_job(
    prompt: dict, object_info: dict, job: Job, base_dir: Path, allow_dirs: list[Path] | None = None
) -> JobPlan:
    """Applies a job's values to a copy of the prompt and checks the result against /object_info.
    Local files must lie under ``base_dir`` (the job file's folder) or one of ``allow_dirs``.
    Raises JobError listing every problem."""
    if job.error:
        raise JobError(job.error)
    prompt = copy.deepcopy(prompt)
    problems: list[str] = []
    uploads: list[Upload] = []
    for key, raw in job.values.items():
        if key in RESERVED:
            continue
        try:
            targets = resolve_key(prompt, object_info, key)
            if key.strip().lower() == "size":
                w, h = parse_size(raw, f"column {key!r}")
                for nid, _ in targets:
                    ct = prompt[nid]["class_type"]
                    prompt[nid]["inputs"]["width"] = coerce(
                        w, input_spec(object_info, ct, "width"), f"column {key!r} width"
                    )
                    prompt[nid]["inputs"]["height"] = coerce(
                        h, input_spec(object_info, ct, "height"), f"column {key!r} height"
                    )
                continue
            for nid, name in targets:
                ct = prompt[nid]["class_type"]
                what = f"column {key!r} (node {nid} {_title(prompt, nid)!r} input {name!r})"
                if is_upload_input(object_info, ct, name):
                    local = (base_dir / str(raw)).expanduser()
                    if local.is_file():
                        local = check_local_file(local, [base_dir, *(allow_dirs or [])], what)
                        uploads.append(Upload(nid, name, local))
                        prompt[nid]["inputs"][name] = str(raw)
                        continue
                    choices = input_spec(object_info, ct, name)[0]
                    if isinstance(choices, list) and str(raw) in choices:
                        prompt[nid]["inputs"][name] = str(raw)
                        continue
                    raise JobError(
                        f"{what}: file {str(raw)!r} not found (looked in {str(base_dir)!r} and on the server)"
                    )
                prompt[nid]["inputs"][name] = coerce(raw, input_spec(object_info, ct, name), what)
        except JobError as e:
            problems.append(str(e))
    uploaded = {(u.node_id, u.input) for u in uploads}
    problems += validate_prompt(prompt, object_info, skip=uploaded)
    if problems:
        raise JobError("; ".join(problems))
    return JobPlan(job=job, prompt=prompt, uploads=uploads)


def validate_prompt(prompt: dict, object_info: dict, skip: set | None = None) -> list[str]:
    """What ``POST /prompt`` would refuse, found without the server: unknown types, missing required
    inputs, links to missing nodes or outputs, values of the wrong type / out of range / not a choice."""
    skip = skip or set()
    problems: list[str] = []
    for nid, node in prompt.items():
        ct = node.get("class_type")
        info = object_info.get(ct)
        label = f"node {nid} ({(node.get('_meta') or {}).get('title') or ct})"
        if info is None:
            problems.append(f"{label}: node type {ct!r} is not installed on the server")
            continue
        required = (info.get("input") or {}).get("required") or {}
        inputs = node.get("inputs") or {}
        for name in required:
            if name not in inputs:
                problems.append(f"{label}: required input {name!r} is missing")
        for name, value in inputs.items():
            spec = input_spec(object_info, ct, name)
            if spec is None or (nid, name) in skip:
                continue
            if isinstance(value, list) and len(value) == 2 and isinstance(value[0], str):
                src = prompt.get(value[0])
                if src is None:
                    problems.append(f"{label}: input {name!r} links to node {value[0]}, which is not in the prompt")
                elif src.get("class_type") in object_info:
                    outs = object_info[src["class_type"]].get("output") or []
                    if not isinstance(value[1], int) or not 0 <= value[1] < len(outs):
                        problems.append(
                            f"{label}: input {name!r} links to output {value[1]} of node {value[0]}, "
                            f"which has {len(outs)} outputs"
                        )
                continue
            if is_upload_input(object_info, ct, name) and "/" in str(value):
                continue  # a file in an input subfolder: the server's list shows only the top level
            try:
                coerce(value, spec, f"{label} input {name!r}")
            except JobError as e:
                problems.append(str(e))
    return problems
