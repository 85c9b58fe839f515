"""Multi-condition classifier-free guidance: chains, segments and per-step schedules.

Every official scheme we support (HuMo-17B/1.7B, HunyuanVideo-I2V real CFG, plain CFG) is a nested
chain of passes v_0 (fully null) ... v_n (fully conditioned) combined as

    pred = v_0 + sum_k s_k * (v_k - v_{k-1})

where each pass is named by the set of conditions that are ON in it. A schedule switches between
chains along the sampling trajectory (by sigma or by step). Nothing here knows about a model: callers
map a pass (a frozenset of condition names) to a model prediction.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field

import torch

Pass = frozenset  # frozenset[str]: the names of the conditions that are ON in one forward pass

# Letters accepted in the compact text form of a chain ("0 | T:5 | TIA:5.5").
DEFAULT_LETTERS = {"T": "text", "I": "image", "A": "audio"}


def make_pass(names: Iterable[str] = ()) -> Pass:
    return frozenset(names)


@dataclass(frozen=True)
class GuidanceChain:
    """Passes v_0..v_n and scales s_1..s_n of one guidance formula."""

    passes: tuple[Pass, ...]
    scales: tuple[float, ...]

    def __post_init__(self) -> None:
        if len(self.passes) < 1:
            raise ValueError("guidance chain: needs at least one pass (v_0)")
        if len(self.scales) != len(self.passes) - 1:
            raise ValueError(
                f"guidance chain: {len(self.passes)} passes need {len(self.passes) - 1} scales, got {len(self.scales)}"
            )
        for s in self.scales:
            if not math.isfinite(s):
                raise ValueError(f"guidance chain: scale {s} is not a finite number")

    def terms(self) -> list[tuple[float, Pass, Pass]]:
        """(s_k, v_k, v_{k-1}) for every term that can change the result.

        A zero scale or two identical passes make a term vanish exactly, so its passes need not run.
        """
        return [
            (s, self.passes[k + 1], self.passes[k])
            for k, s in enumerate(self.scales)
            if s != 0.0 and self.passes[k + 1] != self.passes[k]
        ]

    def needed_passes(self) -> list[Pass]:
        """Distinct passes to evaluate, in chain order (v_0 first)."""
        out: list[Pass] = [self.passes[0]]
        for _, hi, lo in self.terms():
            for p in (lo, hi):
                if p not in out:
                    out.append(p)
        # Keep chain order so batching and caching are deterministic.
        return sorted(out, key=self.passes.index)

    def combine(self, preds: Mapping[Pass, torch.Tensor]) -> torch.Tensor:
        out = preds[self.passes[0]]
        for s, hi, lo in self.terms():
            out = out + s * (preds[hi] - preds[lo])
        return out

    def restricted(self, available: Iterable[str]) -> GuidanceChain:
        """The same chain when only ``available`` conditions exist (the others are null in every pass)."""
        keep = frozenset(available)
        return GuidanceChain(tuple(p & keep for p in self.passes), self.scales)

    def describe(self, letters: Mapping[str, str] = DEFAULT_LETTERS) -> str:
        def name(p: Pass) -> str:
            known = "".join(k for k, v in letters.items() if v in p)  # letter order, e.g. TIA
            unknown = "".join(f"[{c}]" for c in sorted(p) if c not in letters.values())
            return known + unknown or "0"

        parts = [name(self.passes[0])]
        parts += [f"{name(p)}:{s:g}" for p, s in zip(self.passes[1:], self.scales, strict=False)]
        return " | ".join(parts)


@dataclass(frozen=True)
class GuidanceSegment:
    """A chain that holds until a boundary: while sigma > ``until`` (unit sigma) or step < ``until`` (unit step).

    ``until`` None means to the end of sampling.
    """

    chain: GuidanceChain
    until: float | None = None


@dataclass(frozen=True)
class GuidanceSchedule:
    """Segments in sampling order; unit says whether boundaries are sigmas or step indices."""

    segments: tuple[GuidanceSegment, ...]
    unit: str = "sigma"
    name: str = "custom"

    def __post_init__(self) -> None:
        if self.unit not in ("sigma", "step"):
            raise ValueError(f"guidance schedule: unit must be 'sigma' or 'step', got {self.unit!r}")
        if not self.segments:
            raise ValueError("guidance schedule: needs at least one segment")
        if self.segments[-1].until is not None:
            raise ValueError("guidance schedule: the last segment must run to the end (until=None)")
        bounds = [s.until for s in self.segments[:-1]]
        if any(b is None for b in bounds):
            raise ValueError("guidance schedule: only the last segment may have no boundary")
        ordered = sorted(bounds, reverse=self.unit == "sigma")
        if bounds != ordered or len(set(bounds)) != len(bounds):
            order = "decreasing" if self.unit == "sigma" else "increasing"
            raise ValueError(f"guidance schedule: {self.unit} switch points must be strictly {order}, got {bounds}")

    def chain_at(self, sigma: float, step: int | None = None) -> GuidanceChain:
        for seg in self.segments:
            if seg.until is None:
                return seg.chain
            if self.unit == "sigma":
                if sigma > seg.until:
                    return seg.chain
            else:
                if step is None:
                    raise ValueError("guidance schedule: switch points are in steps but the step is unknown")
                if step < seg.until:
                    return seg.chain
        return self.segments[-1].chain

    def restricted(self, available: Iterable[str]) -> GuidanceSchedule:
        keep = list(available)
        return GuidanceSchedule(
            tuple(GuidanceSegment(s.chain.restricted(keep), s.until) for s in self.segments), self.unit, self.name
        )

    def all_conditions(self) -> frozenset[str]:
        return frozenset().union(*(p for s in self.segments for p in s.chain.passes))

    def describe(self, letters: Mapping[str, str] = DEFAULT_LETTERS) -> str:
        lines = []
        for seg in self.segments:
            where = (
                "to the end"
                if seg.until is None
                else (f"while sigma > {seg.until:g}" if self.unit == "sigma" else f"while step < {seg.until:g}")
            )
            lines.append(f"{seg.chain.describe(letters)}  ({where})")
        return "\n".join(lines)


@dataclass(frozen=True)
class GuidancePlan:
    """What travels on an HV_GUIDANCE link: a schedule, or per-mode variants of one.

    Official recipes differ by mode in ways a plain restriction cannot express (HuMo-17B TA has no
    timestep switch, TIA has one), so a plan may carry an explicit schedule per set of available
    conditions and falls back to restricting the default schedule.
    """

    default: GuidanceSchedule
    variants: Mapping[frozenset, GuidanceSchedule] = field(default_factory=dict)
    name: str = "custom"

    def resolve(self, available: Iterable[str]) -> GuidanceSchedule:
        have = frozenset(available)
        if have in self.variants:
            return self.variants[have]
        return self.default.restricted(have)


def step_index(sigma: float, sample_sigmas: Sequence[float] | torch.Tensor | None) -> int | None:
    """Index of the step whose sigma is ``sigma`` in the sampler's sigma list (None when unknown)."""
    if sample_sigmas is None:
        return None
    s = torch.as_tensor(sample_sigmas, dtype=torch.float64).flatten().cpu()
    if s.numel() == 0:
        return None
    return int(torch.argmin((s - float(sigma)).abs()).item())


