"""Guidance schedule node: official multi-condition CFG recipes, or a custom chain per segment."""

from __future__ import annotations

from comfy_api.latest import io

from ..samplers import guidance as gd
from .types import HV_GUIDANCE

CUSTOM = "custom"
PRESET_NAMES = list(gd.PRESETS) + [CUSTOM]


def build_plan(
    preset: str, scale_t: float, scale_a: float, scale_i: float, chains: str, switch_points: str, switch_unit: str
) -> gd.GuidancePlan:
    """Node inputs -> plan; negative scales mean 'the preset's official value'."""
    if preset == CUSTOM:
        sched = gd.parse_schedule(chains, switch_points, switch_unit)
        return gd.GuidancePlan(sched, {}, "custom")
    if preset not in gd.PRESETS:
        raise ValueError(f"preset: {preset!r} is not one of {PRESET_NAMES}")
    given = {"scale_t": scale_t, "scale_a": scale_a, "scale_i": scale_i}
    if preset == "HuMo-17B official":
        given.pop("scale_i")
    kwargs = {k: v for k, v in given.items() if v >= 0}
    return gd.PRESETS[preset](**kwargs)


class HVGuidanceSchedule(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="HVGuidanceSchedule",
            display_name="Guidance Schedule (HumanVideo)",
            category="HumanVideo/guidance",
            description=(
                "Multi-condition classifier-free guidance: pred = v_0 + sum_k s_k (v_k - v_(k-1)) over a chain of "
                "passes from fully null to fully conditioned, switching chains along the sampling. Presets are the "
                "official HuMo recipes; 'custom' takes one chain per line."
            ),
            inputs=[
                io.Combo.Input(
                    "preset",
                    options=PRESET_NAMES,
                    default=PRESET_NAMES[0],
                    tooltip="HuMo-17B official: text 5.0, audio 5.5; image kept in the null pass while "
                    "t > 980, then text 5.0 - 2. HuMo-1.7B official: text 7.5, audio 7.5, image 4.0 (text 7.5 is "
                    "the official generate_1_7B.yaml; the official 1.7B scripts pass 7.0). custom: the chains below.",
                ),
                io.Float.Input(
                    "scale_t",
                    default=-1.0,
                    min=-1.0,
                    max=100.0,
                    step=0.1,
                    round=0.01,
                    tooltip="Text guidance for the presets; -1 keeps the official value: 5.0 (17B), 7.5 (1.7B, from "
                    "generate_1_7B.yaml; the official infer_t(i)a_1_7B.sh scripts use 7.0, set 7.0 to match them).",
                ),
                io.Float.Input(
                    "scale_a",
                    default=-1.0,
                    min=-1.0,
                    max=100.0,
                    step=0.1,
                    round=0.01,
                    tooltip="Audio guidance for the presets; -1 keeps the official value.",
                ),
                io.Float.Input(
                    "scale_i",
                    default=-1.0,
                    min=-1.0,
                    max=100.0,
                    step=0.1,
                    round=0.01,
                    tooltip="Image guidance (HuMo-1.7B preset only); -1 keeps the official value.",
                ),
                io.String.Input(
                    "chains",
                    multiline=True,
                    default="I | TI:5 | TIA:5.5\n0 | TI:3 | TIA:5.5",
                    tooltip="custom only. One chain per segment, in sampling order: v_0, then "
                    "'passes:scale' for each v_k. Letters: T text, I image, A audio; 0 = all null.",
                ),
                io.String.Input(
                    "switch_points",
                    default="0.98",
                    tooltip="custom only. Comma-separated boundaries between the segments "
                    "(one fewer than chain lines): a segment holds while sigma > point, or step < point.",
                ),
                io.Combo.Input(
                    "switch_unit",
                    options=["sigma", "step"],
                    default="sigma",
                    tooltip="custom only. Whether switch points are sigmas (t/1000 for flow models) or step indices.",
                ),
            ],
            outputs=[
                HV_GUIDANCE.Output(display_name="guidance", tooltip="The schedule, for HV HuMo Guider / Sampler."),
                io.String.Output(display_name="summary", tooltip="The resolved chains in text form."),
            ],
        )

    @classmethod
    def execute(cls, preset, scale_t, scale_a, scale_i, chains, switch_points, switch_unit) -> io.NodeOutput:
        plan = build_plan(preset, scale_t, scale_a, scale_i, chains, switch_points, switch_unit)
        return io.NodeOutput(plan, f"{plan.name}:\n{plan.default.describe()}")


NODES = [HVGuidanceSchedule]
