"""A video frame travelling through the pipeline, with its timestamps."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import numpy as np

from realtime.clock import now_ns


@dataclass(slots=True)
class Frame:
    """An H×W×3 uint8 BGR image, its sequence number and monotonic-ns timestamps.

    ``stages`` maps a stage name (``capture``, ``infer``, ``detect``...) to its
    (start, end) times; a stage timed more than once in a frame (one per face)
    adds up. ``t_output`` is set by the output thread once every sink has been
    given the frame.
    """

    image: np.ndarray
    seq: int
    t_capture: int
    stages: dict[str, tuple[int, int]] = field(default_factory=dict)
    t_output: int = 0

    def __post_init__(self) -> None:
        image = self.image
        if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
            raise ValueError(f"frame image must be H×W×3 uint8, got {image.shape} {image.dtype}")
        if not image.flags.c_contiguous:
            self.image = np.ascontiguousarray(image)

    @contextmanager
    def stage(self, name: str) -> Iterator[None]:
        """Time the enclosed block as stage ``name``, adding to the time it already has in this frame."""
        start = now_ns()
        try:
            yield
        finally:
            took = now_ns() - start
            previous = self.stages.get(name)
            if previous is None:
                self.stages[name] = (start, start + took)
            else:
                self.stages[name] = (previous[0], previous[1] + took)

    def stage_ms(self, name: str) -> float | None:
        """Duration of a recorded stage in milliseconds, or None if it did not run."""
        span = self.stages.get(name)
        return None if span is None else (span[1] - span[0]) / 1e6

    def latency_ms(self) -> float:
        """Capture-to-output latency in milliseconds (0 until output)."""
        return (self.t_output - self.t_capture) / 1e6 if self.t_output else 0.0


@contextmanager
def maybe_stage(frame: Frame | None, name: str) -> Iterator[None]:
    """``frame.stage(name)`` when there is a frame (live video), nothing for a still photo."""
    if frame is None:
        yield
    else:
        with frame.stage(name):
            yield
