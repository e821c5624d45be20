"""Pre- and post-processing of the neural swap: plain functions on arrays, testable without a model."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

CROP = 128
ARCFACE_CROP = 112
EMBEDDING = 512



def l2_normalize(vector: np.ndarray) -> np.ndarray:
    """``vector`` / ‖vector‖ (float32); ValueError for a zero or non-finite vector."""
    vector = np.asarray(vector, dtype=np.float64)
    norm = float(np.linalg.norm(vector))
    if not np.isfinite(norm) or norm < 1e-12:
        raise ValueError("cannot normalise a zero or non-finite embedding")
    return (vector / norm).astype(np.float32)


def arcface_blob(crop_bgr: np.ndarray) -> np.ndarray:
    """A 112×112 BGR uint8 crop as the ArcFace input: 1×3×112×112 RGB, (x − 127.5) / 127.5."""
    rgb = crop_bgr[:, :, ::-1].astype(np.float32)
    return np.ascontiguousarray(((rgb - 127.5) / 127.5).transpose(2, 0, 1)[None])


def target_blob(crop_bgr: np.ndarray) -> np.ndarray:
    """A 128×128 BGR uint8 crop as the inswapper ``target``: 1×3×128×128 RGB in [0, 1]."""
    rgb = crop_bgr[:, :, ::-1].astype(np.float32) / 255.0
    return np.ascontiguousarray(rgb.transpose(2, 0, 1)[None])


def output_to_crop(output: np.ndarray) -> np.ndarray:
    """The inswapper output (1×3×128×128 RGB in [0, 1]) as a 128×128 BGR uint8 crop."""
    rgb = np.clip(np.asarray(output, dtype=np.float32)[0].transpose(1, 2, 0), 0.0, 1.0)
    return np.ascontiguousarray(np.round(rgb[:, :, ::-1] * 255.0).astype(np.uint8))


def mean_identity(embeddings: Sequence[np.ndarray]) -> np.ndarray:
    """Several raw ArcFace embeddings of one person → one unit vector (mean of unit vectors, renormalised)."""
    if not embeddings:
        raise ValueError("need at least one embedding")
    return l2_normalize(np.mean([l2_normalize(e.reshape(-1)) for e in embeddings], axis=0))


def source_latent(identity: np.ndarray, emap: np.ndarray) -> np.ndarray:
    """The inswapper ``source`` input (1×512 float32): unit identity × emap, L2-normalised."""
    return l2_normalize(identity.reshape(1, -1).astype(np.float64) @ emap.astype(np.float64)).reshape(1, -1)

