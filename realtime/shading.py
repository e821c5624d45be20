"""Light and shade from the target, and a two-band blend, for a swapped face (on a coarse grid).

Lighting: the warped source keeps the lighting of the source photo. Its
log-luminance is split into a low-frequency part (light direction, gradients,
shadows) and the rest (the source's identity detail); the low part is replaced
by the target's. Both low parts are averages over the same skin pixels
(normalised convolution), so eyes, brows, lips and occluders do not leak into
the shading. Luminance only: the colour stays the Lab match's.

Blend: the difference between the swapped face and the target is split into a
low band and a high band; the high band fades in with the face mask, the low
band over a wider ramp that lies inside the mask (two-band Laplacian blending,
Burt & Adelson 1983), so no low-frequency step is left at the edge and pixels
outside the mask keep their bytes.
"""

from __future__ import annotations

import math

import cv2
import numpy as np

LOG_OFFSET = 8.0  # keeps the log of dark pixels from amplifying their noise
MAX_GAIN = 1.6  # shading scales a pixel by at most this (or its inverse) relative to the face's overall gain
MIN_SUPPORT = 0.05  # of the largest weight sum: below it a grid point has no skin near enough to judge


def log_luminance(bgr: np.ndarray) -> np.ndarray:
    """log(mean of B, G, R + LOG_OFFSET) as float32 (H×W)."""
    return np.log(bgr.astype(np.float32).mean(axis=2) + np.float32(LOG_OFFSET))


def weighted_lowpass(values: np.ndarray, weight: np.ndarray, sigma: float) -> tuple[np.ndarray, np.ndarray]:
    """Gaussian low-pass of ``values`` counting each point by ``weight``; returns (low, weight sum)."""
    weight = weight.astype(np.float32)
    num = cv2.GaussianBlur(values.astype(np.float32) * weight, (0, 0), sigma, borderType=cv2.BORDER_REPLICATE)
    den = cv2.GaussianBlur(weight, (0, 0), sigma, borderType=cv2.BORDER_REPLICATE)
    return num / np.maximum(den, np.float32(1e-6)), den


def shading_log_gain(target: np.ndarray, source: np.ndarray, weight: np.ndarray, sigma: float) -> np.ndarray:
    """Per-point log gain that gives ``source`` (BGR, same grid as ``target``) the target's low-frequency
    luminance: low(log Y_target) − low(log Y_source) over the points ``weight`` selects; 0 where there
    is too little skin nearby to tell."""
    low_t, den = weighted_lowpass(log_luminance(target), weight, sigma)
    low_s, _ = weighted_lowpass(log_luminance(source), weight, sigma)
    support = den >= MIN_SUPPORT * max(float(den.max()), 1e-6)
    if not support.any():
        return np.zeros_like(low_t)
    gain = low_t - low_s
    # The Lab match has set the overall level: the shading only moves light around it, and within bounds,
    # so a shadow in the source is not lifted so far that the highlight next to it burns out.
    level = np.float32(np.median(gain[support & (weight > 0)])) if (support & (weight > 0)).any() else np.float32(0)
    limit = np.float32(math.log(MAX_GAIN))
    gain = level + np.clip(gain - level, -limit, limit)
    return np.where(support, gain, np.float32(0)).astype(np.float32)


def low_band_share(alpha: np.ndarray, sigma: float) -> np.ndarray:
    """k = α_low / α on a coarse alpha (0..1), where α_low = min(α, blur(α)) ramps up more slowly
    inside the mask: the low band of the swap is weighted by α·k, the high band by α."""
    a = alpha.astype(np.float32)
    wide = cv2.GaussianBlur(a, (0, 0), sigma, borderType=cv2.BORDER_CONSTANT)
    return np.where(a > 1e-3, np.minimum(a, wide) / np.maximum(a, np.float32(1e-3)), np.float32(1))


def shade_and_correct(swapped: np.ndarray, log_gain: np.ndarray, low_delta: np.ndarray,
                      share: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """``swapped`` (uint8 BGR, full size) × exp(gain) minus (1 − k)·low-band difference, as uint8.

    ``log_gain``, ``low_delta`` (shaded source minus target, 3 channels) and ``share`` (k) are coarse
    and are upsampled bilinearly to ``size`` (width, height). Compositing the result with the face's
    alpha gives target + α·k·Δlow + α·Δhigh: the two-band blend.
    """
    gain = cv2.resize(np.exp(log_gain), size, interpolation=cv2.INTER_LINEAR)
    correction = cv2.resize(low_delta * (1.0 - share)[..., None], size, interpolation=cv2.INTER_LINEAR)
    out = cv2.multiply(swapped, cv2.merge([gain, gain, gain]), dtype=cv2.CV_32F)
    # The uint8 conversion rounds and saturates.
    return np.asarray(cv2.subtract(out, correction, dtype=cv2.CV_8U))
