"""The mesh swapper on the real sample portraits, with the real detector and face mesh."""

from __future__ import annotations

from dataclasses import replace

import cv2
import numpy as np
import pytest

from realtime.faces import mesh_topology as topo
from realtime.faces.analyzer import FaceAnalyzer
from realtime.faces.types import Face
from realtime.frame import Frame
from realtime.images import load_image
from realtime.models import sample_path
from realtime.swappers.mesh import (
    Grid,
    MeshSwapOptions,
    MeshSwapper,
    dense_map,
    prepare_source,
    rasterise_ids,
    triangle_affines,
)

TEETH = (225, 232, 236)
CAVITY = (35, 25, 70)


@pytest.fixture(scope="module")
def analyzer() -> FaceAnalyzer:
    return FaceAnalyzer.open()


@pytest.fixture(scope="module")
def photos() -> dict[str, np.ndarray]:
    return {name: load_image(sample_path(f"{name}.png")) for name in ("newton", "gauss")}


@pytest.fixture(scope="module")
def faces(analyzer: FaceAnalyzer, photos: dict[str, np.ndarray]) -> dict[str, Face]:
    found = {name: analyzer.analyze_still(image) for name, image in photos.items()}
    assert all(len(f) == 1 for f in found.values())
    return {name: f[0] for name, f in found.items()}


def swapper_for(photos: dict[str, np.ndarray], faces: dict[str, Face], source: str, **options: bool) -> MeshSwapper:
    swapper = MeshSwapper(options=MeshSwapOptions(**options))
    swapper.prepare(photos[source], faces[source])
    return swapper


def full_alpha(shape: tuple[int, ...], patch: object) -> np.ndarray:
    """The patch's alpha placed on a frame-sized canvas of zeros."""
    alpha = np.zeros(shape[:2], np.uint8)
    h, w = patch.alpha.shape  # type: ignore[attr-defined]
    alpha[patch.y : patch.y + h, patch.x : patch.x + w] = patch.alpha  # type: ignore[attr-defined]
    return alpha


def polygon_mask(shape: tuple[int, ...], points: np.ndarray, *, shrink_px: int = 0) -> np.ndarray:
    mask = np.zeros(shape[:2], np.uint8)
    cv2.fillPoly(mask, [np.round(points * 16).astype(np.int32)], 255, cv2.LINE_8, 4)
    if shrink_px:
        mask = cv2.erode(mask, np.ones((2 * shrink_px + 1, 2 * shrink_px + 1), np.uint8))
    return mask > 0


def open_mouth(image: np.ndarray, landmarks: np.ndarray, gap_frac: float = 0.4) -> np.ndarray:
    """The same face with its jaw dropped: everything under the lips moves down (most in the
    middle, like a real jaw), and the opening is painted as a dark mouth with upper teeth."""
    pts = landmarks[:, :2].astype(np.float64)
    left, right = pts[topo.MOUTH_CORNERS[0]], pts[topo.MOUTH_CORNERS[1]]
    width = float(np.linalg.norm(right - left))
    gap = gap_frac * width
    upper = pts[[78, 191, 80, 81, 82, 13, 312, 311, 310, 415, 308]]
    lower = pts[[78, 95, 88, 178, 87, 14, 317, 402, 318, 324, 308]]
    line = (upper + lower) / 2
    order = np.argsort(line[:, 0])
    h, w = image.shape[:2]
    xs = np.arange(w, dtype=np.float64)
    line_y = np.interp(xs, line[order, 0], line[order, 1])
    centre_x, half = (left[0] + right[0]) / 2, width / 2
    wx = np.sqrt(np.clip(1 - ((xs - centre_x) / (1.02 * half)) ** 2, 0, 1))
    ys = np.arange(h, dtype=np.float64)[:, None]
    fade = np.clip(1 - (ys - pts[152, 1]) / (1.5 * width), 0, 1)  # the neck stretches back to still
    shift = gap * wx[None, :] * np.clip(ys - line_y[None, :] + 0.5, 0, 1) * fade
    map_x = np.broadcast_to(xs[None, :], (h, w)).astype(np.float32)
    out = cv2.remap(image, map_x, (ys - shift).astype(np.float32), cv2.INTER_LINEAR,
                    borderMode=cv2.BORDER_REPLICATE)
    moved_lower = lower.copy()
    moved_lower[:, 1] += gap * np.interp(lower[:, 0], xs, wx)
    cavity = np.round(np.concatenate([upper, moved_lower[::-1]]) * 16).astype(np.int32)
    teeth = np.round(np.concatenate([upper, (upper + np.array([0.0, 0.3 * gap]))[::-1]]) * 16).astype(np.int32)
    cv2.fillPoly(out, [cavity], CAVITY, cv2.LINE_AA, 4)
    inside = np.zeros((h, w), np.uint8)
    cv2.fillPoly(inside, [cavity], 255, cv2.LINE_8, 4)
    layer = out.copy()
    cv2.fillPoly(layer, [teeth], TEETH, cv2.LINE_AA, 4)
    out[inside > 0] = layer[inside > 0]
    return out


