"""Five-point alignment: the transform, the crop it produces, its inverse."""

from __future__ import annotations

import math

import cv2
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from realtime.faces.align import (
    ARCFACE_112,
    ARCFACE_128,
    FFHQ_512,
    align_crop,
    alignment,
    apply,
    invert,
    similarity_transform,
    template,
)


def similarity(angle_deg: float, scale: float, tx: float, ty: float) -> np.ndarray:
    """A 2×3 similarity matrix built directly from its parameters."""
    a = math.radians(angle_deg)
    c, s = scale * math.cos(a), scale * math.sin(a)
    return np.array([[c, -s, tx], [s, c, ty]])


def least_squares_similarity(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """Reference: x' = a·x − b·y + tx, y' = b·x + a·y + ty is linear in (a, b, tx, ty)."""
    rows, rhs = [], []
    for (x, y), (u, v) in zip(src, dst, strict=True):
        rows += [[x, -y, 1, 0], [y, x, 0, 1]]
        rhs += [u, v]
    a, b, tx, ty = np.linalg.lstsq(np.array(rows), np.array(rhs), rcond=None)[0]
    return np.array([[a, -b, tx], [b, a, ty]])


def test_templates() -> None:
    assert template(112) is ARCFACE_112 and template(512) is FFHQ_512
    np.testing.assert_allclose(template(128) - ARCFACE_112, [[8, 0]] * 5)
    np.testing.assert_allclose(ARCFACE_128[0], [46.2946, 51.6963])
    with pytest.raises(ValueError, match="no 5-point template"):
        template(256)


@settings(max_examples=60, deadline=None)
@given(angle=st.floats(-60, 60), scale=st.floats(0.05, 8), tx=st.floats(-500, 500), ty=st.floats(-500, 500),
       size=st.sampled_from([112, 128, 512]))
def test_keypoints_land_on_the_template(angle: float, scale: float, tx: float, ty: float, size: int) -> None:
    # A face whose keypoints are the template seen through some similarity.
    keypoints = apply(invert(similarity(angle, scale, tx, ty)), template(size))
    matrix = alignment(keypoints, size)
    assert np.abs(apply(matrix, keypoints) - template(size)).max() < 0.5
    np.testing.assert_allclose(matrix, similarity(angle, scale, tx, ty), rtol=1e-6, atol=1e-6)


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 2**32 - 1))
def test_noisy_points_match_the_least_squares_reference(seed: int) -> None:
    rng = np.random.default_rng(seed)
    keypoints = apply(similarity(rng.uniform(-40, 40), rng.uniform(0.2, 5), *rng.uniform(-300, 300, 2)),
                      ARCFACE_112) + rng.normal(0, 3, (5, 2))
    np.testing.assert_allclose(similarity_transform(keypoints, ARCFACE_128),
                               least_squares_similarity(keypoints, ARCFACE_128), rtol=1e-7, atol=1e-7)


def test_mirrored_points_get_a_proper_rotation() -> None:
    mirrored = ARCFACE_112 * np.array([-1.0, 1.0]) + np.array([200.0, 0.0])
    matrix = similarity_transform(mirrored, ARCFACE_112)
    assert np.linalg.det(matrix[:, :2]) > 0


def test_crop_puts_the_keypoints_on_the_template() -> None:
    """Dots drawn at the keypoints of a tilted face are found at the template points in the crop."""
    image = np.zeros((480, 640, 3), np.uint8)
    keypoints = apply(invert(similarity(17.0, 0.45, -20.0, -60.0)), ARCFACE_128)
    for x, y in keypoints:
        # A 2D Gaussian blob: its centroid survives bilinear resampling exactly enough.
        yy, xx = np.mgrid[0:480, 0:640]
        blob = np.exp(-((xx - x) ** 2 + (yy - y) ** 2) / (2 * 4.0**2))
        image[..., 1] = np.maximum(image[..., 1], (255 * blob).astype(np.uint8))
    crop, _ = align_crop(image, keypoints, 128)
    assert crop.shape == (128, 128, 3)
    green = crop[..., 1].astype(np.float64)
    for tx, ty in ARCFACE_128:
        x0, y0 = round(tx), round(ty)
        patch = green[y0 - 3:y0 + 4, x0 - 3:x0 + 4]
        yy, xx = np.mgrid[y0 - 3:y0 + 4, x0 - 3:x0 + 4]
        cx, cy = (patch * xx).sum() / patch.sum(), (patch * yy).sum() / patch.sum()
        assert math.hypot(cx - tx, cy - ty) < 0.5, (cx, cy, tx, ty)


def test_inverse_maps_the_crop_back() -> None:
    matrix = similarity(-25.0, 0.6, 0.0, 0.0)
    matrix[:, 2] = np.array([64.0, 64.0]) - matrix[:, :2] @ np.array([200.0, 200.0])  # crop centre ↔ (200, 200)
    points = np.array([[0.0, 0.0], [127.0, 0.0], [64.0, 90.0]])
    np.testing.assert_allclose(apply(matrix, apply(invert(matrix), points)), points, atol=1e-9)
    # Crop → image → crop reproduces the crop's interior.
    crop = cv2.GaussianBlur(np.random.default_rng(1).integers(0, 255, (128, 128, 3), np.uint8), (9, 9), 3)
    image = cv2.warpAffine(crop, invert(matrix), (400, 400), flags=cv2.INTER_LINEAR)
    back = cv2.warpAffine(image, matrix, (128, 128), flags=cv2.INTER_LINEAR)
    assert np.abs(back[20:108, 20:108].astype(int) - crop[20:108, 20:108]).mean() < 2.0


@pytest.mark.parametrize("bad", [np.zeros((5, 2)), np.full((5, 2), np.nan), np.zeros((1, 2))])
def test_degenerate_keypoints_raise(bad: np.ndarray) -> None:
    with pytest.raises(ValueError):
        similarity_transform(bad, ARCFACE_112[: len(bad)])
