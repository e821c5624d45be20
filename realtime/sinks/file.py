"""Recording to an MP4 or MKV file (H.264, yuv420p) that is playable even if the run is cut short."""

from __future__ import annotations

import logging
from pathlib import Path

import av

from realtime.clock import now_ns
from realtime.errors import OutputError, UsageError
from realtime.frame import Frame
from realtime.sinks.base import Sink
from realtime.sinks.h264 import TIME_BASE, H264Output, H264Settings

log = logging.getLogger(__name__)

CONTAINERS = {".mp4": "mp4", ".m4v": "mp4", ".mov": "mov", ".mkv": "matroska"}

# Fragmented MP4: the header goes first and every keyframe (once a second) closes a
# self-contained fragment, written to disk at once (flush_packets). A process killed
# outright leaves a file that plays up to the last second; "+faststart" would need the
# whole run to end cleanly, and a plain MP4 without its closing index does not play at all.
FRAGMENTED_MP4 = {"movflags": "frag_keyframe+empty_moov+default_base_moof", "flush_packets": "1"}


def file_settings(path: Path, *, width: int, height: int, fps: float) -> H264Settings:
    """Good quality at modest CPU: CRF 20, veryfast, no B-frames (timestamps stay simple)."""
    muxer = CONTAINERS[path.suffix.lower()]
    return H264Settings(
        width=width, height=height, fps=fps,
        codec_options={"preset": "veryfast", "crf": "20"},
        container_options=FRAGMENTED_MP4 if muxer in ("mp4", "mov") else {"flush_packets": "1"},
    )


TIMINGS = ("capture", "sequence")


class FileSink(Sink):
    """Writes each new frame once, timestamped by its capture time or by its sequence number.

    ``timing="capture"`` (live): dropped frames leave gaps in time rather than
    speeding the video up, so the file plays at real speed. ``timing="sequence"``
    (offline render, which runs faster or slower than real time): frame n is
    shown at n / fps. A frame written again (the pipeline's re-send) is
    skipped: the previous frame simply stays on screen longer.
    """

    failure_code = "E14"

    def __init__(self, path: str | Path, *, width: int, height: int, fps: float, timing: str = "capture") -> None:
        if timing not in TIMINGS:
            raise ValueError(f"timing must be one of {TIMINGS}, got {timing!r}")
        self.path = Path(path)
        self.timing = timing
        self.ticks_per_frame = 1.0 / fps / float(TIME_BASE)
        self.name = f"file:{self.path}"
        if self.path.suffix.lower() not in CONTAINERS:
            raise UsageError("E01", f"file:{self.path} has no .mp4 or .mkv extension",
                             remedy="use e.g. --output file:out.mp4 (or .mkv)")
        settings = file_settings(self.path, width=width, height=height, fps=fps)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._output = H264Output(str(self.path), container_format=CONTAINERS[self.path.suffix.lower()],
                                      settings=settings)
        except (av.FFmpegError, OSError) as exc:
            raise OutputError("E14", f"{self.path}: {getattr(exc, 'strerror', None) or exc}") from exc
        self._t0: int | None = None
        self._last_seq: int | None = None

    @property
    def frames_written(self) -> int:
        """Frames encoded so far."""
        return self._output.frames_written

    def write(self, frame: Frame) -> None:
        """Encode ``frame`` unless it is the one written last."""
        if frame.seq == self._last_seq:
            return
        self._last_seq = frame.seq
        try:
            self._output.encode(frame.image, self._pts(frame))
        except (av.FFmpegError, OSError) as exc:
            raise OutputError("E14", f"{self.path}: {exc}") from exc

    def _pts(self, frame: Frame) -> int:
        if self.timing == "sequence":
            return round(frame.seq * self.ticks_per_frame)
        # Placeholder frames (seq < 0, e.g. NO SIGNAL) are shown from the moment they are written.
        when = frame.t_capture if frame.seq >= 0 else now_ns()
        if self._t0 is None:
            self._t0 = when
        return round(max(0, when - self._t0) / 1e9 / TIME_BASE)

    def close(self) -> None:
        """Flush the encoder and finalise the file."""
        try:
            closed = self._output.close()
        except (av.FFmpegError, OSError) as exc:
            raise OutputError("E14", f"{self.path}: finalising failed: {exc}") from exc
        if not closed:
            log.warning("%s: a write is still in progress; the file is finalised when it ends", self.path)
            return
        log.info("wrote %s (%d frames)", self.path, self.frames_written)