def teeth_pixels(image: np.ndarray) -> np.ndarray:
    return (np.abs(image.astype(int) - TEETH).max(axis=2) <= 6)


# ---------------------------------------------------------------- topology and geometry


def test_named_contours_sit_on_the_features(faces: dict[str, Face]) -> None:
    for face in faces.values():
        pts = face.landmarks[:, :2]
        iod = float(np.linalg.norm(face.keypoints[0] - face.keypoints[1]))
        # Subject's right eye is the one with the smaller x (keypoint 0) in these frontal portraits.
        assert np.linalg.norm(topo.contour(pts, topo.RIGHT_EYE).mean(0) - face.keypoints[0]) < 0.15 * iod
        assert np.linalg.norm(topo.contour(pts, topo.LEFT_EYE).mean(0) - face.keypoints[1]) < 0.15 * iod
        mouth_centre = face.keypoints[3:5].mean(0)
        assert np.linalg.norm(topo.contour(pts, topo.LIPS_INNER).mean(0) - mouth_centre) < 0.15 * iod
        assert np.linalg.norm(topo.contour(pts, topo.LIPS_OUTER).mean(0) - mouth_centre) < 0.2 * iod
        oval = topo.contour(pts, topo.FACE_OVAL)
        inside = [cv2.pointPolygonTest(cv2.convexHull(oval), (float(x), float(y)), True) >= -1 for x, y in pts]
        assert np.mean(inside) > 0.97  # a few silhouette points of a turned face fall just outside
        assert topo.mouth_opening(face.landmarks) < 0.1  # both portraits have closed mouths


def test_triangulation_covers_the_mesh_without_overlap(faces: dict[str, Face]) -> None:
    pts = faces["gauss"].landmarks[:, :2]
    triangles = topo.triangulate(pts)
    assert 850 <= len(triangles) <= 940 and triangles.dtype == np.int32
    assert set(np.unique(triangles)) == set(range(topo.NUM_POINTS))
    corners = pts[triangles].astype(np.float64)
    u, v = corners[:, 1] - corners[:, 0], corners[:, 2] - corners[:, 0]
    areas = 0.5 * np.abs(u[:, 0] * v[:, 1] - u[:, 1] * v[:, 0])  # np.cross of 2-D vectors is deprecated
    assert areas.min() > 0
    assert areas.sum() == pytest.approx(cv2.contourArea(cv2.convexHull(pts.astype(np.float32))), rel=1e-3)


def test_triangulate_rejects_too_few_points() -> None:
    with pytest.raises(ValueError, match="at least 3"):
        topo.triangulate(np.zeros((2, 2)))


def test_triangle_affines_map_each_corner_exactly() -> None:
    rng = np.random.default_rng(0)
    dst, src = rng.random((30, 2)) * 200, rng.random((30, 2)) * 200
    triangles = topo.triangulate(dst)
    maps = triangle_affines(dst, src, triangles)
    assert (maps[:, 2, 0] == 1).all()
    corners = np.concatenate([dst[triangles], np.ones((len(triangles), 3, 1))], axis=2)
    mapped = np.einsum("tij,tkj->tki", maps[:, :2], corners)
    assert np.abs(mapped - src[triangles]).max() < 1e-9


