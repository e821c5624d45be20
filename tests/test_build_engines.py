"""tools/build_engines.py and realtime.engines.build: what runs without TensorRT, and its failure path."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from realtime.engines.build import (
    BuildOptions,
    convert_to_fp16,
    has_fp16_weights,
    input_profiles,
    onnx_input_dims,
    parse_profile_arg,
)
from realtime.errors import UsageError

ROOT = Path(__file__).resolve().parent.parent
TOOL = ROOT / "tools" / "build_engines.py"
HAS_TENSORRT = importlib.util.find_spec("tensorrt") is not None


def run_tool(*args: str, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "SWAPCAM_ENGINES": str(tmp_path / "engines")}
    return subprocess.run([sys.executable, str(TOOL), *args], capture_output=True, text=True, timeout=120,
                          env=env, cwd=ROOT, check=False)


@pytest.mark.skipif(HAS_TENSORRT, reason="TensorRT is installed here: the missing-TensorRT path cannot run")
def test_without_tensorrt_exits_2_with_e09(tmp_path: Path) -> None:
    done = run_tool(tmp_path=tmp_path)
    assert done.returncode == 2, done.stderr
    assert done.stderr.startswith("error: E09 TensorRT or a CUDA GPU is not available: tensorrt not installed")
    assert "pip install .[gpu]" in done.stderr and "Traceback" not in done.stderr
    assert not (tmp_path / "engines").exists()


def test_missing_gpu_exits_2_with_e09(tmp_path: Path) -> None:
    """Device 99 exists nowhere, so this failure path runs on GPU machines too."""
    done = run_tool("--device-id", "99", tmp_path=tmp_path)
    assert done.returncode == 2
    assert "E09" in done.stderr and "Traceback" not in done.stderr


def test_bad_profile_option_exits_2_with_e01(tmp_path: Path) -> None:
    done = run_tool("--profile", "input.1=1x3x64", tmp_path=tmp_path)
    assert done.returncode == 2 and done.stderr.startswith("error: E01 ")


def test_parse_profile_arg() -> None:
    name, shapes = parse_profile_arg("input.1=1x3x64x64:1x3x320x320:1x3x1280x1280")
    assert name == "input.1"
    assert shapes == {"min": [1, 3, 64, 64], "opt": [1, 3, 320, 320], "max": [1, 3, 1280, 1280]}
    with pytest.raises(UsageError):
        parse_profile_arg("x=1x3:1x3x4:1x3x4")
    with pytest.raises(UsageError):
        parse_profile_arg("x=1x3x9:1x3x4:1x3x4")


def test_profiles_fixed_dynamic_manifest_and_override() -> None:
    notes: list[str] = []
    dims = {"fixed": [1, 3, 192, 192], "image": [1, 3, None, None], "batch": [None, 512]}
    profiles = input_profiles(dims, note=notes.append)
    assert profiles["fixed"] == {"min": [1, 3, 192, 192], "opt": [1, 3, 192, 192], "max": [1, 3, 192, 192]}
    assert profiles["image"] == {"min": [1, 3, 64, 64], "opt": [1, 3, 320, 320], "max": [1, 3, 1280, 1280]}
    assert profiles["batch"] == {"min": [1, 512], "opt": [1, 512], "max": [1, 512]}
    assert len(notes) == 2 and "no trt_profile in the manifest" in notes[0]
    manifest = {"image": {"min": [1, 3, 96, 96], "opt": [1, 3, 640, 640], "max": [1, 3, 960, 960]}}
    override = {"image": {"min": [1, 3, 32, 32], "opt": [1, 3, 64, 64], "max": [1, 3, 128, 128]}}
    assert input_profiles(dims, manifest_profile=manifest, note=notes.append)["image"]["opt"] == [1, 3, 640, 640]
    assert input_profiles(dims, manifest_profile=manifest, overrides=override)["image"]["max"] == [1, 3, 128, 128]
    with pytest.raises(UsageError, match="axis 2 is fixed at 192"):
        input_profiles(dims, overrides={"fixed": {"min": [1, 3, 96, 96], "opt": [1, 3, 192, 192],
                                                  "max": [1, 3, 192, 192]}})


@pytest.mark.parametrize("changes", [{"precision": "int8"}, {"hardware_compatibility": "any"},
                                     {"workspace_mib": 0}])
def test_build_options_are_checked(changes: dict[str, object], tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="E01"):
        BuildOptions(engines_dir=tmp_path, **changes)  # type: ignore[arg-type]


def test_real_model_dims(model_file: Callable[[str], Path]) -> None:
    onnx = pytest.importorskip("onnx")
    assert onnx_input_dims(onnx.load(str(model_file("scrfd")))) == {"input.1": [1, 3, None, None]}
    assert onnx_input_dims(onnx.load(str(model_file("face_mesh")))) == {"input_1": [1, 3, 192, 192]}


def test_fp16_conversion_keeps_fp32_io_and_accuracy(model_file: Callable[[str], Path]) -> None:
    """What TensorRT 11 gets for an FP16 build: FP16 weights, FP32 inputs/outputs, same answers."""
    onnx = pytest.importorskip("onnx")
    pytest.importorskip("onnxconverter_common", reason="onnxconverter-common not installed")
    import onnxruntime as ort

    model = onnx.load(str(model_file("face_mesh")))
    half = convert_to_fp16(model)
    assert not has_fp16_weights(model) and has_fp16_weights(half)
    float32 = onnx.TensorProto.FLOAT
    assert [v.type.tensor_type.elem_type for v in (*half.graph.input, *half.graph.output)] == [float32] * 3
    x = np.random.default_rng(0).random((1, 3, 192, 192), dtype=np.float32)
    cpu = ["CPUExecutionProvider"]
    full = ort.InferenceSession(model.SerializeToString(), providers=cpu).run(None, {"input_1": x})
    reduced = ort.InferenceSession(half.SerializeToString(), providers=cpu).run(None, {"input_1": x})
    landmarks_full, landmarks_half = full[0].reshape(-1, 3), reduced[0].reshape(-1, 3)
    assert np.abs(landmarks_half[:, :2] - landmarks_full[:, :2]).max() < 0.5  # pixels of a 192 px crop
