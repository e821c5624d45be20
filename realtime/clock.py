"""The one clock for timestamps and timed waits: ``time.perf_counter_ns``.

``time.monotonic`` ticks every 15.6 ms on Windows before Python 3.13 (CPython
gh-88494), which would snap every latency figure and deadline to that tick;
``perf_counter`` is the high-resolution monotonic clock on every OS.
"""

from __future__ import annotations

import time
from datetime import datetime, timezone


def now_ns() -> int:
    """Monotonic nanoseconds for frame timestamps and latency arithmetic."""
    return time.perf_counter_ns()


def now_s() -> float:
    """Monotonic seconds (same clock as :func:`now_ns`) for deadlines and timed waits."""
    return time.perf_counter()


def wall_s() -> float:
    """Seconds since the epoch, for dates that are stored or shown (when a face was added, when an error
    happened); never for durations or deadlines, since the wall clock jumps."""
    return datetime.now(timezone.utc).timestamp()
