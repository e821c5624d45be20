"""Closing a source, sink or processor only once its thread is out of it."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

log = logging.getLogger(__name__)


class Release:
    """Closes a source or processor exactly once, and never while its thread may be inside it.

    ``request`` (from ``stop``) closes it at once when its thread has ended (or never started); else the
    thread closes it itself in ``leave``, as it ends.
    """

    def __init__(self, name: str, close: Callable[[], None]) -> None:
        self.name = name
        self._close = close
        self._lock = threading.Lock()
        self._left = self._wanted = self._done = False

    def leave(self) -> None:
        """Called by the owning thread as it ends."""
        with self._lock:
            self._left = True
            go = self._wanted and not self._done
            self._done = self._done or go
        if go:
            error = self._run()
            if error is not None:
                log.error("closing %s: %s", self.name, error)

    def request(self, *, thread_started: bool) -> BaseException | None:
        """Close now if the thread is out of it; the close's error, if any."""
        with self._lock:
            if self._done:
                return None
            self._wanted = True
            go = self._left or not thread_started
            self._done = go
        if not go:
            log.warning("%s is still in use by its thread; it is closed when the thread comes out", self.name)
            return None
        return self._run()

    def _run(self) -> BaseException | None:
        try:
            self._close()
        except Exception as exc:
            log.error("error while closing %s: %s", self.name, exc)
            return exc
        return None


def close_when_idle(lock: threading.Lock, release: Callable[[], None], defer: Callable[[], None],
                    timeout: float = 0.0) -> None:
    """Run ``release`` under ``lock``, which a read or write in progress holds. When that call keeps the lock
    past ``timeout`` seconds, ``defer`` asks it to release as it ends, and this returns without waiting."""
    if not lock.acquire(timeout=timeout):
        defer()
        if not lock.acquire(blocking=False):  # again: the call may have ended before ``defer`` took effect
            return
    try:
        release()
    finally:
        lock.release()
