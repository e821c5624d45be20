"""The neural swap path on stand-in models with the real tensor names, shapes and dtypes.

Each test is built so that the step it covers, done wrong, changes the
result: see the comments on what a mistake would produce.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

import cv2
import neural_standins as standins
import numpy as np
import onnxruntime as ort
import pytest

from realtime.engines.ort import OrtEngine
from realtime.errors import ModelError
from realtime.faces import align
from realtime.faces import mesh_topology as topo
from realtime.faces.types import Face
from realtime.frame import Frame
from realtime.swappers.inswapper import (
    ArcFace,
    DevicePath,
    Inswapper,
    InswapperOptions,
    InswapperSwapper,
    load_emap,
    neural_models_present,
    upcast_to_float32,
)

W, H = 640, 480
PLAIN = InswapperOptions(color_correct=False, keep_mouth=False)


def similarity(angle_deg: float, scale: float, centre_from: tuple[float, float], centre_to: tuple[float, float]
               ) -> np.ndarray:
    """Image → crop similarity taking ``centre_from`` (image) to ``centre_to`` (crop)."""
    a = math.radians(angle_deg)
    m = np.array([[scale * math.cos(a), -scale * math.sin(a), 0.0], [scale * math.sin(a), scale * math.cos(a), 0.0]])
    m[:, 2] = np.asarray(centre_to) - m[:, :2] @ np.asarray(centre_from)
    return m


# The target face in the test frames: crop centre at (330, 250), 2.2× bigger than the crop, tilted 15°.
TARGET_TO_CROP = similarity(15.0, 1 / 2.2, (330.0, 250.0), (64.0, 64.0))
TARGET_KPS = align.apply(align.invert(TARGET_TO_CROP), align.ARCFACE_128).astype(np.float32)


def face(keypoints: np.ndarray, landmarks: np.ndarray | None = None) -> Face:
    x1, y1 = keypoints.min(axis=0) - 40
    x2, y2 = keypoints.max(axis=0) + 40
    return Face(box=np.array([x1, y1, x2, y2], np.float32), keypoints=keypoints.astype(np.float32), score=0.9,
                landmarks=landmarks)


def smooth_image(seed: int, shape: tuple[int, int] = (H, W), lo: int = 40, hi: int = 220) -> np.ndarray:
    """Smooth random colour texture (bilinear resampling of it is nearly exact)."""
    rng = np.random.default_rng(seed)
    small = rng.uniform(lo, hi, (shape[0] // 16 + 2, shape[1] // 16 + 2, 3)).astype(np.float32)
    big = cv2.resize(small, (shape[1] + 32, shape[0] + 32), interpolation=cv2.INTER_CUBIC)[16:-16, 16:-16]
    return np.clip(cv2.GaussianBlur(big, (0, 0), 6), 0, 255).astype(np.uint8)


def engine(path: Path) -> OrtEngine:
    return OrtEngine(path, providers=["CPUExecutionProvider"])


class CountingEngine:
    """Wraps an engine and counts runs (to see the embedding cache work)."""

    def __init__(self, inner: OrtEngine) -> None:
        self.inner, self.runs = inner, 0
        self.backend, self.provider = inner.backend, inner.provider
        self.inputs, self.outputs = inner.inputs, inner.outputs

    def run(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        self.runs += 1
        return self.inner.run(feeds)


@pytest.fixture(params=["numpy", "torch"])
def swap_path(request: pytest.FixtureRequest) -> str:
    """Run a swap test on the NumPy/OpenCV path and on the torch path (CPU tensors here, GPU in use)."""
    if request.param == "torch":
        pytest.importorskip("torch", reason="torch is not installed: the device path is not tested")
    return str(request.param)


@pytest.fixture(scope="module")
def arcface_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return standins.arcface(tmp_path_factory.mktemp("arcface") / "w600k_r50.onnx")


def make_swapper(tmp_path: Path, arcface_path: Path, *, options: InswapperOptions = PLAIN, name: str = "sw.onnx",
                 swap_path: str = "numpy", **kwargs: object) -> InswapperSwapper:
    path = standins.inswapper(tmp_path / name, **kwargs)  # type: ignore[arg-type]
    device_path = None
    if swap_path == "torch":
        import torch

        device_path = DevicePath(device=torch.device("cpu"), options=options)
    return InswapperSwapper(swapper=Inswapper.from_file(path, engine=engine(path)),
                            arcface=ArcFace(engine=engine(arcface_path)), options=options,
                            device_path=device_path)


def source_photo(seed: int, angle: float, contrast: float = 1.0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A photo, its 5 keypoints and its image → 112 crop transform (known exactly)."""
    photo = smooth_image(seed, (360, 360)).astype(np.float32)
    photo = np.clip(128 + (photo - 128) * contrast, 0, 255).astype(np.uint8)
    to_crop = similarity(angle, 112 / 200, (180.0, 185.0), (56.0, 56.0))
    return photo, align.apply(align.invert(to_crop), align.ARCFACE_112).astype(np.float32), to_crop