def parse_chain(text: str, letters: Mapping[str, str] = DEFAULT_LETTERS) -> GuidanceChain:
    """Parse "0 | T:5 | TIA:5.5" (v_0, then each v_k with its scale) into a chain.

    A pass is a string of condition letters, "0" or "-" for the fully null pass.
    """
    parts = [p.strip() for p in text.split("|")]
    if not parts or not parts[0]:
        raise ValueError(f"guidance chain {text!r}: empty; write e.g. '0 | T:5 | TA:5.5'")

    def parse_pass(token: str) -> Pass:
        token = token.strip().upper()
        if token in ("0", "-", ""):
            return frozenset()
        bad = [c for c in token if c not in letters]
        if bad:
            raise ValueError(
                f"guidance chain {text!r}: unknown condition letter(s) {bad}; known: {sorted(letters)} and 0 for null"
            )
        return frozenset(letters[c] for c in token)

    passes = [parse_pass(parts[0])]
    scales: list[float] = []
    for part in parts[1:]:
        m = re.fullmatch(r"([A-Za-z0\-]*)\s*:\s*([-+0-9.eE]+)", part)
        if not m:
            raise ValueError(f"guidance chain {text!r}: segment {part!r} must look like 'TA:5.5'")
        passes.append(parse_pass(m.group(1)))
        try:
            scales.append(float(m.group(2)))
        except ValueError:
            raise ValueError(f"guidance chain {text!r}: scale {m.group(2)!r} is not a number") from None
    return GuidanceChain(tuple(passes), tuple(scales))


