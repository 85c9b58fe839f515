"""Weight sharding with FSDP2 (``torch.distributed.fsdp.fully_shard``) on a core model.

Each transformer block, then the rest of the diffusion model, becomes one FSDP unit over the sequence-
parallel group: every rank keeps 1/P of every weight on its device and the unit's full weights exist
only while that block runs (the official HuMo inference shards the DiT blocks the same way,
``humo/models/distributed/fsdp.py``). Weight patches (LoRA) are merged into the weights first, by core's
own ``patch_weight_to_device``, block by block on the device. Parameters are frozen (inference), which
lets FSDP keep mixed dtypes (fp8 weights, fp32 embeddings) in one unit.

The result is wrapped in ``ShardedModelPatcher``: core's model management sees a model that is fully
loaded and must not be moved, re-patched or offloaded; object patches and wrappers still apply.
"""

from __future__ import annotations

import comfy.model_patcher
import torch

NO_LORA_AFTER_SHARDING = (
    "the weights are sharded: weight patches (LoRA) are merged when the workers load the model and cannot be "
    "added afterwards"
)


def transformer_blocks(diffusion_model) -> list[torch.nn.Module]:
    blocks = []
    for name in ("blocks", "double_blocks", "single_blocks"):
        blocks.extend(getattr(diffusion_model, name, None) or [])
    if not blocks:
        raise ValueError(f"weight sharding: no transformer blocks found in {type(diffusion_model).__name__}")
    return blocks


def local_bytes(module: torch.nn.Module) -> int:
    """Bytes of the parameters and buffers this rank holds (its shards of sharded parameters)."""
    total = 0
    for t in list(module.parameters()) + list(module.buffers()):
        local = t.to_local() if hasattr(t, "to_local") else t
        total += local.numel() * local.element_size()
    return total


def full_bytes(module: torch.nn.Module) -> int:
    return sum(t.numel() * t.element_size() for t in list(module.parameters()) + list(module.buffers()))


def _check_plain_weights(module: torch.nn.Module) -> None:
    for name, p in module.named_parameters():
        if type(p.data) is not torch.Tensor:
            raise ValueError(
                f"weight sharding: parameter {name} is a {type(p.data).__name__} (a quantized format); shard "
                "bf16 / fp16 / fp8_e4m3fn weights, or turn sharding off"
            )


def _patch_under(patcher, prefix: str, device) -> None:
    for key in [k for k in patcher.patches if k.startswith(prefix)]:
        patcher.patch_weight_to_device(key, device_to=device)
        patcher.backup.pop(key, None)  # the unpatched weight is never restored: free it now
        patcher.patches.pop(key)  # merged for good (``patcher`` is the worker's own clone)


def shard_model(patcher, mesh, device: torch.device) -> ShardedModelPatcher:
    """Merge ``patcher``'s weight patches, then shard its diffusion model over ``mesh`` (1-D)."""
    from torch.distributed.fsdp import fully_shard

    base = patcher.model
    dm = base.diffusion_model
    _check_plain_weights(dm)
    base.requires_grad_(False)
    names = {id(m): n for n, m in dm.named_modules()}
    for block in transformer_blocks(dm):
        block.to(device)
        _patch_under(patcher, f"diffusion_model.{names[id(block)]}.", device)
        fully_shard(block, mesh=mesh, reshard_after_forward=True)
    for name, child in base.named_children():
        if name != "diffusion_model":
            child.to(device)
    # the rest of the diffusion model (embeddings, head, audio projection) becomes one more unit
    containers = {"blocks", "double_blocks", "single_blocks"}
    for name, child in dm.named_children():
        if name not in containers:
            child.to(device)
    for t in list(dm.parameters(recurse=False)) + list(dm.buffers(recurse=False)):
        t.data = t.data.to(device)
    _patch_under(patcher, "", device)
    # FSDP keeps a root unit gathered after its forward (for a backward); inference wants the memory back
    fully_shard(dm, mesh=mesh, reshard_after_forward=True)
    sharded = ShardedModelPatcher(base, device, patcher.offload_device)
    for attr in ("object_patches", "model_options", "weight_wrapper_patches"):
        setattr(sharded, attr, getattr(patcher, attr))
    sharded.attachments = dict(patcher.attachments)
    sharded.wrappers = patcher.wrappers
    sharded.callbacks = patcher.callbacks
    sharded.mark_loaded()
    return sharded


class ShardedModelPatcher(comfy.model_patcher.ModelPatcher):
    """A ModelPatcher over FSDP-sharded weights that stay where they are."""

    def model_size(self):
        return local_bytes(self.model)

    def loaded_size(self):
        return self.model_size()

    def mark_loaded(self) -> None:
        self.model.device = self.load_device
        self.model.model_loaded_weight_memory = self.model_size()
        self.model.model_lowvram = False
        self.model.lowvram_patch_counter = 0
        self.model.current_weight_patches_uuid = self.patches_uuid

    def add_patches(self, patches, strength_patch=1.0, strength_model=1.0):
        if patches:
            raise ValueError(NO_LORA_AFTER_SHARDING)
        return []

    def load(self, device_to=None, lowvram_model_memory=0, force_patch_weights=False, full_load=False, **kwargs):
        self.mark_loaded()

    def partially_load(self, device_to, extra_memory=0, force_patch_weights=False):
        with self.use_ejected(skip_and_inject_on_exit_only=True):
            self.unpatch_model(unpatch_weights=False)  # object patches of an earlier clone
            self.patch_model(load_weights=False)
        self.mark_loaded()
        return 0

    def partially_unload(self, device_to, memory_to_free=0, force_patch_weights=False):
        return 0

    def unpatch_model(self, device_to=None, unpatch_weights=True):
        super().unpatch_model(None, unpatch_weights=False)

    def detach(self, unpatch_all=True):
        self.eject_model()
        self.unpatch_model()
        return self.model
