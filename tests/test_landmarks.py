"""Face mesh: crop transform and its inverse, then the real model against the detector and the truth."""

from __future__ import annotations

import math
from collections.abc import Callable

import cv2
import numpy as np
import pytest

from realtime.engines.base import Engine, TensorSpec
from realtime.faces.analyzer import FaceAnalyzer
from realtime.faces.detector import ScrfdDetector
from realtime.faces.landmarks import (
    MESH_SIZE,
    CropBox,
    FaceMesh,
    crop_from_detection,
    crop_from_landmarks,
    crop_image,
    crop_matrix,
    keypoints_from_landmarks,
    points_to_image,
)


def _iod(keypoints: np.ndarray) -> float:
    return float(np.linalg.norm(np.asarray(keypoints[0]) - np.asarray(keypoints[1])))


# ---------------------------------------------------------------- crop geometry


def test_crop_transform_and_inverse_round_trip() -> None:
    crop = CropBox(cx=300.0, cy=200.0, size=150.0, angle=0.4)
    matrix = crop_matrix(crop)
    assert matrix @ [300, 200, 1] == pytest.approx([MESH_SIZE / 2, MESH_SIZE / 2])
    points = np.random.default_rng(0).uniform(0, 500, (50, 3)).astype(np.float32)
    in_crop = np.c_[points[:, :2] @ matrix[:, :2].T + matrix[:, 2], points[:, 2] * MESH_SIZE / crop.size]
    assert points_to_image(in_crop, crop) == pytest.approx(points, abs=1e-3)


def test_crop_turns_the_eye_line_level() -> None:
    """A point right of the centre along a 30° eye line lands right of the crop centre, level with it."""
    angle = math.radians(30)
    crop = CropBox(cx=100.0, cy=100.0, size=96.0, angle=angle)
    matrix = crop_matrix(crop)
    along = np.array([100 + 24 * math.cos(angle), 100 + 24 * math.sin(angle), 1.0])
    assert matrix @ along == pytest.approx([MESH_SIZE / 2 + 48, MESH_SIZE / 2])


