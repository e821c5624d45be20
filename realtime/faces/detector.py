"""SCRFD face detector: boxes, scores and 5 keypoints at any input size that is a multiple of 32.

The model takes an RGB image normalised to (x − 127.5) / 128 in NCHW layout
and returns, for each of the strides 8, 16 and 32, per anchor (two anchors
per feature-map cell) a score, four distances from the anchor centre to the
box sides and ten keypoint offsets, all in units of the stride.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

from realtime.engines.base import Engine
from realtime.errors import UsageError
from realtime.faces.types import Face

STRIDES = (8, 16, 32)
ANCHORS_PER_CELL = 2
# 320 on a 2-core CPU: ≈26 ms at 320×320 (≈16 ms at 320×192 for a 16:9 frame) against ≈110 ms at 640.
# A webcam face at 1280×720 is ≥ 80 px tall, still ≥ 20 px at 320 — above SCRFD's smallest (stride 8,
# 16 px) anchors. Photos with small faces use 640 (FaceAnalyzer.analyze_still).
DEFAULT_INPUT_SIZE = 320


@dataclass(frozen=True)
class DetectorOptions:
    """``input_size``: long side of the network input (multiple of 32); ``score_threshold``: keep
    detections scoring at least this; ``nms_threshold``: drop a box overlapping a better one by more
    than this IoU."""

    input_size: int = DEFAULT_INPUT_SIZE
    score_threshold: float = 0.5
    nms_threshold: float = 0.4

    def __post_init__(self) -> None:
        check_input_size(self.input_size)
        if not 0.0 < self.score_threshold < 1.0:
            raise UsageError("E01", f"detector score threshold {self.score_threshold}",
                             remedy="use a threshold between 0 and 1, e.g. 0.5")
        if not 0.0 < self.nms_threshold <= 1.0:
            raise UsageError("E01", f"detector NMS threshold {self.nms_threshold}",
                             remedy="use a threshold between 0 and 1, e.g. 0.4")


def check_input_size(size: int) -> None:
    """Detector input sizes are multiples of 32 from 64 to 2048."""
    if size % 32 or not 64 <= size <= 2048:
        raise UsageError("E01", f"detector input size {size} is not a multiple of 32 in 64..2048",
                         remedy="use e.g. --det-size 320 (fast), 480 or 640 (small faces)")


def input_shape(image_hw: tuple[int, int], size: int) -> tuple[int, int]:
    """(height, width) of the network input: the long side is ``size``, the short side is the
    image's aspect scaled and rounded up to a multiple of 32 (a 16:9 frame needs no square input)."""
    height, width = image_hw
    scale = size / max(height, width)
    short = max(32, math.ceil(min(height, width) * scale / 32) * 32)
    return (size, short) if height >= width else (short, size)


def letterbox(image_bgr: np.ndarray, height: int, width: int) -> tuple[np.ndarray, float]:
    """Resize keeping the aspect ratio into the top-left of a black ``height``×``width`` canvas.

    Returns the 1×3×H×W float32 RGB blob normalised to (x − 127.5) / 128 and the scale
    (network pixels per image pixel).
    """
    scale = min(height / image_bgr.shape[0], width / image_bgr.shape[1])
    new_w = min(width, max(1, round(image_bgr.shape[1] * scale)))
    new_h = min(height, max(1, round(image_bgr.shape[0] * scale)))
    canvas = np.zeros((height, width, 3), np.uint8)
    canvas[:new_h, :new_w] = cv2.resize(image_bgr, (new_w, new_h), interpolation=cv2.INTER_AREA
                                        if scale < 1 else cv2.INTER_LINEAR)
    blob = cv2.dnn.blobFromImage(canvas, 1.0 / 128.0, (width, height), (127.5, 127.5, 127.5), swapRB=True)
    return blob, scale


