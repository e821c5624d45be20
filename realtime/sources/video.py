"""Video files and network streams decoded by PyAV (FFmpeg)."""

from __future__ import annotations

import errno
import logging
import threading
from collections.abc import Generator
from pathlib import Path

import av
import cv2
import numpy as np

from realtime.clock import now_s
from realtime.errors import InputError
from realtime.sources.base import EndOfStream, SignalLost, Source

log = logging.getLogger(__name__)

RESYNC_S = 0.5  # this far behind a file's timestamps, restart pacing from now instead of bursting
MAX_WAIT_S = 2.0  # a timestamp gap longer than this is a broken file, not a pause worth waiting for
DEFAULT_FPS = 30.0

# Low-latency demuxing: do not buffer, probe briefly (a live stream has no seek table to fill).
NETWORK_OPTIONS = {
    "fflags": "nobuffer",
    "flags": "low_delay",
    "probesize": "500000",
    "analyzeduration": "1000000",
}
SCHEME_OPTIONS = {
    "rtsp": {"rtsp_transport": "tcp"},  # UDP RTP loses packets on busy links; TCP adds little delay
    "udp": {"overrun_nonfatal": "1", "fifo_size": "100000"},
}


def stream_fps(stream: av.video.stream.VideoStream) -> float:
    """The stream's frame rate, from the best field FFmpeg filled in (30 when none)."""
    for rate in (stream.average_rate, stream.guessed_rate, stream.base_rate):
        if rate and 1 <= float(rate) <= 240:
            return float(rate)
    return DEFAULT_FPS


def network_options(url: str) -> dict[str, str]:
    """FFmpeg options for opening ``url`` with little buffering."""
    scheme = url.split("://", 1)[0].lower()
    return {**NETWORK_OPTIONS, **SCHEME_OPTIONS.get(scheme, {})}


def _reason(exc: BaseException) -> str:
    """FFmpeg's message without its errno number and repeated file name."""
    return str(getattr(exc, "strerror", None) or exc)


