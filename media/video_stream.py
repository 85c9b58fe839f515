"""Reading a video file one frame at a time with PyAV, in the source's own pixel format.

A long video never fits in memory as an IMAGE batch (a minute of 1080p at 25 fps is 19 GB of float32), so
the streaming pipelines hold a few decoded frames at a time, as the planes the decoder produced (for
1080p yuv420p, 3 MB a frame). Frames are converted to RGB only where a pixel has to change, and an
encoder given the same planes reproduces every other pixel exactly as decoded: no float round trip,
no second colour conversion.

`PixelLayout` is the format frames are held in: the source's own format when libx264 can encode it
(8 or 10 bit, 4:2:0 / 4:2:2 / 4:4:4, grey, full or limited range), otherwise the nearest one it can
(NV12 -> yuv420p is a lossless repack; RGB sources become yuv444p; 12-bit ones 10-bit), plus the
source's colour tags, which the RGB conversions use and the writer stores.
"""

from __future__ import annotations

import io
import math
import os
from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction

import av
import numpy as np

from .video_io import Mp4Writer

Planes = list[np.ndarray]  # one (rows, columns) array per plane, uint8 or uint16 (10 bit)

# Pixel formats libx264 encodes (8 and 10 bit), i.e. the formats frames can be kept and written in.
X264_FORMATS = (
    "yuv420p",
    "yuvj420p",
    "yuv422p",
    "yuvj422p",
    "yuv444p",
    "yuvj444p",
    "yuv420p10le",
    "yuv422p10le",
    "yuv444p10le",
    "gray",
    "gray10le",
)
UNSPECIFIED = 2  # AVCOL_SPC / AVCOL_PRI / AVCOL_TRC "unspecified"; sws then uses BT.601


def held_format(name: str, quarter_turns: int = 0) -> str:
    """The x264-encodable format frames of pixel format ``name`` are held in (see the module notes).

    A 4:2:2 source turned by 90 degrees would have vertically subsampled chroma, which no encoder takes,
    so it is held as 4:4:4.
    """
    fmt = av.VideoFormat(name, 64, 64)
    deep = max(c.bits for c in fmt.components) > 8
    colour = [c for c in fmt.components if not c.is_alpha]
    if name in X264_FORMATS and not (quarter_turns % 2 and name.startswith(("yuv422", "yuvj422"))):
        return name
    if len(colour) == 1:
        return "gray10le" if deep else "gray"
    if fmt.is_rgb:
        sub = "444"
    else:
        chroma = next(c for c in colour if c.is_chroma)
        sub = {(32, 32): "420", (32, 64): "422", (64, 64): "444"}.get((chroma.width, chroma.height), "420")
        if sub == "422" and quarter_turns % 2:
            sub = "444"
    return f"yuv{sub}p" + ("10le" if deep else "")


