"""The detector's 5 keypoints for a tracked face, from its mesh, in the detector's convention.

The inswapper was trained on crops aligned on SCRFD's 5 points (as insightface and FaceFusion align),
and stills and the source photo use them. In video the detector runs only now and then, so the points
come from the mesh. Taken raw (mean of each eye's contour, nose tip, mouth corners) they frame the
128 crop differently from SCRFD's, and a blink moves the eye points. So:

- the mesh anchors are stable points: each eye's centre is the midpoint of its two corners (which a
  blink does not move), the nose tip and the mouth corners;
- the offsets from those anchors to SCRFD's points, in the face's own frame (eye line as the x axis,
  the distance between the eyes as the unit), start from :data:`PRIOR_OFFSETS`: their mean over the
  29 faces of the Solvay 1927 photo (SCRFD at 1920 px, two-pass mesh). SCRFD's eye points sit about
  3% of the eye distance above the corner midpoints, its nose point 7% above the mesh's nose tip;
- when the detector sees the face (a new track, and each full-size detection of it), its offsets are
  blended in with weight :data:`OFFSET_WEIGHT`: one detection of a small face is noisy (±0.03-0.05
  eye distances), so it only nudges the prior;
- every frame, the keypoints are the anchors plus those offsets, turned and scaled with the face.

tools/measure_framing.py measures the framing these points give against SCRFD's, frame by frame.
"""

from __future__ import annotations

import numpy as np

# Mesh indices: the corners of each eye (image-left eye first), nose tip, mouth corners.
LEFT_EYE_CORNERS = (33, 133)
RIGHT_EYE_CORNERS = (362, 263)
NOSE_TIP = 1
MOUTH_LEFT, MOUTH_RIGHT = 61, 291
OFFSET_WEIGHT = 0.1  # on readme.jpg as good as the prior alone, far better than 1 (tools/measure_framing.py)
PRIOR_OFFSETS = np.array([[-0.007, -0.026], [0.017, -0.025], [-0.001, -0.068], [0.009, -0.002], [-0.02, -0.005]])


def anchors(points: np.ndarray) -> np.ndarray:
    """5×2 float64 mesh anchors in Face.keypoints order: eye-corner midpoints, nose tip, mouth corners."""
    xy = points[:, :2].astype(np.float64)
    return np.stack([xy[list(LEFT_EYE_CORNERS)].mean(axis=0), xy[list(RIGHT_EYE_CORNERS)].mean(axis=0),
                     xy[NOSE_TIP], xy[MOUTH_LEFT], xy[MOUTH_RIGHT]])


def _frame(anchor: np.ndarray) -> tuple[np.ndarray, float]:
    """The face's frame: rotation (2×2, columns = eye-line axis and its normal) and scale (eye distance)."""
    axis = anchor[1] - anchor[0]
    scale = float(np.hypot(*axis))
    if scale < 1e-6:
        return np.eye(2), 1.0
    x = axis / scale
    return np.array([[x[0], -x[1]], [x[1], x[0]]]), scale


def fit_offsets(points: np.ndarray, detected: np.ndarray, previous: np.ndarray | None = None, *,
                weight: float = OFFSET_WEIGHT) -> np.ndarray:
    """The offsets (5×2, in the face's frame) taking the mesh anchors of ``points`` to the detector's
    ``detected`` keypoints of the same frame, blended with ``weight`` into ``previous`` (default: the prior)."""
    anchor = anchors(points)
    rotation, scale = _frame(anchor)
    offsets = (np.asarray(detected, np.float64) - anchor) @ rotation / scale
    base = PRIOR_OFFSETS if previous is None else previous
    return weight * offsets + (1 - weight) * base


def keypoints(points: np.ndarray, offsets: np.ndarray | None) -> np.ndarray:
    """5×2 float32 keypoints of a mesh: the anchors moved by ``offsets`` (None: the prior offsets)."""
    anchor = anchors(points)
    offsets = PRIOR_OFFSETS if offsets is None else offsets
    rotation, scale = _frame(anchor)
    return (anchor + (offsets * scale) @ rotation.T).astype(np.float32)
