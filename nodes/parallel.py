"""HV Parallel: run HuMo / HunyuanVideo-I2V sampling on several GPUs (or machines) through Ray."""

from __future__ import annotations

from comfy_api.latest import io

from ..parallel.runtime import ParallelConfig
from .types import HV_PARALLEL


class HVParallel(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="HVParallel",
            display_name="Parallel GPUs (HumanVideo)",
            category="HumanVideo/parallel",
            description=(
                "Runs the connected HuMo / HunyuanVideo-I2V sampler on sp_size x cfg_parallel GPU workers (Ray "
                "actors, torch.distributed, FSDP2): sequence parallelism splits the video tokens of every forward "
                "over sp_size GPUs (HuMo's sp_size), cfg_parallel runs the guidance passes of a step on separate "
                "groups, and weight sharding keeps 1/sp_size of the weights on each GPU. Workers load the model "
                "files themselves and stay warm between runs."
            ),
            inputs=[
                io.Int.Input(
                    "sp_size",
                    default=2,
                    min=1,
                    max=64,
                    tooltip="GPUs per sequence-parallel group: each forward's tokens are split over them "
                    "(official HuMo sp_size). 1 = no sequence parallelism.",
                ),
                io.Int.Input(
                    "cfg_parallel",
                    default=1,
                    min=1,
                    max=16,
                    tooltip="Groups that run a step's guidance passes side by side (HuMo-17B has 3 per step, "
                    "1.7B 4, HunyuanVideo-I2V 2 with real CFG). Workers = sp_size x cfg_parallel.",
                ),
                io.Boolean.Input(
                    "shard_weights",
                    default=False,
                    tooltip="FSDP2: each GPU of a group keeps 1/sp_size of the DiT weights and gathers one block "
                    "at a time (HuMo-17B at 720p on 2 x 24 GB). LoRAs are merged when the workers load.",
                ),
                io.String.Input(
                    "devices",
                    default="",
                    tooltip="CUDA device indices of this machine for the workers, e.g. '0,1'; empty = every GPU; "
                    "'cpu' = CPU workers (testing). Ignored with a Ray address (the cluster decides).",
                ),
                io.String.Input(
                    "ray_address",
                    default="",
                    tooltip="Empty: start a local Ray on this machine. 'auto' or 'host:6379' / 'ray://host:10001': "
                    "join a Ray cluster (every machine needs this ComfyUI, the pack and the model files at the "
                    "same paths).",
                ),
            ],
            outputs=[
                HV_PARALLEL.Output(
                    display_name="parallel",
                    tooltip="Connect to the parallel input of HuMo Sampler, HuMo Guider or HunyuanVideo-I2V Sampler.",
                ),
                io.String.Output(display_name="info", tooltip="Workers and layout."),
            ],
        )

    @classmethod
    def execute(cls, sp_size: int, cfg_parallel: int, shard_weights: bool, devices: str, ray_address: str):
        cfg = ParallelConfig(sp_size, cfg_parallel, shard_weights, devices, ray_address)
        return io.NodeOutput(cfg, cfg.describe())


NODES = [HVParallel]
