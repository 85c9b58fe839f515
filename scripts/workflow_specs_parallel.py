"""Several-GPU example workflows: the official HuMo-17B 720p and HunyuanVideo-I2V 720p graphs with HV Parallel.

The graphs are the single-GPU ones unchanged, plus one HV Parallel node linked to the sampler: the result
is the same video (the workers run the same sampler), made on several GPUs.
"""

from __future__ import annotations

from build_workflows import Node, Workflow
from workflow_specs_humo import HUMO_17B, NOTE_TIA, humo_single
from workflow_specs_hunyuan import i2v

TEST_FILES: dict[str, str] = {}  # the graphs use the model files of the single-GPU workflows


def with_parallel(workflow: Workflow, name: str, sampler: str, settings: dict, pos: tuple[int, int], note: str):
    parallel_id = max(n.id for n in workflow.nodes) + 10
    nodes = list(workflow.nodes)
    for i, node in enumerate(nodes):
        if node.type == sampler:
            nodes[i] = Node(
                node.id,
                node.type,
                node.widgets,
                {**node.links, "parallel": (parallel_id, 0)},
                node.pos,
                node.title,
                node.models,
            )
    nodes.append(Node(parallel_id, "HVParallel", settings, pos=pos, title="Several GPUs"))
    return Workflow(name=name, nodes=nodes, note=note)


HUMO_2GPU = with_parallel(
    humo_single("humo_17b_tia_720p_2gpu", HUMO_17B, "720x1280", True, "HuMo-17B official", ""),
    "humo_17b_tia_720p_2gpu",
    "HVHuMoSampler",
    {"sp_size": 2, "cfg_parallel": 1, "shard_weights": True},
    (1160, 640),
    NOTE_TIA.format(
        size="HuMo-17B at 720x1280 on 2 GPUs",
        guidance="text 5.0 / audio 5.5 guidance, image kept in the null pass while t > 980",
    )
    + " Sequence parallel over 2 GPUs (official sp_size 2) with the DiT weights sharded, so each GPU holds half "
    "of them: the official 2 x 24 GB case. More GPUs: raise sp_size, or cfg_parallel to run the 3 guidance passes "
    "of a step side by side.",
)

HUNYUAN_MULTIGPU = with_parallel(
    i2v("hunyuan_i2v_720p_multigpu", lora=False),
    "hunyuan_i2v_720p_multigpu",
    "HVHunyuanI2VSampler",
    {"sp_size": 2, "cfg_parallel": 1, "shard_weights": True},
    (1240, 560),
    "HunyuanVideo-I2V (v2, token replace) at the 720p bucket, 129 frames, stability mode, embedded guidance 6, "
    "flow shift 7, 50 Euler steps, on several GPUs: set sp_size to the number of GPUs (2, 4, 8; the official "
    "multi-GPU path is sequence parallel too) and keep weight sharding on below 40 GB per GPU.",
)

WORKFLOWS = [HUMO_2GPU, HUNYUAN_MULTIGPU]
