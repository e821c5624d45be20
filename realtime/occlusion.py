"""What is in front of the target's face, and what in the source photo is not face.

Target occlusion. Each frame the target face is sampled on a canonical grid:
the source photo's mesh layout, so a texel stays on the same spot of the face
however the head moves. Two tests mark a texel as an occluder:

1. colour: its chroma is far (in robust spreads) from the face's skin chroma
   (median and MAD over the skin texels, smoothed over frames). This catches
   objects: a mug, a microphone, a sleeve, glasses frames.
2. appearance over time: it differs from that texel's own running mean by
   more than its running spread allows (after removing a global exposure
   change). This catches what has skin colour, such as a hand in front of the
   mouth. The model only learns from texels that pass both tests.

Eyes, brows and lips get only the second test, with more slack (they move,
and their colour is not skin's); they also count as occluded when the texels
around them are. Occlusion shows at once and
fades out over a few frames, so a still face does not shimmer.

Source clutter. A one-time mask over the source's upper face (forehead,
temples, upper cheeks, away from eyes and brows) of pixels that are not
skin: hair, a fringe, glasses frames, hard shadows. The target's own pixels
fill those places.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from realtime.faces import mesh_topology as topo

CHROMA_FLOOR = 3.0  # Lab levels: the least skin chroma spread a test assumes (flat or grey images)
CHROMA_SIGMAS = (4.0, 6.0)  # occlusion ramps from 0 to 1 between these robust distances
CHANGE_FLOOR = 4.0  # Lab levels of change a texel may always show (noise, small shading changes)
CHANGE_SIGMAS = (3.0, 5.0)
FEATURE_SLACK = 1.5  # eyes, brows and lips must change this much more to count as occluded
LEARN_RATE = 0.1  # per frame, for the appearance model at rest (faster when the face moves)
RELEASE = 0.5  # per frame, how fast occlusion fades once the occluder has gone
RESET_FRACTION = 0.6  # more of the skin than this changed at once: a new scene, relearn
CLUTTER_SIGMAS = 4.0


@dataclass(frozen=True)
class Layout:
    """Canonical texels over the source face: ``xy`` (P×2, source crop pixels) of the texels inside the
    mesh, their triangle ``ids`` (P, 0-based), grid position ``cells`` (P×2 row, col) on a
    ``shape`` grid, and which are ``skin`` (tested) or ``feature`` (eyes, brows, lips: not tested)."""

    xy: np.ndarray
    ids: np.ndarray
    cells: np.ndarray
    shape: tuple[int, int]
    skin: np.ndarray
    feature: np.ndarray
    feature_grid: np.ndarray  # float32 on the grid: 1 on eyes, brows and lips (for mapping to the target)


def feature_mask(shape: tuple[int, int], points: np.ndarray, grow: float) -> np.ndarray:
    """uint8 mask (255 inside) of the eyes, brows and outer lips of ``points``, grown by ``grow`` px."""
    mask = np.zeros(shape, np.uint8)
    for indices in (topo.RIGHT_EYE, topo.LEFT_EYE, topo.RIGHT_BROW, topo.LEFT_BROW, topo.LIPS_OUTER):
        hull = cv2.convexHull(np.round(topo.contour(points, indices)).astype(np.int32))
        cv2.fillConvexPoly(mask, hull, 255)
    if grow >= 1:
        size = 2 * round(grow) + 1
        mask = np.asarray(cv2.dilate(mask, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (size, size))))
    return mask


def oval_mask(shape: tuple[int, int], points: np.ndarray) -> np.ndarray:
    """uint8 mask (255 inside) of the face oval."""
    mask = np.zeros(shape, np.uint8)
    cv2.fillConvexPoly(mask, cv2.convexHull(np.round(topo.contour(points, topo.FACE_OVAL)).astype(np.int32)), 255)
    return mask


def robust_stats(values: np.ndarray, floor: float) -> tuple[np.ndarray, np.ndarray]:
    """Per-column median and MAD-based spread (≥ ``floor``) of an N×C array."""
    median = np.median(values, axis=0)
    spread = 1.4826 * np.median(np.abs(values - median), axis=0)
    return median, np.maximum(spread, floor)


def ramp(x: np.ndarray, lo: float, hi: float) -> np.ndarray:
    """0 below ``lo``, 1 above ``hi``, linear between."""
    return np.clip((x - lo) / (hi - lo), 0.0, 1.0).astype(np.float32)


@dataclass
class OcclusionModel:
    """One tracked face's skin chroma and per-texel appearance, learnt over frames."""

    chroma: tuple[np.ndarray, np.ndarray] | None = None
    mean: np.ndarray | None = None
    var: np.ndarray | None = None
    occlusion: np.ndarray | None = None

    def update(self, texels: np.ndarray, visible: np.ndarray, layout: Layout, speed: float) -> np.ndarray:
        """Occlusion (0..1) per texel of this frame's target texels (P×3 Lab, float32).

        ``visible``: texels facing the camera; ``speed``: landmark motion in face sizes per frame.
        """
        tested = visible & layout.skin
        if tested.sum() < 8:
            return np.zeros(len(texels), np.float32)
        occ = self._colour(texels, tested) * tested
        watched = visible & (layout.skin | layout.feature)
        changed = self._changed(texels, tested, watched, layout.feature, speed)
        raw = np.maximum(occ, changed)
        occ = self._tidy(raw, layout)
        self._learn(texels, watched & (np.maximum(raw, occ) < 0.5), speed)
        if self.occlusion is not None and self.occlusion.shape == occ.shape:
            occ = np.maximum(occ, (1 - RELEASE) * self.occlusion)
        self.occlusion = occ
        return occ

    def _colour(self, texels: np.ndarray, tested: np.ndarray) -> np.ndarray:
        chroma = texels[tested, 1:]
        median, spread = robust_stats(chroma, CHROMA_FLOOR)
        if self.chroma is not None:
            median = self.chroma[0] + LEARN_RATE * (median - self.chroma[0])
            spread = self.chroma[1] + LEARN_RATE * (spread - self.chroma[1])
        self.chroma = (median, spread)
        distance = np.sqrt((((texels[:, 1:] - median) / spread) ** 2).sum(axis=1))
        return ramp(distance, *CHROMA_SIGMAS)

    def _changed(self, texels: np.ndarray, tested: np.ndarray, watched: np.ndarray, feature: np.ndarray,
                 speed: float) -> np.ndarray:
        if self.mean is None or self.var is None or self.mean.shape != texels.shape:
            self.mean, self.var = texels.copy(), np.full_like(texels, CHANGE_FLOOR**2)
            return np.zeros(len(texels), np.float32)
        diff = texels - self.mean
        diff -= np.median(diff[tested], axis=0)  # a global exposure or white-balance change is no occluder
        distance = np.sqrt((diff**2 / (self.var + CHANGE_FLOOR**2)).sum(axis=1))
        # A moving head changes its shading, and eyes and lips move on their own: judge those more leniently.
        slack = (1.0 + 20.0 * speed) * np.where(feature, np.float32(FEATURE_SLACK), np.float32(1))
        changed = ramp(distance / slack, *CHANGE_SIGMAS) * watched
        if (changed[tested] > 0.5).mean() > RESET_FRACTION:
            self.mean, self.var = texels.copy(), np.full_like(texels, CHANGE_FLOOR**2)
            return np.zeros(len(texels), np.float32)
        return changed

    def _learn(self, texels: np.ndarray, clean: np.ndarray, speed: float) -> None:
        if self.mean is None or self.var is None:
            return
        rate = np.float32(min(0.5, LEARN_RATE + 5.0 * speed))
        step = np.where(clean[:, None], rate, np.float32(0))
        diff = texels - self.mean
        self.mean += step * diff
        bound = 9.0 * (self.var + CHANGE_FLOOR**2)  # one outlier must not inflate the spread
        self.var += step * (np.minimum(diff**2, bound) - self.var)

    @staticmethod
    def _tidy(occ: np.ndarray, layout: Layout) -> np.ndarray:
        """Drop isolated texels, fill the features an occluder surrounds, grow by one texel."""
        grid = np.zeros(layout.shape, np.float32)
        rows, cols = layout.cells[:, 0], layout.cells[:, 1]
        grid[rows, cols] = occ
        small = cv2.getStructuringElement(cv2.MORPH_RECT, (3, 3))
        company = cv2.boxFilter((grid > 0.5).astype(np.float32), -1, (3, 3), normalize=False)
        grid = np.where(company >= 2, grid, np.float32(0))  # a texel alone is noise
        closed = cv2.morphologyEx(grid, cv2.MORPH_CLOSE, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (7, 7)))
        grid = np.where(_cell_mask(layout, layout.feature), np.maximum(grid, closed), grid)
        grid = np.asarray(cv2.dilate(grid, small))
        return np.ascontiguousarray(grid[rows, cols])


