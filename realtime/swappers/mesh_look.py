"""The mesh swap's finishing steps, per face: source clutter, target occlusion, shading, two-band blend.

Everything here runs on the swapper's coarse grid (about 48 points across the
face) and is upsampled once, so it costs little beside the warp itself.
:class:`FaceState` holds what is smoothed over time for one tracked face.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import cv2
import numpy as np

from realtime import occlusion, shading

if TYPE_CHECKING:
    from realtime.swappers.mesh_types import Grid, MeshSwapOptions, PreparedSource

VISIBLE_AREA = 0.3  # a texel whose triangle shrank below this share of the typical one faces away
BAND_SIGMA = 0.05  # of the face size: the low band's extra ramp inside the mask
GAIN_RATE = 0.2  # per frame, at rest, for the shading field (1 when the face moves)
MAX_STATES = 16
STEADY_SPEED = 0.004  # face sizes per frame: below it a face counts as at rest (landmark jitter is ~0.001)


@dataclass
class FaceState:
    """What one tracked face carries from frame to frame."""

    palette: tuple[np.ndarray, np.ndarray] | None = None  # target Lab stats of the cached recolouring
    recoloured: np.ndarray | None = None
    points: np.ndarray | None = None  # last frame's landmarks (for its speed)
    smoothed: dict[str, np.ndarray] = field(default_factory=dict)  # coarse fields, smoothed at rest
    patch: tuple[tuple[int, int], np.ndarray] | None = None  # last region origin and swapped image
    warp: CachedWarp | None = None  # the last frame's warp (reused while the landmarks stay the same)
    occlusion: occlusion.OcclusionModel = field(default_factory=occlusion.OcclusionModel)

    def speed(self, points: np.ndarray, face_px: float) -> float:
        """Landmark motion since the last frame (95th percentile over the points) in face sizes, large for
        a new face; remembers ``points``."""
        last, self.points = self.points, points.copy()
        if last is None or last.shape != points.shape:
            return 1.0
        # A high percentile, not the mean: lips moving in a still head are motion too. (np.partition: a
        # tenth of np.percentile's time, which this per-face, per-frame call notices.)
        moved = np.linalg.norm(points - last, axis=1)
        rank = int(0.95 * (len(moved) - 1))
        return float(np.partition(moved, rank)[rank] / max(face_px, 1.0))


class FaceStates:
    """Per-track FaceState, the least recently used dropped beyond MAX_STATES; track −1 (a photo) always
    gets a fresh one."""

    def __init__(self) -> None:
        self._states: OrderedDict[int, FaceState] = OrderedDict()

    def get(self, track: int) -> FaceState:
        """The state of ``track``, created on first use."""
        if track < 0:
            return FaceState()
        state = self._states.pop(track, None) or FaceState()
        self._states[track] = state
        while len(self._states) > MAX_STATES:
            self._states.popitem(last=False)
        return state

    def clear(self) -> None:
        """Forget every face (a new source)."""
        self._states.clear()


@dataclass(frozen=True)
class Warp:
    """One face's warp on the swapper's coarse grid: ``coarse_x``/``coarse_y`` source-crop coordinates per
    grid point, ``points`` the target landmarks (region pixels) and ``to_target`` the per-triangle
    affine maps source → target (T×3×3, row 2 = [valid, 0, 1])."""

    grid: Grid
    coarse_x: np.ndarray
    coarse_y: np.ndarray
    points: np.ndarray
    to_target: np.ndarray
    face_px: float
    origin: tuple[int, int] = (0, 0)  # the region's top-left corner in the frame


@dataclass(frozen=True)
class CachedWarp:
    """A face's warp for one region and landmark set (``key``) and one recoloured source (``colours``)."""

    key: tuple[int, int, int, int, bytes]
    colours: np.ndarray
    alpha: np.ndarray
    swapped: np.ndarray
    warp: Warp