class VideoSource(Source):
    """Frames of a video file or a network stream, as BGR uint8.

    ``realtime`` (files): frames come out at the pace of their timestamps and
    the source is live (rings drop when the consumer is slow); otherwise
    every frame comes out as fast as it decodes and the pipeline blocks
    instead of dropping. ``loop`` restarts a file at its end with pacing
    continuing seamlessly. ``network``: an rtsp/udp/srt/http URL, opened
    with little buffering and not paced (it arrives in real time); an
    unreachable URL fails within ``timeout_s`` (E13).
    """

    def __init__(
        self, location: str, *, loop: bool, realtime: bool, network: bool, timeout_s: float = 5.0
    ) -> None:
        self.location = location
        self.name = ("url:" if network else "file:") + location
        self.loop = loop and not network
        self.network = network
        self.paced = realtime and not network
        self.live = realtime or network
        self.timeout_s = timeout_s
        self._lock = threading.Lock()
        self._closing = threading.Event()
        self._broken = False  # a reconnect failed: reads report SignalLost until one succeeds
        self._open()
        self._frames = self._decode()
        self._anchor: float | None = None  # monotonic time at which the file's t=0 is due
        self._loop_offset = 0.0
        self._last_t = 0.0

    # -- opening ---------------------------------------------------------------------

    def _open(self) -> None:
        self._container = self._open_container()
        if not self._container.streams.video:
            self._container.close()
            raise InputError("E12", f"{self.location}: no video stream")
        self._stream = self._container.streams.video[0]
        if self._stream.codec_context is None:  # a codec FFmpeg has no decoder for (or a damaged codec id)
            self._container.close()
            raise InputError("E12", f"{self.location}: no decoder for its video codec")
        # Frame threading delays every frame by the thread count: fine for files, not for live streams.
        self._stream.thread_type = "SLICE" if self.network else "AUTO"
        codec = self._stream.codec_context
        self.width, self.height = codec.width - codec.width % 2, codec.height - codec.height % 2
        if self.width < 16 or self.height < 16:
            self._container.close()
            raise InputError("E12", f"{self.location}: video size {codec.width}x{codec.height} is unusable")
        self.fps = stream_fps(self._stream)
        self._first_t: float | None = None
        log.info("%s: %dx%d @ %.3g fps, codec %s", self.name, self.width, self.height, self.fps, codec.name)

    def _open_container(self) -> av.container.InputContainer:
        if self.network:
            try:
                return av.open(self.location, mode="r", options=network_options(self.location),
                               timeout=(self.timeout_s, self.timeout_s))
            except av.error.ExitError as exc:  # PyAV's timeout interrupted the open
                raise InputError("E13", f"{self.location}: nothing received within {self.timeout_s:g} s") from exc
            except (av.FFmpegError, OSError) as exc:
                if getattr(exc, "errno", None) == errno.EADDRINUSE:  # udp:// listens on the port it reads
                    raise InputError("E13", f"{self.location}: the port is in use by another program",
                                     remedy="stop the program that uses this port, or send to another "
                                            "port and read that one") from exc
                raise InputError("E13", f"{self.location}: {_reason(exc)}") from exc
        if not Path(self.location).is_file():
            raise InputError("E12", f"{self.location}: no such file")
        try:
            return av.open(self.location, mode="r")
        except (av.FFmpegError, OSError, UnicodeDecodeError) as exc:
            raise InputError("E12", f"{self.location}: {_reason(exc)}") from exc

    # -- decoding --------------------------------------------------------------------

    def _decode(self) -> Generator[tuple[np.ndarray, float | None], None, None]:
        """(image, seconds) per decoded frame; ends at the end of the stream or on a decode error."""
        try:
            for packet in self._container.demux(self._stream):
                for frame in packet.decode():
                    yield self._image(frame), frame.time
        except av.error.ExitError as exc:  # the read timeout fired: nothing arrived for timeout_s
            raise SignalLost(f"no data from {self.location} for {self.timeout_s:g} s") from exc
        except (av.FFmpegError, OSError) as exc:
            if self.network:
                raise SignalLost(f"{self.location}: {exc}") from exc
            # Frames already delivered are valid; a damaged tail just ends the file early.
            log.warning("%s: decoding stopped at %.2f s: %s", self.name, self._last_t, exc)

    def _image(self, frame: av.VideoFrame) -> np.ndarray:
        image: np.ndarray = frame.to_ndarray(format="bgr24")
        if image.shape[0] != self.height or image.shape[1] != self.width:
            if image.shape[0] - self.height in (0, 1) and image.shape[1] - self.width in (0, 1):
                image = image[: self.height, : self.width]  # odd size: yuv420 encoders need even
            else:  # a stream that changed resolution mid-way keeps the size it started with
                image = cv2.resize(image, (self.width, self.height), interpolation=cv2.INTER_AREA)
        return image

    def read(self) -> np.ndarray:
        """The next frame; when paced, not before its timestamp is due."""
        with self._lock:
            if self._closing.is_set():
                raise EndOfStream(self.location)
            if self._broken:
                raise SignalLost(f"{self.location} is not reconnected yet")
            image, seconds = self._next_frame()
        if self.paced:
            self._wait_until_due(seconds)
        return image

    def _next_frame(self) -> tuple[np.ndarray, float]:
        for _attempt in range(2):
            try:
                image, raw = next(self._frames)
            except StopIteration:
                if not self.loop or self._first_t is None:
                    raise EndOfStream(self.location) from None
                self._rewind()
                continue
            return image, self._timeline(raw)
        raise EndOfStream(self.location)

    def _timeline(self, raw: float | None) -> float:
        """Seconds since the first frame, continuing across loops."""
        interval = 1.0 / self.fps
        if raw is None:
            seconds = self._last_t + interval
        else:
            if self._first_t is None:
                self._first_t = raw
            seconds = raw - self._first_t + self._loop_offset
        self._last_t = seconds
        return seconds

    def _rewind(self) -> None:
        """Seek back to the start; the timeline continues one frame after the last one."""
        self._loop_offset = self._last_t + 1.0 / self.fps
        self._first_t = None
        try:
            self._container.seek(0)
            self._stream.codec_context.flush_buffers()
        except av.FFmpegError as exc:
            raise EndOfStream(f"{self.location}: cannot loop: {exc}") from exc
        self._frames = self._decode()

    def _wait_until_due(self, seconds: float) -> None:
        now = now_s()
        if self._anchor is None:
            self._anchor = now - seconds
        wait = self._anchor + seconds - now
        if wait < -RESYNC_S or wait > MAX_WAIT_S:
            self._anchor = now - seconds  # stalled or a timestamp jump: restart pacing here
        elif wait > 0:
            self._closing.wait(wait)

    # -- recovery and closing --------------------------------------------------------

    def reconnect(self) -> None:
        """Reopen a network stream after SignalLost (raises InputError E13 while it is unreachable)."""
        with self._lock:
            self._frames.close()
            self._container.close()
            self._broken = True
            self._open()
            self._frames = self._decode()
            self._broken = False

    def close(self) -> None:
        """Stop pacing and release the decoder (waits for a decode in progress)."""
        self._closing.set()
        with self._lock:
            self._frames.close()
            self._container.close()
