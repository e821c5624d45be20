"""The one place that wires source → ring → inference → ring → sinks.

Three named threads share one stop event. A worker's exception stops the run
and is re-raised by ``stop()``. Live sources never block: rings drop the
oldest frame. Offline sources (a file rendered frame by frame) block instead.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any, Literal

import cv2
import numpy as np

from realtime.config import PipelineConfig
from realtime.errors import SwapcamError, warning_text
from realtime.frame import Frame
from realtime.logutil import RateLimitedLog
from realtime.processors import Processor
from realtime.ring import Ring, RingClosed
from realtime.sinks.base import Sink, StopRequested
from realtime.sources.base import EndOfStream, SignalLost, Source
from realtime.stats import Stats

log = logging.getLogger(__name__)

POLL_S = 0.05  # how often a waiting worker re-checks the stop event
JOIN_S = 1.5  # budget for joining the threads: the whole stop stays within 2 s
MAX_SINK_FAILURES = 60  # consecutive failures of one sink before the run stops
BACKOFF_S = (0.1, 2.0)  # first and longest wait between reconnect attempts of a lost source
# A loss shorter than this (one failed read) re-sends the last frame: no NO SIGNAL flash in the call.
NO_SIGNAL_AFTER_S = 0.25


def no_signal_image(width: int, height: int) -> np.ndarray:
    """A dark frame saying NO SIGNAL, shown while a live source is lost."""
    image = np.full((height, width, 3), 24, np.uint8)
    scale = max(0.5, width / 640)
    text = "NO SIGNAL"
    (text_w, text_h), _ = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, 2)
    origin = ((width - text_w) // 2, (height + text_h) // 2)
    cv2.putText(image, text, origin, cv2.FONT_HERSHEY_SIMPLEX, scale, (200, 200, 200), 2, cv2.LINE_AA)
    return image


class Pipeline:
    """Capture, inference and output threads joined by two bounded rings."""

    def __init__(
        self,
        *,
        source: Source,
        processor: Processor,
        sinks: Sequence[Sink],
        config: PipelineConfig,
        stats: Stats | None = None,
    ) -> None:
        self.source = source
        self.processor = processor
        self.sinks = list(sinks)
        self.config = config
        self.live = source.live
        capacity = None if config.queue == "unbounded" else config.ring_size
        self.ring_in: Ring[Frame] = Ring(capacity=capacity, blocking=not self.live, name="capture")
        # A sync delay holds frames in the output ring: give it room for the whole delay.
        held = int(config.sync_delay_ms / 1000.0 * source.fps) + 1 if config.sync_delay_ms else 0
        out_capacity = None if capacity is None else capacity + held
        self.ring_out: Ring[Frame] = Ring(capacity=out_capacity, blocking=not self.live, name="output")
        self.stats = stats or Stats()
        self.stats.rings = {"capture": self.ring_in, "output": self.ring_out}
        self.stop_event = threading.Event()
        self.errors: list[BaseException] = []
        self.output_interval_s = 1.0 / (config.output_fps or source.fps)
        self._frame_log = RateLimitedLog(log)
        self._sink_failures = dict.fromkeys(range(len(self.sinks)), 0)
        self._threads = [
            threading.Thread(target=self._guard(self._capture_loop), name="swapcam-capture", daemon=True),
            threading.Thread(target=self._guard(self._inference_loop), name="swapcam-inference", daemon=True),
            threading.Thread(target=self._guard(self._output_loop), name="swapcam-output", daemon=True),
        ]
        self._stopped = False
        self.signal_lost = threading.Event()
        self._lost_since = 0.0  # monotonic time the current loss began
        self._backoff_s = BACKOFF_S[0]
        self._no_signal: Frame | None = None
        self._sinks_lock = threading.Lock()  # add_sink/remove_sink (h11 stand-in, see below)
        self._emit_lock = threading.Lock()  # held by the output thread while it writes to the sinks

    # -- lifecycle -------------------------------------------------------------------

    def start(self) -> None:
        """Start the three threads."""
        for thread in self._threads:
            thread.start()

    def request_stop(self) -> None:
        """Ask every thread to finish (safe from a signal handler)."""
        self.stop_event.set()
        self.ring_in.close()
        self.ring_out.close()

    @property
    def finished(self) -> bool:
        """True when every thread has ended."""
        return not any(thread.is_alive() for thread in self._threads)

    def wait(self, timeout: float) -> bool:
        """Wait up to ``timeout`` s for the run to end by itself; True if it did."""
        deadline = time.monotonic() + timeout
        for thread in self._threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        return self.finished

    def stop(self) -> None:
        """Stop the threads, close sinks, source and processor; re-raise a worker's exception."""
        if self._stopped:
            return
        self._stopped = True
        self.request_stop()
        # One deadline for all three joins (not JOIN_S each), so the whole stop stays within 2 s.
        deadline = time.monotonic() + JOIN_S
        for thread in self._threads:
            thread.join(max(0.0, deadline - time.monotonic()))
            if thread.is_alive():
                log.warning("thread %s did not stop within %.1f s", thread.name, JOIN_S)
        for closer in [*(s.close for s in self.sinks), self.source.close, self.processor.close]:
            try:
                closer()
            except Exception as exc:  # every sink must get its chance to finalise
                log.error("error while closing: %s", exc)
                self.errors.append(exc)
        if self.errors:
            raise self.errors[0]

    def run(self, on_tick: Callable[[Stats], None] | None = None) -> Stats:
        """Start, call ``on_tick`` every stats interval until the run ends, then stop."""
        self.start()
        try:
            while not self.wait(self.config.stats_interval_s):
                if on_tick is not None:
                    on_tick(self.stats)
        finally:
            self.stop()
        return self.stats

    # -- workers ---------------------------------------------------------------------

    def _guard(self, loop: Callable[[], None]) -> Callable[[], None]:
        def guarded() -> None:
            try:
                loop()
            except BaseException as exc:
                log.debug("worker %s failed", threading.current_thread().name, exc_info=True)
                self.errors.append(exc)
                self.request_stop()

        return guarded

    def _capture_loop(self) -> None:
        config, seq = self.config, 0
        deadline = None if config.duration_s is None else time.monotonic() + config.duration_s
        try:
            while not self.stop_event.is_set():
                if config.max_frames is not None and seq >= config.max_frames:
                    break
                if deadline is not None and time.monotonic() >= deadline:
                    break
                try:
                    image = self.source.read()
                except EndOfStream:
                    break
                except SignalLost as exc:
                    self._recover(exc)
                    continue
                if self.signal_lost.is_set():
                    log.info("%s: signal back", self.source.name)
                    self.signal_lost.clear()
                    self._backoff_s = BACKOFF_S[0]
                frame = Frame(image=image, seq=seq, t_capture=time.monotonic_ns())
                self.stats.on_capture(frame)
                if not self._put(self.ring_in, frame):
                    break
                seq += 1
        finally:
            self.ring_in.close()

    def _inference_loop(self) -> None:
        try:
            while (frame := self._get(self.ring_in, POLL_S)) is not False:
                if frame is None:
                    continue
                failed = False
                with frame.stage("infer"):
                    try:
                        image = self.processor.process(frame)
                    except Exception as exc:
                        failed, image = True, frame.image
                        self._frame_log.warning(f"E21 frame {frame.seq}: {exc!r} — passing it through")
                frame.image = image
                self.stats.on_processed(frame, failed=failed)
                if not self._put(self.ring_out, frame):
                    break
        finally:
            self.ring_out.close()

    def _output_loop(self) -> None:
        last: Frame | None = None
        resend = self.config.resend_last and self.live
        while True:
            # 1.2 intervals: frames arriving with ordinary jitter are not pre-empted by a re-send.
            timeout = 1.2 * self.output_interval_s if (resend and last is not None) else POLL_S
            frame = self._get(self.ring_out, timeout)
            if frame is False:
                break
            if frame is None:
                if self._showing_no_signal():
                    self._emit(self._no_signal_frame(), resent=True)
                elif resend and last is not None:
                    self._emit(last, resent=True)
                continue
            if self.config.sync_delay_ms > 0 and not self._hold_until(frame):
                break
            self._emit(frame, resent=False)
            last = frame

    # -- helpers ---------------------------------------------------------------------

    def _showing_no_signal(self) -> bool:
        """True while the outputs should show NO SIGNAL: a live source lost for NO_SIGNAL_AFTER_S, with
        --on-signal-loss black."""
        if not (self.signal_lost.is_set() and self.config.on_signal_loss == "black" and self.live):
            return False
        return time.monotonic() - self._lost_since >= NO_SIGNAL_AFTER_S

    def _recover(self, exc: SignalLost) -> None:
        """Count the loss, wait with exponential backoff, then try to reopen the source."""
        if not self.signal_lost.is_set():
            log.warning(warning_text("E22", f"{self.source.name}: {exc}"))
            self._lost_since = time.monotonic()
        self.signal_lost.set()
        self.stats.count("source_errors")
        if self.stop_event.wait(self._backoff_s):
            return
        self._backoff_s = min(self._backoff_s * 2, BACKOFF_S[1])
        reconnect = getattr(self.source, "reconnect", None)
        if reconnect is None:
            return
        try:
            reconnect()
        except (SignalLost, SwapcamError, OSError) as again:
            log.debug("reconnect failed: %s", again)

    def _no_signal_frame(self) -> Frame:
        if self._no_signal is None:
            image = no_signal_image(self.source.width, self.source.height)
            self._no_signal = Frame(image=image, seq=-1, t_capture=time.monotonic_ns())
        return self._no_signal

    def _put(self, ring: Ring[Frame], frame: Frame) -> bool:
        """Put a frame; in blocking mode wait for room while not stopped. False when stopping."""
        while not self.stop_event.is_set():
            try:
                ring.put(frame, timeout=POLL_S)
                return True
            except TimeoutError:
                continue
            except RingClosed:
                return False
        return False

    def _get(self, ring: Ring[Frame], timeout: float) -> Frame | Literal[False] | None:
        """Next frame, None on timeout, False when the ring is done or the run is stopping."""
        if self.stop_event.is_set():
            return False
        try:
            return ring.get(timeout)
        except RingClosed:
            return False

    def _hold_until(self, frame: Frame) -> bool:
        """Sleep until ``sync_delay_ms`` after capture; False if stopped meanwhile."""
        due = frame.t_capture + int(self.config.sync_delay_ms * 1e6)
        wait_s = (due - time.monotonic_ns()) / 1e9
        if wait_s > 0:
            return not self.stop_event.wait(wait_s)
        return True

    def _emit(self, frame: Frame, *, resent: bool) -> None:
        start = time.monotonic_ns()
        with self._emit_lock:
            for index, sink in enumerate(self.sinks):
                self._write(index, sink, frame)
        if not resent:
            frame.stages["output"] = (start, time.monotonic_ns())
            frame.t_output = time.monotonic_ns()
        self.stats.on_output(frame, resent=resent)

    def _write(self, index: int, sink: Sink, frame: Frame) -> None:
        try:
            sink.write(frame)
            self._sink_failures[index] = 0
        except StopRequested:
            self.request_stop()
        except Exception as exc:
            self._sink_failures[index] += 1
            self.stats.count("sink_errors")
            if self._sink_failures[index] >= MAX_SINK_FAILURES:
                raise
            self._frame_log.warning(f"sink {sink.name}: {exc!r}")

    # -- outputs added and removed at run time (h11's minimal stand-in for issue 12's implementation) ----

    def add_sink(self, sink: Sink) -> None:
        """Start writing frames to ``sink`` too (thread-safe; from the next frame on)."""
        with self._sinks_lock:
            # Copy on write: the output thread iterates a list nobody changes under it.
            self._sink_failures = {**self._sink_failures, len(self.sinks): 0}
            self.sinks = [*self.sinks, sink]

    def remove_sink(self, sink: Sink, *, timeout: float = 2.0) -> None:
        """Stop writing to ``sink`` and close it, once the output thread is out of it (thread-safe)."""
        with self._sinks_lock:
            kept = [s for s in self.sinks if s is not sink]
            if len(kept) == len(self.sinks):
                return
            self._sink_failures = dict.fromkeys(range(len(kept)), 0)
            self.sinks = kept
        if self._emit_lock.acquire(timeout=timeout):
            self._emit_lock.release()
        sink.close()

    def summary(self) -> dict[str, Any]:
        """The run's stats as plain values."""
        return self.stats.summary()
