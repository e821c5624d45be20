"""The face record passed from the analysis stages to the swappers."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Face:
    """One face in one image, in that image's pixel coordinates.

    ``box``: x1, y1, x2, y2 (float32, shape (4,)).
    ``keypoints``: 5×2 float32 — left eye, right eye, nose, left mouth corner,
    right mouth corner, where "left" is the one with the smaller x in a frontal
    face (SCRFD's order, the order the ArcFace template uses).
    ``landmarks``: 468×3 float32 face-mesh points (x, y in pixels; z relative), or None.
    ``score``: detector confidence; ``presence``: mesh face-presence probability (1.0 if unknown).
    ``track``: id of the tracked face it belongs to (stable across frames), or -1 for a photo.
    """

    box: np.ndarray
    keypoints: np.ndarray
    score: float
    landmarks: np.ndarray | None = None
    presence: float = 1.0
    track: int = -1

    @property
    def area(self) -> float:
        """Box area in square pixels (faces are ranked largest first)."""
        x1, y1, x2, y2 = (float(v) for v in self.box)
        return max(0.0, x2 - x1) * max(0.0, y2 - y1)
