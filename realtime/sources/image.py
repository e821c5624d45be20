"""A still photo repeated at the frame rate."""

from __future__ import annotations

import cv2
import numpy as np

from realtime.images import load_image
from realtime.sources.base import FrameClock, Source


class ImageSource(Source):
    """Repeats one photo, resized to fit ``width``×``height`` (letterboxed), at ``fps``."""

    live = True

    def __init__(self, path: str, *, width: int, height: int, fps: float) -> None:
        self.name = f"image:{path}"
        self.width, self.height, self.fps = width, height, fps
        self._frame = letterbox(load_image(path, max_side=max(width, height)), width, height)
        self._clock = FrameClock(fps)

    def read(self) -> np.ndarray:
        """A fresh copy of the still, when it is due (processors may draw on it)."""
        self._clock.wait()
        return self._frame.copy()

    def close(self) -> None:
        """Nothing to release."""


def letterbox(image: np.ndarray, width: int, height: int) -> np.ndarray:
    """Scale ``image`` to fit inside width×height, centred on black."""
    scale = min(width / image.shape[1], height / image.shape[0])
    new_w, new_h = max(1, round(image.shape[1] * scale)), max(1, round(image.shape[0] * scale))
    resized = cv2.resize(image, (new_w, new_h), interpolation=cv2.INTER_AREA)
    canvas = np.zeros((height, width, 3), np.uint8)
    top, left = (height - new_h) // 2, (width - new_w) // 2
    canvas[top : top + new_h, left : left + new_w] = resized
    return canvas
