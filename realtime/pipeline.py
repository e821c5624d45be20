"""The one place that wires source → ring → inference → ring → sinks.

Three named threads share one stop event. A worker's exception stops the run
and is re-raised by ``stop()``. Live sources never block: rings drop the
oldest frame. Offline sources (a file rendered frame by frame) block instead.

Nothing is closed while a thread may be inside it: ``stop()`` closes the source
and the processor only once their thread has ended, and otherwise leaves that to
the thread as it leaves (a read stuck in a dead camera); the sinks are handled
by :class:`realtime.outputs.Outputs` in the same spirit. Every wait is bounded.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from typing import Any

import cv2
import numpy as np

from realtime.clock import now_ns, now_s
from realtime.config import PipelineConfig
from realtime.container import usable_cpus
from realtime.errors import SwapcamError, warning_text
from realtime.frame import Frame
from realtime.logutil import RateLimitedLog
from realtime.outputs import Outputs
from realtime.priority import BUSY_LIMIT, BusyWatch, name_current_thread, raise_current_thread, restore_current_thread
from realtime.processors import Processor
from realtime.release import Release
from realtime.ring import Ring, RingClosed
from realtime.sinks.base import Sink
from realtime.sources.base import EndOfStream, SignalLost, Source
from realtime.stats import Stats

log = logging.getLogger(__name__)

POLL_S = 0.05  # how often a waiting worker re-checks the stop event
# stop() waits at most JOIN_S for the threads, then closes what they have left until STOP_S after it
# began: the sinks in parallel, each bounded (a recording's queue has ~0.5 s of frames to write out).
JOIN_S = 0.8
STOP_S = 1.8
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
        self.outputs = Outputs(sinks, stats=self.stats, on_empty=self.request_stop)
        self._processor_log = RateLimitedLog(log)
        self._source_release = Release(source.name, source.close)
        self._processor_release = Release(processor.name, processor.close)
        self._threads = [
            threading.Thread(target=self._guard(self._capture_loop, self._source_release), name="swapcam-capture",
                             daemon=True),
            threading.Thread(target=self._guard(self._inference_loop, self._processor_release),
                             name="swapcam-inference", daemon=True),
            threading.Thread(target=self._guard(self._output_loop, None), name="swapcam-output", daemon=True),
        ]
        self._started = False
        self._stopped = False
        self.signal_lost = threading.Event()
        self._lost_since = 0.0  # monotonic time the current loss began
        self._backoff_s = BACKOFF_S[0]
        self._no_signal: Frame | None = None
        # The frame threads that run ahead of ordinary threads (realtime.priority): a live run only, and never
        # on a single core, where a real-time thread would leave the rest of the machine one core's leftovers.
        self._raise = self.live and config.frame_priority == "realtime" and usable_cpus() >= 2
        self.raised_threads: set[str] = set()
        # A sink whose GUI calls must run on the main thread (the preview on macOS): wait() runs them.
        self.main_thread = next((m for s in self.sinks if (m := getattr(s, "main_thread", None)) is not None), None)

    # -- lifecycle -------------------------------------------------------------------

    @property
    def sinks(self) -> list[Sink]:
        """The outputs attached now."""
        return self.outputs.snapshot()

    def add_sink(self, sink: Sink) -> None:
        """Attach an open ``sink`` while running (from any thread); it gets every frame from the next one on.

        The pipeline owns it from then on: ``remove_sink`` or ``stop`` closes it.
        """
        if self._stopped:
            raise RuntimeError("the pipeline has stopped; close the sink yourself")
        self.outputs.add(sink)

    def remove_sink(self, sink: Sink, *, timeout: float = 2.0) -> None:
        """Detach ``sink`` now (from any thread) and close it once the output thread is out of its ``write``.

        The other outputs never wait for it. Waits up to ``timeout`` s for the close, then lets it finish in
        the background; re-raises what the close raised. A sink not attached is left alone.
        """
        self.outputs.remove(sink, timeout=timeout)

    def flush_outputs_now(self, timeout: float) -> None:
        """Best effort before the process ends at once (a second Ctrl-C): close every output now, in
        parallel, waiting up to ``timeout`` s. Nothing else is closed; the threads are left running."""
        self.request_stop()
        self.outputs.close_now(now_s() + timeout)

    def start(self) -> None:
        """Start the three threads (OpenCV's pool sized first: config.frame_threads)."""
        cv2.setNumThreads(self.config.frame_threads)
        self._started = True
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
        deadline = now_s() + timeout
        if self.main_thread is not None:
            self._serve_main_thread(lambda: self.finished, deadline)
            return self.finished
        for thread in self._threads:
            thread.join(max(0.0, deadline - now_s()))
        return self.finished

    def stop(self) -> None:
        """Stop the threads, close sinks, source and processor; re-raise a worker's exception.

        The threads get JOIN_S to end; the outputs then close in parallel, waited for until STOP_S (under
        2 s) after the stop began, while the source and the processor close in the meantime (their close is
        quick: a background face check ends within one detection). A part whose thread is still inside it
        is closed by that thread when it comes out (logged).
        """
        if self._stopped:
            return
        self._stopped = True
        self.request_stop()
        began = now_s()
        self._serve_main_thread(lambda: self.finished, began + JOIN_S)
        for thread in self._threads:
            thread.join(max(0.0, began + JOIN_S - now_s()))
            if thread.is_alive():
                log.warning("thread %s did not stop within %.1f s", thread.name, JOIN_S)
        self.outputs.close_all()  # first: the recordings finalise on their own threads while the rest closes
        for release in (self._source_release, self._processor_release):
            error = release.request(thread_started=self._started)
            if error is not None:
                self.errors.append(error)
        self._serve_main_thread(lambda: not self.outputs.closing(), began + STOP_S)
        self.errors.extend(self.outputs.wait_closed(began + STOP_S))
        if self.errors:
            raise self.errors[0]

    def _serve_main_thread(self, done: Callable[[], bool], deadline: float) -> None:
        """Where a sink's GUI calls must run on this (the main) thread, run them until ``done()`` or the
        deadline: the preview window on macOS is drawn and destroyed here while the threads stop."""
        if self.main_thread is None:
            return
        while not done() and (left := deadline - now_s()) > 0:
            self.main_thread.run_pending(min(left, POLL_S))

    def run(self, on_tick: Callable[[Stats], None] | None = None) -> Stats:
        """Start, call ``on_tick`` every stats interval until the run ends or a stop is requested, then stop.

        A requested stop (Ctrl-C, a sink, no output left) goes to ``stop()`` at once rather than waiting for
        the threads to finish by themselves: one of them may be stuck in a frame.
        """
        self.start()
        try:
            next_tick = now_s() + self.config.stats_interval_s
            while not self.stop_event.is_set() and not self.wait(POLL_S):
                if now_s() >= next_tick:
                    next_tick += self.config.stats_interval_s
                    if on_tick is not None:
                        on_tick(self.stats)
        finally:
            self.stop()
        return self.stats

    # -- workers ---------------------------------------------------------------------

    def _guard(self, loop: Callable[[], None], release: Release | None) -> Callable[[], None]:
        def guarded() -> None:
            name_current_thread()
            if self._raise and raise_current_thread():
                self.raised_threads.add(threading.current_thread().name)
            try:
                loop()
            except BaseException as exc:
                log.debug("worker %s failed", threading.current_thread().name, exc_info=True)
                self.errors.append(exc)
                self.request_stop()
            finally:
                if release is not None:
                    release.leave()

        return guarded

    def _capture_loop(self) -> None:
        config, seq = self.config, 0
        deadline = None if config.duration_s is None else now_s() + config.duration_s
        try:
            while not self.stop_event.is_set():
                if config.max_frames is not None and seq >= config.max_frames:
                    break
                if deadline is not None and now_s() >= deadline:
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
                frame = Frame(image=image, seq=seq, t_capture=now_ns())
                self.stats.on_capture(frame)
                if not self._put(self.ring_in, frame):
                    break
                seq += 1
        finally:
            self.ring_in.close()

    def _inference_loop(self) -> None:
        busy = BusyWatch() if threading.current_thread().name in self.raised_threads else None
        try:
            while True:
                frame = self._get(self.ring_in, POLL_S)
                if frame is None:
                    continue
                failed = False
                with frame.stage("infer"):
                    try:
                        image = self.processor.process(frame)
                    except Exception as exc:
                        failed, image = True, frame.image
                        self._processor_log.warning(f"E21 frame {frame.seq}: {exc!r} — passing it through")
                start_ns, end_ns = frame.stages["infer"]
                if busy is not None and busy.add(start_ns / 1e9, end_ns / 1e9):
                    busy = None
                    self._step_down()
                frame.image = image
                self.stats.on_processed(frame, failed=failed)
                if not self._put(self.ring_out, frame):
                    break
        except RingClosed:
            pass
        finally:
            self.ring_out.close()

    def _step_down(self) -> None:
        """The inference thread keeps a core busy: back to ordinary priority, so it cannot starve the desktop."""
        if restore_current_thread():
            self.raised_threads.discard(threading.current_thread().name)
        log.info("the inference thread is busy more than %d%% of the time (frames take longer than they come): "
                 "it runs at ordinary priority from now on", round(BUSY_LIMIT * 100))

    def _output_loop(self) -> None:
        last: Frame | None = None
        resend = self.config.resend_last and self.live
        while True:
            # 1.2 intervals: frames arriving with ordinary jitter are not pre-empted by a re-send.
            timeout = 1.2 * self.output_interval_s if (resend and last is not None) else POLL_S
            try:
                frame = self._get(self.ring_out, timeout)
            except RingClosed:
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
        return now_s() - self._lost_since >= NO_SIGNAL_AFTER_S

    def _recover(self, exc: SignalLost) -> None:
        """Count the loss, wait with exponential backoff, then try to reopen the source."""
        if not self.signal_lost.is_set():
            log.warning(warning_text("E22", f"{self.source.name}: {exc}"))
            self._lost_since = now_s()
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
            self._no_signal = Frame(image=image, seq=-1, t_capture=now_ns())
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

    def _get(self, ring: Ring[Frame], timeout: float) -> Frame | None:
        """The next frame, or None on timeout; raises RingClosed when the ring is done or the run is stopping."""
        if self.stop_event.is_set():
            raise RingClosed(ring.name)
        return ring.get(timeout)

    def _hold_until(self, frame: Frame) -> bool:
        """Sleep until ``sync_delay_ms`` after capture; False if stopped meanwhile."""
        due = frame.t_capture + int(self.config.sync_delay_ms * 1e6)
        wait_s = (due - now_ns()) / 1e9
        if wait_s > 0:
            return not self.stop_event.wait(wait_s)
        return True

    def _emit(self, frame: Frame, *, resent: bool) -> None:
        start = now_ns()
        if self.outputs.write_all(frame):
            self.request_stop()
        if not resent:
            frame.stages["output"] = (start, now_ns())
            frame.t_output = now_ns()
        self.stats.on_output(frame, resent=resent)

    def summary(self) -> dict[str, Any]:
        """The run's stats as plain values."""
        return self.stats.summary()