def finish(target: np.ndarray, swapped: np.ndarray, alpha: np.ndarray, warp: Warp, source: PreparedSource,
           state: FaceState, opts: MeshSwapOptions) -> tuple[np.ndarray, np.ndarray]:
    """The patch image and alpha for one face: ``swapped`` shaded like ``target`` and corrected for the
    two-band blend; ``alpha`` with the source's clutter and the target's occluders taken out."""
    grid = warp.grid
    size = (grid.cols, grid.rows)
    small_t, small_s = shrink(target, size), shrink(swapped, size)
    speed = state.speed(warp.points, warp.face_px)
    keep = np.ones((grid.rows, grid.cols), np.float32)
    if opts.clean_source and source.clutter is not None:
        clutter = cv2.remap(source.clutter, warp.coarse_x, warp.coarse_y, cv2.INTER_LINEAR,
                            borderMode=cv2.BORDER_CONSTANT, borderValue=0)
        keep *= 1.0 - clutter.astype(np.float32) / 255.0
    back = None
    if source.canon is not None and source.layout is not None:
        # Where each coarse grid point lands on the canonical grid: carries canonical maps to the target.
        at = source.canon.to_grid(np.stack([warp.coarse_x, warp.coarse_y], axis=-1))
        back = (np.ascontiguousarray(at[..., 0]), np.ascontiguousarray(at[..., 1]))
    if opts.occlusion and back is not None:
        keep *= 1.0 - target_occlusion(small_t, warp, back, source, state, speed)
    alpha_c = shrink(alpha, size).astype(np.float32) / 255.0 * keep
    step = max(grid.scale)
    log_gain = np.zeros(alpha_c.shape, np.float32)
    if opts.shading:
        weight = (alpha_c > 0.5) * keep
        if back is not None and source.layout is not None:
            weight *= 1.0 - _canonical_to_target(source.layout.feature_grid, back)
        log_gain = shading.shading_log_gain(small_t, small_s, weight, opts.shade_sigma * warp.face_px / step)
        log_gain = _smooth(state, "gain", log_gain, speed)
    share = np.ones_like(alpha_c)
    low_delta = np.zeros((grid.rows, grid.cols, 3), np.float32)
    if opts.two_band:
        share = shading.low_band_share(alpha_c, BAND_SIGMA * warp.face_px / step)
        shaded = small_s.astype(np.float32) * np.exp(log_gain)[..., None]
        low_delta = _smooth(state, "low band", shaded - small_t.astype(np.float32), speed)
    image = shading.shade_and_correct(swapped, log_gain, low_delta, share, (grid.width, grid.height))
    image = _steady(state, image, warp.origin, speed)
    if keep.min() < 1.0:
        alpha = (alpha.astype(np.float32) * grid.upsample(keep) + 0.5).astype(np.uint8)
    return image, alpha