@dataclass(frozen=True)
class PixelLayout:
    """How a video's frames are held: format, size and the colour tags of the source."""

    format: str
    width: int
    height: int
    colorspace: int = UNSPECIFIED
    color_range: int = 0  # 0 unspecified (sws: limited, except the yuvj formats), 1 limited, 2 full
    color_primaries: int = UNSPECIFIED
    color_trc: int = UNSPECIFIED

    @property
    def plane_shapes(self) -> list[tuple[int, int]]:
        fmt = av.VideoFormat(self.format, self.width, self.height)
        shapes: dict[int, tuple[int, int]] = {}
        for c in fmt.components:
            shapes.setdefault(c.plane, (c.height, c.width))
        return [shapes[p] for p in sorted(shapes)]

    @property
    def dtype(self) -> np.dtype:
        return np.dtype(np.uint16 if self.format.endswith("10le") else np.uint8)

    @property
    def chroma_step(self) -> tuple[int, int]:
        """(rows, columns) of luma pixels per chroma sample: (2, 2) for 4:2:0, (1, 2) 4:2:2, (1, 1) 4:4:4."""
        shapes = self.plane_shapes
        if len(shapes) == 1:
            return 1, 1
        (h, w), (ch, cw) = shapes[0], shapes[1]
        return max(1, round(h / ch)), max(1, round(w / cw))

    @property
    def colour_tags(self) -> dict[str, int]:
        """The colour tags as codec-context attributes (what `Mp4Writer` stores in the stream)."""
        return {
            "colorspace": self.colorspace,
            "color_range": self.color_range,
            "color_primaries": self.color_primaries,
            "color_trc": self.color_trc,
        }

    @property
    def frame_bytes(self) -> int:
        return sum(h * w for h, w in self.plane_shapes) * self.dtype.itemsize

    def _range(self, value: int) -> int | None:
        return value or None

    def to_av(self, planes: Planes, height: int | None = None, width: int | None = None) -> av.VideoFrame:
        """A VideoFrame holding ``planes``, carrying the colour tags; padded by repeating the last
        row / column to ``height`` x ``width`` when given (even sizes for the encoder)."""
        height, width = height or self.height, width or self.width
        frame = av.VideoFrame(width, height, self.format)
        for plane, data in zip(frame.planes, planes, strict=True):
            view = np.frombuffer(plane, self.dtype).reshape(plane.height, plane.line_size // self.dtype.itemsize)
            rows, cols = data.shape
            view[:rows, :cols] = data
            if cols < plane.width:
                view[:rows, cols : plane.width] = data[:, -1:]
            if rows < plane.height:
                view[rows : plane.height, : plane.width] = view[rows - 1 : rows, : plane.width]
        frame.colorspace, frame.color_range = self.colorspace, self.color_range
        frame.color_primaries, frame.color_trc = self.color_primaries, self.color_trc
        return frame

    def to_rgb(self, planes: Planes) -> np.ndarray:
        """(H, W, 3) uint8 RGB with the source's colour matrix and range (BT.601 when untagged)."""
        return self.to_av(planes).to_ndarray(format="rgb24", src_color_range=self._range(self.color_range))

    def from_rgb(self, rgb: np.ndarray) -> Planes:
        """Planes of this format (for an RGB image of any size) with the source's colour matrix and range."""
        frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb), format="rgb24")
        converted = frame.reformat(
            format=self.format,
            dst_colorspace=None if self.colorspace == UNSPECIFIED else self.colorspace,
            dst_color_range=self._range(self.color_range),
        )
        return planes_of(converted, self.dtype)