def test_rasterise_ids_matches_a_point_in_triangle_check() -> None:
    rng = np.random.default_rng(1)
    points = rng.random((40, 2)) * [30, 20]
    triangles = topo.triangulate(points)
    depth = rng.random(40)
    ids = rasterise_ids(points, depth, triangles, (20, 30), valid=np.ones(len(triangles), bool))
    mean_depth = depth[triangles].mean(axis=1)
    for y in range(20):
        for x in range(30):
            containing = [t for t, tri in enumerate(triangles)
                          if cv2.pointPolygonTest(points[tri].astype(np.float32), (x, y), True) >= 1e-4]
            if containing:  # strictly inside one (or, folded, several): the nearest wins
                assert ids[y, x] - 1 == min(containing, key=lambda t: mean_depth[t])
            elif all(cv2.pointPolygonTest(points[tri].astype(np.float32), (x, y), True) < -1e-4
                     for tri in triangles):
                assert ids[y, x] == 0


def test_dense_map_sends_target_landmarks_to_source_landmarks(
    photos: dict[str, np.ndarray], faces: dict[str, Face]
) -> None:
    source = prepare_source(photos["newton"], faces["newton"])
    target = faces["gauss"].landmarks
    origin = np.floor(target[:, :2].min(0)) - 4
    local = target[:, :2] - origin
    shape = (int(local[:, 1].max()) + 8, int(local[:, 0].max()) + 8)
    face_px = float(np.sqrt(np.prod(np.ptp(local, axis=0))))
    grid = Grid.over(shape, face_px)
    assert grid.cols < shape[1] // 3  # the coarse grid really is coarse
    map_x, map_y = dense_map(source.points, local, target[:, 2], source.triangles, grid)
    # Sample the map at the landmarks (bilinear), compare with where they are in the source.
    sampled = np.stack([cv2.remap(m, local[:, 0:1].astype(np.float32), local[:, 1:2].astype(np.float32),
                                  cv2.INTER_LINEAR)[:, 0] for m in (map_x, map_y)], axis=1)
    error = np.linalg.norm(sampled - source.points, axis=1)
    source_iod = float(np.linalg.norm(faces["newton"].keypoints[0] - faces["newton"].keypoints[1]))
    assert np.median(error) < 0.02 * source_iod
    assert np.percentile(error, 95) < 0.06 * source_iod


# ---------------------------------------------------------------- swapping


@pytest.mark.parametrize(("source", "target"), [("newton", "gauss"), ("gauss", "newton")])
def test_swap_changes_the_face_and_nothing_outside_the_mask(
    analyzer: FaceAnalyzer, photos: dict[str, np.ndarray], faces: dict[str, Face], source: str, target: str
) -> None:
    swapper = swapper_for(photos, faces, source)
    original = photos[target]
    patch = swapper.render(original, faces[target])
    assert patch is not None
    alpha = full_alpha(original.shape, patch)
    result = original.copy()
    swapper.swap(result, faces[target])

    assert (result[alpha == 0] == original[alpha == 0]).all()
    changed = np.abs(result.astype(int) - original).max(axis=2) > 0
    assert changed[alpha == 0].sum() == 0
    core = alpha == 255
    assert core.sum() > 0.3 * faces[target].area
    assert np.abs(result[core].astype(int) - original[core]).mean() > 8
    # The alpha is confined to the target's face oval.
    oval = polygon_mask(original.shape, cv2.convexHull(topo.contour(faces[target].landmarks, topo.FACE_OVAL))[:, 0])
    assert not (alpha > 0)[~oval].any()
    # Still a face, in the same place and pose: the warp follows the target's mesh.
    after = analyzer.analyze_still(result)
    assert len(after) == 1
    iod = float(np.linalg.norm(faces[target].keypoints[0] - faces[target].keypoints[1]))
    assert np.abs(after[0].keypoints - faces[target].keypoints).max() < 0.15 * iod


