"""The source photo's keypoints come from det_10g when it was fetched (the detector ArcFace pairs with)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import neural_standins as standins
import numpy as np

from realtime.engines.base import Engine
from realtime.engines.ort import OrtEngine
from realtime.faces.detector import ScrfdDetector
from realtime.swappers.inswapper import ArcFace, Inswapper, InswapperSwapper


def test_source_embedding_uses_the_source_detectors_keypoints(tmp_path: Path, scrfd_engine: Engine,
                                                              sample_image: Callable[[str], np.ndarray]) -> None:
    """The scrfd model stands in for det_10g (same outputs). The face handed over has keypoints a few
    pixels off; the prepared identity is the one of the detector's keypoints, not of those."""
    arcface_path = standins.arcface(tmp_path / "w600k_r50.onnx")
    swapper_path = standins.inswapper(tmp_path / "inswapper_128.onnx")

    def open_swapper(source_detector: ScrfdDetector | None) -> InswapperSwapper:
        cpu = ["CPUExecutionProvider"]
        model = Inswapper.from_file(swapper_path, engine=OrtEngine(swapper_path, providers=cpu))
        return InswapperSwapper(swapper=model, arcface=ArcFace(engine=OrtEngine(arcface_path, providers=cpu)),
                                source_detector=source_detector)

    image = sample_image("newton.png")
    detector = ScrfdDetector(scrfd_engine)
    face = detector.detect(image, size=640)[0]
    shifted = replace(face, keypoints=face.keypoints + np.array([4.0, -3.0], np.float32))
    with_detector = open_swapper(detector)
    with_detector.prepare(image, shifted)
    exact = open_swapper(None)
    exact.prepare(image, face)
    off = open_swapper(None)
    off.prepare(image, shifted)
    assert with_detector.identity is not None and exact.identity is not None and off.identity is not None
    np.testing.assert_allclose(with_detector.identity, exact.identity, atol=1e-6)
    assert not np.allclose(off.identity, exact.identity, atol=1e-3)  # the shift matters, so the test can fail
