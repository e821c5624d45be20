#!/usr/bin/env python3
"""How far the video keypoints frame the inswapper's 128 crop from where SCRFD's keypoints frame it.

    python tools/measure_framing.py                      # models/samples/readme.jpg, 40 frames
    python tools/measure_framing.py --image PHOTO --frames 60 --json out/framing.json

A clip is made from the photo by a smooth, known motion (turn ±6°, zoom 0.9-1.15, shift ±24 px). Each
frame goes through the video tracker (detector at the start, then the mesh, smoothing off so only the
keypoint convention is measured), and SCRFD runs on every frame as the reference. For every tracked face
matched to a detection it reports, between the 128 crop from SCRFD's points and the crop from the
tracker's points: the largest displacement of the 5 template points (crop px), the scale ratio and the
shift of the crop centre (crop px) — for the raw mesh points (eye-contour means, nose tip, mouth
corners: the old video keypoints) and for the keypoints the tracker gives now (faces/keypoints.py).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from realtime.faces import align
from realtime.faces.landmarks import LEFT_EYE_RING, MOUTH_LEFT, MOUTH_RIGHT, NOSE_TIP, RIGHT_EYE_RING

CROP = 128


def mesh_keypoints(points: np.ndarray) -> np.ndarray:
    """The old video keypoints: mean of each eye's contour, nose tip, mouth corners."""
    xy = points[:, :2]
    return np.stack([xy[list(LEFT_EYE_RING)].mean(axis=0), xy[list(RIGHT_EYE_RING)].mean(axis=0), xy[NOSE_TIP],
                     xy[MOUTH_LEFT], xy[MOUTH_RIGHT]]).astype(np.float32)


def framing_difference(reference: np.ndarray, keypoints: np.ndarray) -> dict[str, float]:
    """Template-point displacement (max, crop px), scale ratio and centre shift of the crop from
    ``keypoints`` against the crop from ``reference`` (both 5×2 image points)."""
    to_ref, to_kp = align.alignment(reference, CROP), align.alignment(keypoints, CROP)
    ref_to_kp = np.vstack([to_kp, [0, 0, 1]]) @ np.vstack([align.invert(to_ref), [0, 0, 1]])
    moved = align.apply(ref_to_kp[:2], align.template(CROP))
    centre = align.apply(ref_to_kp[:2], np.array([[CROP / 2, CROP / 2]]))[0]
    return {"points_px": float(np.linalg.norm(moved - align.template(CROP), axis=1).max()),
            "scale": float(math.sqrt(abs(np.linalg.det(ref_to_kp[:2, :2])))),
            "centre_px": float(np.linalg.norm(centre - CROP / 2))}


def motion(t: float, size: tuple[int, int]) -> np.ndarray:
    """The clip's known motion at t in [0, 1]: a 2×3 similarity about the image centre."""
    w, h = size
    angle = 6.0 * math.sin(2 * math.pi * t)
    scale = 1.025 + 0.125 * math.sin(2 * math.pi * t + 1.0)
    matrix: np.ndarray = cv2.getRotationMatrix2D((w / 2, h / 2), angle, scale)
    matrix[:, 2] += np.array([24 * math.sin(2 * math.pi * t + 2.0), 24 * math.cos(2 * math.pi * t)])
    return matrix


def measure(image: np.ndarray, *, frames: int = 40, backend: str = "onnxruntime", device: str = "cpu",
            root: Path | None = None, det_size: int = 640, reference_size: int = 1920) -> dict[str, Any]:
    """Run the clip; per-keypoint-kind lists of framing differences and their summary."""
    from realtime.faces.analyzer import FaceAnalyzer

    analyzer = FaceAnalyzer.open(root=root, backend=backend, device=device, max_faces=8, smoothing=False,
                                 det_size=det_size)
    rows: dict[str, list[dict[str, float]]] = {"mesh_raw": [], "tracker": []}
    h, w = image.shape[:2]
    for index in range(frames):
        frame = cv2.warpAffine(image, motion(index / frames, (w, h)), (w, h), borderMode=cv2.BORDER_REFLECT)
        tracked = analyzer.track(frame, timestamp_s=index / 30)
        detected = analyzer.detector.detect(frame, size=reference_size)
        for face in tracked:
            if not detected:
                break
            centre = face.keypoints.mean(axis=0)
            nearest = min(detected, key=lambda d: float(np.linalg.norm(d.keypoints.mean(axis=0) - centre)))
            if np.linalg.norm(nearest.keypoints.mean(axis=0) - centre) > 0.5 * (face.box[2] - face.box[0]):
                continue
            assert face.landmarks is not None
            rows["mesh_raw"].append(framing_difference(nearest.keypoints, mesh_keypoints(face.landmarks)))
            rows["tracker"].append(framing_difference(nearest.keypoints, face.keypoints))
    analyzer.close()
    summary = {kind: summarise(values) for kind, values in rows.items()}
    return {"frames": frames, "faces_compared": len(rows["tracker"]), "summary": summary}


def summarise(values: list[dict[str, float]]) -> dict[str, float]:
    if not values:
        return {}
    points = np.array([v["points_px"] for v in values])
    scale = np.array([v["scale"] for v in values])
    centre = np.array([v["centre_px"] for v in values])
    worst_scale = float(np.max(np.maximum(scale, 1 / scale)))
    return {"points_px_max": float(points.max()), "points_px_median": float(np.median(points)),
            "scale_worst": worst_scale, "centre_px_max": float(centre.max()),
            "centre_px_median": float(np.median(centre))}


def main(argv: list[str] | None = None) -> int:
    from realtime import models
    from realtime.images import load_image

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--image", type=Path, help="photo (default: models/samples/readme.jpg)")
    parser.add_argument("--frames", type=int, default=40)
    parser.add_argument("--json", type=Path, help="also write the result here")
    args = parser.parse_args(argv)
    path = args.image or models.sample_path("readme.jpg")
    result = measure(load_image(path, max_side=4096), frames=args.frames)
    result["image"] = str(path)
    print(json.dumps(result, indent=2))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=2), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
