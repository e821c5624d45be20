"""What every sink provides."""

from __future__ import annotations

from typing import Protocol

from realtime.frame import Frame


class StopRequested(Exception):
    """Raised by a sink when the user asked to stop (e.g. pressed q in the preview window)."""


class Sink(Protocol):
    """Writes frames somewhere. Opened by its constructor, finalised by ``close``."""

    name: str

    def write(self, frame: Frame) -> None: ...

    def close(self) -> None: ...