def reference_embedding(arcface_path: Path, photo: np.ndarray, to_crop: np.ndarray) -> np.ndarray:
    """The ArcFace stand-in run by hand: known crop, cvtColor to RGB, (x − 127.5) / 127.5, NCHW."""
    crop = cv2.warpAffine(photo, to_crop, (112, 112), flags=cv2.INTER_LINEAR)
    rgb = cv2.cvtColor(crop, cv2.COLOR_BGR2RGB).astype(np.float32)
    blob = ((rgb - 127.5) / 127.5).transpose(2, 0, 1)[None]
    session = ort.InferenceSession(str(arcface_path), providers=["CPUExecutionProvider"])
    return session.run(["683"], {"input.1": blob})[0].reshape(-1).astype(np.float64)


def unit(v: np.ndarray) -> np.ndarray:
    return v / np.linalg.norm(v)


def centre_pixel(image: np.ndarray, keypoints: np.ndarray) -> np.ndarray:
    """Mean colour of a 9×9 patch at the face centre (between the eyes and the mouth)."""
    x, y = np.round(keypoints.mean(axis=0)).astype(int)
    return image[y - 4:y + 5, x - 4:x + 5].reshape(-1, 3).mean(axis=0)


# ---------------------------------------------------------------- emap


def test_emap_is_the_last_initializer(tmp_path: Path, arcface_path: Path) -> None:
    emap = standins.emap_matrix(seed=5)
    path = standins.inswapper(tmp_path / "fp32.onnx", emap=emap)
    loaded = load_emap(path)
    assert loaded.dtype == np.float32 and loaded.shape == (512, 512)
    np.testing.assert_array_equal(loaded, emap)  # not the 512×512 decoy stored first, not transposed
    half = load_emap(standins.inswapper(tmp_path / "fp16.onnx", emap=emap, weights="float16", io="float16"))
    assert half.dtype == np.float32
    np.testing.assert_array_equal(half, emap.astype(np.float16).astype(np.float32))
    with pytest.raises(ModelError) as info:
        load_emap(arcface_path)  # its last initializer is 192×512
    assert info.value.code == "E07"
    garbage = tmp_path / "garbage.onnx"
    garbage.write_bytes(b"\x00not onnx" * 100)
    with pytest.raises(ModelError, match="E07"):
        load_emap(garbage)


@pytest.mark.parametrize("io", ["float32", "float16"])
def test_float16_file_runs_in_float32_on_onnxruntime(tmp_path: Path, io: str,
                                                     caplog: pytest.LogCaptureFixture) -> None:
    """The fp16 file is upcast for ONNX Runtime: float32 arithmetic on the float16-rounded weights."""
    import logging

    import onnx

    rng = np.random.default_rng(3)
    gain = rng.uniform(0.9, 1.1, (3, 128, 128))
    path = standins.inswapper(tmp_path / "fp16.onnx", gain=gain, offset=0.01, weights="float16", io=io)
    upcast = onnx.load_from_string(upcast_to_float32(onnx.load(str(path))))
    assert not has_float16(upcast)
    with caplog.at_level(logging.INFO, logger="realtime.engines.opening"):
        model = Inswapper.open(path, backend="onnxruntime", device="cpu")
    assert "float16 weights upcast to float32" in caplog.text
    assert model.target.dtype == np.float32 and model.source.dtype == np.float32
    target = rng.uniform(0, 1, (1, 3, 128, 128)).astype(np.float32)
    expected = target * gain.astype(np.float16).astype(np.float32) + np.float32(np.float16(0.01))
    out = model.run(target, np.zeros((1, 512), np.float32))
    assert np.abs(out - expected).max() < 1e-6  # float16 arithmetic would be off by ~1e-4
    np.testing.assert_array_equal(model.emap, standins.emap_matrix().astype(np.float16).astype(np.float32))
    as_is = Inswapper.open(path, backend="onnxruntime", device="cpu", upcast_fp16=False)
    assert as_is.target.dtype == (np.float16 if io == "float16" else np.float32)
    if io == "float16":  # the input itself is rounded to float16
        assert np.abs(as_is.run(target, np.zeros((1, 512), np.float32)) - expected).max() > 1e-5


