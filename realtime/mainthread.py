"""Running GUI calls on the main thread, for the OSes that allow windows nowhere else.

Cocoa (macOS) aborts when a window is created or drawn from any other thread,
so the preview sink cannot call HighGUI from the output thread there. It hands
each call to a :class:`MainThreadDispatcher`; the main thread, which otherwise
just waits for the run to end, runs the queued calls (``Pipeline.wait``).
"""

from __future__ import annotations

import queue
import sys
import threading
from collections.abc import Callable
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from typing import Any, TypeVar

T = TypeVar("T")

CALL_TIMEOUT_S = 1.0  # a worker gives up on a call the main thread has not run by then (e.g. while stopping)


def needs_main_thread(platform: str | None = None) -> bool:
    """True where GUI windows may only be touched from the main thread (macOS)."""
    return (platform or sys.platform) == "darwin"


class MainThreadDispatcher:
    """A queue of calls that the thread which created it (the main thread) runs in :meth:`run_pending`."""

    def __init__(self) -> None:
        self.owner = threading.current_thread()
        self._calls: queue.SimpleQueue[tuple[Callable[[], Any], Future[Any]]] = queue.SimpleQueue()

    def call(self, function: Callable[[], T], *, timeout_s: float = CALL_TIMEOUT_S) -> T:
        """Run ``function`` on the owning thread and return its result (or raise its exception).

        Called on the owning thread it runs at once. Raises TimeoutError when the
        owner did not get to it within ``timeout_s``.
        """
        if threading.current_thread() is self.owner:
            return function()
        future: Future[T] = Future()
        self._calls.put((function, future))
        try:
            return future.result(timeout_s)
        except FutureTimeout:
            if future.cancel():
                raise TimeoutError(f"the main thread did not run the call within {timeout_s:g} s") from None
            return future.result()  # it started just now: wait for it to finish

    def run_pending(self, timeout_s: float) -> int:
        """On the owning thread: wait up to ``timeout_s`` for a call, run it and any others queued; returns
        how many ran."""
        ran = 0
        try:
            item = self._calls.get(timeout=max(timeout_s, 0.0))
        except queue.Empty:
            return 0
        while True:
            function, future = item
            if future.set_running_or_notify_cancel():
                try:
                    future.set_result(function())
                except Exception as exc:  # handed to the caller, which re-raises it on its own thread
                    future.set_exception(exc)
                ran += 1
            try:
                item = self._calls.get_nowait()
            except queue.Empty:
                return ran
