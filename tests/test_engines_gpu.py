"""GPU tests: TensorRT engines against ONNX Runtime, CUDA graphs, IO binding, torch ops on CUDA.

Skipped (with the reason) on machines without an NVIDIA GPU, torch with CUDA,
TensorRT or the CUDA provider of ONNX Runtime. Run them on a GPU machine with
``pytest -m "gpu or tensorrt" tests/test_engines_gpu.py``.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from realtime.engines.ort import CPU_PROVIDER, CUDA_PROVIDER, OrtEngine
from realtime.errors import ModelError


def _cuda() -> bool:
    if importlib.util.find_spec("torch") is None:
        return False
    import torch

    return bool(torch.cuda.is_available())


def _ort_cuda() -> bool:
    import onnxruntime

    return CUDA_PROVIDER in onnxruntime.get_available_providers()


HAS_CUDA = _cuda()
HAS_TRT = HAS_CUDA and importlib.util.find_spec("tensorrt") is not None
needs_gpu = pytest.mark.skipif(not HAS_CUDA, reason="needs an NVIDIA GPU and torch with CUDA")
needs_trt = pytest.mark.skipif(not HAS_TRT, reason="needs TensorRT and an NVIDIA GPU (pip install .[gpu])")
needs_ort_cuda = pytest.mark.skipif(not (HAS_CUDA and _ort_cuda()),
                                    reason="needs onnxruntime-gpu with a working CUDA provider")
ROOT = Path(__file__).resolve().parent.parent
# Model name → input shapes to feed, one dict per run; fixed-shape inputs come from the model itself
# (a dynamic batch axis is fed 1). Dynamic models get two sizes, to exercise reallocation.
SHAPES: dict[str, list[dict[str, tuple[int, ...]]]] = {
    "scrfd": [{"input.1": (1, 3, 320, 256)}, {"input.1": (1, 3, 640, 640)}],
    "face_mesh": [{}],
    "arcface_w600k_r50": [{}],
    "inswapper_128_fp16": [{}],
    "scrfd_10g": [{"input.1": (1, 3, 640, 640)}],
    "gfpgan_1.4": [{}],
}


def fetched(name: str) -> Path:
    from realtime import models

    try:
        return models.model_path(name)
    except ModelError as exc:
        pytest.skip(f"{name} not fetched ({exc.code})")
    except ValueError as exc:
        pytest.skip(str(exc))


def feeds_for(engine: Any, shapes: dict[str, tuple[int, ...]], seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    feeds = {}
    for spec in engine.inputs:
        shape = shapes.get(spec.name) or tuple(1 if axis == 0 and d is None else d for axis, d in enumerate(spec.shape))
        if not all(isinstance(d, int) for d in shape):
            pytest.skip(f"input {spec.name} has dynamic axes {spec.shape}: add a shape to SHAPES")
        feeds[spec.name] = rng.random(shape, dtype=np.float32)
    return feeds


def close_enough(got: np.ndarray, want: np.ndarray) -> bool:
    """FP16 engine against the FP32 reference: 2 % of the output's range (plus a floor)."""
    return bool(np.abs(got - want).max() <= 0.02 * np.abs(want).max() + 2e-3)


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Build an FP16 engine for every fetched model once; name → engine path."""
    if not HAS_TRT:
        pytest.skip("needs TensorRT and an NVIDIA GPU")
    import tensorrt

    from realtime.engines.build import BuildOptions, build_engine
    from realtime.engines.probe import detect_gpu

    gpu, why = detect_gpu()
    assert gpu is not None, why
    out = tmp_path_factory.mktemp("engines")
    options = BuildOptions(engines_dir=out, timing_cache=ROOT / "engines" / f"timing-test-sm{gpu.sm}.cache")
    engines = {}
    for name in SHAPES:
        try:
            path = fetched(name)
        except pytest.skip.Exception:
            continue
        engines[name] = build_engine(tensorrt, path, model_name=name, gpu=gpu, options=options).engine_path
    return engines


@pytest.mark.gpu
@pytest.mark.tensorrt
@needs_trt
@pytest.mark.parametrize("name", sorted(SHAPES))
def test_tensorrt_matches_onnxruntime(name: str, built: dict[str, Path]) -> None:
    from realtime.engines.trt import TrtEngine

    if name not in built:
        pytest.skip(f"{name} not fetched")
    engine = TrtEngine(built[name])
    reference = OrtEngine(fetched(name), providers=[CPU_PROVIDER], intra_threads=4)
    for shapes in SHAPES[name]:
        feeds = feeds_for(engine, shapes)
        got, want = engine.run(feeds), reference.run(feeds)
        assert got.keys() == want.keys()
        for key in want:
            assert got[key].shape == want[key].shape, key
            assert close_enough(got[key], want[key]), (key, float(np.abs(got[key] - want[key]).max()))


@pytest.mark.gpu
@pytest.mark.tensorrt
@needs_trt
def test_tensorrt_dynamic_shapes_and_run_torch(built: dict[str, Path]) -> None:
    import torch

    from realtime.engines.trt import TrtEngine

    if "scrfd" not in built:
        pytest.skip("scrfd not fetched")
    engine = TrtEngine(built["scrfd"])
    small = torch.rand(1, 3, 320, 256, device="cuda")
    first = {k: v.clone() for k, v in engine.run_torch({"input.1": small}).items()}
    large = engine.run_torch({"input.1": torch.rand(1, 3, 640, 640, device="cuda")})
    assert large["score_8"].shape[1] > first["score_8"].shape[1]
    again = engine.run_torch({"input.1": small})
    for key, value in first.items():
        assert value.device.type == "cuda"
        torch.testing.assert_close(again[key], value)
    with pytest.raises(ModelError, match="outside the engine's profile"):
        engine.run_torch({"input.1": torch.rand(1, 3, 2048, 2048, device="cuda")})


@pytest.mark.gpu
@pytest.mark.tensorrt
@needs_trt
def test_cuda_graph_replay_matches_plain_runs(built: dict[str, Path]) -> None:
    from realtime.engines.trt import TrtEngine

    if "face_mesh" not in built:
        pytest.skip("face_mesh not fetched")
    plain, graphed = TrtEngine(built["face_mesh"]), TrtEngine(built["face_mesh"], cuda_graph=True)
    assert graphed.cuda_graph
    for seed in range(3):
        feeds = feeds_for(plain, SHAPES["face_mesh"][0], seed=seed)
        want, got = plain.run(feeds), graphed.run(feeds)
        for key in want:
            np.testing.assert_allclose(got[key], want[key], rtol=1e-3, atol=1e-3)


@pytest.mark.gpu
@pytest.mark.tensorrt
@needs_trt
def test_auto_selection_takes_the_built_engine(built: dict[str, Path]) -> None:
    from realtime.engines.selection import select_and_open

    if "face_mesh" not in built:
        pytest.skip("face_mesh not fetched")
    engine, choice = select_and_open(fetched("face_mesh"), engines_dir=built["face_mesh"].parent,
                                     model_name="face_mesh")
    assert choice.backend == "tensorrt" and engine.provider == "TensorRT", choice.summary()


@pytest.mark.gpu
@pytest.mark.tensorrt
@needs_trt
def test_build_tool_builds_then_reports_up_to_date(tmp_path: Path) -> None:
    fetched("face_mesh")
    env = {**os.environ, "SWAPCAM_ENGINES": str(tmp_path)}
    command = [sys.executable, str(ROOT / "tools" / "build_engines.py"), "face_mesh"]
    first = subprocess.run(command, capture_output=True, text=True, env=env, timeout=900, check=False)
    assert first.returncode == 0, first.stderr
    assert len(list(tmp_path.glob("face_mesh-*-fp16.engine"))) == 1
    assert len(list(tmp_path.glob("face_mesh-*-fp16.engine.json"))) == 1
    second = subprocess.run(command, capture_output=True, text=True, env=env, timeout=300, check=False)
    assert second.returncode == 0 and "up to date" in second.stdout


@pytest.mark.gpu
@needs_ort_cuda
def test_onnxruntime_cuda_io_binding_with_torch_tensors() -> None:
    import torch

    engine = OrtEngine(fetched("face_mesh"), providers=[CUDA_PROVIDER, CPU_PROVIDER])
    assert engine.provider == CUDA_PROVIDER and engine.io_binding
    x = torch.rand(1, 3, 192, 192, device="cuda")
    out = engine.run_torch({"input_1": x})
    reference = OrtEngine(fetched("face_mesh"), providers=[CPU_PROVIDER]).run({"input_1": x.cpu().numpy()})
    for key, value in out.items():
        assert value.device.type == "cuda"
        np.testing.assert_allclose(value.cpu().numpy(), reference[key], rtol=1e-3, atol=1e-2)
    from_numpy = engine.run({"input_1": x.cpu().numpy()})
    for key in reference:
        np.testing.assert_allclose(from_numpy[key], reference[key], rtol=1e-3, atol=1e-2)


@pytest.mark.gpu
@needs_gpu
def test_torch_ops_on_cuda_match_cpu() -> None:
    import torch

    from realtime import gpu_ops

    rng = np.random.default_rng(5)
    frame = rng.integers(0, 256, (720, 1280, 3), dtype=np.uint8)
    crop = rng.integers(0, 256, (128, 128, 3), dtype=np.uint8)
    matrix = np.array([[0.4, -0.1, -200.5], [0.1, 0.4, -80.25]])
    mask = gpu_ops.feather_mask((128, 128), 10)
    results = []
    for device in ("cpu", "cuda"):
        up = gpu_ops.upload(frame, device)
        aligned = gpu_ops.crop_align(up, matrix, (128, 128))
        pasted = gpu_ops.paste_back(up, torch.from_numpy(crop).to(device), matrix, mask.to(device))
        results.append((aligned.cpu().numpy(), gpu_ops.download(pasted)))
    assert np.abs(results[0][0] - results[1][0]).max() < 1e-3
    assert np.abs(results[0][1].astype(int) - results[1][1].astype(int)).max() <= 1
