"""A generated test source: moving content plus a sequence-number stamp per frame."""

from __future__ import annotations

import numpy as np

from realtime.sources.base import FrameClock, Source
from realtime.stamp import draw_stamp


def _background(width: int, height: int) -> np.ndarray:
    """A colour pattern twice as wide as the frame, so panning is a cheap slice."""
    xs = np.linspace(0, 4 * np.pi, 2 * width, dtype=np.float32)
    ys = np.linspace(0, 2 * np.pi, height, dtype=np.float32)
    blue = 127 + 100 * np.sin(xs)[None, :] * np.cos(ys)[:, None]
    green = 127 + 100 * np.cos(xs * 0.5)[None, :] + 0 * ys[:, None]
    red = 127 + 100 * np.sin(ys * 2)[:, None] + 0 * xs[None, :]
    image = np.stack([blue, green, red], axis=2)
    image[:, ::64] = 255  # vertical lines make motion visible
    return image.clip(0, 255).astype(np.uint8)


class SyntheticSource(Source):
    """Frames of any size at any fps; cheap enough for 1080p60 on one core."""

    live = True

    def __init__(self, *, width: int, height: int, fps: float, paced: bool = True) -> None:
        self.name = f"synthetic:{width}x{height}@{fps:g}"
        self.width, self.height, self.fps = width, height, fps
        self._background = _background(width, height)
        self._clock = FrameClock(fps) if paced else None
        self._seq = 0

    def read(self) -> np.ndarray:
        """The next frame, when it is due."""
        if self._clock is not None:
            self._clock.wait()
        offset = (self._seq * 4) % self.width
        frame = self._background[:, offset : offset + self.width].copy()
        box = 40 + (self._seq * 6) % max(1, self.height - 120)
        frame[box : box + 80, self.width // 2 : self.width // 2 + 80] = (255, 255, 255)
        draw_stamp(frame, self._seq)
        self._seq += 1
        return frame

    def close(self) -> None:
        """Nothing to release."""
