"""Start and stop a ``file:`` recording while the pipeline runs; the other outputs stay up."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from realtime.clock import now_s
from realtime.errors import UsageError
from realtime.sinks.base import Sink
from realtime.sinks.factory import SinkSpec, open_sink

SUFFIXES = (".mp4", ".mkv")


@dataclass(frozen=True)
class FrameFormat:
    """What the recording's encoder is opened for."""

    width: int
    height: int
    fps: float
    live: bool = True


def recording_path(folder: Path, name: str | None) -> Path:
    """Where a recording goes: ``name`` (a plain file name, .mp4 or .mkv) in ``folder``, or a timestamped one.

    A name with a folder part is refused (E01): clients choose a name, never a place.
    """
    if not name:
        return folder / time.strftime("swapcam-%Y%m%d-%H%M%S.mp4")
    if Path(name).name != name or name in (".", "..") or "\\" in name:
        raise UsageError("E01", f"recording path {name!r}",
                         remedy=f"give a plain file name; recordings are written to {folder}")
    if Path(name).suffix.lower() not in SUFFIXES:
        raise UsageError("E01", f"recording path {name!r}", remedy="end the name with .mp4 or .mkv")
    return folder / name


class Recorder:
    """One recording at a time, added to and removed from a running pipeline."""

    def __init__(self, *, folder: Path, frame_format: FrameFormat, add_sink: Callable[[Sink], None],
                 remove_sink: Callable[[Sink], None]) -> None:
        self.folder = folder
        self.format = frame_format
        self._add, self._remove = add_sink, remove_sink
        self._lock = threading.Lock()
        self._sink: Sink | None = None
        self.path: Path | None = None  # the current or last recording
        self.started = 0.0

    @property
    def active(self) -> bool:
        """True while recording."""
        return self._sink is not None

    def start(self, name: str | None = None) -> dict[str, Any]:
        """Open a new recording (E01 while one runs or for a bad name; E14 when it cannot be written)."""
        with self._lock:
            if self._sink is not None:
                raise UsageError("E01", f"already recording to {self.path}", remedy="stop the recording first")
            path = recording_path(self.folder, name)
            self.folder.mkdir(parents=True, exist_ok=True)
            fmt = self.format
            sink = open_sink(SinkSpec("file", str(path)), width=fmt.width, height=fmt.height, fps=fmt.fps,
                             live=fmt.live)
            self._add(sink)
            self._sink, self.path, self.started = sink, path, now_s()
        return self.status()

    def stop(self) -> dict[str, Any]:
        """Finish the recording (the file is complete when this returns); E01 when none runs."""
        with self._lock:
            if self._sink is None:
                raise UsageError("E01", "not recording", remedy='start one with {"action": "start"}')
            self._remove(self._sink)  # returns once the file is complete
            self._sink = None
        return self.status()

    def toggle(self) -> dict[str, Any]:
        """Start when stopped, stop when recording (the r hotkey)."""
        return self.stop() if self.active else self.start()

    def status(self) -> dict[str, Any]:
        """Recording or not, the file's path and its size so far."""
        path = self.path
        size = path.stat().st_size if path is not None and path.exists() else 0
        seconds = now_s() - self.started if self.active else 0.0
        return {"recording": self.active, "path": None if path is None else str(path), "bytes": size,
                "seconds": round(seconds, 1)}

    def close(self) -> None:
        """Forget the recording at the end of the run: the pipeline's stop closes it with its other sinks."""
        with self._lock:
            self._sink = None