def has_float16(model: object) -> bool:
    from onnx import TensorProto

    graph = model.graph  # type: ignore[attr-defined]
    types = [v.type.tensor_type.elem_type for v in (*graph.input, *graph.output, *graph.value_info)]
    casts = [a.i for n in graph.node if n.op_type == "Cast" for a in n.attribute if a.name == "to"]
    return TensorProto.FLOAT16 in (*types, *casts, *(i.data_type for i in graph.initializer))


# ---------------------------------------------------------------- source embedding


def test_arcface_input_layout(arcface_path: Path) -> None:
    """The model sees the aligned 112 crop as RGB, (x − 127.5)/127.5, NCHW.

    The first 192 stand-in outputs are the 8×8 block means of each input channel;
    BGR order, another range or a transposed H/W give other numbers.
    """
    crop = np.zeros((112, 112, 3), np.uint8)
    ramp = np.linspace(0, 255, 112)
    crop[..., 2] = ramp[None, :]  # red grows to the right
    crop[..., 1] = ramp[:, None]  # green grows downwards
    crop[..., 0] = 40  # blue flat
    to_crop = similarity(-20.0, 112 / 230, (200.0, 170.0), (56.0, 56.0))
    photo = cv2.warpAffine(crop, align.invert(to_crop), (400, 360), flags=cv2.INTER_LINEAR,
                           borderMode=cv2.BORDER_REPLICATE)
    keypoints = align.apply(align.invert(to_crop), align.ARCFACE_112)
    seen = ArcFace(engine=engine(arcface_path)).embed(photo, keypoints)[:192].reshape(3, 8, 8)
    expected = ((crop[..., ::-1].astype(np.float64) - 127.5) / 127.5).reshape(8, 14, 8, 14, 3).mean(axis=(1, 3))
    np.testing.assert_allclose(seen, expected.transpose(2, 0, 1), atol=0.02)


def test_source_latent_reaches_the_swapper(tmp_path: Path, arcface_path: Path, swap_path: str) -> None:
    """latent = normalise(normalise(arcface) @ emap), fed as ``source``.

    The stand-in's output grey level is 0.5 + 0.4 · (source · probe) with the probe set
    to the expected latent: 0.9 (230) when right; a wrong emap gives ≈ 0.5 (128) and
    a missing final normalisation ≥ 1 (255).
    """
    photo, keypoints, to_crop = source_photo(3, 12.0)
    emap = standins.emap_matrix()
    identity = unit(reference_embedding(arcface_path, photo, to_crop))
    expected = unit(identity @ emap.astype(np.float64))
    # The design of this test: each mistake moves the grey level far beyond the tolerance.
    for wrong in (standins.emap_matrix(seed=99), emap.T):  # the decoy, a transposed emap
        assert abs(float(unit(identity @ wrong) @ expected)) < 0.3
    assert np.linalg.norm(identity @ emap) > 1.5  # unnormalised latent: probe ≥ 1.5 → clipped to 255

    swapper = make_swapper(tmp_path, arcface_path, swap_path=swap_path, gain=0.0, offset=0.5, probe=expected,
                           probe_gain=0.4, emap=emap)
    swapper.prepare(photo, face(keypoints))
    assert swapper.latent is not None and swapper.latent.shape == (1, 512) and swapper.latent.dtype == np.float32
    np.testing.assert_allclose(swapper.latent[0], expected, atol=1e-5)
    frame = smooth_image(1)
    swapper.swap(frame, face(TARGET_KPS))
    np.testing.assert_allclose(centre_pixel(frame, TARGET_KPS), [229.5] * 3, atol=1.0)