def test_open_mouth_keeps_the_real_mouth(
    analyzer: FaceAnalyzer, photos: dict[str, np.ndarray], faces: dict[str, Face]
) -> None:
    target = open_mouth(photos["gauss"], faces["gauss"].landmarks)
    found = analyzer.analyze_still(target)
    assert len(found) == 1
    face = found[0]
    assert topo.mouth_opening(face.landmarks) > 0.15, "the constructed mouth must read as open"
    mouth = polygon_mask(target.shape, topo.contour(face.landmarks, topo.LIPS_INNER), shrink_px=1)
    assert mouth.sum() > 300
    teeth_before = (teeth_pixels(target) & mouth).sum()
    assert teeth_before > 50

    kept = target.copy()
    swapper_for(photos, faces, "newton", keep_mouth=True).swap(kept, face)
    replaced = target.copy()
    swapper_for(photos, faces, "newton", keep_mouth=False).swap(replaced, face)

    outside_mouth_core = np.abs(kept.astype(int) - target).max(axis=2) > 0
    assert outside_mouth_core.sum() > 20 * mouth.sum()  # the face around the mouth was swapped
    assert (kept[mouth] == target[mouth]).all()
    assert (teeth_pixels(kept) & mouth).sum() == teeth_before
    # Without keep_mouth the source's closed lips are stretched over the opening: the real mouth is gone.
    assert not (replaced[mouth] == target[mouth]).all()
    assert np.abs(replaced[mouth].astype(int) - target[mouth]).mean() > 20
    assert (teeth_pixels(replaced) & mouth).sum() < 0.2 * teeth_before


def test_keep_eyes_keeps_the_eye_openings(photos: dict[str, np.ndarray], faces: dict[str, Face]) -> None:
    target, face = photos["gauss"], faces["gauss"]
    eyes = polygon_mask(target.shape, topo.contour(face.landmarks, topo.LEFT_EYE), shrink_px=1) | polygon_mask(
        target.shape, topo.contour(face.landmarks, topo.RIGHT_EYE), shrink_px=1)
    kept, replaced = target.copy(), target.copy()
    swapper_for(photos, faces, "newton", keep_eyes=True).swap(kept, face)
    swapper_for(photos, faces, "newton").swap(replaced, face)
    assert (kept[eyes] == target[eyes]).all()
    assert np.abs(replaced[eyes].astype(int) - target[eyes]).mean() > 10


def test_swap_times_warp_and_blend_on_the_frame(photos: dict[str, np.ndarray], faces: dict[str, Face]) -> None:
    image = photos["gauss"].copy()
    frame = Frame(image=image, seq=0, t_capture=0)
    swapper_for(photos, faces, "newton").swap(frame.image, faces["gauss"], frame)
    assert frame.stage_ms("warp") is not None and frame.stage_ms("warp") > 0  # type: ignore[operator]
    assert frame.stage_ms("blend") is not None and frame.stage_ms("blend") > 0  # type: ignore[operator]


def test_face_partly_outside_the_frame(photos: dict[str, np.ndarray], faces: dict[str, Face]) -> None:
    face = faces["gauss"]
    cut = int(face.keypoints[0, 0])  # the left edge of the frame runs through the right eye
    image = np.ascontiguousarray(photos["gauss"][:, cut:])
    shifted = face.landmarks.copy()
    shifted[:, 0] -= cut
    moved = replace(face, landmarks=shifted)
    swapper = swapper_for(photos, faces, "newton")
    patch = swapper.render(image, moved)
    assert patch is not None and patch.x == 0
    result = image.copy()
    swapper.swap(result, moved)
    alpha = full_alpha(image.shape, patch)
    assert (result[alpha == 0] == image[alpha == 0]).all()
    assert (result != image).any()


def test_face_entirely_outside_or_tiny_is_left_alone(photos: dict[str, np.ndarray], faces: dict[str, Face]) -> None:
    swapper = swapper_for(photos, faces, "newton")
    image = photos["gauss"].copy()
    far = faces["gauss"].landmarks.copy()
    far[:, 0] += 5000
    assert swapper.render(image, replace(faces["gauss"], landmarks=far)) is None
    tiny = faces["gauss"].landmarks.copy()
    tiny[:, :2] = tiny[:, :2] * 0.02
    assert swapper.render(image, replace(faces["gauss"], landmarks=tiny)) is None
    swapper.swap(image, replace(faces["gauss"], landmarks=far))
    assert (image == photos["gauss"]).all()


def test_swapper_needs_a_source_and_landmarks(photos: dict[str, np.ndarray], faces: dict[str, Face]) -> None:
    with pytest.raises(RuntimeError, match="prepare"):
        MeshSwapper().swap(photos["gauss"].copy(), faces["gauss"])
    with pytest.raises(ValueError, match="468 landmarks"):
        MeshSwapper().prepare(photos["newton"], replace(faces["newton"], landmarks=None))
    with pytest.raises(ValueError, match="468 landmarks"):
        swapper_for(photos, faces, "newton").swap(photos["gauss"].copy(), replace(faces["gauss"], landmarks=None))
