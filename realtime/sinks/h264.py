"""H.264 encoding into a container through PyAV: what the file and stream sinks share."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from fractions import Fraction

import av
import cv2
import numpy as np

TIME_BASE = Fraction(1, 90_000)  # the MPEG clock; fine-grained enough for capture-time stamps
BT601 = 6  # AVCOL_*_SMPTE170M: the matrix cv2's BGR→I420 uses; tagged so players do not guess BT.709
MPEG_RANGE = 1  # limited range (16-235), as cv2's I420 conversion produces
CLOSE_WAIT_S = 1.0  # longest a close waits for an encode in progress (one frame takes ~20 ms)


@dataclass(frozen=True)
class H264Settings:
    """Encoder and muxer settings for one output."""

    width: int
    height: int
    fps: float
    codec_options: dict[str, str] = field(default_factory=dict)
    container_options: dict[str, str] = field(default_factory=dict)
    bit_rate: int | None = None


def stream_bit_rate(width: int, height: int, fps: float) -> int:
    """A bitrate that keeps a webcam picture clean: 0.1 bit per pixel, 1 to 20 Mbit/s."""
    return int(min(20e6, max(1e6, 0.1 * width * height * fps)))


class H264Output:
    """An open container with one H.264 (yuv420p) video stream.

    ``encode`` and ``close`` are serialised by a lock, so a close from another
    thread never races the encoder. ``close`` waits a bounded time for an
    ``encode`` in progress; past it, that ``encode`` finalises as it ends.
    """

    def __init__(self, target: str, *, container_format: str, settings: H264Settings) -> None:
        """Open ``target`` and write the header; PyAV/OS errors propagate to the caller."""
        self.settings = settings
        self._lock = threading.Lock()
        self._closed = False
        self._close_after_encode = False
        self._last_pts = -1
        self.frames_written = 0
        self._container = av.open(target, mode="w", format=container_format,
                                  container_options=settings.container_options)
        try:
            self._stream = self._add_stream()
            self._container.start_encoding()  # opens the file or socket now: errors surface here
        except BaseException:
            self._container.close()
            raise

    def _add_stream(self) -> av.video.stream.VideoStream:
        s = self.settings
        stream = self._container.add_stream("libx264", rate=Fraction(s.fps).limit_denominator(1001))
        stream.width, stream.height = s.width, s.height
        stream.pix_fmt = "yuv420p"
        stream.time_base = TIME_BASE
        stream.codec_context.time_base = TIME_BASE
        stream.codec_context.gop_size = max(1, round(s.fps))  # a keyframe every second
        stream.codec_context.max_b_frames = 0
        context = stream.codec_context
        context.colorspace = context.color_primaries = context.color_trc = BT601
        context.color_range = MPEG_RANGE
        if s.bit_rate:
            stream.codec_context.bit_rate = s.bit_rate
        stream.codec_context.options = dict(s.codec_options)
        return stream

    def encode(self, image: np.ndarray, pts: int) -> bool:
        """Encode one BGR image at ``pts`` (in TIME_BASE units, bumped to stay increasing).

        Returns False when the output is already closed.
        """
        s = self.settings
        if image.shape[0] != s.height or image.shape[1] != s.width:
            image = cv2.resize(image, (s.width, s.height), interpolation=cv2.INTER_AREA)
        # OpenCV converts to I420 several times faster than swscale, with the same BT.601 matrix.
        i420: np.ndarray = cv2.cvtColor(image, cv2.COLOR_BGR2YUV_I420)
        frame = av.VideoFrame.from_ndarray(i420, format="yuv420p")
        with self._lock:
            if self._closed:
                return False
            frame.pts = max(pts, self._last_pts + 1)
            frame.time_base = TIME_BASE
            self._last_pts = frame.pts
            try:
                self._container.mux(self._stream.encode(frame))
                self.frames_written += 1
            finally:
                if self._close_after_encode:
                    self._finalise()
        return True

    def close(self, timeout: float = CLOSE_WAIT_S) -> bool:
        """Flush the encoder and finalise the container (idempotent).

        Waits up to ``timeout`` s for an ``encode`` in progress; past it, returns False and that ``encode``
        finalises the container as it ends.
        """
        if not self._lock.acquire(timeout=timeout):
            self._close_after_encode = True
            if not self._lock.acquire(blocking=False):  # again: the encode may have ended before the flag was up
                return False
        try:
            self._finalise()
        finally:
            self._lock.release()
        return True

    def _finalise(self) -> None:
        """Flush and close the container once (the caller holds the lock)."""
        if self._closed:
            return
        self._closed = True
        try:
            self._container.mux(self._stream.encode(None))
        finally:
            self._container.close()
