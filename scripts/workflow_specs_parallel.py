"""Several-GPU example workflows: the official HuMo-17B 720p and HunyuanVideo-I2V 720p graphs with HV Parallel.

The graphs are the single-GPU ones unchanged, plus one HV Parallel node linked to the sampler: the result
is the same video (the workers run the same sampler), made on several GPUs.
"""

from __future__ import annotations

from dataclasses import replace

from build_workflows import Node, Stage, Workflow
from workflow_specs_humo import HUMO_17B, humo_single
from workflow_specs_hunyuan import i2v

TEST_FILES: dict[str, str] = {}  # the graphs use the model files of the single-GPU workflows

PARALLEL_SETTINGS = [
    "**sp_size** (Parallel GPUs): GPUs that split each guidance pass by sequence (Ulysses); set it to your GPU count.",
    "**cfg_parallel**: run the guidance passes of a step side by side on that many GPU groups (needs "
    "sp_size x cfg_parallel GPUs).",
    "**shard_weights**: each GPU holds a share of the DiT weights (FSDP2); keep it on below 40 GB per GPU.",
]


def with_parallel(workflow: Workflow, name: str, sampler: str, settings: dict, what: str) -> Workflow:
    """The single-GPU graph unchanged plus one HV Parallel node linked to the sampler."""
    parallel_id = max(n.id for n in workflow.nodes) + 10
    nodes = [
        replace(node, links={**node.links, "parallel": (parallel_id, 0)}) if node.type == sampler else node
        for node in workflow.nodes
    ]
    nodes.append(Node(parallel_id, "HVParallel", settings, title="Several GPUs"))
    sampler_id = next(n.id for n in nodes if n.type == sampler)
    stages = [
        Stage(stage.title, [[parallel_id], *stage.columns])
        if any(sampler_id in column for column in stage.columns)
        else stage
        for stage in workflow.stages
    ]
    guide = replace(
        workflow.guide,
        what=f"{workflow.guide.what} {what}",
        settings=PARALLEL_SETTINGS + workflow.guide.settings,
    )
    return Workflow(name=name, nodes=nodes, stages=stages, guide=guide)


HUMO_2GPU = with_parallel(
    humo_single("humo_17b_tia_720p_2gpu", HUMO_17B, "720x1280", True, "HuMo-17B official"),
    "humo_17b_tia_720p_2gpu",
    "HVHuMoSampler",
    {"sp_size": 2, "cfg_parallel": 1, "shard_weights": True},
    "**On 2 GPUs**: sequence parallel (official sp_size 2) with the DiT weights sharded, so each GPU holds half of "
    "them: the official 2 x 24 GB case. The video is the one a single GPU makes. More GPUs: raise sp_size, or "
    "cfg_parallel to run the guidance passes of a step side by side.",
)

HUNYUAN_MULTIGPU = with_parallel(
    i2v("hunyuan_i2v_720p_multigpu", lora=False),
    "hunyuan_i2v_720p_multigpu",
    "HVHunyuanI2VSampler",
    {"sp_size": 2, "cfg_parallel": 1, "shard_weights": True},
    "**On several GPUs**: set sp_size to the number of GPUs (2, 4, 8; the official multi-GPU path is sequence "
    "parallel too) and keep weight sharding on below 40 GB per GPU. The video is the one a single GPU makes.",
)

WORKFLOWS = [HUMO_2GPU, HUNYUAN_MULTIGPU]
