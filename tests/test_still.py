"""Faces at rest keep their landmarks for a few frames when several are tracked (faces/still.py)."""

from __future__ import annotations

from collections.abc import Callable

import cv2
import numpy as np

from realtime.engines.base import Engine
from realtime.faces.analyzer import FaceAnalyzer
from realtime.faces.detector import ScrfdDetector
from realtime.faces.landmarks import FaceMesh
from realtime.faces.still import STILL_REUSE


def front_row(sample_image: Callable[[str], np.ndarray]) -> np.ndarray:
    """Eight faces of the 1927 Solvay photo's front row in a 1280×720 frame."""
    photo = sample_image("solvay_conference_1927.jpg")
    return np.ascontiguousarray(cv2.resize(photo[900:1620, 700:1980], (1280, 720), interpolation=cv2.INTER_AREA))


class CountingMesh(FaceMesh):
    calls = 0

    def landmarks_all(self, image_bgr: np.ndarray, crop_boxes: list) -> list[tuple[np.ndarray, float]]:  # type: ignore[override]
        self.calls += len(crop_boxes)  # every mesh run goes through here (landmarks() too)
        return super().landmarks_all(image_bgr, crop_boxes)


def test_resting_faces_skip_mesh_runs_and_motion_brings_them_back(
        scrfd_engine: Engine, mesh_engine: Engine, sample_image: Callable[[str], np.ndarray]) -> None:
    image = front_row(sample_image)
    mesh = CountingMesh(mesh_engine)
    analyzer = FaceAnalyzer(detector=ScrfdDetector(scrfd_engine), mesh=mesh, max_faces=4)
    rng = np.random.default_rng(0)
    frames = [np.clip(image + rng.normal(0, 2, image.shape), 0, 255).astype(np.uint8) for _ in range(21)]
    first = analyzer.track(frames[0], timestamp_s=0.0)
    assert len(first) == 4
    mesh.calls = 0
    for i, frame in enumerate(frames[1:], 1):
        faces = analyzer.track(frame, timestamp_s=i / 30)
    assert len(faces) == 4
    # Each face is meshed about once in STILL_REUSE + 1 frames, and the runs are spread over the frames.
    assert mesh.calls <= 4 * 20 / (STILL_REUSE + 1) + 8  # (+ a few restarts while the tracks settle)
    moved = np.roll(frames[-1], 12, axis=1)  # everyone moves 12 px to the right
    mesh.calls = 0
    after = analyzer.track(moved, timestamp_s=21 / 30)
    assert mesh.calls >= 4  # every face is meshed again at once
    shift = [float(np.median(b.landmarks[:, 0] - a.landmarks[:, 0])) for a, b in  # type: ignore[index]
             zip(sorted(faces, key=lambda f: f.box[0]), sorted(after, key=lambda f: f.box[0]), strict=True)]
    assert all(s > 4 for s in shift)  # the landmarks followed (smoothing takes the rest over a few frames)


def test_one_face_is_meshed_on_every_frame(scrfd_engine: Engine, mesh_engine: Engine,
                                           sample_image: Callable[[str], np.ndarray]) -> None:
    image = front_row(sample_image)
    mesh = CountingMesh(mesh_engine)
    analyzer = FaceAnalyzer(detector=ScrfdDetector(scrfd_engine), mesh=mesh, max_faces=1)
    analyzer.track(image, timestamp_s=0.0)
    mesh.calls = 0
    for i in range(1, 11):
        analyzer.track(image, timestamp_s=i / 30)
    assert mesh.calls == 10
