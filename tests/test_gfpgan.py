"""GFPGAN enhancer on a stand-in with the real tensor names, shapes and value range."""

from __future__ import annotations

import logging
import math
import os
from pathlib import Path

import cv2
import neural_standins as standins
import numpy as np
import pytest

from realtime.engines.ort import OrtEngine
from realtime.enhancers.gfpgan import (
    EnhancedSwapper,
    Gfpgan,
    GfpganEnhancer,
    GfpganOptions,
    with_enhancer,
)
from realtime.errors import ModelError, UsageError
from realtime.faces import align
from realtime.faces.types import Face
from realtime.frame import Frame

W, H = 800, 640
# The face: FFHQ crop centre at (400, 330), 1.4× the crop size in the frame, tilted −10°.
_A = math.radians(-10.0)
TO_CROP = np.array([[math.cos(_A), -math.sin(_A), 0.0], [math.sin(_A), math.cos(_A), 0.0]]) / 1.4
TO_CROP[:, 2] = np.array([256.0, 256.0]) - TO_CROP[:, :2] @ np.array([400.0, 330.0])
KPS = align.apply(align.invert(TO_CROP), align.FFHQ_512).astype(np.float32)
FACE = Face(box=np.array([200, 100, 600, 560], np.float32), keypoints=KPS, score=0.9)


def enhancer(tmp_path: Path, *, options: GfpganOptions | None = None, **kwargs: object) -> GfpganEnhancer:
    path = standins.gfpgan(tmp_path / "GFPGANv1.4.onnx", **kwargs)  # type: ignore[arg-type]
    model = Gfpgan(engine=OrtEngine(path, providers=["CPUExecutionProvider"]))
    return GfpganEnhancer(model=model, options=options or GfpganOptions(blend=1.0))


