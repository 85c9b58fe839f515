"""The ComfyUI-process side: Ray, the worker group, and one parallel run with progress and Cancel.

Ray is started on first use (a local runtime bound to 127.0.0.1, no dashboard) or joined (``auto``, an
address). The workers of a configuration stay alive between runs and keep their model; a different
model or different parallel settings rebuild them; a worker that dies (out of memory, killed) takes
its group down with a clear error, and the next run starts a fresh group. Ray is imported lazily, so
ComfyUI starts as fast as before and single-GPU users never touch it.
"""

from __future__ import annotations

import logging
import os
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from .worker import Job, ModelShipment

log = logging.getLogger(__name__)

PACK_DIR = Path(__file__).resolve().parents[1]
WORKER_PATH = Path(__file__).resolve().parent / "worker_path"
SETUP_HOOK = "hv_parallel_setup.setup"
NAMESPACE = "comfyui-humanvideo"
LOCAL_OBJECT_STORE = 512 * 1024 * 1024
START_TIMEOUT = 300.0  # seconds for workers to start and import torch / ComfyUI
POLL = 0.1
GRACE = 10.0  # seconds the other ranks get to finish after one failed
FORWARDED_ENV = ("NCCL_", "GLOO_", "TORCH_NCCL_", "CUDA_DEVICE_ORDER", "PYTORCH_CUDA_ALLOC_CONF")


@dataclass(frozen=True)
class ParallelConfig:
    """What HV Parallel produces: the size of the worker grid and where it runs."""

    sp_size: int = 2
    cfg_parallel: int = 1
    shard_weights: bool = False
    devices: str = ""
    ray_address: str = ""

    def __post_init__(self) -> None:
        if self.sp_size < 1:
            raise ValueError(f"sp_size: must be at least 1, got {self.sp_size}")
        if self.cfg_parallel < 1:
            raise ValueError(f"cfg_parallel: must be at least 1, got {self.cfg_parallel}")
        self.device_list()

    @property
    def world(self) -> int:
        return self.sp_size * self.cfg_parallel

    def device_list(self) -> list[int] | None:
        """CUDA indices for a local Ray (None = all); 'cpu' has its own meaning (see ``device_kind``)."""
        text = self.devices.strip().lower()
        if text in ("", "cpu", "cuda", "all"):
            return None
        try:
            ids = [int(p) for p in text.replace(" ", "").split(",") if p]
        except ValueError:
            raise ValueError(f"devices: {self.devices!r} must be empty, 'cpu' or CUDA indices such as '0,1'") from None
        if len(set(ids)) != len(ids) or any(i < 0 for i in ids):
            raise ValueError(f"devices: {self.devices!r} lists a device twice or a negative index")
        if len(ids) < self.world:
            raise ValueError(
                f"devices: {len(ids)} device(s) for sp_size {self.sp_size} x cfg_parallel {self.cfg_parallel} "
                f"= {self.world} workers"
            )
        if self.ray_address.strip():
            raise ValueError("devices: device indices apply to a local Ray; leave them empty with a Ray address")
        return ids

    def device_kind(self) -> str:
        import comfy.model_management as mm

        if self.devices.strip().lower() == "cpu":
            return "cpu"
        if not self.ray_address.strip() and mm.get_torch_device().type == "cpu":
            return "cpu"  # ComfyUI itself runs on the CPU (--cpu, no GPU): CPU workers
        return "cuda"

    def describe(self) -> str:
        where = self.ray_address.strip() or "local Ray"
        return (
            f"{self.world} worker(s): sp_size {self.sp_size} x cfg_parallel {self.cfg_parallel}, "
            f"weights {'sharded' if self.shard_weights else 'replicated'}, {where}"
        )


# ----------------------------------------------------------------------------------------- shipping
def shipment_of(model, sent_uuid: str | None) -> ModelShipment:
    """The recipe and patches of a MODEL; weight patches only when they changed since ``sent_uuid``."""
    import torch

    from ..loaders.recipe import recipe_of

    recipe = recipe_of(model)
    if recipe is None:
        raise ValueError(
            "model: the parallel path needs a model from this pack's loaders (Load HuMo Model, Load "
            "HunyuanVideo-I2V Model), which record the file each worker loads itself; core loaders do not"
        )
    for attr, what in (
        ("injections", "injections"),
        ("hook_patches", "hook (scheduled LoRA) patches"),
        ("additional_models", "additional models"),
        ("weight_wrapper_patches", "weight wrappers"),
    ):
        if getattr(model, attr, None):
            raise ValueError(f"model: {what} are not supported on the parallel path")
    objects = {}
    for key, value in model.object_patches.items():
        if isinstance(value, torch.nn.Module) and any(True for _ in value.parameters()):
            raise ValueError(
                f"model: the object patch {key!r} carries weights (torch.compile or a module replacement) and "
                "cannot be sent to the workers"
            )
        objects[key] = value
    uuid = str(model.patches_uuid)
    return ModelShipment(
        recipe=recipe,
        patches_uuid=uuid,
        patches=None if sent_uuid == uuid else {k: list(v) for k, v in model.patches.items()},
        object_patches=objects,
        model_options=model.model_options,
        wrappers={k: {kk: list(v) for kk, v in d.items()} for k, d in model.wrappers.items() if d},
        callbacks={k: {kk: list(v) for kk, v in d.items()} for k, d in model.callbacks.items() if d},
    )


