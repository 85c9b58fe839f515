"""One progress helper for long node loops: every report first honours Cancel, then moves the bar."""

from __future__ import annotations

import comfy.model_management
import comfy.utils


class CancellableProgress:
    """ComfyUI's progress bar behind a callback that raises on Cancel before each update.

    Call it as ``progress(done, total)`` (absolute) or use :meth:`step` as an ``on_frame(i)`` callback that
    advances by one. The bar is made on the first report, so a total known only then is fine.
    """

    def __init__(self, total: int = 1) -> None:
        self.total = max(int(total), 1)
        self.done = 0
        self._bar: comfy.utils.ProgressBar | None = None

    def __call__(self, done: float, total: float | None = None) -> None:
        comfy.model_management.throw_exception_if_processing_interrupted()
        if total is not None:
            self.total = max(int(total), 1)
        if self._bar is None:
            self._bar = comfy.utils.ProgressBar(self.total)
        self.done = done
        self._bar.update_absolute(done, self.total)

    def step(self, _index: int | None = None) -> None:
        """Advance by one (an ``on_frame`` callback: the argument is ignored)."""
        self(self.done + 1)
