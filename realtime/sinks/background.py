"""A sink that writes on its own thread, so a slow encoder does not hold up the live outputs.

A recording costs about 18 ms of x264 per 720p frame on a 2-core laptop.
Written on the output thread, that time lands on every frame's latency and
delays the virtual camera beside it; on its own thread it overlaps with the
next frame's inference instead. Live: the queue is a small ring that drops its
oldest frame (counted in ``dropped``) when the encoder falls behind for longer
than the queue covers. Offline (``blocking=True``): nothing is dropped, the
output thread waits for room. ``close`` writes every queued frame before it
finalises the sink, so a Ctrl-C loses nothing that was handed over.

The wrapped sink is used by the writer thread alone: it writes the frames and,
when the queue is done, closes the sink itself, so nothing closes it while a
write is in progress. Once a write failed the writer stops and every later
``write`` raises that error, so the pipeline sees a failing output as failing.
"""

from __future__ import annotations

import logging
import threading

from realtime.frame import Frame
from realtime.priority import name_current_thread
from realtime.ring import Ring, RingClosed
from realtime.sinks.base import Sink

log = logging.getLogger(__name__)

QUEUE_BYTES = 256 * 1024 * 1024  # at most this much image data waits for the encoder
QUEUE_SECONDS = 0.5
# Writing out the queue (≤ 0.5 s of frames at a speed the encoder keeps up with) and finalising: within a
# Ctrl-C's 2 s. Past it the writer drops the rest of the queue and finalises the file in the background.
CLOSE_TIMEOUT_S = 1.5


def queue_frames(*, width: int, height: int, fps: float) -> int:
    """Queue length: half a second of frames, within QUEUE_BYTES of BGR images, at least 2."""
    by_time = round(fps * QUEUE_SECONDS)
    by_memory = QUEUE_BYTES // max(1, width * height * 3)
    return max(2, min(by_time, by_memory))


class BackgroundSink(Sink):
    """Wraps a sink: ``write`` queues the frame, a named thread writes it.

    An error the wrapped sink raised on its thread is raised by every ``write`` from then
    on (and by ``close``), so the pipeline sees the output failing as it does for any sink.
    """

    def __init__(self, sink: Sink, *, capacity: int, blocking: bool = False, skip_repeats: bool = False) -> None:
        """``skip_repeats``: do not queue a frame with the sequence number of the one queued last (the
        pipeline's re-sends), for a sink that would skip it anyway, such as a recording."""
        self.sink = sink
        self.skip_repeats = skip_repeats
        self._last_seq: int | None = None
        self.name = sink.name
        self.failure_code = getattr(sink, "failure_code", "E17")
        self._queue: Ring[Frame] = Ring(capacity=capacity, blocking=blocking, name=f"{sink.name} queue")
        self._error: BaseException | None = None
        self._lock = threading.Lock()
        self._closed = False
        self._abandon = threading.Event()  # close timed out: finalise after the current frame
        self._thread = threading.Thread(target=self._write_loop, name=f"swapcam-sink-{sink.name}", daemon=True)
        self._thread.start()

    @property
    def dropped(self) -> int:
        """Frames dropped because the wrapped sink fell behind (live mode only)."""
        return self._queue.dropped

    def write(self, frame: Frame) -> None:
        """Queue ``frame``; raise the error the wrapped sink hit, if it did."""
        self._raise_pending()
        if self.skip_repeats and frame.seq == self._last_seq:
            return
        self._last_seq = frame.seq
        dropped_before = self._queue.dropped
        while True:
            try:
                self._queue.put(frame, timeout=1.0)
                break
            except RingClosed:  # the writer stopped on an error just now, or this sink is closed
                self._raise_pending()
                raise RuntimeError(f"{self.name} is closed") from None
            except TimeoutError:
                if not self._thread.is_alive():
                    raise RuntimeError(f"{self.name}: its writer thread has stopped") from None
        if self._queue.dropped > dropped_before and self._queue.dropped in (1, 10, 100, 1000):
            log.warning("%s: the encoder is slower than the stream; %d frame(s) dropped from the recording "
                        "so far", self.name, self._queue.dropped)

    def close(self, timeout: float = CLOSE_TIMEOUT_S) -> None:
        """Write every queued frame and close the wrapped sink, waiting up to ``timeout`` s; raise its error.

        Past ``timeout`` the writer drops what is still queued and closes the wrapped sink after the frame it
        is writing (logged); this returns without waiting for that.
        """
        if self._closed:
            return
        self._closed = True
        self._queue.close()
        self._thread.join(timeout)
        if self._thread.is_alive():
            self._abandon.set()
            log.warning("%s: queued frames not written within %.1f s; the rest is dropped and the file is "
                        "finalised in the background", self.name, timeout)
            return
        if self.dropped:
            log.warning("%s: %d frame(s) were dropped from the recording because the encoder fell behind",
                        self.name, self.dropped)
        self._raise_pending()

    def _write_loop(self) -> None:
        name_current_thread()
        try:
            self._write_queued()
        finally:
            try:
                self.sink.close()
            except Exception as exc:
                self._keep(exc)

    def _write_queued(self) -> None:
        while not self._abandon.is_set():
            try:
                frame = self._queue.get()
            except RingClosed:
                return
            assert frame is not None  # no timeout: get returns a frame or raises
            try:
                self.sink.write(frame)
            except Exception as exc:  # raised by every write from now on
                self._keep(exc)
                self._queue.close()
                return

    def _keep(self, exc: Exception) -> None:
        with self._lock:
            self._error = self._error or exc

    def _raise_pending(self) -> None:
        with self._lock:
            error = self._error
        if error is not None:
            raise error
