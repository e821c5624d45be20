"""The torch backend (ONNX converted with onnx2torch) against ONNX Runtime on the CPU, and its selection.

Tolerances (max absolute difference, float32 on the CPU): SCRFD scores 1e-5, boxes and keypoints 1e-4
(in anchor strides, values up to ≈4); face mesh landmarks 1e-3 px (values up to ≈190), presence 1e-4;
the neural stand-ins 1e-5 (ArcFace embedding, inswapper, GFPGAN). On CUDA the mesh is held to 2e-2 px in
fp32 (cuDNN may pick TF32 kernels) and 0.5 px in fp16 (gpu-marked test, run by tools/gpu_check.py).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import neural_standins as standins
import numpy as np
import pytest

from realtime.engines.ort import CPU_PROVIDER, CUDA_PROVIDER, OrtEngine
from realtime.engines.probe import Availability
from realtime.engines.selection import choose, select_and_open
from realtime.errors import BackendError, SwapcamError

torch = pytest.importorskip("torch")
pytest.importorskip("onnx")
from realtime.engines.torch_engine import TorchEngine, torch_status  # noqa: E402

_, _, WHY_NOT = torch_status()
pytestmark = pytest.mark.skipif(WHY_NOT is not None, reason=f"torch backend unavailable: {WHY_NOT}")

CPU_ONLY = Availability(ort_distributions=("onnxruntime 1.31.1",), ort_providers=(CPU_PROVIDER,),
                        tensorrt_error="not installed", gpu_error="none", torch_version="2.13.0",
                        torch_error=None, platform="linux")


def compare(model: Path | bytes, feeds: dict[str, np.ndarray], tolerance: dict[str, float]) -> dict[str, float]:
    """Run ``model`` on ORT CPU and torch CPU; assert every output within its tolerance; return the diffs."""
    ort = OrtEngine(model, providers=[CPU_PROVIDER]).run(feeds)
    got = TorchEngine(model, device="cpu").run(feeds)
    assert set(got) == set(ort)
    diffs = {}
    for name, expected in ort.items():
        assert got[name].shape == expected.shape, name
        assert got[name].dtype == expected.dtype, name
        diffs[name] = float(np.abs(got[name] - expected).max())
        limit = next(v for k, v in tolerance.items() if name.startswith(k))
        assert diffs[name] <= limit, (name, diffs[name], limit)
    return diffs


def face_input(sample_image: Callable[[str], np.ndarray], size: tuple[int, int]) -> np.ndarray:
    import cv2

    image = cv2.resize(sample_image("newton.png"), size)
    return (image[:, :, ::-1].transpose(2, 0, 1)[None] / 255.0).astype(np.float32)


def test_scrfd_matches_onnxruntime(model_file: Callable[[str], Path],
                                   sample_image: Callable[[str], np.ndarray]) -> None:
    feeds = {"input.1": (face_input(sample_image, (320, 256)) * 255 - 127.5) / 128.0}
    compare(model_file("scrfd"), feeds, {"score": 1e-5, "bbox": 1e-4, "kps": 1e-4})


def test_face_mesh_matches_onnxruntime(model_file: Callable[[str], Path],
                                       sample_image: Callable[[str], np.ndarray]) -> None:
    diffs = compare(model_file("face_mesh"), {"input_1": face_input(sample_image, (192, 192))},
                    {"conv2d_20": 1e-3, "conv2d_30": 1e-4})
    assert set(diffs) == {"conv2d_20", "conv2d_30"}


def test_neural_standins_match_onnxruntime(tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    arcface = standins.arcface(tmp_path / "w600k_r50.onnx")
    compare(arcface, {"input.1": rng.uniform(-1, 1, (1, 3, 112, 112)).astype(np.float32)}, {"683": 1e-5})
    swapper = standins.inswapper(tmp_path / "inswapper.onnx", gain=0.9, offset=0.05,
                                 probe=rng.normal(size=512), probe_gain=0.01)
    compare(swapper, {"target": rng.uniform(0, 1, (1, 3, 128, 128)).astype(np.float32),
                      "source": rng.normal(size=(1, 512)).astype(np.float32)}, {"output": 1e-5})
    gfpgan = standins.gfpgan(tmp_path / "gfpgan.onnx", gain=0.8, offset=0.1)
    compare(gfpgan, {"input": rng.uniform(-1, 1, (1, 3, 512, 512)).astype(np.float32)}, {"output": 1e-5})


def test_float16_standin_runs_upcast_on_torch(tmp_path: Path) -> None:
    """open_model's float32 copy (``ort_model``) is what torch converts, as ONNX Runtime does."""
    from realtime.engines.opening import float32_maker

    path = standins.inswapper(tmp_path / "inswapper_128.fp16.onnx", gain=0.5, weights="float16")
    maker = float32_maker(path)
    assert maker is not None
    engine, choice = select_and_open(path, backend="torch", device="cpu", available=CPU_ONLY, ort_model=maker)
    assert (choice.backend, engine.provider) == ("torch", "torch cpu")
    target = np.full((1, 3, 128, 128), 0.5, np.float32)
    out = engine.run({"target": target, "source": np.zeros((1, 512), np.float32)})["output"]
    np.testing.assert_allclose(out, 0.25, atol=1e-3)


