"""Whether a tracked face is at rest, so that its landmarks need no new mesh run on this frame.

The face mesh is the largest per-face cost of tracking. The crop a face will
be meshed in is reduced to a small grey thumbnail (area-averaged, so sensor
noise mostly cancels) and compared with the one taken when the face came to
rest, block by block (so a mouth opening or a hand coming in counts even when
the rest of the face is still). While nothing changed, the last landmarks are
kept for a few frames in a row at most; the mesh runs made while the face
rests are averaged (their jitter cancels), and one that lands away from that
average starts afresh, as does any change of the thumbnail.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from realtime.faces.landmarks import CropBox, crop_image

THUMB_PX = 32
BLOCKS = 8  # the thumbnail is compared in BLOCKS × BLOCKS blocks
STILL_DIFF = 4.0  # grey levels: mean absolute change of a block that counts as motion (noise σ = 8 gives ≈2)
STILL_REUSE = 4  # frames in a row a still face may keep its landmarks before the mesh runs again
SETTLED_MOVE = 0.01  # of the face size: a mesh run this far from the resting average means the face moved
MIN_WEIGHT = 0.1  # the newest run's least weight in the resting average (older runs fade)


def thumbnail(image: np.ndarray, crop: CropBox) -> np.ndarray:
    """THUMB_PX² grey float32 thumbnail of a mesh crop."""
    small = crop_image(image, crop, 4 * THUMB_PX)
    return cv2.resize(small, (THUMB_PX, THUMB_PX), interpolation=cv2.INTER_AREA).astype(np.float32).mean(axis=2)


@dataclass
class StillCheck:
    """One track's reference thumbnail (taken when the face came to rest), the frames in a row its
    landmarks were reused, and the average of the mesh runs since it came to rest."""

    thumb: np.ndarray | None = None
    reused: int = 0
    mean: np.ndarray | None = None
    count: int = 0

    def matches(self, image: np.ndarray, crop: CropBox) -> bool:
        """Whether no block of ``crop`` in ``image`` changed since the reference."""
        if self.thumb is None:
            return False
        change = np.abs(thumbnail(image, crop) - self.thumb)
        blocks = cv2.resize(change, (BLOCKS, BLOCKS), interpolation=cv2.INTER_AREA)
        return float(blocks.max()) < STILL_DIFF

    def reuse(self, limit: int) -> bool:
        """Count one more reuse if fewer than ``limit`` were made in a row."""
        if self.reused >= limit:
            return False
        self.reused += 1
        return True

    def settle(self, points: np.ndarray) -> np.ndarray | None:
        """A new mesh run on the resting face: the updated resting average, or None when the run landed
        too far from it (the face moved after all)."""
        assert self.mean is not None
        size = float(np.ptp(self.mean[:, 0]))
        if float(np.abs(points[:, :2] - self.mean[:, :2]).mean()) > SETTLED_MOVE * size:
            return None
        self.count += 1
        self.mean += max(1.0 / self.count, MIN_WEIGHT) * (points - self.mean)
        self.reused = 0
        return self.mean.astype(np.float32)

    def restart(self, image: np.ndarray, crop: CropBox, points: np.ndarray, phase: int = 0) -> None:
        """The face moved (or is new): ``crop`` in ``image`` is the new reference, ``points`` the first run.
        ``phase`` counts as reuses already made, so faces found together are meshed on different frames."""
        self.thumb, self.reused = thumbnail(image, crop), phase
        self.mean, self.count = points.astype(np.float64), 1