def test_several_photos_average_their_normalised_embeddings(tmp_path: Path, arcface_path: Path) -> None:
    """Two photos of very different contrast: the mean of unit vectors, not of raw embeddings."""
    photos = [source_photo(21, 5.0, contrast=1.6), source_photo(22, -8.0, contrast=0.25)]
    raw = [reference_embedding(arcface_path, p, m) for p, _, m in photos]
    emap = standins.emap_matrix()
    expected = unit(unit((unit(raw[0]) + unit(raw[1])) / 2) @ emap)
    naive = unit(((raw[0] + raw[1]) / 2) @ emap)
    assert float(expected @ naive) < 0.95  # the test can tell the two apart

    swapper = make_swapper(tmp_path, arcface_path, emap=emap)
    counting = CountingEngine(swapper.arcface.engine)  # type: ignore[arg-type]
    swapper.arcface = ArcFace(engine=counting)
    swapper.prepare_many([(p, face(k)) for p, k, _ in photos])
    np.testing.assert_allclose(swapper.latent[0], expected, atol=1e-5)  # type: ignore[index]
    assert counting.runs == 2
    swapper.prepare_many([(p, face(k)) for p, k, _ in photos])  # cached by photo hash: no new run
    swapper.prepare(photos[0][0].copy(), face(photos[0][1]))
    assert counting.runs == 2
    np.testing.assert_allclose(swapper.latent[0], unit(unit(raw[0]) @ emap), atol=1e-5)  # type: ignore[index]
    with pytest.raises(ValueError):
        swapper.prepare_many([])


# ---------------------------------------------------------------- target layout and geometry


@pytest.mark.parametrize("variant", [("float32", "float32"), ("float16", "float32"), ("float16", "float16")],
                         ids=["fp32", "fp16-weights", "fp16-io"])
def test_target_is_rgb_in_0_1_and_output_read_back_as_rgb(tmp_path: Path, arcface_path: Path, swap_path: str,
                                                          variant: tuple[str, str]) -> None:
    """Stand-in output = (0.5·R, 0, 0) of its input. A uniform BGR (30, 90, 200) face must come back
    as BGR (0, 0, 100): BGR input gives (0, 0, 15), BGR output (100, 0, 0), a 0–255 input 255,
    a [-1, 1] output reading 177."""
    weights, io = variant
    swapper = make_swapper(tmp_path, arcface_path, swap_path=swap_path, gain=np.array([0.5, 0.0, 0.0]),
                           weights=weights, io=io)
    if io == "float16":
        assert swapper.model.target.dtype == np.float16  # the input dtype comes from the engine's TensorSpec
    photo, keypoints, _ = source_photo(3, 0.0)
    swapper.prepare(photo, face(keypoints))
    frame = np.empty((H, W, 3), np.uint8)
    frame[:] = (30, 90, 200)
    swapper.swap(frame, face(TARGET_KPS))
    np.testing.assert_allclose(centre_pixel(frame, TARGET_KPS), [0, 0, 100], atol=1.0)


@pytest.mark.parametrize("variant", [("float32", "float32"), ("float16", "float32"), ("float16", "float16")],
                         ids=["fp32", "fp16-weights", "fp16-io"])