def smooth_image(seed: int, lo: int = 30, hi: int = 200) -> np.ndarray:
    rng = np.random.default_rng(seed)
    small = rng.uniform(lo, hi, (H // 16 + 2, W // 16 + 2, 3)).astype(np.float32)
    big = cv2.resize(small, (W + 32, H + 32), interpolation=cv2.INTER_CUBIC)[16:-16, 16:-16]
    return np.clip(cv2.GaussianBlur(big, (0, 0), 6), 0, 255).astype(np.uint8)


def centre(image: np.ndarray) -> np.ndarray:
    x, y = np.round(KPS.mean(axis=0)).astype(int)
    return image[y - 4:y + 5, x - 4:x + 5].reshape(-1, 3).mean(axis=0)


def test_input_is_rgb_in_minus1_1_and_output_read_back_as_rgb(tmp_path: Path) -> None:
    """Stand-in output = (0.5·R, −1, −1). A uniform BGR (30, 90, 200) face must come back as BGR (0, 0, 164):
    BGR input gives R 79, a [0, 1] input 177, a [0, 1] output reading 72, BGR output (164, 0, 0)."""
    enh = enhancer(tmp_path, gain=np.array([0.5, 0.0, 0.0]), offset=np.array([0.0, -1.0, -1.0]))
    frame = np.empty((H, W, 3), np.uint8)
    frame[:] = (30, 90, 200)
    enh.enhance(frame, FACE)
    np.testing.assert_allclose(centre(frame), [0, 0, 164], atol=1.0)


def test_restored_face_lands_where_it_came_from(tmp_path: Path) -> None:
    """A white 7×7 block at the FFHQ left eye (crop px 190–196 × 237–243) lands on the face's left eye."""
    mark = np.zeros((3, 512, 512))
    mark[:, 237:244, 190:197] = 1.0
    enh = enhancer(tmp_path, gain=1.0 - mark, offset=mark)  # keeps its input, paints +1 (white) in the block
    original = smooth_image(2)
    frame = original.copy()
    enh.enhance(frame, FACE)
    white = np.argwhere((frame > 240).all(axis=2))
    assert len(white) > 20
    cy, cx = white.mean(axis=0)
    ex, ey = align.apply(align.invert(TO_CROP), [[193.0, 240.0]])[0]
    assert math.hypot(cx - ex, cy - ey) < 0.75, ((cx, cy), (ex, ey))
    assert math.hypot(*(KPS[0] - [ex, ey])) < 1.5  # the left-eye keypoint
    inner = cv2.warpAffine(np.full((512, 512), 255, np.uint8), align.invert(TO_CROP), (W, H)) == 255
    block = np.zeros((H, W), bool)
    block[white.min(0)[0] - 3:white.max(0)[0] + 4, white.min(0)[1] - 3:white.max(0)[1] + 4] = True
    diff = np.abs(frame.astype(int) - original)[inner & ~block]
    assert diff.mean() < 1.0 and diff.max() <= 10


@pytest.mark.parametrize("weight", [0.0, 0.5, 1.0])
def test_blend_weight(tmp_path: Path, weight: float) -> None:
    enh = enhancer(tmp_path, gain=0.0, offset=1.0, options=GfpganOptions(blend=weight))
    original = smooth_image(3)
    frame = original.copy()
    enh.enhance(frame, FACE)
    np.testing.assert_allclose(centre(frame), centre(original) * (1 - weight) + 255 * weight, atol=1.0)


def test_blend_weight_is_checked() -> None:
    with pytest.raises(UsageError, match="E01"):
        GfpganOptions(blend=1.5)


def test_live_mode_warns_once_with_the_measured_cost(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    enh = enhancer(tmp_path, options=GfpganOptions(live=True, warn_after=3))
    image = smooth_image(4)
    with caplog.at_level(logging.WARNING, logger="realtime.enhancers.gfpgan"):
        for seq in range(6):
            frame = Frame(image=image, seq=seq, t_capture=0)
            enh.enhance(frame.image, FACE, frame)
            enh.enhance(frame.image, FACE, frame)  # two faces in one frame count as one frame
            assert len(caplog.records) == (1 if seq >= 2 else 0)
            assert "enhance" in frame.stages
    cost = enh.cost_ms_per_frame()
    assert cost is not None and cost > 0
    assert "ms per frame (measured over 3 frames)" in caplog.records[0].getMessage()


def test_not_live_does_not_warn(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    enh = enhancer(tmp_path, options=GfpganOptions(live=False, warn_after=1))
    with caplog.at_level(logging.WARNING):
        for _ in range(3):
            enh.enhance(smooth_image(4), FACE)
    assert not caplog.records


def test_enhanced_swapper_swaps_then_enhances(tmp_path: Path) -> None:
    calls: list[str] = []

    class Recorder:
        name = "fake"

        def prepare(self, source_image: np.ndarray, source_face: Face) -> None:
            calls.append("prepare")

        def swap(self, image: np.ndarray, face: Face, frame: Frame | None = None) -> None:
            calls.append("swap")
            image[:] = 0  # the enhancer must see the swapped image

    enh = enhancer(tmp_path, gain=1.0, offset=0.0)
    wrapped = EnhancedSwapper(swapper=Recorder(), enhancer=enh)
    assert wrapped.name == "fake+gfpgan"
    wrapped.prepare_many([(smooth_image(1), FACE), (smooth_image(2), FACE)])  # no prepare_many: first photo
    frame = Frame(image=smooth_image(5), seq=0, t_capture=0)
    wrapped.swap(frame.image, FACE, frame)
    assert calls == ["prepare", "swap"]
    assert int(frame.image.max()) == 0 and "enhance" in frame.stages
    assert with_enhancer(Recorder(), "none") is not None
    with pytest.raises(UsageError):
        with_enhancer(Recorder(), "codeformer")


def test_open_without_the_model_is_E06(tmp_path: Path) -> None:
    with pytest.raises(ModelError) as info:
        GfpganEnhancer.open(root=tmp_path, device="cpu")
    assert info.value.code == "E06" and "--neural" in str(info.value)


REAL = os.environ.get("SWAPCAM_MODELS")


@pytest.mark.neural
@pytest.mark.skipif(not (REAL and (Path(REAL) / "GFPGANv1.4.onnx").is_file()),
                    reason="GFPGANv1.4.onnx is not here: set SWAPCAM_MODELS to a folder with the neural models "
                           "(swapcam models fetch --neural)")
def test_real_gfpgan_keeps_the_face() -> None:
    from realtime.faces.analyzer import FaceAnalyzer
    from realtime.images import load_image
    from realtime.models import sample_path

    root = Path(REAL or "")
    image = load_image(sample_path("gauss.png", root=root))
    face = FaceAnalyzer.open(root=root, device="cpu").analyze_still(image)[0]
    enh = GfpganEnhancer.open(root=root, device="cpu", options=GfpganOptions(blend=1.0))
    assert enh.model.input.name == "input" and enh.model.output == "output"
    restored = image.copy()
    enh.enhance(restored, face)
    diff = np.abs(restored.astype(int) - image)
    assert diff.max() > 0 and diff.mean() < 20  # restored, not replaced