# ------------------------------------------------------------------------------------------- Ray
def _comfy_args() -> dict:
    from comfy.cli_args import args

    keep = {}
    for key, value in vars(args).items():
        if isinstance(value, (bool, int, float, str, type(None))) or (
            isinstance(value, list) and all(isinstance(v, (bool, int, float, str)) for v in value)
        ):
            keep[key] = value
    for key in ("cuda_device", "listen", "port", "disable_all_custom_nodes"):
        keep.pop(key, None)
    return keep


def _runtime_env(local: bool) -> dict:
    import comfy.model_management

    package = __name__.rsplit(".parallel.", 1)[0]
    env = {
        "PYTHONPATH": str(WORKER_PATH),
        "HV_PARALLEL_COMFYUI_DIR": str(Path(comfy.model_management.__file__).resolve().parents[1]),
        "HV_PARALLEL_PACK_DIR": str(PACK_DIR),
        "HV_PARALLEL_PACK_NAME": package,
        "RAY_USAGE_STATS_ENABLED": "0",
    }
    env.update({k: v for k, v in os.environ.items() if k.startswith(FORWARDED_ENV)})
    if local and sys.platform.startswith("linux"):
        env.setdefault("GLOO_SOCKET_IFNAME", "lo")  # one machine: gloo stays on the loopback interface
    return {"env_vars": env, "worker_process_setup_hook": SETUP_HOOK}


class _Ray:
    """Ray as this process uses it: started here, joined, or found already initialised."""

    def __init__(self) -> None:
        self.key: tuple | None = None

    def ensure(self, cfg: ParallelConfig) -> None:
        import ray

        address = cfg.ray_address.strip()
        devices = cfg.device_list()
        key = (address, tuple(devices) if devices is not None else None)
        if ray.is_initialized():
            if self.key is None:
                env = dict(ray.get_runtime_context().runtime_env or {})
                if env.get("worker_process_setup_hook") != SETUP_HOOK:
                    raise RuntimeError(
                        "ray_address: Ray already runs in this ComfyUI process, started elsewhere without this "
                        "pack's worker set-up; restart ComfyUI so HV Parallel starts or joins Ray itself"
                    )
            if self.key == key or (self.key is None and not address):
                self.key = key
                return
            RUNTIME.drop_group()
            ray.shutdown()
        os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
        common = dict(
            namespace=NAMESPACE,
            runtime_env=_runtime_env(local=not address),
            log_to_driver=False,
            configure_logging=False,
        )
        try:
            if address:
                ray.init(address=address, **common)
            else:
                self._start_local(ray, devices, common)
        except Exception as e:
            raise RuntimeError(
                f"ray_address: could not {'join ' + address if address else 'start a local Ray'}: {e}"
            ) from e
        self.key = key
        log.info("HumanVideo parallel: Ray %s", f"joined at {address}" if address else "started locally")

    @staticmethod
    def _start_local(ray, devices, common: dict) -> None:
        previous = os.environ.get("CUDA_VISIBLE_DEVICES")
        if devices is not None:  # the raylet (started now) hands out exactly these GPUs
            os.environ["CUDA_VISIBLE_DEVICES"] = ",".join(str(i) for i in devices)
        try:
            ray.init(
                include_dashboard=False,
                object_store_memory=LOCAL_OBJECT_STORE,
                _node_ip_address="127.0.0.1",
                **common,
            )
        finally:
            if devices is not None:
                if previous is None:
                    os.environ.pop("CUDA_VISIBLE_DEVICES", None)
                else:
                    os.environ["CUDA_VISIBLE_DEVICES"] = previous


# ------------------------------------------------------------------------------------ worker group
class WorkerError(RuntimeError):
    pass


def _cause(err: Exception) -> BaseException:
    return getattr(err, "cause", None) or err