def anchor_centers(height: int, width: int, stride: int, per_cell: int = ANCHORS_PER_CELL) -> np.ndarray:
    """(N, 2) x, y centres in input pixels, row-major over cells, ``per_cell`` consecutive copies each."""
    ys, xs = np.mgrid[: height // stride, : width // stride]
    centers = np.stack([xs, ys], axis=-1).reshape(-1, 2).astype(np.float32) * stride
    return np.repeat(centers, per_cell, axis=0)


def decode_boxes(centers: np.ndarray, distances: np.ndarray, stride: int) -> np.ndarray:
    """Anchor centres (N, 2) and (left, top, right, bottom) distances in strides (N, 4) → x1y1x2y2."""
    d = distances * stride
    return np.concatenate([centers - d[:, :2], centers + d[:, 2:]], axis=1)


def decode_keypoints(centers: np.ndarray, offsets: np.ndarray, stride: int) -> np.ndarray:
    """Anchor centres (N, 2) and (x, y) × 5 offsets in strides (N, 10) → (N, 5, 2) points."""
    return centers[:, None, :] + offsets.reshape(-1, 5, 2) * stride


def iou(box: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """Intersection over union of one x1y1x2y2 box with each of (N, 4) boxes."""
    x1 = np.maximum(box[0], boxes[:, 0])
    y1 = np.maximum(box[1], boxes[:, 1])
    x2 = np.minimum(box[2], boxes[:, 2])
    y2 = np.minimum(box[3], boxes[:, 3])
    inter = np.clip(x2 - x1, 0, None) * np.clip(y2 - y1, 0, None)
    area = (box[2] - box[0]) * (box[3] - box[1])
    areas = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    return inter / np.maximum(area + areas - inter, 1e-9)  # type: ignore[no-any-return]


def nms(boxes: np.ndarray, scores: np.ndarray, threshold: float) -> np.ndarray:
    """Greedy non-maximum suppression: indices of the kept boxes, best score first."""
    order = np.argsort(-scores, kind="stable")
    keep = []
    while order.size:
        best = order[0]
        keep.append(best)
        rest = order[1:]
        order = rest[iou(boxes[best], boxes[rest]) <= threshold]
    return np.array(keep, dtype=np.int64)


def group_outputs(outputs: dict[str, np.ndarray]) -> list[tuple[int, np.ndarray, np.ndarray, np.ndarray]]:
    """(stride, scores (N,), box distances (N, 4), keypoint offsets (N, 10)) per stride.

    Outputs are matched by shape, not by name or position: the last axis tells score (1), box (4)
    and keypoints (10) apart, and the anchor count orders the strides (most anchors = stride 8).
    """
    by_kind: dict[int, list[np.ndarray]] = {1: [], 4: [], 10: []}
    for array in outputs.values():
        last = array.shape[-1]
        if last not in by_kind:
            raise ValueError(f"unexpected SCRFD output shape {array.shape}")
        by_kind[last].append(array.reshape(-1, last))
    for kind in by_kind.values():
        kind.sort(key=len, reverse=True)
    if not all(len(kind) == len(STRIDES) for kind in by_kind.values()):
        raise ValueError(f"expected {len(STRIDES)} SCRFD outputs of each kind, got {len(outputs)} outputs")
    return [(stride, by_kind[1][i][:, 0], by_kind[4][i], by_kind[10][i]) for i, stride in enumerate(STRIDES)]


def decode(outputs: dict[str, np.ndarray], height: int, width: int,
           score_threshold: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """All anchors scoring ≥ ``score_threshold``: scores (N,), boxes (N, 4), keypoints (N, 5, 2)
    in network-input pixels."""
    scores, boxes, points = [], [], []
    for stride, score, distance, offset in group_outputs(outputs):
        hit = np.flatnonzero(score >= score_threshold)
        if hit.size == 0:
            continue
        centers = anchor_centers(height, width, stride)
        if len(centers) != len(score):
            raise ValueError(f"stride {stride}: {len(score)} anchors for a {width}×{height} input")
        scores.append(score[hit])
        boxes.append(decode_boxes(centers[hit], distance[hit], stride))
        points.append(decode_keypoints(centers[hit], offset[hit], stride))
    if not scores:
        return np.zeros(0, np.float32), np.zeros((0, 4), np.float32), np.zeros((0, 5, 2), np.float32)
    return np.concatenate(scores), np.concatenate(boxes), np.concatenate(points)


class ScrfdDetector:
    """SCRFD on an Engine: ``detect(image)`` → faces, largest first."""

    def __init__(self, engine: Engine, *, input_size: int = DEFAULT_INPUT_SIZE,
                 score_threshold: float = 0.5, nms_threshold: float = 0.4) -> None:
        self.engine = engine
        self.options = DetectorOptions(input_size=input_size, score_threshold=score_threshold,
                                       nms_threshold=nms_threshold)
        spec = engine.inputs[0]
        self._input_name = spec.name
        height, width = spec.shape[2:4] if len(spec.shape) == 4 else (None, None)
        # An engine built for one shape (e.g. a TensorRT engine) is fed exactly that shape.
        self._fixed = (height, width) if isinstance(height, int) and isinstance(width, int) else None

    @property
    def fixed_input(self) -> bool:
        """True when the engine takes one input shape only, so ``size`` cannot change it."""
        return self._fixed is not None

    def detect(self, image_bgr: np.ndarray, *, size: int | None = None) -> list[Face]:
        """Faces in an H×W×3 uint8 BGR image, largest first, in image pixels.

        ``size`` overrides the input size for this call (e.g. 640 for a photo).
        """
        if image_bgr.ndim != 3 or image_bgr.shape[2] != 3 or image_bgr.dtype != np.uint8:
            raise ValueError(f"expected an H×W×3 uint8 image, got {image_bgr.shape} {image_bgr.dtype}")
        if size is not None:
            check_input_size(size)
        height, width = self._fixed or input_shape(image_bgr.shape[:2], size or self.options.input_size)
        blob, scale = letterbox(image_bgr, height, width)
        outputs = self.engine.run({self._input_name: blob})
        scores, boxes, points = decode(outputs, height, width, self.options.score_threshold)
        keep = nms(boxes, scores, self.options.nms_threshold)
        image_h, image_w = image_bgr.shape[:2]
        faces = []
        for i in keep:
            box = (boxes[i] / scale).astype(np.float32)
            box = np.clip(box, 0, [image_w, image_h, image_w, image_h]).astype(np.float32)
            faces.append(Face(box=box, keypoints=(points[i] / scale).astype(np.float32),
                              score=float(scores[i])))
        faces.sort(key=lambda face: face.area, reverse=True)
        return faces
