"""Serving the frames a streaming pipeline asks for, in its order, from one forward decode.

A pipeline that knows its whole access order up front (which source frame it needs at each step)
can keep exactly the frames it will need again: those needed again soon stay in memory, those needed
much later (a ping-pong video's reversed part) go to a temporary file on disk, and the rest are
dropped and decoded again when asked for (a looped video starts decoding from the top). Memory stays
bounded by the look-ahead window, whatever the video's length.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

import numpy as np

from .video_stream import PixelLayout, Planes


class DiskFrameCache:
    """Frames of one layout in a temporary file (deleted on close); freed slots are reused."""

    def __init__(self, layout: PixelLayout, directory: str | None = None):
        self.layout = layout
        self._shapes = layout.plane_shapes
        self._file = tempfile.TemporaryFile(dir=directory, prefix="hv_frames_")
        self._slots: dict[int, int] = {}
        self._free: list[int] = []
        self._used = 0  # slots ever allocated: the file's size in frames

    def __contains__(self, key: int) -> bool:
        return key in self._slots

    def __len__(self) -> int:
        return len(self._slots)

    @property
    def size_bytes(self) -> int:
        return self._used * self.layout.frame_bytes

    def put(self, key: int, planes: Planes) -> None:
        if key in self._slots:
            return
        slot = self._free.pop() if self._free else self._used
        self._used = max(self._used, slot + 1)
        self._file.seek(slot * self.layout.frame_bytes)
        for plane in planes:
            self._file.write(np.ascontiguousarray(plane, dtype=self.layout.dtype).tobytes())
        self._slots[key] = slot

    def take(self, key: int) -> Planes:
        """The frame stored under ``key``, removed from the cache."""
        slot = self._slots.pop(key)
        self._free.append(slot)
        self._file.seek(slot * self.layout.frame_bytes)
        data = self._file.read(self.layout.frame_bytes)
        planes, offset = [], 0
        for h, w in self._shapes:
            count = h * w
            planes.append(np.frombuffer(data, self.layout.dtype, count, offset).reshape(h, w).copy())
            offset += count * self.layout.dtype.itemsize
        return planes

    def close(self) -> None:
        self._file.close()


@dataclass(frozen=True)
class FramePlanStats:
    """What serving an access order costs: frames decoded, decoder restarts, peak memory / disk frames."""

    decoded: int
    restarts: int
    peak_memory_frames: int
    disk_frames: int  # the temporary file's size in frames


class PlannedFrames:
    """Frames by position in a fixed access order, decoded once in file order as far as possible.

    ``open_frames()`` starts a decode from the first frame. ``accesses[p]`` is the source frame
    wanted at step p. After each step a frame needed again within ``window`` steps stays in memory; one
    needed later goes to ``disk`` (a `DiskFrameCache`) when given, otherwise it is dropped and decoded
    again, restarting the decoder when the file has already been read past it.
    """

    def __init__(
        self,
        open_frames: Callable[[], Iterator[Planes]],
        accesses: Sequence[int],
        window: int,
        disk: DiskFrameCache | None = None,
    ):
        if window < 1:
            raise ValueError(f"window must be >= 1, got {window}")
        self._open = open_frames
        self._accesses = np.asarray(accesses, dtype=np.int64)
        if self._accesses.size and self._accesses.min() < 0:
            raise ValueError("frame indices must be >= 0")
        # positions grouped by frame, in order: the next use of frame t after step p is a bisection
        self._order = np.argsort(self._accesses, kind="stable")
        self._sorted = self._accesses[self._order]
        self.window, self.disk = window, disk
        self._memory: dict[int, Planes | None] = {}
        self._iterator: Iterator[Planes] | None = None
        self._next_frame = 0  # index of the frame the decoder yields next
        self.decoded = self.restarts = self.peak_memory_frames = self.peak_disk_frames = 0

    def __len__(self) -> int:
        return int(self._accesses.size)

    def _next_use(self, frame: int, position: int) -> int | None:
        lo = np.searchsorted(self._sorted, frame, side="left")
        hi = np.searchsorted(self._sorted, frame, side="right")
        uses = self._order[lo:hi]  # ascending positions, as the sort is stable
        i = np.searchsorted(uses, position, side="right")
        return int(uses[i]) if i < uses.size else None

    def _keep(self, frame: int, planes: Planes | None, position: int) -> None:
        following = self._next_use(frame, position)
        if following is None:
            return
        if following - position <= self.window:
            self._memory[frame] = planes
            self.peak_memory_frames = max(self.peak_memory_frames, len(self._memory))
        elif self.disk is not None:
            self.disk.put(frame, planes)
            self.peak_disk_frames = max(self.peak_disk_frames, len(self.disk))

    def _decode_next(self) -> Planes | None:
        if self._iterator is None:
            self._iterator = self._open()
        try:
            planes = next(self._iterator)
        except StopIteration:
            raise ValueError(
                f"the video ended after {self._next_frame} frames while frame {self._next_frame} was wanted "
                "(did the file change while it was read?)"
            ) from None
        self._next_frame += 1
        self.decoded += 1
        return planes

    def _restart(self) -> None:
        self.close_decoder()
        self._next_frame = 0
        self.restarts += 1

    def get(self, position: int) -> Planes | None:
        """The frame wanted at step ``position`` (steps are taken in order)."""
        frame = int(self._accesses[position])
        if frame in self._memory:
            planes = self._memory.pop(frame)
        elif self.disk is not None and frame in self.disk:
            planes = self.disk.take(frame)
        else:
            if frame < self._next_frame:
                self._restart()
            while self._next_frame < frame:
                skipped = self._next_frame
                self._keep(skipped, self._decode_next(), position)
            planes = self._decode_next()
        self._keep(frame, planes, position)
        return planes

    def close_decoder(self) -> None:
        if self._iterator is not None:
            close = getattr(self._iterator, "close", None)
            if close is not None:
                close()
            self._iterator = None

    def stats(self) -> FramePlanStats:
        return FramePlanStats(self.decoded, self.restarts, self.peak_memory_frames, self.peak_disk_frames)


class _KeysOnly:
    """A `DiskFrameCache` stand-in that only counts keys (for `dry_run`)."""

    def __init__(self):
        self._keys: set[int] = set()

    def __contains__(self, key: int) -> bool:
        return key in self._keys

    def __len__(self) -> int:
        return len(self._keys)

    def put(self, key: int, planes) -> None:
        self._keys.add(key)

    def take(self, key: int) -> None:
        self._keys.discard(key)


def dry_run(accesses: Sequence[int], window: int, spill_to_disk: bool) -> FramePlanStats:
    """What `PlannedFrames` will do for this access order, without decoding anything (to check disk
    space and report before the work starts)."""

    def placeholders() -> Iterator[None]:
        while True:
            yield None

    plan = PlannedFrames(placeholders, accesses, window, _KeysOnly() if spill_to_disk else None)
    for position in range(len(plan)):
        plan.get(position)
    return plan.stats()


def free_disk_bytes(directory: str) -> int:
    os.makedirs(directory, exist_ok=True)
    return shutil.disk_usage(directory).free
