"""Five-point face alignment: similarity transforms to the crop templates, warping, inverting.

Transforms are 2×3 float64 matrices mapping image pixel coordinates to crop
pixel coordinates (``crop = M @ [x, y, 1]``), the convention of
``cv2.warpAffine``. Keypoints are in the order of :class:`realtime.faces.types.Face`:
left eye, right eye, nose tip, left mouth corner, right mouth corner.
"""

from __future__ import annotations

import cv2
import numpy as np

# The ArcFace 112×112 template (insightface), in crop pixels.
ARCFACE_112 = np.array([[38.2946, 51.6963], [73.5318, 51.5014], [56.0252, 71.7366],
                        [41.5493, 92.3655], [70.7299, 92.2041]], dtype=np.float64)
# inswapper_128 uses the same template on a 128 px crop, shifted 8 px right (not rescaled).
ARCFACE_128 = ARCFACE_112 + np.array([8.0, 0.0])
# The FFHQ 512×512 template that GFPGAN was trained on.
FFHQ_512 = np.array([[192.98138, 239.94708], [318.90277, 240.1936], [256.63416, 314.01935],
                     [201.26117, 371.41043], [313.08905, 371.15118]], dtype=np.float64)


def similarity_transform(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """Least-squares rotation + uniform scale + translation taking ``src`` points onto ``dst`` (Umeyama 1991).

    ``src``, ``dst``: N×2 (N ≥ 2). Returns the 2×3 matrix. Reflections are
    excluded, so a mirrored point set gets the best proper rotation.
    Raises ValueError for degenerate input (all source points equal, NaN).
    """
    src = np.asarray(src, dtype=np.float64).reshape(-1, 2)
    dst = np.asarray(dst, dtype=np.float64).reshape(-1, 2)
    if src.shape != dst.shape or len(src) < 2:
        raise ValueError(f"need two matching N×2 point sets (N ≥ 2), got {src.shape} and {dst.shape}")
    if not (np.isfinite(src).all() and np.isfinite(dst).all()):
        raise ValueError("keypoints contain NaN or infinity")
    src_mean, dst_mean = src.mean(axis=0), dst.mean(axis=0)
    src_c, dst_c = src - src_mean, dst - dst_mean
    src_var = (src_c**2).sum() / len(src)
    if src_var < 1e-12:
        raise ValueError("the source keypoints are all at one place")
    cov = dst_c.T @ src_c / len(src)
    u, s, vt = np.linalg.svd(cov)
    sign = np.ones(2)
    if np.linalg.det(u) * np.linalg.det(vt) < 0:
        sign[-1] = -1.0
    rotation = u @ np.diag(sign) @ vt
    scale = float((s * sign).sum() / src_var)
    translation = dst_mean - scale * rotation @ src_mean
    return np.hstack([scale * rotation, translation[:, None]])


def template(size: int) -> np.ndarray:
    """The 5-point template for a square crop: 112 and 128 (ArcFace/inswapper), 512 (FFHQ)."""
    templates = {112: ARCFACE_112, 128: ARCFACE_128, 512: FFHQ_512}
    if size not in templates:
        raise ValueError(f"no 5-point template for a {size} px crop (have {sorted(templates)})")
    return templates[size]


def alignment(keypoints: np.ndarray, size: int) -> np.ndarray:
    """The 2×3 transform taking a face's 5 keypoints onto the ``size`` template."""
    return similarity_transform(keypoints, template(size))


def warp(image: np.ndarray, matrix: np.ndarray, size: int, *, border: int = cv2.BORDER_CONSTANT) -> np.ndarray:
    """The ``size``×``size`` crop of ``image`` under ``matrix`` (bilinear)."""
    return cv2.warpAffine(image, matrix, (size, size), flags=cv2.INTER_LINEAR, borderMode=border,
                          borderValue=(0, 0, 0))


def align_crop(image: np.ndarray, keypoints: np.ndarray, size: int) -> tuple[np.ndarray, np.ndarray]:
    """Aligned crop of the face and the transform used (image → crop)."""
    matrix = alignment(keypoints, size)
    return warp(image, matrix, size), matrix


def invert(matrix: np.ndarray) -> np.ndarray:
    """The inverse of a 2×3 affine transform (crop → image)."""
    return cv2.invertAffineTransform(np.asarray(matrix, dtype=np.float64))


def apply(matrix: np.ndarray, points: np.ndarray) -> np.ndarray:
    """``points`` (N×2) mapped by the 2×3 ``matrix``."""
    points = np.asarray(points, dtype=np.float64).reshape(-1, 2)
    return points @ matrix[:, :2].T + matrix[:, 2]
