"""The worker process: one Ray actor per GPU (or per CPU slot), one rank of torch.distributed.

A worker imports ComfyUI the way the server does (after Ray assigned its GPU), joins the process group,
builds its model with the pack's own loader from the recorded file and options, applies the shipped
weight patches (or merges them and shards the weights with FSDP2), and then runs exactly the sampling
function the ComfyUI process would have run, on a model clone that adds sequence parallelism and the
pass groups. Progress goes to a state the ComfyUI process polls; a cancel request is a flag that every
rank agrees on at the next model evaluation (see ``passes.py``).
"""

from __future__ import annotations

import gc
import os
import socket
import threading
import uuid
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

DIST_TIMEOUT = timedelta(minutes=30)


@dataclass
class Job:
    """``fn(model, *args, **kwargs)`` on every rank; rank 0 returns ``result[returns]`` (all when None).

    With ``callback_kw`` the function also gets a per-step callback under that keyword (for guiders).
    """

    fn: Any
    args: tuple = ()
    kwargs: dict = field(default_factory=dict)
    returns: int | None = None
    callback_kw: str | None = None


@dataclass
class ModelShipment:
    """What a worker needs to rebuild the ComfyUI process's MODEL: the recipe and the patches."""

    recipe: Any  # loaders.recipe.LoadRecipe
    patches_uuid: str
    patches: dict | None  # None: the same as the last shipment
    object_patches: dict
    model_options: dict
    wrappers: dict
    callbacks: dict


