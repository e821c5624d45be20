"""A sink that writes on its own thread, so a slow encoder does not hold up the live outputs.

A recording costs about 18 ms of x264 per 720p frame on a 2-core laptop.
Written on the output thread, that time lands on every frame's latency and
delays the virtual camera beside it; on its own thread it overlaps with the
next frame's inference instead. Live: the queue is a small ring that drops its
oldest frame (counted in ``dropped``) when the encoder falls behind for longer
than the queue covers. Offline (``blocking=True``): nothing is dropped, the
output thread waits for room. ``close`` writes every queued frame before it
finalises the sink, so a Ctrl-C loses nothing that was handed over.
"""

from __future__ import annotations

import logging
import threading

from realtime.frame import Frame
from realtime.ring import Ring, RingClosed
from realtime.sinks.base import Sink

log = logging.getLogger(__name__)

QUEUE_BYTES = 256 * 1024 * 1024  # at most this much image data waits for the encoder
QUEUE_SECONDS = 0.5
CLOSE_TIMEOUT_S = 30.0  # writing out the queue: ≤ 0.5 s of frames at any speed the encoder keeps up with


def queue_frames(*, width: int, height: int, fps: float) -> int:
    """Queue length: half a second of frames, within QUEUE_BYTES of BGR images, at least 2."""
    by_time = round(fps * QUEUE_SECONDS)
    by_memory = QUEUE_BYTES // max(1, width * height * 3)
    return max(2, min(by_time, by_memory))


class BackgroundSink:
    """Wraps a sink: ``write`` queues the frame, a named thread writes it.

    An error the wrapped sink raised on its thread is raised by the next ``write``
    (and by ``close``), so the pipeline counts sink failures as it does for any sink.
    """

    def __init__(self, sink: Sink, *, capacity: int, blocking: bool = False, skip_repeats: bool = False) -> None:
        """``skip_repeats``: do not queue a frame with the sequence number of the one queued last (the
        pipeline's re-sends), for a sink that would skip it anyway, such as a recording."""
        self.sink = sink
        self.skip_repeats = skip_repeats
        self._last_seq: int | None = None
        self.name = sink.name
        self._queue: Ring[Frame] = Ring(capacity=capacity, blocking=blocking, name=f"{sink.name} queue")
        self._error: BaseException | None = None
        self._lock = threading.Lock()
        self._closed = False
        self._thread = threading.Thread(target=self._write_loop, name=f"swapcam-sink-{sink.name}", daemon=True)
        self._thread.start()

    @property
    def dropped(self) -> int:
        """Frames dropped because the wrapped sink fell behind (live mode only)."""
        return self._queue.dropped

    def write(self, frame: Frame) -> None:
        """Queue ``frame``; raise the error the wrapped sink hit since the last call, if any."""
        self._raise_pending()
        if self.skip_repeats and frame.seq == self._last_seq:
            return
        self._last_seq = frame.seq
        dropped_before = self._queue.dropped
        while True:
            try:
                self._queue.put(frame, timeout=1.0)
                break
            except TimeoutError:
                if not self._thread.is_alive():
                    raise RuntimeError(f"{self.name}: its writer thread has stopped") from None
        if self._queue.dropped > dropped_before and self._queue.dropped in (1, 10, 100, 1000):
            log.warning("%s: the encoder is slower than the stream; %d frame(s) dropped from the recording "
                        "so far", self.name, self._queue.dropped)

    def close(self) -> None:
        """Write every queued frame, then close the wrapped sink; raise a pending error."""
        if self._closed:
            return
        self._closed = True
        self._queue.close()
        self._thread.join(CLOSE_TIMEOUT_S)
        if self._thread.is_alive():
            log.warning("%s: queued frames not written within %.0f s; closing anyway", self.name, CLOSE_TIMEOUT_S)
        self.sink.close()
        if self.dropped:
            log.warning("%s: %d frame(s) were dropped from the recording because the encoder fell behind",
                        self.name, self.dropped)
        self._raise_pending()

    def _write_loop(self) -> None:
        while True:
            try:
                frame = self._queue.get()
            except RingClosed:
                return
            assert frame is not None  # no timeout: get returns a frame or raises
            try:
                self.sink.write(frame)
            except Exception as exc:  # handed to the output thread by the next write
                with self._lock:
                    self._error = self._error or exc

    def _raise_pending(self) -> None:
        with self._lock:
            error, self._error = self._error, None
        if error is not None:
            raise error