class WorkerGroup:
    def __init__(self, cfg: ParallelConfig, kind: str) -> None:
        import ray
        from ray.util.scheduling_strategies import PlacementGroupSchedulingStrategy

        from .worker import ParallelWorker

        self.key = (cfg.ray_address.strip(), cfg.devices.strip().lower(), cfg.world, kind)
        self.kind, self.world = kind, cfg.world
        self.placement = None
        self.sent_uuid: str | None = None
        self.sent_recipe = None
        self.alive = True
        remote = ray.remote(ParallelWorker)
        options = dict(num_cpus=0, num_gpus=1 if kind == "cuda" else 0, max_concurrency=4, max_restarts=0)
        if kind == "cuda":
            self.placement = ray.util.placement_group([{"GPU": 1}] * cfg.world, strategy="PACK")
            try:
                ray.get(self.placement.ready(), timeout=60)
            except Exception:
                ray.util.remove_placement_group(self.placement)
                gpus = ray.cluster_resources().get("GPU", 0)
                raise WorkerError(
                    f"parallel: {cfg.world} GPU workers requested, the Ray cluster has {gpus:g} GPU(s) "
                    "(check devices / ray_address, or lower sp_size / cfg_parallel)"
                ) from None
        actors = []
        for i in range(cfg.world):
            opts = dict(options)
            if self.placement is not None:
                opts["scheduling_strategy"] = PlacementGroupSchedulingStrategy(
                    self.placement, placement_group_bundle_index=i
                )
            actors.append(remote.options(**opts).remote(_comfy_args(), kind))
        self.actors = actors
        try:
            infos = ray.get([a.describe.remote() for a in actors], timeout=START_TIMEOUT)
            # ranks follow machines and GPU ids, so a sequence-parallel group stays on one machine where it can
            order = sorted(range(len(actors)), key=lambda i: (infos[i]["node"], infos[i]["gpus"], i))
            self.actors = [actors[i] for i in order]
            self.infos = [infos[i] for i in order]
            port = ray.get(self.actors[0].free_port.remote(), timeout=60)
            # a local Ray keeps everything on the loopback interface; on a cluster rank 0's machine hosts it
            address = self.infos[0]["node"] if cfg.ray_address.strip() else "127.0.0.1"
            ray.get(
                [a.init_distributed.remote(r, cfg.world, address, port) for r, a in enumerate(self.actors)],
                timeout=START_TIMEOUT,
            )
        except Exception as e:
            self.kill()
            raise WorkerError(f"parallel: the workers did not start: {_cause(e)}") from e
        log.info("HumanVideo parallel: %d %s worker(s) ready: %s", cfg.world, kind, [i["device"] for i in self.infos])

    def where(self, rank: int) -> str:
        info = self.infos[rank]
        return f"rank {rank} (pid {info['pid']} on {info['node']}, {info['device_name']})"

    def kill(self) -> None:
        import ray

        self.alive = False
        for a in self.actors:
            try:
                ray.kill(a, no_restart=True)
            except Exception:
                pass
        if self.placement is not None:
            try:
                ray.util.remove_placement_group(self.placement)
            except Exception:
                pass

    # -- calls on every rank, watched ---------------------------------------------------------------
    def call_all(self, method: str, *args, progress=None, interrupted=None, sequential: bool = False):
        """Runs ``method`` on every rank; rank 0's results. Fails loudly (and kills the group) when a rank
        dies or hangs after another failed."""

        if sequential:
            return [self.call_all_one(r, method, *args) for r in range(self.world)]
        futures = [getattr(a, method).remote(*args) for a in self.actors]
        return self._watch(futures, progress, interrupted)

    def call_all_one(self, rank: int, method: str, *args):
        import ray

        try:
            return ray.get(getattr(self.actors[rank], method).remote(*args))
        except ray.exceptions.RayActorError as e:
            self.kill()
            raise WorkerError(self._died(rank, e)) from None
        except ray.exceptions.RayTaskError as e:
            raise _cause(e) from None

    def _died(self, rank: int, err) -> str:
        return (
            f"parallel worker {self.where(rank)} died ({type(err).__name__}: {str(err).splitlines()[0][:300]}); "
            "out of memory or killed. The other workers were stopped; the next run starts fresh ones"
        )

    def _watch(self, futures, progress, interrupted):
        import ray

        done: dict[int, object] = {}
        failed: dict[int, BaseException] = {}
        first_failure = None
        cancel_sent = False
        index = {f: i for i, f in enumerate(futures)}
        while len(done) + len(failed) < len(futures):
            pending = [f for f in futures if index[f] not in done and index[f] not in failed]
            ready, _ = ray.wait(pending, num_returns=len(pending), timeout=POLL)
            for f in ready:
                r = index[f]
                try:
                    done[r] = ray.get(f)
                except ray.exceptions.RayActorError as e:
                    self.kill()
                    raise WorkerError(self._died(r, e)) from None
                except ray.exceptions.RayTaskError as e:
                    failed[r] = _cause(e)
                    first_failure = first_failure or time.monotonic()
            if failed and len(done) + len(failed) < len(futures) and time.monotonic() - first_failure > GRACE:
                r, err = next(iter(failed.items()))
                self.kill()
                raise WorkerError(
                    f"parallel worker {self.where(r)} failed ({type(err).__name__}: {err}) while the others kept "
                    "waiting for it; the workers were stopped and the next run starts fresh ones"
                ) from err
            if interrupted is not None and not cancel_sent and interrupted():
                for a in self.actors:
                    a.request_cancel.remote()
                cancel_sent = True
            if progress is not None and 0 not in done and 0 not in failed:
                try:
                    progress(ray.get(self.actors[0].progress.remote(progress.seen), timeout=10))
                except ray.exceptions.GetTimeoutError:
                    pass
                except ray.exceptions.RayActorError:
                    pass  # reported by the run's own future
        if failed:
            raise next(iter(failed.values()))
        return done[0]