def _to_cpu(obj):
    import torch

    if isinstance(obj, torch.Tensor):
        return obj.detach().cpu()
    if isinstance(obj, dict):
        return {k: _to_cpu(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(_to_cpu(v) for v in obj)
    return obj


class ParallelWorker:
    def __init__(self, comfy_args: dict, device_kind: str) -> None:
        import comfy.options

        comfy.options.enable_args_parsing(False)
        from comfy.cli_args import args

        for key, value in comfy_args.items():
            if hasattr(args, key):
                setattr(args, key, value)
        args.cpu = device_kind == "cpu"
        args.disable_all_custom_nodes = True
        import comfy.model_management  # noqa: F401  (after args: picks the device Ray assigned)

        self.device_kind = device_kind
        self.package = __name__.rsplit(".parallel.", 1)[0]
        self.run_lock = threading.Lock()
        self.cancel = threading.Event()
        self.progress_state: tuple = (0, 0, None)
        self.rank = 0
        self.world = 1
        self.topology: tuple[int, int] | None = None
        self.groups = None
        self.base = None
        self.base_key = None
        self.patches: dict = {}
        self.patches_uuid = None
        self.shipment: ModelShipment | None = None
        self.last_run: dict = {}

    # -- set-up ---------------------------------------------------------------------------------
    def describe(self) -> dict:
        import comfy.model_management as mm
        import ray

        return {
            "pid": os.getpid(),
            "node": ray.util.get_node_ip_address(),
            "gpus": [str(g) for g in ray.get_gpu_ids()],
            "device": str(mm.get_torch_device()),
            "device_name": mm.get_torch_device_name(mm.get_torch_device()),
        }

    def free_port(self) -> int:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            s.bind(("", 0))
            return s.getsockname()[1]

    def device(self):
        import comfy.model_management as mm

        return mm.get_torch_device()

    def init_distributed(self, rank: int, world: int, address: str, port: int) -> None:
        import torch
        import torch.distributed as dist

        backend = "nccl" if self.device_kind == "cuda" else "gloo"
        if self.device_kind == "cuda":
            torch.cuda.set_device(self.device())
        dist.init_process_group(
            backend, init_method=f"tcp://{address}:{port}", rank=rank, world_size=world, timeout=DIST_TIMEOUT
        )
        self.rank, self.world = rank, world

    def configure(self, sp_size: int, cfg_size: int) -> None:
        """Process groups of the (cfg, sp) grid; ranks of one sequence-parallel group are contiguous."""
        from torch.distributed.device_mesh import init_device_mesh

        if (cfg_size, sp_size) == self.topology:
            return
        if cfg_size * sp_size != self.world:
            raise ValueError(f"parallel: {cfg_size} x {sp_size} ranks do not match {self.world} workers")
        self.mesh = init_device_mesh(
            "cuda" if self.device_kind == "cuda" else "cpu", (cfg_size, sp_size), mesh_dim_names=("cfg", "sp")
        )
        self.topology = (cfg_size, sp_size)
        self.sp_size, self.cfg_size = sp_size, cfg_size
        self.sp_rank, self.cfg_rank = self.rank % sp_size, self.rank // sp_size
        self._drop_model()  # shards and patches were made for the old grid

    # -- the model ------------------------------------------------------------------------------
    def _drop_model(self) -> None:
        import comfy.model_management as mm

        self.base = self.base_key = None
        mm.unload_all_models()
        gc.collect()
        mm.soft_empty_cache()

    def load(self, shipment: ModelShipment, shard: bool) -> dict:
        """Builds (or keeps) the model for ``shipment``; returns memory figures of this rank."""
        import torch

        from .sharding import full_bytes, local_bytes, shard_model

        if shipment.patches is not None:
            self.patches, self.patches_uuid = shipment.patches, shipment.patches_uuid
        elif self.patches_uuid != shipment.patches_uuid:
            raise RuntimeError("parallel: weight patches were not sent to this worker")
        key = (shipment.recipe, shard, self.topology, shipment.patches_uuid if shard else None)
        if key != self.base_key:
            self._drop_model()
            model = shipment.recipe.build(self.package)
            full = full_bytes(model.model.diffusion_model)
            if shard:
                with torch.no_grad():
                    m = model.clone()
                    m.patches = {k: list(v) for k, v in self.patches.items()}
                    model = shard_model(m, self.mesh["sp"], self.device())
            self.base, self.base_key = model, key
            self.full_bytes = full
            gc.collect()
        self.shipment = shipment
        dm = self.base.model.diffusion_model
        out = {"rank": self.rank, "weights_full": self.full_bytes, "weights_local": local_bytes(dm)}
        if self.device_kind == "cuda":
            out["cuda_allocated"] = torch.cuda.memory_allocated(self.device())
        return out

    def _run_model(self):
        """Base model + shipped patches/options + sequence parallelism + pass groups, for one run."""
        from .passes import PassGroups, apply_pass_groups
        from .sequence import apply_sequence_parallel
        from .sharding import ShardedModelPatcher

        s = self.shipment
        m = self.base.clone()
        if not isinstance(m, ShardedModelPatcher):
            m.patches = {k: list(v) for k, v in self.patches.items()}
            m.patches_uuid = uuid.UUID(s.patches_uuid)
        for k, v in s.object_patches.items():
            m.add_object_patch(k, v)
        m.model_options = {**m.model_options, **s.model_options}
        for kind, by_key in s.wrappers.items():
            for key, fns in by_key.items():
                for fn in fns:
                    m.add_wrapper_with_key(kind, key, fn)
        for kind, by_key in s.callbacks.items():
            for key, fns in by_key.items():
                for fn in fns:
                    m.add_callback_with_key(kind, key, fn)
        if self.sp_size > 1:
            m = apply_sequence_parallel(m, self.mesh.get_group("sp"), self.sp_size, self.sp_rank)
        self.pass_groups = PassGroups(
            world_group=None,
            cfg_group=self.mesh.get_group("cfg") if self.cfg_size > 1 else None,
            cfg_size=self.cfg_size,
            cfg_rank=self.cfg_rank,
            cancel=self.cancel,
        )
        return apply_pass_groups(m, self.pass_groups)

    # -- running --------------------------------------------------------------------------------
    def _on_progress(self, value, total, preview=None, node_id=None) -> None:
        self.progress_state = (value, total, self.progress_state[2])

    def _step_callback(self, step, x0, x, total_steps) -> None:
        self.progress_state = (step + 1, total_steps, x0.detach().cpu() if self.rank == 0 else None)

    def run(self, job: Job):
        import comfy.model_management as mm
        import comfy.utils
        import torch

        from .sharding import local_bytes

        with self.run_lock:
            self.cancel.clear()
            mm.interrupt_current_processing(False)
            self.progress_state = (0, 0, None)
            model = self._run_model()
            comfy.utils.set_progress_bar_global_hook(self._on_progress)
            kwargs = dict(job.kwargs)
            if job.callback_kw:
                kwargs[job.callback_kw] = self._step_callback
            try:
                with torch.inference_mode():
                    result = job.fn(model, *job.args, **kwargs)
            finally:
                comfy.utils.set_progress_bar_global_hook(None)
                self.last_run = {
                    "evaluations": self.pass_groups.evaluations,
                    "forwards": self.pass_groups.forwards,
                    "weights_local": local_bytes(self.base.model.diffusion_model),  # after the run, as it stays
                }
                del model
            if job.returns is not None:
                result = result[job.returns]
            if self.device_kind == "cuda":
                self.last_run["cuda_peak"] = torch.cuda.max_memory_allocated(self.device())
            return _to_cpu(result) if self.rank == 0 else None

    def progress(self, seen_step: int = 0) -> tuple:
        """(step, total, x0): x0 only when a step newer than ``seen_step`` brought one (it can be large)."""
        value, total, x0 = self.progress_state
        return (value, total, x0 if value > seen_step else None)

    def request_cancel(self) -> None:
        self.cancel.set()

    def stats(self) -> dict:
        return {"rank": self.rank, **self.last_run}

    def reset_peak_memory(self) -> None:
        import torch

        if self.device_kind == "cuda":
            torch.cuda.reset_peak_memory_stats(self.device())