def test_selection_order_with_torch(caplog: pytest.LogCaptureFixture) -> None:
    """TensorRT → ONNX Runtime CUDA → torch CUDA → ONNX Runtime CPU, each skip with its reason."""
    torch_gpu = replace(CPU_ONLY, torch_cuda=True)
    taken = choose(model_name="scrfd", model_sha256=None, available=torch_gpu)
    assert (taken.backend, taken.provider) == ("torch", "torch cuda")
    assert any(s.startswith("tensorrt:") for s in taken.skipped)
    assert any(s.startswith(CUDA_PROVIDER) for s in taken.skipped)
    ort_gpu = replace(torch_gpu, ort_providers=(CUDA_PROVIDER, CPU_PROVIDER))
    assert choose(model_name="scrfd", model_sha256=None, available=ort_gpu).provider == CUDA_PROVIDER
    plain = choose(model_name="scrfd", model_sha256=None, available=CPU_ONLY)
    assert plain.provider == CPU_PROVIDER
    assert any(s.startswith("torch cuda: ") for s in plain.skipped), plain.skipped
    no_torch = replace(CPU_ONLY, torch_error="torch is not installed")
    assert "torch cuda: torch is not installed" in choose(model_name="m", model_sha256=None,
                                                          available=no_torch).skipped
    assert choose(model_name="m", model_sha256=None, available=CPU_ONLY, device="cpu").provider == CPU_PROVIDER


def test_backend_torch_requests() -> None:
    assert choose(model_name="m", model_sha256=None, available=CPU_ONLY, backend="torch").provider == "torch cpu"
    with pytest.raises(BackendError) as cuda_missing:
        choose(model_name="m", model_sha256=None, available=CPU_ONLY, backend="torch", device="cuda")
    assert cuda_missing.value.code == "E09"
    with pytest.raises(BackendError) as not_installed:
        choose(model_name="m", model_sha256=None, available=replace(CPU_ONLY, torch_error="torch is not installed"),
               backend="torch")
    assert not_installed.value.code == "E09"


def test_fp16_and_graphs_need_cuda(model_file: Callable[[str], Path]) -> None:
    for options in ({"precision": "fp16"}, {"cuda_graph": True}):
        with pytest.raises(SwapcamError) as refused:
            TorchEngine(model_file("face_mesh"), device="cpu", **options)  # type: ignore[arg-type]
        assert refused.value.code == "E01"


def test_auto_logs_why_torch_was_skipped(model_file: Callable[[str], Path], caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="realtime.engines.selection"):
        select_and_open(model_file("face_mesh"), available=CPU_ONLY)
    assert "torch cuda: torch 2.13.0 sees no CUDA device" in caplog.text


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs torch with a CUDA device")
@pytest.mark.parametrize(("precision", "graph", "limit"), [("fp32", False, 2e-2), ("fp16", False, 0.5),
                                                           ("fp32", True, 2e-2), ("fp16", True, 0.5)])
def test_face_mesh_on_cuda(model_file: Callable[[str], Path], sample_image: Callable[[str], np.ndarray],
                           precision: str, graph: bool, limit: float) -> None:
    """On CUDA: landmarks within ``limit`` px of ONNX Runtime CPU (fp16: half a pixel), graph replay equal."""
    feeds = {"input_1": face_input(sample_image, (192, 192))}
    expected = OrtEngine(model_file("face_mesh"), providers=[CPU_PROVIDER]).run(feeds)["conv2d_20"]
    engine = TorchEngine(model_file("face_mesh"), device="cuda", precision=precision, cuda_graph=graph)
    for _ in range(3):  # the first call captures, the later ones replay
        got = engine.run(feeds)["conv2d_20"]
        assert float(np.abs(got - expected).max()) <= limit
    assert engine.cuda_graph == graph


def test_swap_photo_torch_cpu_equals_onnxruntime(models_root: Path, tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """`swapcam swap --backend torch --device cpu` gives the picture `--backend onnxruntime` gives (≤ 1 level)."""
    import cv2

    from realtime import cli
    from realtime.models import sample_path

    monkeypatch.setenv("SWAPCAM_MODELS", str(models_root))
    pictures = {}
    for backend in ("torch", "onnxruntime"):
        out = tmp_path / f"{backend}.png"
        with pytest.raises(SystemExit) as exited:
            cli.main(["swap", "--face", str(sample_path("gauss.png", root=models_root)), "--target",
                      str(sample_path("newton.png", root=models_root)), "--output", str(out), "--swapper", "mesh",
                      "--backend", backend, "--device", "cpu"])
        assert not exited.value.code
        pictures[backend] = cv2.imread(str(out)).astype(np.int16)
    original = cv2.imread(str(sample_path("newton.png", root=models_root))).astype(np.int16)
    assert (np.abs(pictures["torch"] - original).max(axis=2) > 8).mean() > 0.01  # a face was swapped at all
    assert np.abs(pictures["torch"] - pictures["onnxruntime"]).mean() <= 1.0
