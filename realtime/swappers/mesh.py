"""The ``mesh`` swapper: the source face warped piecewise-affinely onto the target's face mesh.

No neural generator: the source photo's pixels are moved triangle by triangle
(468-point mesh, Delaunay triangles) to where the target's landmarks are,
recoloured to the target's skin tone and blended in with a feathered mask.

Speed: instead of one ``warpAffine`` per triangle, triangle ids are rasterised
once per frame on a coarse grid (nearest triangles drawn last, so a turned
head folds correctly), each grid point gets its triangle's affine map, the
coarse map is upsampled (a piecewise-affine map is continuous, so bilinear
upsampling is accurate) and one ``cv2.remap`` does the warp.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from realtime import blend, occlusion
from realtime.faces import mesh_topology as topo
from realtime.faces.types import Face
from realtime.frame import Frame, maybe_stage
from realtime.swappers import mesh_look
from realtime.swappers.mesh_look import invert_affines  # noqa: F401  (part of this module's API)
from realtime.swappers.mesh_types import GRID_PX, Grid, MeshSwapOptions, PreparedSource  # noqa: F401  (API)

MIN_FACE_PX = 12  # smaller faces are left alone
SOURCE_MARGIN = 0.15  # of the face size, kept around the source face crop
COLOR_TOLERANCE = 1.0  # Lab levels the target's skin statistics may drift before the source is recoloured
CANON_PX = 32  # canonical texels across the face for the occlusion model


@dataclass(frozen=True)
class SwapPatch:
    """A swapped face-sized region: paste ``image`` at (x, y) with ``alpha`` (uint8)."""

    x: int
    y: int
    image: np.ndarray
    alpha: np.ndarray

    def paste(self, target: np.ndarray) -> None:
        """Blend into ``target`` in place; pixels where alpha is 0 keep their bytes."""
        h, w = self.alpha.shape
        blend.composite(target[self.y : self.y + h, self.x : self.x + w], self.image, self.alpha)


def prepare_source(image: np.ndarray, face: Face, options: MeshSwapOptions | None = None) -> PreparedSource:
    """Crop the source face with a margin, convert it to Lab, measure its colours, triangulate its mesh."""
    if face.landmarks is None or face.landmarks.shape[0] != topo.NUM_POINTS:
        raise ValueError("the mesh swapper needs a source face with 468 landmarks")
    points = face.landmarks[:, :2].astype(np.float32)
    x0, y0, x1, y1 = _padded_rect(points, SOURCE_MARGIN, image.shape[1], image.shape[0])
    crop = np.ascontiguousarray(image[y0:y1, x0:x1])
    local = points - np.array([x0, y0], np.float32)
    lab = cv2.cvtColor(crop, cv2.COLOR_BGR2Lab)
    face_px = _face_size(local)
    mask = face_mask(local, Grid.over(crop.shape[:2], face_px), face_px, options or MeshSwapOptions())
    opts = options or MeshSwapOptions()
    clutter = occlusion.clutter_mask(crop, local, face_px) if opts.clean_source else None
    if clutter is not None:
        mask = (mask.astype(np.float32) * (1 - clutter.astype(np.float32) / 255)).astype(np.uint8)
    mean, std = blend.lab_stats(lab, mask)
    triangles = topo.triangulate(local)
    canon = Grid.over(crop.shape[:2], face_px, across=CANON_PX)
    ids = rasterise_ids(canon.to_grid(local), face.landmarks[:, 2], triangles, (canon.rows, canon.cols),
                        valid=np.ones(len(triangles), bool))
    layout = mesh_look.build_layout(canon, ids, local, face_px)
    return PreparedSource(bgr=crop, lab=lab, points=local, triangles=triangles, mean=mean, std=std,
                          clutter=clutter, canon=canon, layout=layout)


class MeshSwapper:
    """Piecewise-affine landmark warp with colour matching and a feathered blend.

    Colour matching recolours the source crop to the target skin's Lab mean/std; the
    recoloured crop is kept while the target's statistics stay within COLOR_TOLERANCE,
    so a steady video pays for it only now and then (and its colour does not flicker).
    """

    name = "mesh"

    def __init__(self, *, options: MeshSwapOptions | None = None) -> None:
        self.options = options or MeshSwapOptions()
        self.source: PreparedSource | None = None
        self._states = mesh_look.FaceStates()

    def prepare(self, source_image: np.ndarray, source_face: Face) -> None:
        """Compute the source face's crop, colours, landmarks and triangulation (once per photo)."""
        self.source = prepare_source(source_image, source_face, self.options)
        self._states.clear()

    def swap(self, image: np.ndarray, face: Face, frame: Frame | None = None) -> None:
        """Swap the source face onto ``face`` in ``image`` (in place, face-sized region only)."""
        patch = self.render(image, face, frame)
        if patch is not None:
            with maybe_stage(frame, "blend"):
                patch.paste(image)

    def render(self, image: np.ndarray, face: Face, frame: Frame | None = None) -> SwapPatch | None:
        """The swapped region for ``face`` without touching ``image``; None if the face is unusable."""
        if self.source is None:
            raise RuntimeError("MeshSwapper.prepare() must be called before swap()")
        if face.landmarks is None or face.landmarks.shape[0] != topo.NUM_POINTS:
            raise ValueError("the mesh swapper needs target faces with 468 landmarks")
        points = face.landmarks[:, :2].astype(np.float32)
        face_px = _face_size(points)
        if face_px < MIN_FACE_PX:
            return None
        margin = 2.0 / face_px  # a couple of pixels: the mask never reaches the hull border
        x0, y0, x1, y1 = _padded_rect(points, margin, image.shape[1], image.shape[0])
        if x1 - x0 < 2 or y1 - y0 < 2:
            return None
        local = points - np.array([x0, y0], np.float32)
        grid = Grid.over((y1 - y0, x1 - x0), face_px)
        state = self._states.get(face.track)
        source, target = self.source, image[y0:y1, x0:x1]
        key = (x0, y0, x1, y1, face.landmarks.tobytes())
        cached = state.warp if state.warp is not None and state.warp.key == key else None
        with maybe_stage(frame, "blend"):
            alpha = cached.alpha if cached else face_mask(local, grid, face_px, self.options)
            colours = self._source_colours(state, source, target, alpha, grid)
        if cached and cached.colours is colours:  # a face at rest keeps its landmarks: the warp is the same
            swapped, warp = cached.swapped, cached.warp
        else:
            with maybe_stage(frame, "warp"):
                per_triangle = triangle_affines(local, source.points, source.triangles)
                affines = np.concatenate([global_affine(local, source.points)[None], per_triangle])
                coarse_x, coarse_y = coarse_map(affines, local, face.landmarks[:, 2], source.triangles, grid)
                map_x, map_y = grid.upsample(coarse_x), grid.upsample(coarse_y)
                swapped = cv2.remap(colours, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
                warp = mesh_look.Warp(grid=grid, coarse_x=coarse_x, coarse_y=coarse_y, points=local,
                                      to_target=mesh_look.invert_affines(per_triangle), face_px=face_px,
                                      origin=(x0, y0))
            state.warp = mesh_look.CachedWarp(key, colours, alpha, swapped, warp)
        if self._finishing():
            with maybe_stage(frame, "look"):
                swapped, alpha = mesh_look.finish(target, swapped, alpha, warp, source, state, self.options)
        return SwapPatch(x=x0, y=y0, image=swapped, alpha=alpha)

    def _finishing(self) -> bool:
        o = self.options
        return o.shading or o.occlusion or o.clean_source or o.two_band

    def _source_colours(self, state: mesh_look.FaceState, source: PreparedSource, target: np.ndarray,
                        alpha: np.ndarray, grid: Grid) -> np.ndarray:
        """The source crop in BGR, recoloured to ``target``'s skin under ``alpha`` when colour matching."""
        if not self.options.color_match:
            return source.bgr
        step = max(1, round(max(grid.scale)))  # statistics need far fewer pixels than the image has
        target_lab = cv2.cvtColor(np.ascontiguousarray(target[::step, ::step]), cv2.COLOR_BGR2Lab)
        mean, std = blend.lab_stats(target_lab, alpha[::step, ::step])
        if np.isnan(mean).any() or np.isnan(source.mean).any():
            return source.bgr
        if state.palette is not None and state.recoloured is not None:
            old_mean, old_std = state.palette
            if max(np.abs(mean - old_mean).max(), np.abs(std - old_std).max()) <= COLOR_TOLERANCE:
                return state.recoloured
        lut = blend.transfer_lut(source.mean, source.std, mean, std)
        if self.options.color_strength < 1.0:
            identity = np.arange(256, dtype=np.float32)[None, :, None]
            mixed = identity + self.options.color_strength * (lut.astype(np.float32) - identity)
            lut = np.round(mixed).astype(np.uint8)
        state.recoloured = cv2.cvtColor(cv2.LUT(source.lab, lut), cv2.COLOR_Lab2BGR)
        state.palette = (mean, std)
        return state.recoloured


def face_mask(points: np.ndarray, grid: Grid, face_px: float, opts: MeshSwapOptions) -> np.ndarray:
    """Feathered alpha of the face oval with the mouth (and optionally eye) openings cut out.

    The soft oval is built on the coarse grid (erode and blur are cheap there, and it is
    smooth anyway); the openings are cut at full resolution so their inside is exactly 0.
    """
    step = max(grid.scale)
    blur = opts.feather * face_px / step
    # Kernel radii round by up to half a point and upsampling spreads one more: shrink by that much
    # beyond the blur so the soft edge never crosses the oval.
    erode = max(opts.erode * face_px / step, blur + 3.0)
    oval = blend.feathered_mask(
        (grid.rows, grid.cols), grid.to_grid(topo.contour(points, topo.FACE_OVAL)), erode_px=erode, blur_px=blur
    )
    alpha = np.ascontiguousarray(grid.upsample(oval))
    holes: list[tuple[int, ...]] = []
    if opts.keep_mouth:
        holes.append(topo.LIPS_INNER)
    if opts.keep_eyes:
        holes += [topo.LEFT_EYE, topo.RIGHT_EYE]
    for indices in holes:
        blend.cut_hole(alpha, topo.contour(points, indices), feather_px=opts.hole_feather * face_px)
    return alpha


def dense_map(
    src: np.ndarray, dst: np.ndarray, depth: np.ndarray, triangles: np.ndarray, grid: Grid
) -> tuple[np.ndarray, np.ndarray]:
    """Per-pixel source coordinates (map_x, map_y) for the grid's region.

    Inside the mesh each pixel follows its triangle's affine map; outside, a
    least-squares affine map of all points, so the map is defined everywhere.
    """
    affines = np.concatenate([global_affine(dst, src)[None], triangle_affines(dst, src, triangles)])
    map_x, map_y = coarse_map(affines, dst, depth, triangles, grid)
    return grid.upsample(map_x), grid.upsample(map_y)


def coarse_map(affines: np.ndarray, dst: np.ndarray, depth: np.ndarray, triangles: np.ndarray,
               grid: Grid) -> tuple[np.ndarray, np.ndarray]:
    """:func:`dense_map` on the grid points only, from its affine maps (the global one first)."""
    ids = rasterise_ids(grid.to_grid(dst), depth, triangles, (grid.rows, grid.cols), valid=affines[1:, 2, 0] > 0)
    xs, ys = grid.centres()
    a = affines[ids].astype(np.float32)
    map_x = a[..., 0, 0] * xs + a[..., 0, 1] * ys + a[..., 0, 2]
    map_y = a[..., 1, 0] * xs + a[..., 1, 1] * ys + a[..., 1, 2]
    return map_x, map_y


def triangle_affines(dst: np.ndarray, src: np.ndarray, triangles: np.ndarray) -> np.ndarray:
    """T×3×3 affine maps dst → src, one per triangle (rows 0–1: the map; row 2: [valid, 0, 1]).

    Closed form per triangle: with edges E = [d1 − d0, d2 − d0] and F = [s1 − s0, s2 − s0],
    the linear part is F·E⁻¹ and the offset s0 − F·E⁻¹·d0. A degenerate destination
    triangle (zero area, e.g. a closed mouth seen edge-on) gets valid = 0 and is not drawn.
    """
    d = dst[triangles].astype(np.float64)  # T×3×2
    s = src[triangles].astype(np.float64)
    e1, e2 = d[:, 1] - d[:, 0], d[:, 2] - d[:, 0]
    f1, f2 = s[:, 1] - s[:, 0], s[:, 2] - s[:, 0]
    det = e1[:, 0] * e2[:, 1] - e2[:, 0] * e1[:, 1]
    valid = np.abs(det) > 1e-6
    inv_det = np.where(valid, 1.0 / np.where(valid, det, 1.0), 0.0)
    # E⁻¹ = [[e2y, −e2x], [−e1y, e1x]] / det
    out = np.zeros((len(triangles), 3, 3))
    for row in range(2):
        out[:, row, 0] = (f1[:, row] * e2[:, 1] - f2[:, row] * e1[:, 1]) * inv_det
        out[:, row, 1] = (f2[:, row] * e1[:, 0] - f1[:, row] * e2[:, 0]) * inv_det
        out[:, row, 2] = s[:, 0, row] - out[:, row, 0] * d[:, 0, 0] - out[:, row, 1] * d[:, 0, 1]
    out[:, 2, 0] = valid
    out[:, 2, 2] = 1.0
    return out


def global_affine(dst: np.ndarray, src: np.ndarray) -> np.ndarray:
    """3×3 least-squares affine map dst → src over all points."""
    design = np.concatenate([dst.astype(np.float64), np.ones((len(dst), 1))], axis=1)
    solution, *_ = np.linalg.lstsq(design, src.astype(np.float64), rcond=None)
    out = np.eye(3)
    out[:2] = solution.T
    return out


def rasterise_ids(
    points: np.ndarray, depth: np.ndarray, triangles: np.ndarray, shape: tuple[int, int], *, valid: np.ndarray
) -> np.ndarray:
    """Grid (``shape`` rows×cols) of triangle index + 1 at each grid point, 0 outside the mesh.

    ``points`` are in grid coordinates (grid point (i, j) at x = j, y = i). Vectorised:
    every (triangle, grid point in its bounding box) pair is tested with edge functions;
    where triangles overlap (a turned head folds the mesh) the nearest one wins.
    """
    rows, cols = shape
    corners = points[triangles].astype(np.float32)  # T×3×2
    p0, p1, p2 = corners[:, 0], corners[:, 1], corners[:, 2]
    lo = np.maximum(np.ceil(np.minimum(np.minimum(p0, p1), p2)), 0).astype(np.int64)
    hi = np.minimum(np.floor(np.maximum(np.maximum(p0, p1), p2)), [cols - 1, rows - 1]).astype(np.int64)
    span = hi - lo + 1
    tri = np.flatnonzero(valid & (span > 0).all(axis=1))
    # One entry per (triangle, grid point of its box), built without a Python loop.
    counts = span[tri, 0] * span[tri, 1]
    owner = np.repeat(tri, counts)
    offset = np.arange(int(counts.sum())) - np.repeat(np.cumsum(counts) - counts, counts)
    box_w = span[owner, 0]
    x = (lo[owner, 0] + offset % box_w).astype(np.float32)
    y = (lo[owner, 1] + offset // box_w).astype(np.float32)
    a, b, c = p0[owner], p1[owner], p2[owner]
    w0 = (c[:, 0] - b[:, 0]) * (y - b[:, 1]) - (c[:, 1] - b[:, 1]) * (x - b[:, 0])
    w1 = (a[:, 0] - c[:, 0]) * (y - c[:, 1]) - (a[:, 1] - c[:, 1]) * (x - c[:, 0])
    w2 = (b[:, 0] - a[:, 0]) * (y - a[:, 1]) - (b[:, 1] - a[:, 1]) * (x - a[:, 0])
    inside = ((w0 >= 0) & (w1 >= 0) & (w2 >= 0)) | ((w0 <= 0) & (w1 <= 0) & (w2 <= 0))
    cell = (y[inside].astype(np.int64) * cols + x[inside].astype(np.int64))
    # Mesh depth: smaller z is nearer the camera; rank 0 is the farthest triangle.
    far_to_near = np.argsort(-depth[triangles].mean(axis=1), kind="stable")
    rank = np.empty(len(triangles), np.int64)
    rank[far_to_near] = np.arange(len(triangles))
    nearest = np.full(rows * cols, -1, np.int64)
    np.maximum.at(nearest, cell, rank[owner[inside]])
    ids = np.where(nearest >= 0, far_to_near[np.maximum(nearest, 0)] + 1, 0)
    return ids.reshape(rows, cols).astype(np.int32)


def _face_size(points: np.ndarray) -> float:
    """Geometric mean of the landmark bounding box's sides, in pixels."""
    span = points.max(axis=0) - points.min(axis=0)
    return float(np.sqrt(max(span[0], 0.0) * max(span[1], 0.0)))


def _padded_rect(points: np.ndarray, margin: float, width: int, height: int) -> tuple[int, int, int, int]:
    """Integer bounding rect of ``points`` grown by ``margin`` × face size, clipped to the image."""
    pad = margin * _face_size(points)
    lo = np.floor(points.min(axis=0) - pad).astype(int)
    hi = np.ceil(points.max(axis=0) + pad).astype(int) + 1
    return max(0, lo[0]), max(0, lo[1]), min(width, hi[0]), min(height, hi[1])
