"""Parse sink specs and open them.

``--output`` values:

- ``null`` — discard (benchmarks).
- ``window`` — OpenCV preview; q or Esc quits (needs opencv-python, not -headless).
- ``virtualcam[:TARGET]`` — a virtual webcam. TARGET is optional and comma-separated:
  a device (``virtualcam:/dev/video10``), a backend (``virtualcam:backend=obs``; v4l2loopback
  on Linux, obs on Windows/macOS, unitycapture on Windows) or both
  (``virtualcam:device=/dev/video10,backend=v4l2loopback``).
- ``file:PATH`` — record to .mp4 (fragmented, playable even if killed) or .mkv, H.264,
  encoded on its own thread (see ``background``) so the recording adds no latency.
- ``udp://HOST:PORT`` — MPEG-TS/H.264 for an OBS Media Source; ``srt://HOST:PORT`` where
  PyAV's FFmpeg has SRT.
"""

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
        from realtime.sinks.virtualcam import parse_target

        target = text.strip().partition(":")[2]
        parse_target(target)  # a bad target fails here, before any device is opened
        return SinkSpec("virtualcam", target)
    if lowered.startswith(("udp://", "srt://")):
        return SinkSpec("stream", text.strip())
    if lowered.startswith("file:"):
        path = text.strip()[5:]
        if not path:
            raise UsageError("E02", "file: needs a path", remedy="use e.g. --output file:out.mp4")
        return SinkSpec("file", path)
    raise UsageError("E02", f"--output {text!r}")


def open_sink(spec: SinkSpec, *, width: int, height: int, fps: float, live: bool = True) -> Sink:
    """Open one sink for frames of ``width``×``height`` at ``fps``.

    ``live=False`` (an offline render) makes a file output time frames by their
    index instead of their capture time, which then says nothing about playback.
    """
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
    from realtime.sinks.background import BackgroundSink, queue_frames
    from realtime.sinks.file import FileSink

    recording = FileSink(spec.target, width=width, height=height, fps=fps, timing="capture" if live else "sequence")
    return BackgroundSink(recording, capacity=queue_frames(width=width, height=height, fps=fps), blocking=not live,
                          skip_repeats=True)