def test_paste_back_geometry(tmp_path: Path, arcface_path: Path, swap_path: str, variant: tuple[str, str]) -> None:
    """A stand-in that keeps its input but paints a white 5×5 block at the template's right eye
    (crop pixels 79–83 × 49–53): the block must land on the target face's right-eye keypoint in the frame,
    and the rest of the face region must come back as it was (inverse transform right)."""
    weights, io = variant
    mark = np.zeros((3, 128, 128))
    mark[:, 49:54, 79:84] = 1.0
    swapper = make_swapper(tmp_path, arcface_path, swap_path=swap_path, gain=1.0 - mark, offset=mark,
                           weights=weights, io=io)
    photo, keypoints, _ = source_photo(3, 0.0)
    swapper.prepare(photo, face(keypoints))
    original = smooth_image(4, lo=30, hi=200)  # nothing else reaches 240
    frame = original.copy()
    swapper.swap(frame, face(TARGET_KPS))

    white = np.argwhere((frame > 240).all(axis=2))
    assert len(white) > 10
    cy, cx = white.mean(axis=0)
    ex, ey = align.apply(align.invert(TARGET_TO_CROP), [[81.0, 51.0]])[0]  # pixel centres 79..83, 49..53
    assert math.hypot(cx - ex, cy - ey) < 0.75, ((cx, cy), (ex, ey))
    assert math.hypot(*(TARGET_KPS[1] - [ex, ey])) < 2.0  # the right-eye keypoint (block rounded to whole crop px)

    changed = np.argwhere((frame != original).any(axis=2))
    corners = align.apply(align.invert(TARGET_TO_CROP), [[0, 0], [128, 0], [0, 128], [128, 128]])
    assert changed.min(axis=0)[::-1].min() >= corners.min() - 1  # nothing outside the crop's footprint
    assert (changed[:, ::-1] <= corners.max(axis=0) + 1).all() and (changed[:, ::-1] >= corners.min(axis=0) - 1).all()
    face_region = np.ones((H, W), bool)
    face_region[white.min(0)[0] - 3:white.max(0)[0] + 4, white.min(0)[1] - 3:white.max(0)[1] + 4] = False
    inner = cv2.warpAffine(np.full((128, 128), 255, np.uint8), align.invert(TARGET_TO_CROP), (W, H)) == 255
    diff = np.abs(frame.astype(int) - original)[inner & face_region]
    assert diff.mean() < 1.5 and diff.max() <= 12


def test_face_outside_the_frame_or_tiny_is_left_alone(tmp_path: Path, arcface_path: Path, swap_path: str) -> None:
    swapper = make_swapper(tmp_path, arcface_path, swap_path=swap_path, gain=0.0, offset=1.0)
    photo, keypoints, _ = source_photo(3, 0.0)
    swapper.prepare(photo, face(keypoints))
    original = smooth_image(5)
    frame = original.copy()
    swapper.swap(frame, face(TARGET_KPS + np.float32([2000, 0])))
    swapper.swap(frame, face(align.ARCFACE_128.astype(np.float32) * 0.05 + 100))
    swapper.swap(frame, face(np.zeros((5, 2), np.float32) + 50))  # degenerate keypoints
    np.testing.assert_array_equal(frame, original)
    # Half outside: only the part inside is touched, no error.
    swapper.swap(frame, face(TARGET_KPS - np.float32([300, 0])))
    assert (frame != original).any()


def test_swap_before_prepare_is_an_error(tmp_path: Path, arcface_path: Path) -> None:
    swapper = make_swapper(tmp_path, arcface_path)
    with pytest.raises(RuntimeError, match="prepare"):
        swapper.swap(smooth_image(1), face(TARGET_KPS))


# ---------------------------------------------------------------- mask: mouth, colour


def synthetic_landmarks() -> np.ndarray:
    """468 points: face oval and open inner lips on ellipses (in crop pixels → frame), the rest at the centre."""
    points = np.tile(np.array([64.0, 70.0]), (468, 1))
    for indices, (cx, cy, rx, ry) in ((topo.FACE_OVAL, (64, 66, 52, 66)), (topo.LIPS_INNER, (64, 94, 15, 8))):
        angles = np.linspace(-np.pi / 2, 1.5 * np.pi, len(indices), endpoint=False)
        points[list(indices)] = np.stack([cx + rx * np.cos(angles), cy + ry * np.sin(angles)], axis=1)
    frame_points = align.apply(align.invert(TARGET_TO_CROP), points)
    return np.hstack([frame_points, np.zeros((468, 1))]).astype(np.float32)


