"""Sequence sharding and the Ulysses all-to-all exchanges, on torch.distributed process groups.

A sequence of ``length`` tokens is padded to a multiple of the group size P and cut into P equal
contiguous shards (rank r holds tokens ``[r * local, (r + 1) * local)``), as the official HuMo code does
(``humo/common/distributed/advanced.py``: pad_tensor + Slice). Attention needs every token, so before it
the shards trade heads for tokens (each rank then holds the whole sequence for 1/P of the heads) and
after it they trade back (DeepSpeed-Ulysses; ``gather_seq_scatter_heads_qkv`` /
``gather_heads_scatter_seq`` in the official code). Heads are zero-padded to a multiple of P the same way.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class SeqShard:
    """Where this rank's tokens sit in a sequence of ``length`` tokens split over ``size`` ranks."""

    group: object  # torch.distributed ProcessGroup
    size: int
    rank: int
    length: int

    @property
    def local(self) -> int:
        return -(-self.length // self.size)

    @property
    def padded(self) -> int:
        return self.local * self.size

    @property
    def start(self) -> int:
        return self.rank * self.local

    @property
    def real(self) -> int:
        """Tokens of this shard that are not padding."""
        return max(0, min(self.local, self.length - self.start))

    def shard(self, x: torch.Tensor, dim: int = 1) -> torch.Tensor:
        """This rank's shard of a full-length tensor (zero-padded at the end of the sequence)."""
        x = pad_dim(x, dim, self.padded)
        return x.narrow(dim, self.start, self.local).contiguous()

    def gather(self, x: torch.Tensor, dim: int = 1) -> torch.Tensor:
        """The full-length tensor from every rank's shard (padding removed)."""
        parts = [torch.empty_like(x) for _ in range(self.size)]
        dist.all_gather(parts, x.contiguous(), group=self.group)
        return torch.cat(parts, dim=dim).narrow(dim, 0, self.length)


def pad_dim(x: torch.Tensor, dim: int, size: int) -> torch.Tensor:
    extra = size - x.shape[dim]
    if extra <= 0:
        return x
    shape = list(x.shape)
    shape[dim] = extra
    return torch.cat([x, x.new_zeros(shape)], dim=dim)


def heads_per_rank(heads: int, size: int) -> int:
    return -(-heads // size)


def seq_to_heads(x: torch.Tensor, sp: SeqShard) -> torch.Tensor:
    """[B, local, H, D] on each rank -> [B, length, ceil(H / P), D]: all tokens, this rank's heads."""
    b, s, h, d = x.shape
    hl = heads_per_rank(h, sp.size)
    x = pad_dim(x, 2, hl * sp.size)
    send = x.reshape(b, s, sp.size, hl, d).permute(2, 0, 1, 3, 4).contiguous()
    recv = torch.empty_like(send)
    dist.all_to_all_single(recv, send, group=sp.group)
    # recv[i] holds rank i's tokens for our heads: concatenating in rank order restores the sequence.
    out = recv.permute(1, 0, 2, 3, 4).reshape(b, sp.size * s, hl, d)
    return out.narrow(1, 0, sp.length)


def heads_to_seq(x: torch.Tensor, sp: SeqShard, heads: int) -> torch.Tensor:
    """[B, length, ceil(H / P), D] -> [B, local, H, D]: this rank's tokens, every head."""
    b, _, hl, d = x.shape
    x = pad_dim(x, 1, sp.padded)
    send = x.reshape(b, sp.size, sp.local, hl, d).permute(1, 0, 2, 3, 4).contiguous()
    recv = torch.empty_like(send)
    dist.all_to_all_single(recv, send, group=sp.group)
    # recv[i] holds our tokens for rank i's heads.
    out = recv.permute(1, 2, 0, 3, 4).reshape(b, sp.local, sp.size * hl, d)
    return out.narrow(2, 0, heads)


def local_heads(x: torch.Tensor, sp: SeqShard, dim: int) -> torch.Tensor:
    """This rank's slice of the (zero-padded) heads of a tensor every rank holds whole."""
    hl = heads_per_rank(x.shape[dim], sp.size)
    return pad_dim(x, dim, hl * sp.size).narrow(dim, sp.rank * hl, hl)


def gather_heads(x: torch.Tensor, sp: SeqShard, heads: int, dim: int) -> torch.Tensor:
    """Every rank's head slice -> all ``heads`` heads (inverse of ``local_heads``)."""
    parts = [torch.empty_like(x) for _ in range(sp.size)]
    dist.all_gather(parts, x.contiguous(), group=sp.group)
    return torch.cat(parts, dim=dim).narrow(dim, 0, heads)