def parse_schedule(
    chains_text: str, switch_points: str, unit: str, letters: Mapping[str, str] = DEFAULT_LETTERS
) -> GuidanceSchedule:
    """One chain per non-empty line, and N-1 comma-separated switch points for N lines."""
    lines = [ln for ln in (raw.strip() for raw in chains_text.splitlines()) if ln and not ln.startswith("#")]
    if not lines:
        raise ValueError("guidance chains: give at least one line such as '0 | T:5 | TA:5.5'")
    chains = [parse_chain(ln, letters) for ln in lines]
    points_txt = [p.strip() for p in switch_points.replace(";", ",").split(",") if p.strip()]
    if len(points_txt) != len(chains) - 1:
        raise ValueError(
            f"guidance switch_points: {len(chains)} chain lines need {len(chains) - 1} switch point(s), "
            f"got {len(points_txt)} ({switch_points!r})"
        )
    try:
        points = [float(p) for p in points_txt]
    except ValueError:
        raise ValueError(f"guidance switch_points: {switch_points!r} must be numbers separated by commas") from None
    if unit == "step" and any(p != int(p) or p < 0 for p in points):
        raise ValueError(f"guidance switch_points: steps must be whole numbers >= 0, got {points}")
    segments = [GuidanceSegment(c, u) for c, u in zip(chains, points + [None], strict=True)]
    return GuidanceSchedule(tuple(segments), unit)


# --- official presets ----------------------------------------------------------------------------

TEXT, IMAGE, AUDIO = "text", "image", "audio"
_NULL = make_pass()
_T = make_pass([TEXT])
_I = make_pass([IMAGE])
_TI = make_pass([TEXT, IMAGE])
_TA = make_pass([TEXT, AUDIO])
_TIA = make_pass([TEXT, IMAGE, AUDIO])

# Official HuMo-17B switches at timestep 980 on the 0-1000 scale, i.e. sigma 0.98 for flow models.
HUMO_17B_SWITCH_SIGMA = 0.98


def humo_17b_plan(
    scale_t: float = 5.0,
    scale_a: float = 5.5,
    switch_sigma: float = HUMO_17B_SWITCH_SIGMA,
    late_text_offset: float = 2.0,
) -> GuidancePlan:
    """Phantom-video/HuMo@17094e9 humo/generate.py:440-469 (forward_tia) and 471-487 (forward_ta).

    TIA, while t > 980: null keeps the image, text scale_t; after: null drops the image, text
    scale_t - 2. TA has no switch.
    """
    tia = GuidanceSchedule(
        (
            GuidanceSegment(GuidanceChain((_I, _TI, _TIA), (scale_t, scale_a)), switch_sigma),
            GuidanceSegment(GuidanceChain((_NULL, _TI, _TIA), (scale_t - late_text_offset, scale_a)), None),
        ),
        "sigma",
        "HuMo-17B official",
    )
    ta = GuidanceSchedule(
        (GuidanceSegment(GuidanceChain((_NULL, _T, _TA), (scale_t, scale_a))),), "sigma", "HuMo-17B official (TA)"
    )
    # Without an image the official code runs forward_ta (no switch) whatever else is missing.
    no_image = [frozenset(c) for c in ([TEXT, AUDIO], [TEXT], [AUDIO], [])]
    return GuidancePlan(tia, {c: ta.restricted(c) for c in no_image}, "HuMo-17B official")


def humo_1_7b_plan(scale_t: float = 7.5, scale_a: float = 7.5, scale_i: float = 4.0) -> GuidancePlan:
    """generate_1_7B.py: image outermost, no switch; TA is the same chain with the image pass folded away.

    Scales from humo/configs/inference/generate_1_7B.yaml (scale_t 7.5, scale_a 7.5, scale_i 4.0); the official
    scripts/infer_tia_1_7B.sh and infer_ta_1_7B.sh override scale_t with 7.0.
    """
    sched = GuidanceSchedule(
        (GuidanceSegment(GuidanceChain((_NULL, _T, _TA, _TIA), (scale_t, scale_a, scale_i))),),
        "sigma",
        "HuMo-1.7B official",
    )
    return GuidancePlan(sched, {}, "HuMo-1.7B official")


def plain_cfg_plan(cfg: float, conditions: Iterable[str] = (TEXT, IMAGE, AUDIO)) -> GuidancePlan:
    """Core's 2-pass CFG as a chain: all off -> all on."""
    sched = GuidanceSchedule(
        (GuidanceSegment(GuidanceChain((_NULL, make_pass(conditions)), (cfg,))),), "sigma", f"CFG {cfg:g}"
    )
    return GuidancePlan(sched, {}, sched.name)


PRESETS: dict[str, Callable[..., GuidancePlan]] = {
    "HuMo-17B official": humo_17b_plan,
    "HuMo-1.7B official": humo_1_7b_plan,
}
