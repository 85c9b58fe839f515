"""Frames held as decoded planes: pixel layouts, patching only changed pixels, lossless re-encode, and
serving a fixed access order from one decode (memory window, disk spill, re-reads)."""

import av
import numpy as np
import pytest
import torch
from humanvideo.media.frame_cache import DiskFrameCache, PlannedFrames, dry_run
from humanvideo.media.video_io import Mp4Writer
from humanvideo.media.video_stream import (
    FrameEdit,
    HeldFrameWriter,
    PixelLayout,
    VideoReader,
    align_box,
    held_format,
    replace_changed,
)


def noisy_clip(path, frames=6, size=(36, 48), fps=25, pix_fmt="yuv420p"):
    """A lossless clip of random pictures (every sample differs from its neighbours)."""
    rng = np.random.default_rng(0)
    h, w = size
    with Mp4Writer(str(path), frames, size, fps, crf=0, pix_fmt=pix_fmt) as writer:
        for _ in range(frames):
            writer.write_rgb(rng.integers(0, 256, (h, w, 3), dtype=np.uint8))
    return str(path)


@pytest.mark.parametrize(
    "name, turns, held",
    [
        ("yuv420p", 0, "yuv420p"),
        ("nv12", 0, "yuv420p"),
        ("rgb24", 0, "yuv444p"),
        ("yuv422p", 1, "yuv444p"),
        ("yuv422p", 2, "yuv422p"),
        ("yuv420p12le", 0, "yuv420p10le"),
        ("gray", 0, "gray"),
    ],
)
def test_held_format(name, turns, held):
    assert held_format(name, turns) == held


def test_reader_window_and_layout(tmp_path):
    path = noisy_clip(tmp_path / "n.mp4", frames=10)
    reader = VideoReader(path)
    info = reader.info
    assert (info.layout.format, info.layout.width, info.layout.height, info.fps) == ("yuv420p", 48, 36, 25)
    frames = list(reader.frames())
    assert len(frames) == 10 and [p.shape for p in frames[0]] == [(36, 48), (18, 24), (18, 24)]
    window = list(VideoReader(path, start=0.12, duration=0.2).frames())  # frames 3..7
    assert len(window) == 5
    for a, b in zip(window[0], frames[3], strict=True):
        np.testing.assert_array_equal(a, b)
    with pytest.raises(ValueError, match="no frames from 5 s"):
        VideoReader(path, start=5.0)
    with pytest.raises(ValueError, match="must not be negative"):
        VideoReader(path, start=-1.0)


def test_changed_pixels_only_replace_their_samples(tmp_path):
    reader = VideoReader(noisy_clip(tmp_path / "n.mp4", frames=1))
    layout = reader.info.layout
    planes = next(reader.frames())
    rgb = layout.to_rgb(planes)
    box = align_box(layout, (5, 3, 20, 17))
    assert box == (4, 2, 20, 18)
    x0, y0, x1, y1 = box
    before = rgb[y0:y1, x0:x1]
    after = before.copy()
    after[5, 7] = 255 - after[5, 7]  # one pixel at (x0 + 7, y0 + 5) = (11, 7)
    out = FrameEdit(box, before, after).apply(layout, planes)
    luma = out[0] != planes[0]
    assert luma.sum() <= 1 and not luma[:7].any() and not luma[8:].any()
    for new, old in zip(out[1:], planes[1:], strict=True):
        changed = np.argwhere(new != old)
        assert all((r, c) == (3, 5) for r, c in changed)  # only the chroma sample covering (11, 7)
    assert replace_changed(layout, planes, box, before, before) is planes  # nothing changed: same planes
    with pytest.raises(ValueError, match="whole chroma samples"):
        replace_changed(layout, planes, (5, 3, 20, 17), before, after)


@pytest.mark.parametrize("pix_fmt", ["yuv420p", "yuv444p"])
def test_held_frames_reencode_losslessly(tmp_path, pix_fmt):
    """Planes written through HeldFrameWriter at crf 0 decode to the very same samples."""
    source = VideoReader(noisy_clip(tmp_path / "n.mp4", frames=3, pix_fmt=pix_fmt))
    layout = source.info.layout
    out = str(tmp_path / "o.mp4")
    writer = Mp4Writer(out, 3, (layout.height, layout.width), 25, crf=0, pix_fmt=layout.format)
    sink = HeldFrameWriter(writer, layout)
    frames = list(source.frames())
    for planes in frames:
        sink.write(planes, None)
    assert writer.close().padded == (0, 0)
    with av.open(out) as container:
        decoded = [f for f in container.decode(video=0)]
    assert decoded[0].format.name == pix_fmt
    for frame, planes in zip(decoded, frames, strict=True):
        for plane, expected in zip(frame.planes, planes, strict=True):
            got = np.frombuffer(plane, np.uint8).reshape(plane.height, plane.line_size)
            np.testing.assert_array_equal(got[: expected.shape[0], : expected.shape[1]], expected)


def numbered(count, log):
    def open_frames():
        log.append("open")
        for i in range(count):
            yield [np.full((2, 2), i, np.uint8)]

    return open_frames


LAYOUT = PixelLayout("gray", 2, 2)


@pytest.mark.parametrize(
    "accesses, window, disk, decoded, restarts, disk_frames",
    [
        ([0, 1, 2, 3, 4, 5, 4, 3, 2, 1, 0], 2, True, 6, 0, 4),  # ping-pong: the reversed part from disk
        ([0, 1, 2, 3, 4, 5, 4, 3, 2, 1, 0], 20, True, 6, 0, 0),  # all within the window: memory only
        ([0, 1, 2, 3, 0, 1, 2, 3], 2, False, 8, 1, 0),  # a loop: read again from the top
        ([0, 0, 1, 1, 3, 3], 1, False, 4, 0, 0),  # repeats and a skipped frame
    ],
)
def test_planned_frames_serve_the_access_order(tmp_path, accesses, window, disk, decoded, restarts, disk_frames):
    log = []
    cache = DiskFrameCache(LAYOUT, str(tmp_path)) if disk else None
    plan = PlannedFrames(numbered(6, log), accesses, window, cache)
    for position, frame in enumerate(accesses):
        assert int(plan.get(position)[0][0, 0]) == frame
    stats = plan.stats()
    assert (stats.decoded, stats.restarts, stats.disk_frames) == (decoded, restarts, disk_frames)
    assert stats.peak_memory_frames <= window + 1
    assert log.count("open") == restarts + 1
    assert dry_run(accesses, window, spill_to_disk=disk) == stats  # what the pipeline plans with
    if cache is not None:
        assert len(cache) == 0 and cache.size_bytes == disk_frames * LAYOUT.frame_bytes
        cache.close()


def test_planned_frames_name_a_short_video():
    plan = PlannedFrames(numbered(2, []), [0, 1, 2], 1)
    plan.get(0), plan.get(1)
    with pytest.raises(ValueError, match="ended after 2 frames"):
        plan.get(2)


def test_rgb_round_trip_keeps_colours_close(tmp_path):
    layout = VideoReader(noisy_clip(tmp_path / "n.mp4", frames=1, pix_fmt="yuv444p")).info.layout
    rgb = torch.randint(0, 256, (8, 8, 3), dtype=torch.uint8, generator=torch.Generator().manual_seed(0)).numpy()
    small = PixelLayout("yuv444p", 8, 8, layout.colorspace, layout.color_range)
    back = small.to_rgb(small.from_rgb(rgb))
    assert np.abs(back.astype(int) - rgb.astype(int)).max() <= 3
