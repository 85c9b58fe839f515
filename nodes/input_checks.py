"""Checks every node's widget values against its schema before it runs, and keeps install paths out of errors.

ComfyUI 0.3.75 does not compare V3 combo values with their options, and no ComfyUI version rejects a
NaN float (every comparison with NaN is false). So each node's ``execute`` is wrapped once, at
registration: choices must be one of the options, numbers finite and inside their min/max. Node
errors then have configured absolute folders replaced by short labels (``models/vae``, ``input``).
"""

from __future__ import annotations

import functools
import inspect
import math

from comfy_api.latest import io

from .. import paths

_MARK = "_hv_checked"


def _choices_text(options: list) -> str:
    if not options:
        return "no choices are available"
    if len(options) > 12:
        return f"one of {len(options)} choices"
    return "one of " + ", ".join(repr(o) for o in options)


def check_value(widget: io.Input, value: object) -> None:
    """Raises ValueError naming the input when ``value`` is not a valid value of ``widget``."""
    name = widget.id
    if isinstance(widget, io.Combo.Input):
        if getattr(widget, "upload", None) is not None:
            return  # uploaded files arrive after the list was made; the node resolves them in input/
        options = list(widget.options or [])
        if value not in options:
            raise ValueError(f"{name}: {value!r} is not a valid choice ({_choices_text(options)})")
        return
    if isinstance(widget, (io.Float.Input, io.Int.Input)):
        is_int = isinstance(widget, io.Int.Input)
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ValueError(f"{name}: expected a number, got {type(value).__name__} {value!r}")
        if is_int and isinstance(value, float) and not value.is_integer():
            raise ValueError(f"{name}: expected a whole number, got {value!r}")
        if not math.isfinite(value):
            raise ValueError(f"{name}: must be a finite number, got {value!r}")
        low, high = widget.min, widget.max
        if low is not None and value < low:
            raise ValueError(f"{name}: {value!r} is below the minimum {low}")
        if high is not None and value > high:
            raise ValueError(f"{name}: {value!r} is above the maximum {high}")
        return
    if isinstance(widget, io.String.Input) and value is not None and not isinstance(value, str):
        raise ValueError(f"{name}: expected text, got {type(value).__name__}")


def check_inputs(node: type[io.ComfyNode], values: dict) -> None:
    """Checks every widget value present in ``values`` against a fresh schema (file lists re-read);
    one ValueError lists every bad input."""
    problems = []
    for widget in node.define_schema().inputs:
        if widget.id not in values or (values[widget.id] is None and widget.optional):
            continue
        try:
            check_value(widget, values[widget.id])
        except ValueError as e:
            problems.append(str(e))
    if problems:
        raise ValueError("; ".join(problems))


def _redacted(error: Exception) -> Exception | None:
    message = str(error)
    cleaned = paths.redact(message)
    if cleaned == message:
        return None
    try:
        return type(error)(cleaned)
    except Exception:  # an exception type whose constructor wants more than a message
        return RuntimeError(cleaned)


def guard(node: type[io.ComfyNode]) -> type[io.ComfyNode]:
    """Wraps ``node.execute`` (once) with :func:`check_inputs` and error redaction."""
    if getattr(node, _MARK, False):
        return node
    original = node.__dict__.get("execute")
    if original is None:
        return node
    run = original.__func__
    if inspect.iscoroutinefunction(run):
        return node  # none of the pack's nodes is async; leave such a node as it is
    params = inspect.signature(run).parameters

    @functools.wraps(run)
    def execute(cls, *args, **kwargs):
        if args:  # positional call: map onto the declared names for the check
            names = [p for p in params if p != "cls"]
            kwargs = {**dict(zip(names, args, strict=False)), **kwargs}
            args = ()
        check_inputs(cls, kwargs)
        try:
            return run(cls, **kwargs)
        except Exception as e:
            clean = _redacted(e)
            if clean is None:
                raise
            raise clean.with_traceback(e.__traceback__) from None

    node.execute = classmethod(execute)
    setattr(node, _MARK, True)
    return node