def _cell_mask(layout: Layout, selected: np.ndarray) -> np.ndarray:
    mask = np.zeros(layout.shape, bool)
    mask[layout.cells[selected, 0], layout.cells[selected, 1]] = True
    return mask


def to_grid(layout: Layout, values: np.ndarray) -> np.ndarray:
    """Per-texel ``values`` placed on the layout's grid (0 where there is no texel), float32."""
    grid = np.zeros(layout.shape, np.float32)
    grid[layout.cells[:, 0], layout.cells[:, 1]] = values
    return grid


def clutter_mask(bgr: np.ndarray, points: np.ndarray, face_px: float) -> np.ndarray:
    """uint8 mask (255 = not skin) over a source face crop: hair, fringe, glasses, hard shadows on the
    upper face (above the nose, outside the grown eyes and brows), from the skin's robust Lab stats."""
    shape = bgr.shape[:2]
    lab = cv2.cvtColor(bgr, cv2.COLOR_BGR2Lab).astype(np.float32)
    oval = oval_mask(shape, points) > 0
    features = feature_mask(shape, points, 0.05 * face_px) > 0
    skin = oval & ~features
    if skin.sum() < 16:
        return np.zeros(shape, np.uint8)
    median, spread = robust_stats(lab[skin], CHROMA_FLOOR)
    chroma = np.sqrt((((lab[..., 1:] - median[1:]) / spread[1:]) ** 2).sum(axis=2))
    dark = (median[0] - lab[..., 0]) / spread[0]
    upper = np.zeros(shape, bool)
    upper[: max(0, int(points[topo.NOSE_BOTTOM, 1])), :] = True
    clutter = ((chroma > CLUTTER_SIGMAS) | (dark > CLUTTER_SIGMAS)) & skin & upper
    mask = cv2.medianBlur(clutter.astype(np.uint8) * 255, 3)  # drops single pixels, keeps strands of hair
    grow = 2 * round(0.02 * face_px) + 1
    mask = cv2.dilate(mask, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (grow, grow)))
    return np.asarray(cv2.GaussianBlur(mask, (0, 0), max(1.0, 0.01 * face_px)))
