"""The tracker's periodic face check on its own thread, so that no video frame waits for the detector."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

import numpy as np

from realtime.faces.types import Face
from realtime.priority import lower_current_thread

log = logging.getLogger("realtime.faces.analyzer")


class BackgroundCheck:
    """Runs ``detect`` on one image at a time on a named thread; ``take`` hands the result over once.

    A ``submit`` while a check is still running is skipped: the next periodic
    check comes soon enough, and queueing would only return stale faces.
    """

    def __init__(self, detect: Callable[[np.ndarray], list[Face]]) -> None:
        self._detect = detect
        self._cond = threading.Condition()
        self._image: np.ndarray | None = None
        self._result: list[Face] | None = None
        self._busy = False
        self._closed = False
        self._generation = 0  # bumped by discard: a check started before it is thrown away
        self._thread: threading.Thread | None = None
        self.failures = 0

    def submit(self, image: np.ndarray) -> bool:
        """Start a check of ``image`` (which must not change meanwhile); False when one is running."""
        with self._cond:
            if self._busy or self._closed:
                return False
            self._image, self._busy = image, True
            if self._thread is None:
                self._thread = threading.Thread(target=self._loop, name="swapcam-face-check", daemon=True)
                self._thread.start()
            self._cond.notify_all()
            return True

    def take(self) -> list[Face] | None:
        """The faces of the last finished check, once; None when there is none new."""
        with self._cond:
            result, self._result = self._result, None
            return result

    def discard(self) -> None:
        """Forget a finished or running check (after a reset)."""
        with self._cond:
            self._result = None
            self._generation += 1

    def wait_idle(self, timeout: float) -> bool:
        """Wait until no check is running; True if none is."""
        with self._cond:
            return self._cond.wait_for(lambda: not self._busy, timeout)

    def close(self) -> None:
        """Stop the thread (after the check in progress, if any)."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        if self._thread is not None:
            self._thread.join(5.0)

    def _loop(self) -> None:
        lower_current_thread()  # no frame waits for a check: it yields to the frame threads
        while True:
            with self._cond:
                self._cond.wait_for(lambda: self._image is not None or self._closed)
                if self._closed:
                    return
                image, self._image, generation = self._image, None, self._generation
            assert image is not None
            try:
                found: list[Face] | None = self._detect(image)
            except Exception as exc:  # the tracking thread goes on; the next check tries again
                self.failures += 1
                log.warning("background face check failed: %r", exc)
                found = None
            with self._cond:
                if generation == self._generation and found is not None:
                    self._result = found
                self._busy = False
                self._cond.notify_all()
