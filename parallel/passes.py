"""Guidance passes on several groups of workers (CFG parallelism), and a Cancel every rank agrees on.

A guider asks core's ``calc_cond_batch`` for its passes (HuMo: 3 or 4 per step). A CALC_COND_BATCH
wrapper on the workers' model deals them out round-robin to the CFG groups; every group evaluates its
passes one forward each (a fixed schedule: core would batch by free memory, which can differ between
ranks that must run the same collectives), and an all-gather hands every rank all results, so the
guider's own combination formula runs unchanged on each.

Before each model evaluation the ranks also all-reduce their cancel flags, so a Cancel seen by any rank
stops every rank at the same point: no rank is left waiting inside a collective.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

import comfy.model_management
import comfy.patcher_extension
import torch
import torch.distributed as dist

WRAPPER_KEY = "humanvideo_parallel_passes"


@dataclass
class PassGroups:
    world_group: object
    cfg_group: object | None
    cfg_size: int
    cfg_rank: int
    cancel: threading.Event = field(default_factory=threading.Event)
    evaluations: int = 0  # model evaluations started (for logs and tests)
    forwards: int = 0  # forwards this rank ran

    def check_cancel(self, device) -> None:
        flag = torch.tensor([1.0 if self.cancel.is_set() else 0.0], device=device)
        dist.all_reduce(flag, op=dist.ReduceOp.MAX, group=self.world_group)
        if flag.item() > 0:
            comfy.model_management.interrupt_current_processing(True)
            comfy.model_management.throw_exception_if_processing_interrupted()

    def mine(self, count: int) -> list[int]:
        return list(range(self.cfg_rank, count, self.cfg_size))

    def __call__(self, executor, model, conds, x_in, timestep, model_options):
        self.check_cancel(x_in.device)
        self.evaluations += 1
        real = [i for i, c in enumerate(conds) if c is not None]
        out: list[torch.Tensor | None] = [None] * len(conds)
        for i, c in enumerate(conds):
            if c is None:  # core's placeholder for a skipped pass: evaluates to zeros without a forward
                out[i] = executor(model, [None], x_in, timestep, model_options)[0]
        local = {}
        for j in self.mine(len(real)):
            local[j] = executor(model, [conds[real[j]]], x_in, timestep, model_options)[0]
            self.forwards += 1
        if self.cfg_size == 1:
            for j, t in local.items():
                out[real[j]] = t
            return out
        slots = -(-len(real) // self.cfg_size)
        mine = torch.stack(
            [
                local[j] if j in local else torch.zeros_like(x_in)
                for j in range(self.cfg_rank, slots * self.cfg_size, self.cfg_size)
            ]
        )
        parts = [torch.empty_like(mine) for _ in range(self.cfg_size)]
        dist.all_gather(parts, mine.contiguous(), group=self.cfg_group)
        for r, part in enumerate(parts):
            for slot in range(slots):
                j = r + slot * self.cfg_size
                if j < len(real):
                    out[real[j]] = part[slot]
        return out


def apply_pass_groups(model_patcher, groups: PassGroups):
    m = model_patcher.clone()
    m.remove_wrappers_with_key(comfy.patcher_extension.WrappersMP.CALC_COND_BATCH, WRAPPER_KEY)
    m.add_wrapper_with_key(comfy.patcher_extension.WrappersMP.CALC_COND_BATCH, WRAPPER_KEY, groups)
    return m
