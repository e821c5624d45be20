"""Video keypoints from the mesh in the detector's convention (realtime/faces/keypoints.py)."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from realtime.faces import keypoints as kp
from realtime.faces.landmarks import LEFT_EYE_RING, RIGHT_EYE_RING

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tools"))
import measure_framing

UPPER_LIDS = (159, 158, 160, 386, 385, 387)  # upper-eyelid points of the mesh (both eyes)


def test_offsets_fit_back_to_the_detection_and_turn_with_the_face() -> None:
    rng = np.random.default_rng(0)
    points = rng.uniform(100, 200, (468, 3))
    detected = kp.anchors(points) + rng.normal(0, 2, (5, 2))
    offsets = kp.fit_offsets(points, detected, weight=1.0)
    np.testing.assert_allclose(kp.keypoints(points, offsets), detected, atol=1e-3)
    angle, scale, shift = np.radians(20), 1.3, np.array([40.0, -25.0])
    rotation = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    moved = points.copy()
    moved[:, :2] = points[:, :2] @ rotation.T * scale + shift
    np.testing.assert_allclose(kp.keypoints(moved, offsets), detected @ rotation.T * scale + shift, atol=1e-3)


def test_a_blink_does_not_move_the_eye_keypoints(model_file: Callable[[str], Path],
                                                 sample_image: Callable[[str], np.ndarray]) -> None:
    """Closing the upper lids (moving them 40% of the way down to the lower lids) leaves the eye points
    where they were; the old eye-contour means moved with the lids."""
    from realtime.faces.analyzer import FaceAnalyzer

    analyzer = FaceAnalyzer.open(root=model_file("scrfd").parent, backend="onnxruntime", device="cpu")
    face = analyzer.analyze_still(sample_image("newton.png"))[0]
    assert face.landmarks is not None
    open_eyes = face.landmarks.copy()
    blink = open_eyes.copy()
    blink[list(UPPER_LIDS), 1] += 0.4 * (open_eyes[[145, 153, 144, 374, 380, 373], 1] - open_eyes[list(UPPER_LIDS), 1])
    eye_distance = float(np.linalg.norm(face.keypoints[1] - face.keypoints[0]))
    now = np.abs(kp.keypoints(blink, None) - kp.keypoints(open_eyes, None)).max()
    assert now < 1e-6 * eye_distance
    old = np.abs(measure_framing.mesh_keypoints(blink) - measure_framing.mesh_keypoints(open_eyes))[:2].max()
    assert old > 0.005 * eye_distance  # what the eye-contour means did
    assert set(UPPER_LIDS) <= set(LEFT_EYE_RING) | set(RIGHT_EYE_RING)


def test_video_keypoints_frame_the_crop_like_scrfd(models_root: Path,
                                                  sample_image: Callable[[str], np.ndarray]) -> None:
    """On a moving clip of newton.png the 128 crop from the tracker's points stays within 4 px (points),
    1.06× (scale) and 3 px (centre) of the crop from SCRFD's points on the same frame."""
    result = measure_framing.measure(sample_image("newton.png"), frames=8, root=models_root)
    tracker = result["summary"]["tracker"]
    assert result["faces_compared"] == 8
    assert tracker["points_px_max"] < 4.0 and tracker["scale_worst"] < 1.06 and tracker["centre_px_max"] < 3.0


@pytest.mark.parametrize("weight", [0.0, 0.25, 1.0])
def test_offsets_blend_from_the_prior(weight: float) -> None:
    rng = np.random.default_rng(1)
    points = rng.uniform(100, 200, (468, 3))
    target = kp.fit_offsets(points, kp.anchors(points) + 5.0, weight=1.0)
    blended = kp.fit_offsets(points, kp.anchors(points) + 5.0, weight=weight)
    np.testing.assert_allclose(blended, weight * target + (1 - weight) * kp.PRIOR_OFFSETS, atol=1e-9)
