"""Frozen configuration dataclasses, validated once at construction."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from realtime.errors import UsageError

SOURCE_KINDS = ("camera", "file", "url", "image", "synthetic")
QUEUE_KINDS = ("ring", "unbounded")
FRAME_PRIORITIES = ("realtime", "normal")
URL_SCHEMES = ("rtsp://", "rtmp://", "udp://", "srt://", "http://", "https://", "tcp://")


def parse_size(text: str) -> tuple[int, int]:
    """'1280x720' → (1280, 720); raises UsageError (E01) otherwise."""
    match = re.fullmatch(r"\s*(\d+)\s*[xX×]\s*(\d+)\s*", text)
    if not match:
        raise UsageError("E01", f"--size {text!r} is not WIDTHxHEIGHT", remedy="use e.g. --size 1280x720")
    width, height = int(match.group(1)), int(match.group(2))
    check_size(width, height)
    return width, height


def check_size(width: int, height: int) -> None:
    """Frame sizes must be even (for yuv420 encoders) and within 16..7680 px."""
    if not (16 <= width <= 7680 and 16 <= height <= 4320) or width % 2 or height % 2:
        raise UsageError("E01", f"size {width}x{height} is out of range",
                         remedy="use an even size between 16x16 and 7680x4320, e.g. 1280x720")


def check_fps(fps: float) -> None:
    """Frame rates from 1 to 240 fps."""
    if not (1.0 <= fps <= 240.0):
        raise UsageError("E01", f"fps {fps} is out of range", remedy="use an fps between 1 and 240, e.g. 30")


def looks_like_url(text: str) -> bool:
    """True for network inputs PyAV opens by URL."""
    return text.lower().startswith(URL_SCHEMES)


@dataclass(frozen=True)
class SourceConfig:
    """Where frames come from.

    ``location``: camera index or device path, file path, URL or image path.
    ``realtime``: pace a file to its timestamps and drop when behind (live);
    False renders every frame as fast as possible with blocking rings.
    """

    kind: str = "synthetic"
    location: str = ""
    width: int = 1280
    height: int = 720
    fps: float = 30.0
    loop: bool = False
    realtime: bool = True

    def __post_init__(self) -> None:
        if self.kind not in SOURCE_KINDS:
            raise UsageError("E02", f"source kind {self.kind!r}", remedy=f"use one of {', '.join(SOURCE_KINDS)}")
        check_size(self.width, self.height)
        check_fps(self.fps)


@dataclass(frozen=True)
class PipelineConfig:
    """How the threads and rings are set up, and when the run ends."""

    ring_size: int = 1  # measured: freshest frame wins on latency and even on drops (README, Performance)
    queue: str = "ring"
    sync_delay_ms: float = 0.0
    output_fps: float | None = None
    duration_s: float | None = None
    max_frames: int | None = None
    resend_last: bool = True
    stats_interval_s: float = 1.0
    on_signal_loss: str = "black"  # what the outputs show while the source is lost: black | last
    # OpenCV's worker threads for the per-frame image operations. 1 (they run on the calling thread) measured as
    # fast as 2 on two cores, spending 0.17 of a core less, and a busy neighbour (a browser) slows it less:
    # the capture, inference and output threads already keep the cores busy (README, Live control).
    frame_threads: int = 1
    # A live run's capture, inference and output threads ask for the real-time class where the system grants
    # it: with a browser on the same two cores, the p95 difference went from about +3 ms to +0.5 ms (README).
    frame_priority: str = "realtime"
    sink_specs: tuple[str, ...] = field(default_factory=lambda: ("null",))

    def __post_init__(self) -> None:
        if not 1 <= self.ring_size <= 64:
            raise UsageError("E01", f"--ring-size {self.ring_size}", remedy="use a ring size from 1 to 64")
        if self.queue not in QUEUE_KINDS:
            raise UsageError("E01", f"queue {self.queue!r}", remedy="use --queue ring (unbounded is for benchmarks)")
        if not 0 <= self.sync_delay_ms <= 10_000:
            raise UsageError("E01", f"--sync-delay {self.sync_delay_ms}", remedy="use a delay from 0 to 10000 ms")
        if self.duration_s is not None and self.duration_s <= 0:
            raise UsageError("E01", f"--duration {self.duration_s}", remedy="use a positive number of seconds")
        if self.max_frames is not None and self.max_frames <= 0:
            raise UsageError("E01", f"--frames {self.max_frames}", remedy="use a positive number of frames")
        if not 1 <= self.frame_threads <= 64:
            raise UsageError("E01", f"--threads {self.frame_threads}", remedy="use 1 to 64 threads")
        if self.frame_priority not in FRAME_PRIORITIES:
            raise UsageError("E01", f"--frame-priority {self.frame_priority!r}", remedy="use realtime or normal")
        if self.on_signal_loss not in ("black", "last"):
            raise UsageError("E01", f"--on-signal-loss {self.on_signal_loss!r}", remedy="use black or last")
        if self.output_fps is not None:
            check_fps(self.output_fps)
