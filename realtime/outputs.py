"""The pipeline's outputs: sinks attached and removed while the run goes on, never closed while written.

The output thread writes every frame to the attached sinks through
:meth:`Outputs.write_all`; any thread may :meth:`~Outputs.add` or
:meth:`~Outputs.remove` a sink. A sink leaves the set in two steps: it is
detached at once (the output thread skips it from then on), and it is closed on
a named thread of its own once the output thread is no longer inside its
``write``. Closing a recording flushes its encoder, which takes a while; on its
own thread that never holds up the other outputs.

A sink whose writes keep failing is reported once with its code (E14 file, E15
network, E10 virtual camera), closed and removed the same way; the others go on.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from realtime.clock import now_s
from realtime.errors import SwapcamError, warning_text
from realtime.frame import Frame
from realtime.logutil import RateLimitedLog
from realtime.sinks.base import Sink, StopRequested
from realtime.stats import Stats

log = logging.getLogger(__name__)

# Writes failing in a row before an output is removed: one lost UDP datagram (ENOBUFS) does not end a
# stream, while a full disk (every write fails) is reported and removed within a tenth of a second.
FAILURES_BEFORE_REMOVAL = 3


@dataclass(frozen=True)
class FailedOutput:
    """An output removed because its writes failed."""

    name: str
    code: str
    message: str


def failure_code(sink: Sink, exc: BaseException) -> str:
    """The code a failing ``sink`` is reported with: the sink's own, else the error's, else E17."""
    code = getattr(sink, "failure_code", None)
    if code and code != "E17":
        return str(code)
    return exc.code if isinstance(exc, SwapcamError) else "E17"


def _detail(exc: BaseException) -> str:
    if isinstance(exc, SwapcamError):
        return exc.detail or exc.message()
    return str(exc) or type(exc).__name__


class _Closer:
    """Closes one sink on a named thread and keeps what went wrong."""

    def __init__(self, sink: Sink, *, report: bool) -> None:
        self.sink = sink
        self.report = report  # False for a failed sink: its failure is already reported
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._close, name=f"swapcam-close-{sink.name}", daemon=True)
        self.thread.start()

    def _close(self) -> None:
        try:
            self.sink.close()
        except Exception as exc:
            self.error = exc
            level = logging.ERROR if self.report else logging.DEBUG
            log.log(level, "closing %s: %s", self.sink.name, exc)


class Outputs:
    """The sinks the output thread writes to; thread-safe."""

    def __init__(self, sinks: Sequence[Sink], *, stats: Stats, on_empty: Callable[[], None]) -> None:
        """``on_empty`` is called (on the output thread) when the last output has failed and been removed."""
        self.stats = stats
        self.on_empty = on_empty
        self.failed: list[FailedOutput] = []
        self._cond = threading.Condition()
        self._attached: list[Sink] = list(sinks)
        self._writing: Sink | None = None
        self._close_on_leave: list[Sink] = []
        self._closers: list[_Closer] = []
        self._failures: dict[int, int] = {}
        self._log = RateLimitedLog(log)

    def snapshot(self) -> list[Sink]:
        """The sinks attached now."""
        with self._cond:
            return list(self._attached)

    def add(self, sink: Sink) -> None:
        """Attach ``sink``: the output thread writes to it from the next frame on."""
        with self._cond:
            if not any(s is sink for s in self._attached):
                self._attached.append(sink)

    def remove(self, sink: Sink, *, timeout: float = 2.0) -> None:
        """Detach ``sink`` now and close it once the output thread has left its ``write``.

        Waits up to ``timeout`` s for that close; past it the sink is closed in the background
        (logged). Raises what the sink's ``close`` raised. A sink not attached (never added, or
        already removed) is left alone.
        """
        deadline = now_s() + timeout
        with self._cond:
            if not self._detach(sink):
                return
            while self._writing is sink:
                remaining = deadline - now_s()
                if remaining <= 0:
                    self._close_on_leave.append(sink)
                    log.warning("%s is still inside a write after %.1f s; it is closed when the write returns",
                                sink.name, timeout)
                    return
                self._cond.wait(remaining)
            closer = self._start_closer(sink, report=True)
        closer.thread.join(max(0.0, deadline - now_s()))
        if closer.thread.is_alive():
            log.warning("%s: still closing after %.1f s; it finishes in the background", sink.name, timeout)
        elif closer.error is not None:
            raise closer.error

    def write_all(self, frame: Frame) -> bool:
        """Write ``frame`` to every attached sink; True when a sink asked to stop the run."""
        stop = False
        for sink in self.snapshot():
            with self._cond:
                if not any(s is sink for s in self._attached):
                    continue  # removed since the snapshot
                self._writing = sink
            error: Exception | None = None
            try:
                sink.write(frame)
            except StopRequested:
                stop = True
            except Exception as exc:
                error = exc
            finally:
                self._leave(sink)
            if error is None:
                self._failures.pop(id(sink), None)
            else:
                self._failed_write(sink, error)
        return stop

    def close_all(self) -> None:
        """Detach every sink and start closing each, in parallel; one being written is closed when its write
        returns. ``wait_closed`` waits for them."""
        with self._cond:
            for sink in list(self._attached):
                self._detach(sink)
                if self._writing is sink:
                    self._close_on_leave.append(sink)
                    log.warning("%s is still inside a write; it is closed when the write returns", sink.name)
                else:
                    self._start_closer(sink, report=True)

    def closing(self) -> bool:
        """True while a close started so far is still running."""
        with self._cond:
            return any(closer.thread.is_alive() for closer in self._closers)

    def wait_closed(self, deadline: float) -> list[BaseException]:
        """Wait until ``deadline`` (monotonic s) for every close started so far; the errors of those that
        finished (a failed sink's aside: its failure is already reported)."""
        with self._cond:
            closers = list(self._closers)
        for closer in closers:
            closer.thread.join(max(0.0, deadline - now_s()))
            if closer.thread.is_alive():
                log.warning("%s: still closing; it finishes in the background", closer.sink.name)
        return [c.error for c in closers if c.report and c.error is not None and not c.thread.is_alive()]

    def close_now(self, deadline: float) -> None:
        """Last resort before the process ends: close every sink at once, even one being written (each
        sink's own lock keeps that safe), and wait for the closes until ``deadline`` (monotonic s)."""
        with self._cond:
            for sink in list(self._attached):
                self._detach(sink)
                self._start_closer(sink, report=True)
            for sink in self._close_on_leave:
                self._start_closer(sink, report=True)
            self._close_on_leave.clear()
            closers = list(self._closers)
        for closer in closers:
            closer.thread.join(max(0.0, deadline - now_s()))

    # -- helpers (the caller holds self._cond where it says so) -------------------------

    def _detach(self, sink: Sink) -> bool:
        """Take ``sink`` out of the attached list (caller holds the lock); False if it was not in it."""
        for index, attached in enumerate(self._attached):
            if attached is sink:
                del self._attached[index]
                return True
        return False

    def _start_closer(self, sink: Sink, *, report: bool) -> _Closer:
        """Close ``sink`` on its own thread (caller holds the lock)."""
        closer = _Closer(sink, report=report)
        self._closers.append(closer)
        return closer

    def _leave(self, sink: Sink) -> None:
        """The output thread is out of ``sink.write``: wake a waiting remove, close it if it was removed."""
        with self._cond:
            self._writing = None
            self._cond.notify_all()
            for index, pending in enumerate(self._close_on_leave):
                if pending is sink:
                    del self._close_on_leave[index]
                    self._start_closer(sink, report=True)
                    break

    def _failed_write(self, sink: Sink, exc: Exception) -> None:
        """Count a failed write; remove the sink (one coded line) once it failed enough times in a row."""
        self.stats.count("sink_errors")
        failures = self._failures[id(sink)] = self._failures.get(id(sink), 0) + 1
        if failures < FAILURES_BEFORE_REMOVAL:
            self._log.warning(f"{sink.name}: a write failed ({_detail(exc)}); the output is removed after "
                              f"{FAILURES_BEFORE_REMOVAL} failures in a row")
            return
        code = failure_code(sink, exc)
        message = warning_text(code, f"{sink.name}: {_detail(exc)}; this output is closed and removed, "
                                     "the others go on")
        log.error(message)
        self.failed.append(FailedOutput(name=sink.name, code=code, message=message))
        self.stats.on_output_failed(name=sink.name, code=code, message=message)
        with self._cond:
            self._detach(sink)
            self._start_closer(sink, report=False)
            empty = not self._attached
        self._failures.pop(id(sink), None)
        if empty:
            log.error("no output is left; stopping")
            self.on_empty()
