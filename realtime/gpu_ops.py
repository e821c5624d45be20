"""Frame operations in torch, so that on a GPU a frame goes up once and comes down once.

Crop/align (``affine_grid`` + ``grid_sample``), normalisation and layout,
paste-back with a feathered mask, and colour conversion. Every function takes
and returns torch tensors on any device; on CPU tensors they match the
NumPy/OpenCV path (``cv2.warpAffine`` with ``INTER_LINEAR``, ``cv2.cvtColor``,
a float blend) to within one level on uint8 output — tests/test_torch_ops.py
holds them to that.

Conventions: frames are HWC uint8 BGR as OpenCV delivers them; model inputs
are NCHW float; a "matrix" is a 2×3 affine in pixel coordinates mapping
source pixels to destination pixels, exactly what ``cv2.warpAffine`` takes.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

Size = tuple[int, int]  # (width, height), as cv2's dsize
_BORDERS = {"constant": "zeros", "replicate": "border"}


def upload(frame: np.ndarray, device: torch.device | str) -> torch.Tensor:
    """An HWC uint8 frame onto ``device`` (the one host→device copy; through pinned memory on CUDA, so the
    host does not wait for the stream)."""
    return host_constant(np.ascontiguousarray(frame), torch.uint8, device)


def download(image: torch.Tensor) -> np.ndarray:
    """An HWC uint8 tensor back to a numpy frame (the one device→host copy)."""
    return image.detach().cpu().numpy()


def host_constant(values: Any, dtype: torch.dtype, device: torch.device | str) -> torch.Tensor:
    """A small host constant (a warp's theta, a colour matrix) on ``device`` without a host synchronisation.

    From pageable memory a host→device copy waits for the stream first; from pinned memory with
    ``non_blocking`` it is queued like a kernel.
    """
    tensor = torch.as_tensor(values, dtype=dtype)
    if torch.device(device).type == "cuda":
        tensor = tensor.pin_memory()
    return tensor.to(device, non_blocking=True)


def _as_matrix(matrix: Any) -> np.ndarray:
    m = np.asarray(matrix, dtype=np.float64)
    if m.shape != (2, 3):
        raise ValueError(f"an affine matrix is 2×3, got shape {m.shape}")
    return m


def invert_affine(matrix: Any) -> np.ndarray:
    """The inverse of a 2×3 affine (same as ``cv2.invertAffineTransform``), in float64."""
    full = np.vstack([_as_matrix(matrix), [0.0, 0.0, 1.0]])
    return np.linalg.inv(full)[:2]


def affine_theta(matrix: Any, src_size: Size, dst_size: Size) -> np.ndarray:
    """The ``affine_grid`` theta (``align_corners=False``) that reproduces ``cv2.warpAffine(src, matrix, dst_size)``.

    cv2 samples destination pixel (x, y) at source pixel ``inverse(matrix) @ (x, y, 1)``,
    pixel centres at integer coordinates. ``affine_grid`` maps normalised destination
    coordinates to normalised source coordinates, where -1 and +1 are the outer edges
    of the first and last pixel: pixel x ↔ normalised (2x + 1) / size - 1.
    """
    src_w, src_h = src_size
    dst_w, dst_h = dst_size
    dst_from_norm = np.array([[dst_w / 2, 0, (dst_w - 1) / 2], [0, dst_h / 2, (dst_h - 1) / 2], [0, 0, 1]])
    norm_from_src = np.array([[2 / src_w, 0, 1 / src_w - 1], [0, 2 / src_h, 1 / src_h - 1], [0, 0, 1]])
    src_from_dst = np.vstack([invert_affine(matrix), [0.0, 0.0, 1.0]])
    return (norm_from_src @ src_from_dst @ dst_from_norm)[:2]


def warp_affine(image: torch.Tensor, matrix: Any, dsize: Size, *, border: str = "constant") -> torch.Tensor:
    """``cv2.warpAffine(image, matrix, dsize, flags=INTER_LINEAR)`` on an NCHW float tensor.

    ``border`` is "constant" (zeros, cv2.BORDER_CONSTANT) or "replicate" (cv2.BORDER_REPLICATE).
    """
    if image.dim() != 4 or not image.is_floating_point():
        raise ValueError(f"warp_affine takes an NCHW float tensor, got {tuple(image.shape)} {image.dtype}")
    if border not in _BORDERS:
        raise ValueError(f"border must be one of {sorted(_BORDERS)}, got {border!r}")
    height, width = image.shape[-2:]
    theta = affine_theta(matrix, (width, height), dsize)
    theta_t = host_constant(theta, image.dtype, image.device).expand(image.shape[0], 2, 3)
    grid = F.affine_grid(theta_t, [image.shape[0], image.shape[1], dsize[1], dsize[0]], align_corners=False)
    return F.grid_sample(image, grid, mode="bilinear", padding_mode=_BORDERS[border], align_corners=False)


def hwc_to_nchw(image: torch.Tensor, *, swap_rb: bool = True, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """HWC (uint8 BGR) → 1×C×H×W float, RGB when ``swap_rb``; values unchanged (0..255)."""
    if image.dim() != 3:
        raise ValueError(f"expected an HWC image, got shape {tuple(image.shape)}")
    chw = image.permute(2, 0, 1)
    if swap_rb:
        chw = chw.flip(0)
    return chw.unsqueeze(0).to(dtype)


def normalize(nchw: torch.Tensor, *, mean: float | Sequence[float] = 0.0,
              std: float | Sequence[float] = 255.0) -> torch.Tensor:
    """``(x - mean) / std`` per channel on values in 0..255 (defaults give 0..1)."""
    mean_t = host_constant(mean, nchw.dtype, nchw.device).reshape(1, -1, 1, 1)
    std_t = host_constant(std, nchw.dtype, nchw.device).reshape(1, -1, 1, 1)
    return (nchw - mean_t) / std_t


def nchw_to_hwc_uint8(nchw: torch.Tensor, *, swap_rb: bool = True, scale: float = 255.0) -> torch.Tensor:
    """1×C×H×W float (e.g. RGB in 0..1) → HWC uint8 (BGR when ``swap_rb``), rounded and clamped."""
    chw = nchw[0] * scale
    if swap_rb:
        chw = chw.flip(0)
    return chw.round().clamp(0, 255).to(torch.uint8).permute(1, 2, 0).contiguous()


def crop_align(frame: torch.Tensor, matrix: Any, dsize: Size, *, swap_rb: bool = True,
               mean: float | Sequence[float] = 0.0, std: float | Sequence[float] = 255.0,
               border: str = "constant") -> torch.Tensor:
    """Warp an HWC uint8 BGR frame into a model input: 1×3×h×w float, RGB, normalised.

    Same as ``cv2.warpAffine(frame, matrix, dsize)`` followed by channel swap and
    ``(x - mean) / std``. The warp comes first, so border pixels are 0 before
    normalisation, as in the cv2 path. Only the part of the frame the crop
    samples is converted to float.
    """
    height, width = frame.shape[:2]
    m = _as_matrix(matrix)
    if border == "constant":
        x0, y0, x1, y1 = _touched_region((width, height), invert_affine(m), dsize)
        if x1 > x0 and y1 > y0:
            frame = frame[y0:y1, x0:x1]
            m = m.copy()
            m[:, 2] += m[:, :2] @ np.array([x0, y0], dtype=np.float64)  # same warp, origin moved to (x0, y0)
    warped = warp_affine(hwc_to_nchw(frame, swap_rb=swap_rb), m, dsize, border=border)
    return normalize(warped, mean=mean, std=std)


def feather_mask(dsize: Size, feather: float, *, device: torch.device | str = "cpu") -> torch.Tensor:
    """An h×w float mask: 1 inside, falling linearly to 0 over ``feather`` pixels at the edges."""
    return torch.from_numpy(feather_mask_numpy(dsize, feather)).to(device)


def feather_mask_numpy(dsize: Size, feather: float) -> np.ndarray:
    """:func:`feather_mask` for the NumPy path (same values)."""
    width, height = dsize
    xs = np.arange(width, dtype=np.float32)
    ys = np.arange(height, dtype=np.float32)
    to_edge_x = np.minimum(xs, width - 1 - xs)
    to_edge_y = np.minimum(ys, height - 1 - ys)
    distance = np.minimum(to_edge_y[:, None], to_edge_x[None, :])
    return np.clip(distance / max(feather, 1e-6), 0.0, 1.0).astype(np.float32)


def _touched_region(image_size: Size, mapping: np.ndarray, area_size: Size) -> tuple[int, int, int, int]:
    """Pixels (x0, y0, x1, y1) of an image that ``mapping`` sends an area of ``area_size`` onto,
    widened by the bilinear taps and clipped to the image (may be empty)."""
    width, height = area_size
    corners = np.array([[-1.0, -1.0, 1.0], [width, -1.0, 1.0], [-1.0, height, 1.0], [width, height, 1.0]])
    mapped = corners @ mapping.T
    x0, y0 = np.floor(mapped.min(axis=0)).astype(int) - 1
    x1, y1 = np.ceil(mapped.max(axis=0)).astype(int) + 2
    return max(int(x0), 0), max(int(y0), 0), min(int(x1), image_size[0]), min(int(y1), image_size[1])


def paste_back(frame: torch.Tensor, crop: torch.Tensor, matrix: Any, mask: torch.Tensor) -> torch.Tensor:
    """Blend a processed crop back into the frame through the inverse of ``matrix``.

    ``frame``: H×W×3 uint8 (BGR); ``crop``: h×w×3 in the frame's colour order and
    0..255 (float or uint8); ``matrix``: the frame→crop affine used to cut the crop;
    ``mask``: h×w float in 0..1 (e.g. :func:`feather_mask`). Equivalent to warping
    crop and mask with ``cv2.warpAffine(·, invertAffineTransform(matrix), (W, H))``
    and ``mask·crop + (1-mask)·frame``; only the region the crop covers is computed.
    Returns a new uint8 frame.
    """
    height, width = frame.shape[:2]
    crop_h, crop_w = crop.shape[:2]
    inverse = invert_affine(matrix)
    x0, y0, x1, y1 = _touched_region((width, height), inverse, (crop_w, crop_h))
    out = frame.clone()
    if x1 <= x0 or y1 <= y0:
        return out
    # Warping into the ROI = warping into the whole frame shifted by (-x0, -y0).
    to_roi = inverse.copy()
    to_roi[:, 2] -= (x0, y0)
    layers = torch.cat([crop.to(torch.float32).permute(2, 0, 1), mask.to(torch.float32)[None]], dim=0)
    warped = warp_affine(layers[None], to_roi, (x1 - x0, y1 - y0))[0]
    alpha = warped[3:4]
    region = frame[y0:y1, x0:x1].permute(2, 0, 1).to(torch.float32)
    blended = alpha * warped[:3] + (1 - alpha) * region
    out[y0:y1, x0:x1] = blended.round().clamp(0, 255).to(torch.uint8).permute(1, 2, 0)
    return out


# --- colour -----------------------------------------------------------------------------------------

def swap_rb(image: torch.Tensor, *, channel_dim: int = -1) -> torch.Tensor:
    """BGR ↔ RGB (reverses the three channels along ``channel_dim``)."""
    return image.flip(channel_dim)


def bgr_to_ycrcb(image: torch.Tensor, *, delta: float = 128.0) -> torch.Tensor:
    """HWC BGR float → YCrCb as ``cv2.COLOR_BGR2YCrCb`` (delta 128 for 0..255 values, 0.5 for 0..1)."""
    b, g, r = image.unbind(-1)
    y = 0.299 * r + 0.587 * g + 0.114 * b
    return torch.stack([y, (r - y) * 0.713 + delta, (b - y) * 0.564 + delta], dim=-1)


def ycrcb_to_bgr(image: torch.Tensor, *, delta: float = 128.0) -> torch.Tensor:
    """HWC YCrCb float → BGR as ``cv2.COLOR_YCrCb2BGR``."""
    y, cr, cb = image.unbind(-1)
    cr, cb = cr - delta, cb - delta
    return torch.stack([y + 1.773 * cb, y - 0.714 * cr - 0.344 * cb, y + 1.403 * cr], dim=-1)


_XYZ_FROM_RGB = ((0.412453, 0.357580, 0.180423), (0.212671, 0.715160, 0.072169), (0.019334, 0.119193, 0.950227))
_WHITE = (0.950456, 1.0, 1.088754)
_RGB_FROM_XYZ = np.linalg.inv(np.array(_XYZ_FROM_RGB, np.float64))


def _srgb_to_linear(v: torch.Tensor) -> torch.Tensor:
    return torch.where(v > 0.04045, ((v + 0.055) / 1.055).clamp(min=0) ** 2.4, v / 12.92)


def _linear_to_srgb(v: torch.Tensor) -> torch.Tensor:
    return torch.where(v > 0.0031308, 1.055 * v.clamp(min=0) ** (1 / 2.4) - 0.055, 12.92 * v)


def bgr_to_lab(image: torch.Tensor) -> torch.Tensor:
    """HWC BGR float in 0..1 → CIE Lab (L 0..100) as ``cv2.COLOR_BGR2Lab`` on float32 input."""
    rgb = _srgb_to_linear(image.flip(-1))
    xyz = rgb @ host_constant(_XYZ_FROM_RGB, image.dtype, image.device).T
    xyz = xyz / host_constant(_WHITE, image.dtype, image.device)
    f = torch.where(xyz > 0.008856, xyz.clamp(min=0) ** (1 / 3), 7.787 * xyz + 16 / 116)
    y = xyz[..., 1]
    lightness = torch.where(y > 0.008856, 116 * f[..., 1] - 16, 903.3 * y)
    return torch.stack([lightness, 500 * (f[..., 0] - f[..., 1]), 200 * (f[..., 1] - f[..., 2])], dim=-1)


def lab_to_bgr(lab: torch.Tensor) -> torch.Tensor:
    """CIE Lab (L 0..100) → HWC BGR float in 0..1, the inverse of :func:`bgr_to_lab`."""
    lightness, a, b = lab.unbind(-1)
    fy = (lightness + 16) / 116
    y = torch.where(lightness > 903.3 * 0.008856, fy ** 3, lightness / 903.3)
    fy = torch.where(lightness > 903.3 * 0.008856, fy, 7.787 * y + 16 / 116)
    fx, fz = fy + a / 500, fy - b / 200

    def finv(f: torch.Tensor) -> torch.Tensor:
        return torch.where(f > 0.206893, f ** 3, (f - 16 / 116) / 7.787)

    xyz = torch.stack([finv(fx), y, finv(fz)], dim=-1)
    xyz = xyz * host_constant(_WHITE, lab.dtype, lab.device)
    rgb = xyz @ host_constant(_RGB_FROM_XYZ, lab.dtype, lab.device).T
    return _linear_to_srgb(rgb).clamp(0, 1).flip(-1)
