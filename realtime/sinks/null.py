"""A sink that discards frames (for benchmarks) but remembers what it saw."""

from __future__ import annotations

from realtime.frame import Frame
from realtime.sinks.base import Sink
from realtime.stamp import read_stamp


class NullSink(Sink):
    """Discards frames. With ``decode_stamps`` it records each frame's decoded stamp."""

    name = "null"

    def __init__(self, *, decode_stamps: bool = False) -> None:
        self.decode_stamps = decode_stamps
        self.written = 0
        self.stamps: list[int | None] = []

    def write(self, frame: Frame) -> None:
        """Count the frame (and decode its stamp if asked)."""
        self.written += 1
        if self.decode_stamps:
            self.stamps.append(read_stamp(frame.image))

    def close(self) -> None:
        """Nothing to release."""
