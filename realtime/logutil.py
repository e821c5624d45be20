"""Rate-limited logging for per-frame failures."""

from __future__ import annotations

import logging

from realtime.clock import now_s


class RateLimitedLog:
    """Logs at most one message per ``interval_s``, reporting how many were suppressed."""

    def __init__(self, logger: logging.Logger, *, interval_s: float = 5.0) -> None:
        self.logger = logger
        self.interval_s = interval_s
        self._last = float("-inf")
        self._suppressed = 0

    def warning(self, message: str, *, exc_info: bool = False) -> None:
        """Log ``message`` unless one was logged within the interval."""
        now = now_s()
        if now - self._last < self.interval_s:
            self._suppressed += 1
            return
        extra = f" ({self._suppressed} similar suppressed)" if self._suppressed else ""
        self.logger.warning(message + extra, exc_info=exc_info)
        self._last, self._suppressed = now, 0