def test_crop_image_samples_the_right_pixels() -> None:
    image = np.zeros((400, 400, 3), np.uint8)
    image[100:200, 150:250] = (0, 0, 255)  # a red 100² square centred at (200, 150)
    crop = crop_image(image, CropBox(cx=200.0, cy=150.0, size=200.0))
    assert crop.shape == (MESH_SIZE, MESH_SIZE, 3)
    assert crop[MESH_SIZE // 2, MESH_SIZE // 2].tolist() == [0, 0, 255]
    assert crop[5, 5].tolist() == [0, 0, 0]
    outside = crop_image(image, CropBox(cx=-500.0, cy=-500.0, size=100.0))
    assert not outside.any()


def test_crop_from_detection_is_1_5_times_the_box_turned_by_the_eyes() -> None:
    box = np.array([100, 100, 200, 220], np.float32)
    eyes = np.array([[120, 150], [180, 150 + 60 * math.tan(math.radians(10))]], np.float32)
    crop = crop_from_detection(box, eyes)
    assert (crop.cx, crop.cy, crop.size) == pytest.approx((150, 160, 180))
    assert math.degrees(crop.angle) == pytest.approx(10, abs=1e-3)


# ---------------------------------------------------------------- the real model


@pytest.fixture(scope="module")
def analyzer(scrfd_engine: Engine, mesh_engine: Engine) -> FaceAnalyzer:
    return FaceAnalyzer(detector=ScrfdDetector(scrfd_engine), mesh=FaceMesh(mesh_engine))


@pytest.mark.parametrize("name", ["newton.png", "gauss.png"])
def test_mesh_eyes_and_mouth_agree_with_the_detector(analyzer: FaceAnalyzer, truth: dict,
                                                     sample_image: Callable[[str], np.ndarray],
                                                     name: str) -> None:
    """Eye centres (mean of each eye contour), nose tip (1) and mouth corners (61, 291) of the mesh lie
    within 10% of the inter-ocular distance of the detector's keypoints and of the truth. Not 5%: the
    two models were trained on different annotations (SCRFD marks the pupil, the mesh the eye contour;
    lip corners differ by a few pixels between the conventions); measured ≤ 7.2% here."""
    image = sample_image(name)
    (face,) = analyzer.analyze_still(image)
    assert face.landmarks is not None and face.landmarks.shape == (468, 3)
    assert face.landmarks.dtype == np.float32
    assert face.presence > 0.9
    mesh_points = keypoints_from_landmarks(face.landmarks)
    detector_points = ScrfdDetector(analyzer.detector.engine).detect(image, size=640)[0].keypoints
    expected = np.array(truth[name][0]["keypoints"], np.float32)
    for reference in (detector_points, expected):
        error = np.linalg.norm(mesh_points - reference, axis=1) / _iod(reference)
        assert error.max() <= 0.10, error


def test_landmarks_follow_a_rotated_face(analyzer: FaceAnalyzer,
                                         sample_image: Callable[[str], np.ndarray]) -> None:
    """The crop turns with the eye line, so a face rotated by 25° gets the same mesh, rotated."""
    image = cv2.resize(sample_image("gauss.png"), None, fx=0.5, fy=0.5, interpolation=cv2.INTER_AREA)
    (upright,) = analyzer.analyze_still(image)
    assert upright.landmarks is not None
    centre = upright.landmarks[:, :2].mean(axis=0)
    rotation = cv2.getRotationMatrix2D((float(centre[0]), float(centre[1])), -25, 1.0)  # clockwise on screen
    turned_image = cv2.warpAffine(image, rotation, (image.shape[1], image.shape[0]),
                                  borderMode=cv2.BORDER_REFLECT)
    (turned,) = analyzer.analyze_still(turned_image)
    assert turned.landmarks is not None
    crop = crop_from_landmarks(turned.landmarks)
    assert math.degrees(crop.angle - crop_from_landmarks(upright.landmarks).angle) == pytest.approx(25, abs=3)
    moved = upright.landmarks[:, :2] @ rotation[:, :2].T + rotation[:, 2]
    width = float(np.ptp(upright.landmarks[:, 0]))
    assert np.linalg.norm(turned.landmarks[:, :2] - moved, axis=1).mean() <= 0.02 * width


def test_a_plain_box_gets_an_upright_square_crop(analyzer: FaceAnalyzer,
                                                 sample_image: Callable[[str], np.ndarray]) -> None:
    image = sample_image("newton.png")
    face = analyzer.detector.detect(image, size=640)[0]
    points, presence = analyzer.mesh.landmarks(image, face.box)
    assert presence > 0.9
    error = np.linalg.norm(keypoints_from_landmarks(points) - face.keypoints, axis=1) / _iod(face.keypoints)
    assert error.max() <= 0.10
    zeros, nothing = analyzer.mesh.landmarks(image, CropBox(10.0, 10.0, 0.0))
    assert nothing == 0.0 and not zeros.any()


def test_presence_is_low_without_a_face(analyzer: FaceAnalyzer) -> None:
    noise = np.random.default_rng(0).integers(0, 256, (300, 300, 3), dtype=np.uint8)
    _, presence = analyzer.mesh.landmarks(noise, CropBox(150.0, 150.0, 250.0))
    assert presence < 0.1


def test_an_unexpected_model_is_refused() -> None:
    class WrongModel:
        backend, provider = "fake", "fake"

        def __init__(self) -> None:
            self.inputs = [TensorSpec("x", (1, 3, 192, 192), np.dtype(np.float32))]
            self.outputs: list[TensorSpec] = []

        def run(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
            return {"y": np.zeros((1, 10), np.float32)}

    with pytest.raises(ValueError, match="1404"):
        FaceMesh(WrongModel()).landmarks(np.zeros((50, 50, 3), np.uint8), CropBox(25.0, 25.0, 40.0))