@pytest.mark.parametrize("keep_mouth", [True, False])
def test_mouth_interior_stays_the_target(tmp_path: Path, arcface_path: Path, swap_path: str, keep_mouth: bool) -> None:
    swapper = make_swapper(tmp_path, arcface_path, swap_path=swap_path, gain=0.0, offset=1.0,
                           options=InswapperOptions(color_correct=False, keep_mouth=keep_mouth))
    photo, keypoints, _ = source_photo(3, 0.0)
    swapper.prepare(photo, face(keypoints))
    original = smooth_image(6, lo=30, hi=200)
    frame = original.copy()
    landmarks = synthetic_landmarks()
    swapper.swap(frame, face(TARGET_KPS, landmarks))
    mouth = np.zeros((H, W), np.uint8)
    lips = landmarks[list(topo.LIPS_INNER), :2]
    centre = lips.mean(axis=0)
    cv2.fillPoly(mouth, [np.round(centre + (lips - centre) * 0.6).astype(np.int32)], 1)  # well inside the lips
    inside = mouth.astype(bool)
    if keep_mouth:
        np.testing.assert_array_equal(frame[inside], original[inside])
    else:
        assert (frame[inside] == 255).all()
    assert (centre_pixel(frame, TARGET_KPS[:2]) == 255).all()  # between the eyes: swapped
    outside = cv2.warpAffine(np.full((128, 128), 255, np.uint8), align.invert(TARGET_TO_CROP), (W, H)) == 0
    np.testing.assert_array_equal(frame[outside], original[outside])


@pytest.mark.parametrize("correct", [True, False])
def test_colour_correction(tmp_path: Path, arcface_path: Path, swap_path: str, correct: bool) -> None:
    """The stand-in darkens its input by half; colour correction brings the face back to the target's tone."""
    swapper = make_swapper(tmp_path, arcface_path, swap_path=swap_path, gain=0.5,
                           options=InswapperOptions(color_correct=correct))
    photo, keypoints, _ = source_photo(3, 0.0)
    swapper.prepare(photo, face(keypoints))
    original = smooth_image(7, lo=90, hi=200)
    frame = original.copy()
    swapper.swap(frame, face(TARGET_KPS))
    before, after = centre_pixel(original, TARGET_KPS), centre_pixel(frame, TARGET_KPS)
    if correct:
        assert np.abs(after - before).max() < 12, (before, after)
    else:
        np.testing.assert_allclose(after, before * 0.5, atol=3)


def test_stages_are_timed(tmp_path: Path, arcface_path: Path, swap_path: str) -> None:
    swapper = make_swapper(tmp_path, arcface_path, swap_path=swap_path)
    photo, keypoints, _ = source_photo(3, 0.0)
    swapper.prepare(photo, face(keypoints))
    frame = Frame(image=smooth_image(1), seq=0, t_capture=0)
    swapper.swap(frame.image, face(TARGET_KPS), frame)
    assert {"align", "swap", "blend"} <= set(frame.stages)


@pytest.mark.parametrize("correct", [False, True])
def test_torch_path_matches_the_numpy_path(tmp_path: Path, arcface_path: Path, correct: bool) -> None:
    """Same frame from both paths (landmark mask and mouth hole on) to within rounding.

    The colour correction differs a little more: the NumPy path quantises Lab to 8 bits, the torch one does not.
    """
    pytest.importorskip("torch", reason="torch is not installed")
    tint = np.array([0.8, 1.1, 0.7])  # the stand-in recolours, so the colour correction has work to do
    frames = []
    for swap_path in ("numpy", "torch"):
        swapper = make_swapper(tmp_path, arcface_path, swap_path=swap_path, gain=tint, offset=0.02,
                               options=InswapperOptions(color_correct=correct), name=f"{swap_path}.onnx")
        photo, keypoints, _ = source_photo(3, 0.0)
        swapper.prepare(photo, face(keypoints))
        frame = smooth_image(8)
        swapper.swap(frame, face(TARGET_KPS, synthetic_landmarks()))
        frames.append(frame.astype(int))
    assert (frames[0] != smooth_image(8)).any()
    diff = np.abs(frames[0] - frames[1])
    limit, mean = (8, 0.2) if correct else (2, 0.05)
    assert diff.max() <= limit and diff.mean() < mean, (diff.max(), diff.mean())


# ---------------------------------------------------------------- wiring


