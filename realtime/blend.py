"""Masks, colour transfer and paste-back for face swapping.

Everything here works on small face-sized arrays; none of it touches a whole frame.
Masks are uint8 alpha (0 keeps the target pixel exactly, 255 takes the swapped one).
"""

from __future__ import annotations

import cv2
import numpy as np

# Bounds on the std ratio: a flat source (e.g. greyscale) must not have its noise blown up, while a
# flat target (a greyscale video) may take most of the colour out of a colour source.
MAX_GAIN = 2.0
MIN_GAIN = 0.1
MIN_STD = 1.0


def odd(value: float) -> int:
    """The nearest odd integer ≥ 1 (kernel sizes)."""
    n = max(1, round(value))
    return n if n % 2 else n + 1


def feathered_mask(shape: tuple[int, int], polygon: np.ndarray, *, erode_px: float, blur_px: float) -> np.ndarray:
    """Alpha of a filled convex hull of ``polygon``, shrunk by ``erode_px`` and blurred by ``blur_px``.

    ``shape`` is (height, width); ``polygon`` is K×2 in the mask's pixel coordinates.
    The blur spreads only inward of the unshrunk hull when ``erode_px`` ≥ ``blur_px``,
    so the mask is exactly 0 outside the hull.
    """
    mask = np.zeros(shape, np.uint8)
    hull = cv2.convexHull(np.round(np.asarray(polygon, np.float32) * 16).astype(np.int32))
    cv2.fillConvexPoly(mask, hull, 255, cv2.LINE_8, 4)
    if erode_px >= 1:
        size = odd(2 * erode_px)
        kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (size, size))
        # Outside the array counts as background, so a hull touching the border erodes too.
        mask = np.asarray(cv2.erode(mask, kernel, borderType=cv2.BORDER_CONSTANT, borderValue=0))
    if blur_px >= 1:
        mask = np.asarray(
            cv2.GaussianBlur(mask, (odd(2 * blur_px), odd(2 * blur_px)), 0, borderType=cv2.BORDER_CONSTANT)
        )
    return mask


def cut_hole(mask: np.ndarray, polygon: np.ndarray, *, feather_px: float) -> None:
    """Zero ``mask`` inside ``polygon`` (in place), fading back in over ``feather_px`` outside it.

    The inside of the polygon becomes exactly 0, so those pixels stay the target's.
    """
    pts = np.round(np.asarray(polygon, np.float32) * 16).astype(np.int32)
    x, y, w, h = cv2.boundingRect(pts)
    pad = int(np.ceil(feather_px)) + 2
    x0, y0 = max(0, x // 16 - pad), max(0, y // 16 - pad)
    x1, y1 = min(mask.shape[1], (x + w) // 16 + pad + 1), min(mask.shape[0], (y + h) // 16 + pad + 1)
    if x1 <= x0 or y1 <= y0:
        return
    hole = np.zeros((y1 - y0, x1 - x0), np.uint8)
    cv2.fillPoly(hole, [pts - np.array([x0 * 16, y0 * 16], np.int32)], 255, cv2.LINE_8, 4)
    if feather_px >= 1:
        soft = cv2.GaussianBlur(hole, (odd(2 * feather_px), odd(2 * feather_px)), 0)
        hole = np.maximum(hole, soft)
    region = mask[y0:y1, x0:x1]
    keep = 255 - hole.astype(np.uint16)
    region[:] = ((region.astype(np.uint16) * keep + 127) // 255).astype(np.uint8)


def lab_stats(lab: np.ndarray, mask: np.ndarray, *, threshold: int = 128) -> tuple[np.ndarray, np.ndarray]:
    """Per-channel mean and standard deviation of ``lab`` where ``mask`` > ``threshold``.

    Returns (mean, std) as float64 arrays of 3; NaN when no pixel qualifies.
    """
    selected = (mask > threshold).view(np.uint8)
    if not selected.any():
        return np.full(3, np.nan), np.full(3, np.nan)
    mean, std = cv2.meanStdDev(np.ascontiguousarray(lab), mask=selected)
    return mean.reshape(3), std.reshape(3)


def transfer_lut(
    src_mean: np.ndarray, src_std: np.ndarray, dst_mean: np.ndarray, dst_std: np.ndarray
) -> np.ndarray:
    """A 1×256×3 uint8 lookup table moving per-channel mean/std from source to destination.

    value → (value − src_mean) · gain + dst_mean, with gain = dst_std / src_std kept within
    [MIN_GAIN, MAX_GAIN]. Apply with ``cv2.LUT`` to an 8-bit Lab image.
    """
    gain = np.clip(np.maximum(dst_std, MIN_STD) / np.maximum(src_std, MIN_STD), MIN_GAIN, MAX_GAIN)
    levels = np.arange(256, dtype=np.float64)[:, None]
    table = (levels - src_mean[None, :]) * gain[None, :] + dst_mean[None, :]
    return np.clip(np.round(table), 0, 255).astype(np.uint8)[None]


def match_colors(src_lab: np.ndarray, dst_bgr: np.ndarray, mask: np.ndarray, *, sample_step: int = 1) -> np.ndarray:
    """``src_lab`` (8-bit Lab) recoloured to the Lab mean/std of ``dst_bgr`` under ``mask``; BGR out.

    Statistics are taken every ``sample_step`` pixels (they barely change and this is per frame).
    """
    s = max(1, sample_step)
    sub_mask = mask[::s, ::s]
    dst_lab = cv2.cvtColor(np.ascontiguousarray(dst_bgr[::s, ::s]), cv2.COLOR_BGR2Lab)
    src_mean, src_std = lab_stats(src_lab[::s, ::s], sub_mask)
    dst_mean, dst_std = lab_stats(dst_lab, sub_mask)
    if np.isnan(src_mean).any() or np.isnan(dst_mean).any():
        return cv2.cvtColor(src_lab, cv2.COLOR_Lab2BGR)
    recoloured = cv2.LUT(src_lab, transfer_lut(src_mean, src_std, dst_mean, dst_std))
    return cv2.cvtColor(recoloured, cv2.COLOR_Lab2BGR)


def composite(dst: np.ndarray, src: np.ndarray, alpha: np.ndarray) -> None:
    """Blend ``src`` over ``dst`` in place: dst = src·α/255 + dst·(1 − α/255), rounded.

    Pixels with α = 0 keep their exact bytes; α = 255 takes ``src`` exactly.
    """
    if dst.shape != src.shape or dst.shape[:2] != alpha.shape:
        raise ValueError(f"shapes differ: dst {dst.shape}, src {src.shape}, alpha {alpha.shape}")
    weight = alpha.astype(np.float32) * np.float32(1 / 255)
    # blendLinear normalises by the weight sum, so α = 0 and α = 255 reproduce the inputs exactly.
    dst[:] = cv2.blendLinear(src, np.ascontiguousarray(dst), weight, 1.0 - weight)
