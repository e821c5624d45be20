"""What every source provides, and a clock that paces live sources."""

from __future__ import annotations

import time
from types import TracebackType
from typing import Protocol

import numpy as np

from realtime.clock import now_ns


class EndOfStream(Exception):
    """The source has no more frames (end of file, frame limit)."""


class SignalLost(Exception):
    """A live source stopped delivering (camera unplugged, stream gone).

    The capture thread then retries with backoff through ``reconnect()``
    while the outputs keep running.
    """


class Source(Protocol):
    """Produces BGR uint8 frames. ``read`` blocks until the next frame is due.

    A source is a context manager: ``with`` closes it. Sources in this package
    inherit ``__enter__``/``__exit__`` from this class.
    """

    name: str
    width: int
    height: int
    fps: float
    live: bool  # live sources never block the producer: rings drop instead

    def read(self) -> np.ndarray: ...

    def close(self) -> None: ...

    def __enter__(self) -> Source:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 traceback: TracebackType | None) -> None:
        self.close()


class Reconnectable(Protocol):
    """A source that can be reopened after SignalLost."""

    def reconnect(self) -> None: ...


class FrameClock:
    """Paces a generated source to ``fps``; when late it skips ahead instead of bursting."""

    def __init__(self, fps: float) -> None:
        self.interval_ns = int(1e9 / fps)
        self._next = now_ns()

    def wait(self) -> None:
        """Sleep until the next frame is due."""
        now = now_ns()
        if self._next > now:
            time.sleep((self._next - now) / 1e9)
            self._next += self.interval_ns
        else:
            behind = (now - self._next) // self.interval_ns
            self._next += (behind + 1) * self.interval_ns
