"""The 468-point face mesh (MediaPipe face landmark model) on a square, rotated face crop.

The model sees a 192×192 RGB crop in [0, 1] (NCHW) and returns 468 (x, y, z)
points in crop pixels (z in the same scale, relative to the face centre) and
a face-presence logit. The crop is a square around the face, 1.5× its size
and turned so the eyes are level, because that is how the model was trained.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import cv2
import numpy as np

from realtime.engines.base import Engine

MESH_SIZE = 192
NUM_POINTS = 468
CROP_SCALE = 1.5

# Mesh indices (image-left = the smaller x on a frontal face, as in Face.keypoints).
LEFT_EYE_OUTER, RIGHT_EYE_OUTER = 33, 263
LEFT_EYE_RING = (33, 7, 163, 144, 145, 153, 154, 155, 133, 173, 157, 158, 159, 160, 161, 246)
RIGHT_EYE_RING = (263, 249, 390, 373, 374, 380, 381, 382, 362, 398, 384, 385, 386, 387, 388, 466)
NOSE_TIP = 1
MOUTH_LEFT, MOUTH_RIGHT = 61, 291


@dataclass(frozen=True)
class CropBox:
    """A square crop: centre (``cx``, ``cy``) and side ``size`` in image pixels, and ``angle``
    (radians) by which the face's eye line is turned in the image (the crop turns it level)."""

    cx: float
    cy: float
    size: float
    angle: float = 0.0

    def box(self) -> np.ndarray:
        """The axis-aligned x1y1x2y2 box of the unrotated square (for drawing and overlap tests)."""
        half = self.size / 2
        return np.array([self.cx - half, self.cy - half, self.cx + half, self.cy + half], np.float32)


def eye_angle(left_eye: np.ndarray, right_eye: np.ndarray) -> float:
    """Angle of the line from the image-left eye to the image-right eye (0 when level)."""
    dx, dy = float(right_eye[0] - left_eye[0]), float(right_eye[1] - left_eye[1])
    return math.atan2(dy, dx)


def crop_from_detection(box: np.ndarray, keypoints: np.ndarray, *, scale: float = CROP_SCALE) -> CropBox:
    """Crop for a detector box: its centre, ``scale``× its longer side, turned by the eye line."""
    return replace(crop_from_box(box, scale=scale), angle=eye_angle(keypoints[0], keypoints[1]))


def crop_from_box(box: np.ndarray, *, scale: float = CROP_SCALE) -> CropBox:
    """Upright square crop around an x1y1x2y2 box, ``scale``× its longer side."""
    x1, y1, x2, y2 = (float(v) for v in box)
    return CropBox((x1 + x2) / 2, (y1 + y2) / 2, max(x2 - x1, y2 - y1) * scale)


def crop_from_landmarks(points: np.ndarray, *, scale: float = CROP_SCALE) -> CropBox:
    """Crop for the next frame from this frame's mesh: the points' bounding square in the frame
    turned by the eye line (outer eye corners), ``scale``× its longer side."""
    xy = points[:, :2].astype(np.float64)
    angle = eye_angle(xy[LEFT_EYE_OUTER], xy[RIGHT_EYE_OUTER])
    cos, sin = math.cos(angle), math.sin(angle)
    to_face = np.array([[cos, sin], [-sin, cos]])  # image → face-aligned axes
    aligned = xy @ to_face.T
    low, high = aligned.min(axis=0), aligned.max(axis=0)
    cx, cy = ((low + high) / 2) @ to_face  # back to image axes
    return CropBox(float(cx), float(cy), float((high - low).max() * scale), angle)


def crop_matrix(crop: CropBox, out_size: int = MESH_SIZE) -> np.ndarray:
    """2×3 affine matrix from image pixels to crop pixels (rotation −angle, scale, centring)."""
    k = out_size / crop.size
    cos, sin = math.cos(crop.angle) * k, math.sin(crop.angle) * k
    half = out_size / 2
    return np.array([[cos, sin, half - cos * crop.cx - sin * crop.cy],
                     [-sin, cos, half + sin * crop.cx - cos * crop.cy]], np.float64)


def crop_image(image_bgr: np.ndarray, crop: CropBox, out_size: int = MESH_SIZE) -> np.ndarray:
    """The ``out_size``² BGR crop (black outside the image); costs only the crop's pixels."""
    return cv2.warpAffine(image_bgr, crop_matrix(crop, out_size), (out_size, out_size),
                          flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=(0, 0, 0))


