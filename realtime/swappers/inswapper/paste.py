"""Where the swapped 128 px crop goes back into the frame, and the masks it is pasted under."""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from realtime import blend
from realtime.faces import align
from realtime.swappers.inswapper.preprocess import CROP


@dataclass(frozen=True)
class InswapperOptions:
    """How the swapped crop goes back into the frame; sizes are fractions of the 128 px crop or face."""

    color_correct: bool = True
    keep_mouth: bool = True
    crop_margin: float = 0.06  # of the crop, faded out at each crop edge
    crop_feather: float = 0.06  # blur of the crop-box mask (fraction of the crop)
    oval_erode: float = 0.03  # of the face size, for the face-oval mask (when landmarks exist)
    oval_feather: float = 0.04
    mouth_feather: float = 0.03


@dataclass(frozen=True)
class Placement:
    """Where a 128 crop goes in the frame: ROI (x0, y0, x1, y1) and crop → ROI transform."""

    x0: int
    y0: int
    x1: int
    y1: int
    to_roi: np.ndarray  # 2×3, crop pixels → ROI pixels


def placement(matrix: np.ndarray, width: int, height: int, size: int = CROP) -> Placement | None:
    """The frame region the crop of ``matrix`` (image → crop) covers, clipped to the frame; None if outside."""
    inverse = align.invert(matrix)
    corners = align.apply(inverse, np.array([[0, 0], [size, 0], [0, size], [size, size]], np.float64))
    x0, y0 = np.floor(corners.min(axis=0)).astype(int)
    x1, y1 = np.ceil(corners.max(axis=0)).astype(int) + 1
    x0, y0, x1, y1 = max(0, x0), max(0, y0), min(width, x1), min(height, y1)
    if x1 - x0 < 2 or y1 - y0 < 2:
        return None
    to_roi = inverse.copy()
    to_roi[:, 2] -= (x0, y0)
    return Placement(int(x0), int(y0), int(x1), int(y1), to_roi)


def crop_box_mask(size: int, *, margin: float, feather: float) -> np.ndarray:
    """uint8 size×size alpha: 255 inside, fading to 0 towards the crop edges (fractions of ``size``)."""
    mask = np.zeros((size, size), np.uint8)
    m = max(1, round(margin * size))
    mask[m:size - m, m:size - m] = 255
    blur = feather * size
    if blur < 1:
        return mask
    return np.asarray(cv2.GaussianBlur(mask, (blend.odd(2 * blur), blend.odd(2 * blur)), 0), np.uint8)

