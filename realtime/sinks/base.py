"""What every sink provides."""

from __future__ import annotations

from types import TracebackType
from typing import Protocol

from realtime.frame import Frame


class StopRequested(Exception):
    """Raised by a sink when the user asked to stop (e.g. pressed q in the preview window)."""


class Sink(Protocol):
    """Writes frames somewhere. Opened by its constructor, finalised by ``close``.

    A sink is a context manager: ``with`` closes it. Sinks in this package inherit
    ``__enter__``/``__exit__`` from this class; ``failure_code`` is the error code a
    failing write is reported with (E14 file, E15 network, E10 virtual camera).
    """

    name: str
    failure_code: str = "E17"

    def write(self, frame: Frame) -> None: ...

    def close(self) -> None: ...

    def __enter__(self) -> Sink:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 traceback: TracebackType | None) -> None:
        self.close()
