"""Options shared by ``run`` and ``bench``: source, outputs, pipeline, processing."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from realtime.config import PipelineConfig, SourceConfig, looks_like_url, parse_size
from realtime.console import ansi_supported
from realtime.container import usable_cpus
from realtime.errors import OutputError, UsageError
from realtime.stats import Stats


def add_source_options(parser: argparse.ArgumentParser) -> None:
    """--camera / --input / --image / --synthetic, --size, --fps, --loop."""
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--camera", metavar="N|PATH", help="webcam index (0) or device path (/dev/video0)")
    group.add_argument("--input", metavar="PATH|URL", help="video file, or rtsp/udp/srt/http URL")
    group.add_argument("--image", metavar="PATH", help="a still image repeated at --fps")
    group.add_argument("--synthetic", action="store_true", help="generated test frames with sequence stamps")
    parser.add_argument("--size", default="1280x720", help="frame size WxH (default 1280x720)")
    parser.add_argument("--fps", type=float, default=30.0, help="frame rate (default 30)")
    parser.add_argument("--loop", action="store_true", help="loop a video file")
    parser.add_argument("--offline", action="store_true",
                        help="render every frame of a file as fast as possible (no drops)")


def add_pipeline_options(parser: argparse.ArgumentParser, *, default_output: str = "null") -> None:
    """--output, --duration/--frames, --ring-size, --sync-delay, --stats-json."""
    parser.add_argument("--output", action="append", metavar="SINK",
                        help="null, window, virtualcam[:DEVICE], file:PATH, udp://HOST:PORT, srt://HOST:PORT "
                             f"(repeatable; default {default_output})")
    stop = parser.add_mutually_exclusive_group()
    stop.add_argument("--duration", type=float, metavar="S", help="stop after S seconds")
    stop.add_argument("--frames", type=int, metavar="N", help="stop after N frames")
    parser.add_argument("--ring-size", type=int, default=PipelineConfig.ring_size,
                        help=f"frames each ring holds (default {PipelineConfig.ring_size})")
    parser.add_argument("--queue", choices=["ring", "unbounded"], default="ring", help=argparse.SUPPRESS)
    parser.add_argument("--sync-delay", type=float, default=0.0, metavar="MS",
                        help="hold each frame until MS after capture (match an audio delay)")
    parser.add_argument("--stats-json", type=Path, metavar="PATH", help="write the final stats as JSON")
    parser.add_argument("--on-signal-loss", choices=["black", "last"], default="black",
                        help="while the camera/stream is lost show a NO SIGNAL frame (black) or the last frame")
    parser.add_argument("--frame-priority", choices=["realtime", "normal"], default=PipelineConfig.frame_priority,
                        help="realtime (default): in live video the capture, inference and output threads go "
                             "ahead of other programs' threads where the system allows it (Linux: root, "
                             "CAP_SYS_NICE or `ulimit -r` of 2 or more; Windows, macOS: always); normal: as "
                             "any thread")
    parser.add_argument("--chaos", default="", metavar="SPEC",
                        help="inject faults for soak tests, e.g. source=0.02,processor=0.05")


def source_config(args: argparse.Namespace) -> SourceConfig:
    """Build the SourceConfig from the source options (synthetic when none given)."""
    width, height = parse_size(args.size)
    common: dict[str, Any] = {"width": width, "height": height, "fps": args.fps, "loop": args.loop}
    if args.camera is not None:
        return SourceConfig(kind="camera", location=args.camera, **common)
    if args.input is not None:
        kind = "url" if looks_like_url(args.input) else "file"
        return SourceConfig(kind=kind, location=args.input, realtime=not args.offline, **common)
    if args.image is not None:
        return SourceConfig(kind="image", location=args.image, **common)
    return SourceConfig(kind="synthetic", **common)


def pipeline_config(args: argparse.Namespace, *, default_output: str = "null") -> PipelineConfig:
    """Build the PipelineConfig from the pipeline options."""
    if args.frames is not None and args.frames <= 0:
        raise UsageError("E01", f"--frames {args.frames}", remedy="use a positive number of frames")
    return PipelineConfig(
        ring_size=args.ring_size,
        queue=args.queue,
        sync_delay_ms=args.sync_delay,
        duration_s=args.duration,
        max_frames=args.frames,
        sink_specs=tuple(args.output or [default_output]),
        on_signal_loss=args.on_signal_loss,
        frame_priority=getattr(args, "frame_priority", PipelineConfig.frame_priority),
        frame_threads=frame_threads(getattr(args, "threads", 1)),
    )


def frame_threads(requested: int) -> int:
    """OpenCV's pool for the frame operations: ``--threads``, at most the CPUs this process may use."""
    return max(1, min(requested, usable_cpus()))


def write_json(path: Path, data: dict[str, Any]) -> None:
    """Write ``data`` as JSON atomically; E14 when the path is not writable."""
    tmp = path.with_name(path.name + ".tmp")
    try:
        tmp.write_text(json.dumps(data, indent=2, sort_keys=True))
        tmp.replace(path)
    except OSError as exc:
        raise OutputError("E14", f"{path}: {exc.strerror or exc}") from exc


class StatusPrinter:
    """Prints the one-line status: rewritten in place on a terminal, plain lines otherwise."""

    def __init__(self, stream: Any = None, extra: Callable[[], str] | None = None) -> None:
        self.stream = stream or sys.stderr
        self.extra = extra  # more status, e.g. the live face and swap state
        self.tty = bool(getattr(self.stream, "isatty", lambda: False)())
        # A console without ANSI support (older Windows) would print "\x1b[2K" literally: pad instead.
        self.ansi = ansi_supported(self.stream)
        self._width = 0
        self._printed = False

    def __call__(self, stats: Stats) -> None:
        line = stats.status_line()
        if self.extra is not None:
            line += " | " + self.extra()
        if self.tty and self.ansi:
            self.stream.write("\r\x1b[2K" + line)
        elif self.tty:
            self.stream.write("\r" + line.ljust(self._width))
            self._width = max(self._width, len(line))
        else:
            self.stream.write(line + "\n")
        self.stream.flush()
        self._printed = True

    def finish(self) -> None:
        """End the in-place line so later output starts on a fresh one."""
        if self.tty and self._printed:
            self.stream.write("\n")
            self.stream.flush()
