"""The one progress helper of long node loops: reports move the bar, and Cancel stops at the next report."""

from __future__ import annotations

import comfy.model_management as mm
import comfy.utils
import pytest
from humanvideo.nodes.progress import CancellableProgress


@pytest.fixture
def reports(monkeypatch):
    """Every update the helper sends to ComfyUI's progress bar (recorded before core's own throttling)."""
    seen = []

    class RecordingBar(comfy.utils.ProgressBar):
        def update_absolute(self, value, total=None, preview=None):
            seen.append((value, total))
            super().update_absolute(value, total, preview)

    monkeypatch.setattr(comfy.utils, "ProgressBar", RecordingBar)
    return seen


def test_absolute_reports_and_steps_move_the_bar(reports):
    progress = CancellableProgress()
    progress(2, 10)
    progress(5)
    progress.step()
    assert reports == [(2, 10), (5, 10), (6, 10)]


def test_cancel_raises_at_the_next_report_and_is_cleared(reports):
    progress = CancellableProgress(4)
    progress.step()
    mm.interrupt_current_processing(True)
    try:
        with pytest.raises(mm.InterruptProcessingException):
            progress.step()
    finally:
        mm.interrupt_current_processing(False)
    assert reports == [(1, 4)]
    assert not mm.processing_interrupted()
