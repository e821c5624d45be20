"""Frame processors run by the inference thread, and the simple ones used for testing."""

from __future__ import annotations

import time
from typing import Protocol

import numpy as np

from realtime.frame import Frame


class Processor(Protocol):
    """Turns a frame's image into the output image; may time sub-stages with ``frame.stage``.

    ``process`` must not write into ``frame.image``: when it raises, the pipeline sends that image on
    as the frame's output, so it has to be exactly as captured.
    """

    name: str

    def process(self, frame: Frame) -> np.ndarray: ...

    def close(self) -> None: ...


class Passthrough:
    """Returns the frame unchanged."""

    name = "passthrough"

    def process(self, frame: Frame) -> np.ndarray:
        """The input image itself."""
        return frame.image

    def close(self) -> None:
        """Nothing to release."""


class Sleeper:
    """Takes a fixed time per frame (simulates a slow model in benchmarks)."""

    def __init__(self, ms: float) -> None:
        self.name = f"sleep{ms:g}ms"
        self.seconds = ms / 1000.0

    def process(self, frame: Frame) -> np.ndarray:
        """Wait ``ms`` precisely (sleep, then spin the last bit), return the image."""
        deadline = time.perf_counter() + self.seconds
        if self.seconds > 0.002:
            time.sleep(self.seconds - 0.0015)
        while time.perf_counter() < deadline:
            pass
        return frame.image

    def close(self) -> None:
        """Nothing to release."""