def planes_of(frame: av.VideoFrame, dtype=np.uint8) -> Planes:
    """Copies of a frame's planes, each cut to its visible width."""
    dtype = np.dtype(dtype)
    out = []
    for plane in frame.planes:
        view = np.frombuffer(plane, dtype).reshape(plane.height, plane.line_size // dtype.itemsize)
        out.append(view[:, : plane.width].copy())
    return out


@dataclass(frozen=True)
class FrameEdit:
    """RGB pixels of one frame that differ from the decoded frame: ``box`` (x0, y0, x1, y1) on whole
    chroma samples (`align_box`), the decoded RGB there and the new RGB (uint8 [y1 - y0, x1 - x0, 3])."""

    box: tuple[int, int, int, int]
    before: np.ndarray
    after: np.ndarray

    def apply(self, layout: PixelLayout, planes: Planes) -> Planes:
        return replace_changed(layout, planes, self.box, self.before, self.after)


def align_box(layout: PixelLayout, box: tuple[int, int, int, int]) -> tuple[int, int, int, int]:
    """(x0, y0, x1, y1) grown to whole chroma samples (and clipped to the frame), as `replace_changed` needs."""
    step_y, step_x = layout.chroma_step
    x0, y0, x1, y1 = box
    x0, y0 = max(0, x0 - x0 % step_x), max(0, y0 - y0 % step_y)
    x1 = min(layout.width, -(-x1 // step_x) * step_x)
    y1 = min(layout.height, -(-y1 // step_y) * step_y)
    return x0, y0, x1, y1


def replace_changed(
    layout: PixelLayout, planes: Planes, box: tuple[int, int, int, int], before: np.ndarray, after: np.ndarray
) -> Planes:
    """``planes`` with the RGB pixels of ``box`` (from `align_box`) changed from ``before`` to ``after``.

    Only pixels whose RGB value changed take newly converted samples (with subsampled chroma, a chroma
    sample is replaced when any pixel it covers changed); every other sample keeps its decoded value.
    Returns new arrays; ``planes`` is not modified.
    """
    x0, y0, x1, y1 = box
    if align_box(layout, box) != box:
        raise ValueError(f"box {box} does not start and end on whole chroma samples of {layout.format}")
    changed = (before != after).any(-1)
    if not changed.any():
        return planes
    step_y, step_x = layout.chroma_step
    converted = layout.from_rgb(after)
    out = [p.copy() for p in planes]
    out[0][y0:y1, x0:x1][changed] = converted[0][changed]
    if len(out) > 1:
        h, w = changed.shape
        padded = np.zeros((-(-h // step_y) * step_y, -(-w // step_x) * step_x), bool)
        padded[:h, :w] = changed
        blocks = padded.reshape(padded.shape[0] // step_y, step_y, padded.shape[1] // step_x, step_x).any((1, 3))
        cy0, cx0 = y0 // step_y, x0 // step_x
        for plane, new in zip(out[1:], converted[1:], strict=True):
            plane[cy0 : cy0 + blocks.shape[0], cx0 : cx0 + blocks.shape[1]][blocks] = new[blocks]
    return out


class HeldFrameWriter:
    """Writes held frames (`PixelLayout` planes) with their RGB edits merged in: the
    streaming pipelines' frame sink. Unchanged samples reach the encoder exactly as decoded."""

    def __init__(self, writer: Mp4Writer, layout: PixelLayout):
        self.writer, self.layout = writer, layout

    def write(self, planes: Planes, edit: FrameEdit | None) -> None:
        if edit is not None:
            planes = edit.apply(self.layout, planes)
        self.writer.write(self.layout.to_av(planes, self.writer.out_h, self.writer.out_w))


@dataclass(frozen=True)
class VideoInfo:
    fps: Fraction  # the stream's average frame rate, as core's VIDEO reports it
    layout: PixelLayout  # the held format, size after turning upright
    source_format: str
    codec: str
    quarter_turns: int  # the frames are turned by this many quarter turns to stand upright
    duration: float  # seconds in the read window (0 when the container does not say)
    estimated_frames: int | None  # from the container; the exact count comes from reading

    def describe(self) -> str:
        lay = self.layout
        text = f"{lay.width}x{lay.height} {self.codec} {self.source_format} at {float(self.fps):g} fps"
        if self.duration:
            text += f", {self.duration:.2f} s"
        if self.quarter_turns % 4:
            text += f", turned {90 * (self.quarter_turns % 4)} degrees upright"
        if lay.format != self.source_format:
            text += f" (held and written as {lay.format})"
        return text


class VideoReader:
    """The frames of a video file (a path or an in-memory file) as planes of its `PixelLayout`.

    ``start`` / ``duration`` (seconds, 0 = to the end) select a window the way core's VIDEO trims one
    (ComfyUI 0.33: frames with a timestamp before the start are skipped, from start + duration on
    dropped). Frames are turned upright by the stream's rotation, as core 0.33 does. Every call of
    `frames` decodes from the start of the window again.
    """

    def __init__(self, source: str | io.BytesIO, start: float = 0.0, duration: float = 0.0, name: str = ""):
        if start < 0 or duration < 0:
            raise ValueError(f"video: the read window must not be negative (start {start}, duration {duration})")
        self.source, self.start, self.duration = source, float(start), float(duration)
        self.name = name or (os.path.basename(source) if isinstance(source, str) else "the video")
        self.info = self._probe()

    def _open(self) -> av.container.InputContainer:
        if isinstance(self.source, io.IOBase):
            self.source.seek(0)
        try:
            return av.open(self.source, mode="r")
        except (av.error.FFmpegError, OSError) as e:
            raise ValueError(f"video: cannot read {self.name}: {e}") from e

    def _window_text(self) -> str:
        if not (self.start or self.duration):
            return ""
        return f" from {self.start:g} s" + (f" for {self.duration:g} s" if self.duration else "")

    def _decoded(self, container: av.container.InputContainer) -> Iterator[av.VideoFrame]:
        stream = container.streams.video[0]
        start_pts = int(self.start / stream.time_base)
        end_pts = int((self.start + self.duration) / stream.time_base)
        if start_pts:
            container.seek(start_pts, stream=stream)
        try:
            for packet in container.demux(stream):
                try:
                    frames = packet.decode()
                except av.error.InvalidDataError:  # a damaged packet: skip it, as core's reader does
                    continue
                for frame in frames:
                    if frame.pts is not None and frame.pts < start_pts:
                        continue
                    if self.duration and frame.pts is not None and frame.pts >= end_pts:
                        return
                    yield frame
        except av.error.FFmpegError as e:
            raise ValueError(f"video: cannot decode {self.name}: {e}") from e

    def _probe(self) -> VideoInfo:
        with self._open() as container:
            if not container.streams.video:
                raise ValueError(f"video: {self.name} has no video stream")
            stream = container.streams.video[0]
            first = next(self._decoded(container), None)
            if first is None:
                raise ValueError(f"video: {self.name} has no frames{self._window_text()}")
            rate = Fraction(stream.average_rate) if stream.average_rate else Fraction(1)
            turns = int(round(getattr(first, "rotation", 0) // 90)) % 4
            width, height = (first.height, first.width) if turns % 2 else (first.width, first.height)
            held = held_format(first.format.name, turns)
            if held == first.format.name or not av.VideoFormat(first.format.name).is_rgb:
                colorspace, color_range = int(first.colorspace), int(first.color_range)
            else:  # RGB sources are held as BT.709 limited-range 4:4:4
                colorspace, color_range = 1, 1
            layout = PixelLayout(
                held, width, height, colorspace, color_range, int(first.color_primaries), int(first.color_trc)
            )
            if self.duration:
                seconds = self.duration
            elif stream.duration is not None:
                seconds = max(0.0, float(stream.duration * stream.time_base) - self.start)
            elif container.duration is not None:
                seconds = max(0.0, container.duration / av.time_base - self.start)
            else:
                seconds = 0.0
            if stream.frames and not (self.start or self.duration):
                estimate = int(stream.frames)
            else:
                estimate = max(1, math.floor(seconds * rate + 0.5)) if seconds else None
            codec = stream.codec_context.name
        return VideoInfo(rate, layout, first.format.name, codec, turns, seconds, estimate)

    def _held(self, frame: av.VideoFrame) -> Planes:
        layout, turns = self.info.layout, self.info.quarter_turns
        if frame.format.name != layout.format:
            frame = frame.reformat(
                format=layout.format,
                dst_colorspace=None if layout.colorspace == UNSPECIFIED else layout.colorspace,
                src_color_range=int(frame.color_range) or None,
                dst_color_range=layout.color_range or None,
            )
        planes = planes_of(frame, layout.dtype)
        if turns:
            planes = [np.ascontiguousarray(np.rot90(p, k=turns)) for p in planes]
        return planes

    def frames(self) -> Iterator[Planes]:
        """Every frame of the window, in order, as planes of ``info.layout``."""
        with self._open() as container:
            container.streams.video[0].thread_type = "AUTO"
            for frame in self._decoded(container):
                yield self._held(frame)