def points_to_image(points: np.ndarray, crop: CropBox, out_size: int = MESH_SIZE) -> np.ndarray:
    """Map (N, 3) crop-pixel points back to image pixels (z scaled like x and y)."""
    inverse = cv2.invertAffineTransform(crop_matrix(crop, out_size))
    out = np.empty_like(points, dtype=np.float32)
    out[:, :2] = points[:, :2] @ inverse[:, :2].T + inverse[:, 2]
    out[:, 2] = points[:, 2] * (crop.size / out_size)
    return out


def mesh_input(crop_bgr: np.ndarray) -> np.ndarray:
    """1×3×H×W float32 RGB in [0, 1]."""
    return cv2.dnn.blobFromImage(crop_bgr, 1.0 / 255.0, swapRB=True)


def _degenerate(crop_box: CropBox) -> bool:
    values = (crop_box.cx, crop_box.cy, crop_box.size, crop_box.angle)
    return not all(math.isfinite(v) for v in values) or crop_box.size < 4


def sigmoid(x: float) -> float:
    """Logistic function, safe for large |x|."""
    return 1.0 / (1.0 + math.exp(-x)) if x >= 0 else math.exp(x) / (1.0 + math.exp(x))


class FaceMesh:
    """The face landmark model on an Engine: ``landmarks(image, crop)`` → (468×3 points, presence)."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._input_name = engine.inputs[0].name

    def landmarks(self, image_bgr: np.ndarray, crop_box: CropBox | np.ndarray) -> tuple[np.ndarray, float]:
        """468×3 float32 points in image pixels and the face-presence probability (0..1).

        ``crop_box``: a CropBox (from :func:`crop_from_detection` or :func:`crop_from_landmarks`), or a
        face box x1y1x2y2, which gets an upright square crop 1.5× its longer side.
        """
        return self.landmarks_all(image_bgr, [crop_box])[0]

    def landmarks_all(self, image_bgr: np.ndarray, crop_boxes: list[CropBox | np.ndarray]
                      ) -> list[tuple[np.ndarray, float]]:
        """:meth:`landmarks` for several crops; on an engine that can ``submit`` (Triton) the calls are all
        sent before the first answer is read, so several faces' calls overlap."""
        boxes = [b if isinstance(b, CropBox) else crop_from_box(np.asarray(b, np.float64)) for b in crop_boxes]
        feeds = [None if _degenerate(b) else {self._input_name: mesh_input(crop_image(image_bgr, b))}
                 for b in boxes]
        submit = getattr(self.engine, "submit", None)
        pending = [None if f is None or submit is None else submit(f) for f in feeds]
        results = []
        for box, feed, future in zip(boxes, feeds, pending, strict=True):
            if feed is None:
                results.append((np.zeros((NUM_POINTS, 3), np.float32), 0.0))  # a degenerate crop holds no face
                continue
            outputs = future.result() if future is not None else self.engine.run(feed)
            results.append(self._points(outputs, box))
        return results

    def _points(self, outputs: dict[str, np.ndarray], crop_box: CropBox) -> tuple[np.ndarray, float]:
        mesh = presence = None
        for array in outputs.values():
            if array.size == NUM_POINTS * 3:
                mesh = array.reshape(NUM_POINTS, 3)
            elif array.size == 1:
                presence = float(array.reshape(()))
        if mesh is None or presence is None:
            shapes = [a.shape for a in outputs.values()]
            raise ValueError(f"face mesh outputs {shapes}: expected 1404 values and 1 logit")
        return points_to_image(mesh, crop_box), sigmoid(presence)


def keypoints_from_landmarks(points: np.ndarray) -> np.ndarray:
    """The detector's 5 keypoints from a mesh: eye centres (mean of each eye's contour), nose tip,
    mouth corners — 5×2 float32, in Face.keypoints order."""
    return np.stack([
        points[list(LEFT_EYE_RING), :2].mean(axis=0),
        points[list(RIGHT_EYE_RING), :2].mean(axis=0),
        points[NOSE_TIP, :2],
        points[MOUTH_LEFT, :2],
        points[MOUTH_RIGHT, :2],
    ]).astype(np.float32)


def box_from_landmarks(points: np.ndarray) -> np.ndarray:
    """Axis-aligned x1y1x2y2 bounding box of the mesh points (float32)."""
    xy = points[:, :2]
    return np.concatenate([xy.min(axis=0), xy.max(axis=0)]).astype(np.float32)