class _Progress:
    """Rank 0's progress -> this process's progress bar, and x0 previews -> the sampler's callback."""

    def __init__(self, bar: bool, callback) -> None:
        self.bar = None
        self.show = bar
        self.callback = callback
        self.seen = 0 if callback is not None else 1 << 62  # without a callback, x0 never travels

    def __call__(self, state) -> None:
        import comfy.utils

        value, total, x0 = state
        if total and self.show:
            if self.bar is None:
                self.bar = comfy.utils.ProgressBar(total)
            self.bar.update_absolute(value, total)
        if self.callback is not None and x0 is not None and value > self.seen:
            self.seen = value
            self.callback(value - 1, x0, x0, total)


class _Runtime:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.ray = _Ray()
        self.group: WorkerGroup | None = None

    def drop_group(self) -> None:
        if self.group is not None:
            self.group.kill()
            self.group = None

    def shutdown(self) -> None:
        """Stops the workers and leaves Ray (a local Ray started here ends with it)."""
        import ray

        with self.lock:
            self.drop_group()
            if self.ray.key is not None and ray.is_initialized():
                ray.shutdown()
            self.ray.key = None

    def group_for(self, cfg: ParallelConfig) -> WorkerGroup:
        self.ray.ensure(cfg)
        kind = cfg.device_kind()
        key = (cfg.ray_address.strip(), cfg.devices.strip().lower(), cfg.world, kind)
        if self.group is not None and (not self.group.alive or self.group.key != key):
            self.drop_group()
        if self.group is None:
            self.group = WorkerGroup(cfg, kind)
        return self.group

    def run(self, cfg: ParallelConfig, model, job: Job, callback=None, progress: bool = True):
        import comfy.model_management as mm
        import ray

        with self.lock:
            shipment_of(model, str(model.patches_uuid))  # a model that cannot go fails before Ray starts
            group = self.group_for(cfg)
            try:
                group.call_all("configure", cfg.sp_size, cfg.cfg_parallel)
                shipment = shipment_of(model, group.sent_uuid)
                if shipment.recipe != group.sent_recipe:
                    log.info("HumanVideo parallel: workers load %s", shipment.recipe.describe())
                    group.sent_recipe = shipment.recipe
                ref = ray.put(shipment)
                group.sent_uuid = None  # until every rank has it
                self.last_load = group.call_all("load", ref, cfg.shard_weights, sequential=True)
                group.sent_uuid = shipment.patches_uuid
                # a sampler callback (SamplerCustomAdvanced's) drives its own progress bar from the previews
                report = _Progress(progress and callback is None, callback)
                result = group.call_all("run", ray.put(job), progress=report, interrupted=mm.processing_interrupted)
                if callback is not None:
                    report(group.call_all_one(0, "progress", report.seen))
                return result
            except WorkerError:
                self.group = None
                raise
            except BaseException as e:
                if type(e).__name__ == "InterruptProcessingException":
                    mm.throw_exception_if_processing_interrupted()  # clears the flag, as core does
                    raise mm.InterruptProcessingException() from None
                raise

    def stats(self) -> list[dict]:
        with self.lock:
            if self.group is None:
                return []
            return [self.group.call_all_one(r, "stats") for r in range(self.group.world)]


RUNTIME = _Runtime()


def run(
    config: ParallelConfig, model, fn, /, *args, returns: int | None = None, callback_kw=None, callback=None, **kwargs
):
    """``fn(model, *args, **kwargs)`` on the workers of ``cfg``; the result comes back from rank 0.

    ``fn`` is a library function (a sampler) that the ComfyUI process would call with ``model``; each
    worker calls it with its own copy of the model, made parallel.
    """
    job = Job(fn=fn, args=args, kwargs=kwargs, returns=returns, callback_kw=callback_kw)
    return RUNTIME.run(config, model, job, callback=callback)
