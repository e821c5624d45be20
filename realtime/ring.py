"""The bounded ring between pipeline threads.

Live mode: ``put`` never blocks; when full the oldest frame is dropped and
counted, so latency stays bounded. Blocking mode (offline rendering): ``put``
waits for room, nothing is dropped. ``close()`` wakes every waiter.
"""

from __future__ import annotations

import threading
from collections import deque
from typing import Generic, TypeVar

from realtime.clock import now_s

T = TypeVar("T")


class RingClosed(Exception):
    """Raised by get/put once the ring is closed (and, for get, drained)."""


class Ring(Generic[T]):
    """Thread-safe bounded FIFO. ``capacity=None`` makes it unbounded (benchmark only)."""

    def __init__(self, *, capacity: int | None, blocking: bool = False, name: str = "ring") -> None:
        if capacity is not None and capacity < 1:
            raise ValueError(f"ring capacity must be >= 1, got {capacity}")
        self.name = name
        self.capacity = capacity
        self.blocking = blocking
        self.dropped = 0
        self.put_count = 0
        self._items: deque[T] = deque()
        self._closed = False
        self._cond = threading.Condition()

    def put(self, item: T, timeout: float | None = None) -> T | None:
        """Add ``item``; returns the dropped oldest item in live mode, else None.

        In blocking mode waits for room (up to ``timeout`` s, then raises TimeoutError).
        """
        with self._cond:
            if self._closed:
                raise RingClosed(self.name)
            dropped = None
            if self._full():
                if self.blocking:
                    self._wait_for_room(timeout)
                else:
                    dropped = self._items.popleft()
                    self.dropped += 1
            self._items.append(item)
            self.put_count += 1
            self._cond.notify_all()
            return dropped

    def get(self, timeout: float | None = None) -> T | None:
        """Oldest item, waiting up to ``timeout`` s; None on timeout.

        Raises RingClosed once the ring is closed and empty.
        """
        deadline = None if timeout is None else now_s() + timeout
        with self._cond:
            while not self._items:
                if self._closed:
                    raise RingClosed(self.name)
                remaining = None if deadline is None else deadline - now_s()
                if remaining is not None and remaining <= 0:
                    return None
                self._cond.wait(remaining)
            item = self._items.popleft()
            self._cond.notify_all()
            return item

    def close(self) -> None:
        """Refuse new items and wake every waiter; queued items can still be read."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()

    @property
    def closed(self) -> bool:
        """True once close() was called."""
        return self._closed

    def __len__(self) -> int:
        with self._cond:
            return len(self._items)

    def _full(self) -> bool:
        return self.capacity is not None and len(self._items) >= self.capacity

    def _wait_for_room(self, timeout: float | None) -> None:
        deadline = None if timeout is None else now_s() + timeout
        while self._full():
            if self._closed:
                raise RingClosed(self.name)
            remaining = None if deadline is None else deadline - now_s()
            if remaining is not None and remaining <= 0:
                raise TimeoutError(f"{self.name}: no room within {timeout} s")
            self._cond.wait(remaining)
        if self._closed:
            raise RingClosed(self.name)