@pytest.mark.parametrize("choice", ["inswapper", "auto"])
def test_cli_swap_with_the_inswapper_on_real_photos(models_root: Path, tmp_path: Path, arcface_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch, choice: str) -> None:
    """``swapcam swap --swapper inswapper|auto`` with the real detector and mesh on real photos, the neural
    models replaced by stand-ins (the real ones are checksum-pinned): the marker the stand-in paints at the
    crop's right eye lands on the right eye SCRFD found in the target."""
    from realtime import cli
    from realtime.faces.analyzer import FaceAnalyzer
    from realtime.images import load_image
    from realtime.models import sample_path

    mark = np.zeros((3, 128, 128))
    mark[:, 49:54, 79:84] = 1.0
    swapper = make_swapper(tmp_path, arcface_path, gain=1.0 - mark, offset=mark, options=InswapperOptions())
    opened: list[dict[str, object]] = []

    def fake_open(cls: type, **kwargs: object) -> InswapperSwapper:
        opened.append(kwargs)
        return swapper

    monkeypatch.setattr(InswapperSwapper, "open", classmethod(fake_open))
    monkeypatch.setattr("realtime.swappers.inswapper.neural_models_present", lambda root=None: True)
    monkeypatch.setenv("SWAPCAM_MODELS", str(models_root))
    target_path = sample_path("gauss.png", root=models_root)
    output = tmp_path / "out.png"
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["swap", "--face", str(sample_path("newton.png", root=models_root)), "--swapper", choice,
                  "--target", str(target_path), "--output", str(output), "--device", "cpu"])
    assert exit_info.value.code == 0
    assert opened and opened[0]["device"] == "cpu"
    assert swapper.latent is not None  # prepared from newton.png
    target = load_image(target_path)
    result = cv2.imread(str(output))
    assert result.shape == target.shape
    found = FaceAnalyzer.open(root=models_root, device="cpu").analyze_still(target)[0]
    white = np.argwhere((result > 245).all(axis=2) & ~(target > 245).all(axis=2))
    assert len(white) > 5
    cy, cx = white.mean(axis=0)
    eye = found.keypoints[1]
    scale = np.linalg.norm(found.keypoints[1] - found.keypoints[0]) / (73.5318 - 38.2946)  # frame px per crop px
    assert math.hypot(cx - eye[0], cy - eye[1]) < 1 + 1.5 * scale, ((cx, cy), eye)


# ---------------------------------------------------------------- files


def test_open_without_models_is_E06(tmp_path: Path) -> None:
    assert not neural_models_present(tmp_path)
    with pytest.raises(ModelError) as info:
        InswapperSwapper.open(root=tmp_path, device="cpu")
    assert info.value.code == "E06" and "--neural" in str(info.value)
    (tmp_path / "w600k_r50.onnx").write_bytes(b"x")
    assert not neural_models_present(tmp_path)
    (tmp_path / "inswapper_128.fp16.onnx").write_bytes(b"x")
    assert neural_models_present(tmp_path)
    with pytest.raises(ModelError) as info:  # present but not the pinned files
        InswapperSwapper.open(root=tmp_path, device="cpu")
    assert info.value.code == "E07"


# ---------------------------------------------------------------- the real models


REAL = os.environ.get("SWAPCAM_MODELS")


@pytest.mark.neural
@pytest.mark.skipif(not (REAL and neural_models_present(Path(REAL))),
                    reason="the neural models are not here: set SWAPCAM_MODELS to a folder with them "
                           "(swapcam models fetch --neural)")
def test_real_models_move_the_identity_towards_the_source() -> None:
    from realtime.faces.analyzer import FaceAnalyzer
    from realtime.images import load_image
    from realtime.models import sample_path

    root = Path(REAL or "")
    analyzer = FaceAnalyzer.open(root=root, device="cpu")
    source = load_image(sample_path("newton.png", root=root))
    target = load_image(sample_path("gauss.png", root=root))
    source_face, target_face = analyzer.analyze_still(source)[0], analyzer.analyze_still(target)[0]
    swapper = InswapperSwapper.open(root=root, device="cpu")
    swapper.prepare(source, source_face)
    before = unit(swapper.arcface.embed(target, target_face.keypoints))
    swapped = target.copy()
    swapper.swap(swapped, target_face)
    assert swapper.identity is not None
    after_face = analyzer.analyze_still(swapped)[0]
    after = unit(swapper.arcface.embed(swapped, after_face.keypoints))
    assert float(after @ swapper.identity) > float(before @ swapper.identity) + 0.2
