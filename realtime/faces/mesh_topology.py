"""Named point sets of the 468-point face mesh, and its triangulation.

The index lists are ordered contours (each closes back on its first point) of
the MediaPipe face-mesh topology: the same index always lands on the same
facial feature, whatever the face.
"""

from __future__ import annotations

import cv2
import numpy as np

NUM_POINTS = 468

# Silhouette from the top of the forehead, clockwise in the image.
FACE_OVAL = (
    10, 338, 297, 332, 284, 251, 389, 356, 454, 323, 361, 288, 397, 365, 379, 378, 400, 377,
    152, 148, 176, 149, 150, 136, 172, 58, 132, 93, 234, 127, 162, 21, 54, 103, 67, 109,
)
# Inner edge of the lips (the mouth opening): upper lip left to right, then lower lip back.
LIPS_INNER = (78, 191, 80, 81, 82, 13, 312, 311, 310, 415, 308, 324, 318, 402, 317, 14, 87, 178, 88, 95)
LIPS_OUTER = (61, 185, 40, 39, 37, 0, 267, 269, 270, 409, 291, 375, 321, 405, 314, 17, 84, 181, 91, 146)
# Eye openings; "right" is the subject's right eye (smaller x in a frontal photo).
RIGHT_EYE = (33, 246, 161, 160, 159, 158, 157, 173, 133, 155, 154, 153, 145, 144, 163, 7)
LEFT_EYE = (362, 398, 384, 385, 386, 387, 388, 466, 263, 249, 390, 373, 374, 380, 381, 382)
# Eyebrows (upper edge, then lower edge back), subject's right then left.
RIGHT_BROW = (70, 63, 105, 66, 107, 55, 65, 52, 53, 46)
LEFT_BROW = (300, 293, 334, 296, 336, 285, 295, 282, 283, 276)
NOSE_BOTTOM = 2  # below the nose tip, between the nostrils

UPPER_LIP_INNER_MID = 13
LOWER_LIP_INNER_MID = 14
MOUTH_CORNERS = (78, 308)  # inner corners


def triangulate(points: np.ndarray) -> np.ndarray:
    """Delaunay triangles of 2-D ``points`` (N×2) as a T×3 int32 array of point indices.

    Points that coincide exactly are merged by the Delaunay step; their
    triangles are simply absent, which leaves no hole in the warped area
    because the coincident point's neighbours cover it.
    """
    array = np.asarray(points, dtype=np.float32)
    if array.ndim != 2 or array.shape[1] < 2 or len(array) < 3:
        raise ValueError(f"need an N×2 array of at least 3 points, got shape {array.shape}")
    points = np.ascontiguousarray(array[:, :2])
    x, y, w, h = cv2.boundingRect(points)
    subdiv = cv2.Subdiv2D((x - 1, y - 1, w + 2, h + 2))
    subdiv.insert([(float(px), float(py)) for px, py in points])
    corners = np.asarray(subdiv.getTriangleList(), np.float32).reshape(-1, 3, 2)
    # Subdiv2D returns coordinates; map each corner back to the nearest input point.
    dist = ((corners[:, :, None, :] - points[None, None]) ** 2).sum(axis=-1)
    triangles = dist.argmin(axis=-1).astype(np.int32)
    exact = dist.min(axis=-1).max(axis=-1) < 1e-3
    distinct = (triangles[:, 0] != triangles[:, 1]) & (triangles[:, 1] != triangles[:, 2]) & (
        triangles[:, 0] != triangles[:, 2]
    )
    return np.ascontiguousarray(triangles[exact & distinct])


def mouth_opening(landmarks: np.ndarray) -> float:
    """Gap between the inner lips divided by the mouth width (0 closed, ~0.3+ wide open)."""
    points = np.asarray(landmarks)[:, :2]
    gap = float(np.linalg.norm(points[UPPER_LIP_INNER_MID] - points[LOWER_LIP_INNER_MID]))
    width = float(np.linalg.norm(points[MOUTH_CORNERS[0]] - points[MOUTH_CORNERS[1]]))
    return gap / max(width, 1e-6)


def contour(landmarks: np.ndarray, indices: tuple[int, ...]) -> np.ndarray:
    """The x, y of ``indices`` as a K×2 float32 polygon."""
    return np.ascontiguousarray(np.asarray(landmarks, dtype=np.float32)[list(indices), :2])
