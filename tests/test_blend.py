"""Masks, colour transfer and paste-back (realtime/blend.py): plain arrays, no models."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from realtime import blend


def square(x0: float, y0: float, x1: float, y1: float) -> np.ndarray:
    return np.array([[x0, y0], [x1, y0], [x1, y1], [x0, y1]], np.float32)


def test_odd_kernel_sizes() -> None:
    assert [blend.odd(v) for v in (0, 0.4, 1, 2, 2.6, 7, 8)] == [1, 1, 1, 3, 3, 7, 9]


def test_feathered_mask_is_zero_outside_the_hull_and_full_deep_inside() -> None:
    mask = blend.feathered_mask((100, 120), square(20, 20, 100, 80), erode_px=6, blur_px=5)
    assert mask.dtype == np.uint8 and mask.shape == (100, 120)
    outside = np.ones_like(mask, bool)
    outside[20:81, 20:101] = False
    assert (mask[outside] == 0).all()
    assert (mask[35:66, 35:86] == 255).all()
    # The shrink pulls the soft edge inside: the hull's own border is already 0.
    assert mask[50, 20] == 0 and mask[20, 60] == 0
    # Feathered: intermediate values exist, and the profile rises monotonically inward.
    row = mask[50, 20:60].astype(int)
    assert 0 < row[6] < 255
    assert (np.diff(row) >= 0).all()


def test_feathered_mask_erodes_a_hull_that_touches_the_border() -> None:
    mask = blend.feathered_mask((60, 60), square(0, 0, 59, 59), erode_px=5, blur_px=3)
    assert mask[0, 30] == 0 and mask[30, 0] == 0 and mask[59, 30] == 0
    assert mask[30, 30] == 255


def test_cut_hole_zeroes_the_inside_and_leaves_the_far_outside() -> None:
    mask = np.full((80, 80), 255, np.uint8)
    blend.cut_hole(mask, square(30, 30, 50, 45), feather_px=4)
    assert (mask[31:45, 31:50] == 0).all()
    assert (mask[:20] == 255).all() and (mask[60:] == 255).all()
    assert 0 < mask[47, 40] < 255  # the feather is outside the hole


def test_cut_hole_of_a_flat_polygon_cuts_only_a_thin_line() -> None:
    mask = np.full((40, 80), 255, np.uint8)
    line = np.array([[10, 20], [40, 20.2], [70, 20], [40, 19.8]], np.float32)
    blend.cut_hole(mask, line, feather_px=2)
    assert mask[20, 40] < 64
    assert (mask[:15] == 255).all() and (mask[26:] == 255).all()


def test_cut_hole_outside_the_mask_is_a_no_op() -> None:
    mask = np.full((20, 20), 200, np.uint8)
    blend.cut_hole(mask, square(100, 100, 120, 120), feather_px=3)
    assert (mask == 200).all()


def test_lab_stats_uses_only_masked_pixels() -> None:
    lab = np.zeros((4, 4, 3), np.uint8)
    lab[:2] = (100, 120, 140)
    lab[2:] = (10, 20, 30)
    mask = np.zeros((4, 4), np.uint8)
    mask[:2] = 255
    mean, std = blend.lab_stats(lab, mask)
    assert mean.tolist() == [100, 120, 140] and std.tolist() == [0, 0, 0]
    mean, _ = blend.lab_stats(lab, np.zeros((4, 4), np.uint8))
    assert np.isnan(mean).all()


def test_transfer_lut_moves_mean_and_scales_spread() -> None:
    lut = blend.transfer_lut(np.array([100.0, 128, 128]), np.array([10.0, 5, 5]),
                             np.array([150.0, 140, 120]), np.array([20.0, 5, 2.5]))
    assert lut.shape == (1, 256, 3) and lut.dtype == np.uint8
    assert lut[0, 100, 0] == 150 and lut[0, 110, 0] == 170  # gain 2 on L
    assert lut[0, 128, 1] == 140 and lut[0, 138, 1] == 150  # gain 1 on a
    assert lut[0, 128, 2] == 120 and lut[0, 138, 2] == 125  # gain 0.5 on b


def test_transfer_lut_gain_is_bounded() -> None:
    lut = blend.transfer_lut(np.array([128.0] * 3), np.array([1.0, 10.0, 10.0]), np.array([128.0] * 3),
                             np.array([100.0, 0.0, 0.0]))
    assert int(lut[0, 138, 0]) - 128 == round(10 * blend.MAX_GAIN)
    assert int(lut[0, 148, 1]) - 128 == round(20 * blend.MIN_GAIN)


def test_match_colors_gives_the_target_statistics() -> None:
    rng = np.random.default_rng(3)
    source_bgr = np.clip(rng.normal((60, 90, 200), 12, (64, 64, 3)), 0, 255).astype(np.uint8)
    target_bgr = np.clip(rng.normal((150, 160, 120), 20, (64, 64, 3)), 0, 255).astype(np.uint8)
    mask = np.full((64, 64), 255, np.uint8)
    out = blend.match_colors(cv2.cvtColor(source_bgr, cv2.COLOR_BGR2Lab), target_bgr, mask)
    out_mean, out_std = blend.lab_stats(cv2.cvtColor(out, cv2.COLOR_BGR2Lab), mask)
    want_mean, want_std = blend.lab_stats(cv2.cvtColor(target_bgr, cv2.COLOR_BGR2Lab), mask)
    src_mean, _ = blend.lab_stats(cv2.cvtColor(source_bgr, cv2.COLOR_BGR2Lab), mask)
    assert np.abs(out_mean - want_mean).max() < 2.5
    assert np.abs(out_std - want_std).max() < 2.5
    assert np.abs(src_mean - want_mean).max() > 20  # the test is not trivially satisfied


def test_match_colors_with_an_empty_mask_only_converts() -> None:
    lab = np.full((8, 8, 3), (120, 140, 110), np.uint8)
    out = blend.match_colors(lab, np.zeros((8, 8, 3), np.uint8), np.zeros((8, 8), np.uint8))
    assert (out == cv2.cvtColor(lab, cv2.COLOR_Lab2BGR)).all()


def test_composite_is_exact_at_zero_and_full_alpha_for_every_value() -> None:
    values = np.arange(256, dtype=np.uint8)
    dst = np.stack(np.meshgrid(values, values), -1)[..., [0, 1, 0]].copy()  # every (dst, src) pair
    src = np.stack(np.meshgrid(values, values), -1)[..., [1, 0, 1]].copy()
    for level, expected in ((0, dst), (255, src)):
        out = dst.copy()
        blend.composite(out, src, np.full((256, 256), level, np.uint8))
        assert (out == expected).all()


def test_composite_mixes_proportionally_and_in_place() -> None:
    dst = np.zeros((2, 3, 3), np.uint8)
    src = np.full((2, 3, 3), 200, np.uint8)
    alpha = np.array([[0, 51, 102], [153, 204, 255]], np.uint8)
    view = dst[:, :]
    blend.composite(view, src, alpha)
    assert dst[:, :, 0].tolist() == [[0, 40, 80], [120, 160, 200]]


def test_composite_rejects_mismatched_shapes() -> None:
    with pytest.raises(ValueError, match="shapes differ"):
        blend.composite(np.zeros((4, 4, 3), np.uint8), np.zeros((4, 5, 3), np.uint8), np.zeros((4, 4), np.uint8))