def shrink(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """``image`` area-averaged down to ``size`` (width, height): halved with pyrDown while it is four times
    larger or more, then INTER_AREA. A third of INTER_AREA's time from a face region to the coarse grid
    (its non-integer factors take the slow path), within a level of it."""
    while image.shape[1] >= 4 * size[0] and image.shape[0] >= 4 * size[1]:
        image = cv2.pyrDown(image)
    return np.asarray(cv2.resize(image, size, interpolation=cv2.INTER_AREA))


def _canonical_to_target(values: np.ndarray, back: tuple[np.ndarray, np.ndarray]) -> np.ndarray:
    """A canonical-grid float32 map sampled at the coarse target grid's points (0 off the grid)."""
    return np.asarray(cv2.remap(values, back[0], back[1], cv2.INTER_LINEAR,
                                borderMode=cv2.BORDER_CONSTANT, borderValue=0))


def target_occlusion(small_t: np.ndarray, warp: Warp, back: tuple[np.ndarray, np.ndarray],
                     source: PreparedSource, state: FaceState, speed: float) -> np.ndarray:
    """Occlusion (0..1) on the coarse grid: the target's texels judged on the canonical layout, then
    carried back to the target through the warp."""
    layout, canon = source.layout, source.canon
    assert layout is not None and canon is not None
    maps = warp.to_target[layout.ids]
    xy = layout.xy
    pos_x = maps[:, 0, 0] * xy[:, 0] + maps[:, 0, 1] * xy[:, 1] + maps[:, 0, 2]
    pos_y = maps[:, 1, 0] * xy[:, 0] + maps[:, 1, 1] * xy[:, 1] + maps[:, 1, 2]
    det = maps[:, 0, 0] * maps[:, 1, 1] - maps[:, 0, 1] * maps[:, 1, 0]
    valid = maps[:, 2, 0] > 0
    typical = float(np.median(det[valid])) if valid.any() else 0.0
    visible = valid & (det > VISIBLE_AREA * typical) if typical > 0 else np.zeros(len(det), bool)
    at = warp.grid.to_grid(np.stack([pos_x, pos_y], axis=1).astype(np.float32))
    lab = cv2.cvtColor(small_t, cv2.COLOR_BGR2Lab)
    texels = cv2.remap(lab, at[None, :, 0].copy(), at[None, :, 1].copy(), cv2.INTER_LINEAR,
                       borderMode=cv2.BORDER_REPLICATE)[0].astype(np.float32)
    occ = state.occlusion.update(texels, visible, layout, speed)
    return _canonical_to_target(occlusion.to_grid(layout, occ), back)


def _steady(state: FaceState, image: np.ndarray, origin: tuple[int, int], speed: float) -> np.ndarray:
    """On a face at rest (landmarks moving less than STEADY_SPEED), average the swapped region with the
    last frame's, which damps the shimmer landmark jitter leaves; any motion passes straight through."""
    last = state.patch
    state.patch = (origin, image)
    if last is None or last[0] != origin or last[1].shape != image.shape or speed >= STEADY_SPEED:
        return image
    weight = 0.25 + 0.75 * speed / STEADY_SPEED
    steady = np.asarray(cv2.addWeighted(image, weight, last[1], 1.0 - weight, 0.0))
    state.patch = (origin, steady)
    return steady


def _smooth(state: FaceState, name: str, field: np.ndarray, speed: float) -> np.ndarray:
    """Exponential smoothing of a coarse field at rest; a moving face takes the new field (almost) at once."""
    previous = state.smoothed.get(name)
    if previous is not None and previous.shape == field.shape:
        rate = np.float32(min(1.0, GAIN_RATE + 20.0 * speed))
        field = previous + rate * (field - previous)
    state.smoothed[name] = field
    return field


def invert_affines(affines: np.ndarray) -> np.ndarray:
    """The inverse of each T×3×3 map from :func:`triangle_affines` (same layout; invalid stays invalid)."""
    a, b, c, d = affines[:, 0, 0], affines[:, 0, 1], affines[:, 1, 0], affines[:, 1, 1]
    det = a * d - b * c
    valid = (affines[:, 2, 0] > 0) & (np.abs(det) > 1e-12)
    inv_det = np.where(valid, 1.0 / np.where(valid, det, 1.0), 0.0)
    out = np.zeros_like(affines)
    out[:, 0, 0], out[:, 0, 1] = d * inv_det, -b * inv_det
    out[:, 1, 0], out[:, 1, 1] = -c * inv_det, a * inv_det
    tx, ty = affines[:, 0, 2], affines[:, 1, 2]
    out[:, 0, 2] = -(out[:, 0, 0] * tx + out[:, 0, 1] * ty)
    out[:, 1, 2] = -(out[:, 1, 0] * tx + out[:, 1, 1] * ty)
    out[:, 2, 0] = valid
    out[:, 2, 2] = 1.0
    return out


def build_layout(canon: Grid, ids: np.ndarray, points: np.ndarray, face_px: float) -> occlusion.Layout:
    """The canonical texels of a prepared source: grid points of ``canon`` inside the mesh (``ids`` from
    rasterise_ids, 1-based), with their skin and feature zones from the source ``points``."""
    rows, cols = np.nonzero(ids)
    xs, ys = canon.centres()
    xy = np.stack([xs[0, cols], ys[rows, 0]], axis=1).astype(np.float32)
    shape = (canon.rows, canon.cols)
    gp = canon.to_grid(points)
    step = max(canon.scale)
    oval = occlusion.oval_mask(shape, gp) > 0
    features = occlusion.feature_mask(shape, gp, 0.04 * face_px / step) > 0
    return occlusion.Layout(xy=xy, ids=(ids[rows, cols] - 1).astype(np.int64),
                            cells=np.stack([rows, cols], axis=1), shape=shape,
                            skin=oval[rows, cols] & ~features[rows, cols], feature=features[rows, cols],
                            feature_grid=features.astype(np.float32))
