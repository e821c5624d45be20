"""Parse sink specs (``null``, ``window``, ``virtualcam[:DEVICE]``, ``file:PATH``,
``udp://HOST:PORT``, ``srt://HOST:PORT``) and open them."""

from __future__ import annotations

from dataclasses import dataclass

from realtime.errors import UsageError
from realtime.sinks.base import Sink


@dataclass(frozen=True)
class SinkSpec:
    """A parsed ``--output`` value."""

    kind: str  # null | window | virtualcam | file | stream
    target: str = ""


def parse_sink(text: str) -> SinkSpec:
    """Parse one ``--output`` value; raises UsageError E02 for an unknown one."""
    lowered = text.strip().lower()
    if lowered in ("null", "none"):
        return SinkSpec("null")
    if lowered in ("window", "preview"):
        return SinkSpec("window")
    if lowered == "virtualcam" or lowered.startswith("virtualcam:"):
        return SinkSpec("virtualcam", text.partition(":")[2])
    if lowered.startswith(("udp://", "srt://")):
        return SinkSpec("stream", text.strip())
    if lowered.startswith("file:"):
        path = text.strip()[5:]
        if not path:
            raise UsageError("E02", "file: needs a path", remedy="use e.g. --output file:out.mp4")
        return SinkSpec("file", path)
    raise UsageError("E02", f"--output {text!r}")


def open_sink(spec: SinkSpec, *, width: int, height: int, fps: float) -> Sink:
    """Open one sink for frames of ``width``×``height`` at ``fps``."""
    if spec.kind == "null":
        from realtime.sinks.null import NullSink

        return NullSink()
    if spec.kind == "window":
        from realtime.sinks.window import WindowSink

        return WindowSink()
    if spec.kind == "virtualcam":
        from realtime.sinks.virtualcam import VirtualCamSink

        return VirtualCamSink(spec.target, width=width, height=height, fps=fps)
    if spec.kind == "stream":
        from realtime.sinks.stream import StreamSink

        return StreamSink(spec.target, width=width, height=height, fps=fps)
    from realtime.sinks.file import FileSink

    return FileSink(spec.target, width=width, height=height, fps=fps)
