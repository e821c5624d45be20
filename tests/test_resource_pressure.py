"""Out of GPU memory mid-run: a smaller detector input, then a lesser backend, with one E20 warning each.

No GPU here: the failing engine is a real ONNX Runtime CPU session that starts
raising ONNX Runtime's own out-of-memory exception after a number of calls
(the message is the one its CUDA arena gives); the fallback is a real ONNX
Runtime CPU session opened from the model file.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from onnxruntime.capi import onnxruntime_pybind11_state as ort_state

from realtime.config import PipelineConfig
from realtime.engines.base import Engine, TensorSpec
from realtime.engines.fallback import (
    Fallback,
    FallbackEngine,
    ResourcePressure,
    fallback_chain,
    is_resource_error,
    ort_fallback,
    with_cpu_fallback,
)
from realtime.engines.ort import CPU_PROVIDER, CUDA_PROVIDER, OrtEngine
from realtime.errors import BackendError, SwapcamError
from realtime.faces.analyzer import FaceAnalyzer
from realtime.faces.detector import ScrfdDetector
from realtime.faces.landmarks import FaceMesh
from realtime.faceswap import FaceSwapProcessor, load_source_faces, prepare_swapper
from realtime.models import model_path, sample_path
from realtime.pipeline import Pipeline
from realtime.sinks.null import NullSink
from realtime.sources.image import ImageSource
from realtime.swappers.mesh import MeshSwapper

OOM_TEXT = ("[ONNXRuntimeError] : 6 : RUNTIME_EXCEPTION : Non-zero status code returned while running Conv node. "
            "Name:'Conv_0' Status Message: /onnxruntime_src/onnxruntime/core/framework/bfc_arena.cc:376 "
            "void* onnxruntime::BFCArena::AllocateRawInternal(size_t, bool, onnxruntime::Stream*, bool, "
            "onnxruntime::WaitNotificationFn) Failed to allocate memory for requested buffer of size 26214400\n")


class RunsOutOfMemory:
    """A real engine that pretends to be on a GPU and, after ``ok_calls`` runs, fails ``failures`` runs
    (None: every run from then on) with ONNX Runtime's out-of-memory exception."""

    backend = "onnxruntime"
    provider = CUDA_PROVIDER
    device_type = "cuda"

    def __init__(self, inner: Engine, *, ok_calls: int, failures: int | None = None) -> None:
        self.inner = inner
        self.ok_calls = ok_calls
        self.failures = failures
        self.calls = 0
        self.failed = 0

    @property
    def inputs(self) -> list[TensorSpec]:
        return self.inner.inputs

    @property
    def outputs(self) -> list[TensorSpec]:
        return self.inner.outputs

    def run(self, feeds: dict[str, Any]) -> dict[str, np.ndarray]:
        self.calls += 1
        if self.calls > self.ok_calls and (self.failures is None or self.failed < self.failures):
            self.failed += 1
            raise ort_state.RuntimeException(OOM_TEXT)
        return self.inner.run(feeds)


def cpu_engine(name: str) -> OrtEngine:
    return OrtEngine(model_path(name), providers=[CPU_PROVIDER])


def on_gpu_until(name: str, *, ok_calls: int, failures: int | None = None) -> FallbackEngine:
    """The model "on the GPU" (failing as asked) with ONNX Runtime CPU as its fallback, as selection wires it."""
    primary = RunsOutOfMemory(cpu_engine(name), ok_calls=ok_calls, failures=failures)
    return FallbackEngine(primary, fallbacks=[ort_fallback(model_path(name), providers=(CPU_PROVIDER,))],
                          name=name)


def e20_records(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.getMessage().startswith("E20 ")]


@pytest.fixture(scope="module")
def photo() -> np.ndarray:
    from realtime.images import load_image

    return load_image(sample_path("gauss.png"))


# ---------------------------------------------------------------- the engine layer


def test_out_of_memory_falls_back_to_cpu_once_and_results_stay_right(
        models_root: Path, caplog: pytest.LogCaptureFixture) -> None:
    engine = on_gpu_until("face_mesh", ok_calls=3)
    reference = cpu_engine("face_mesh")
    rng = np.random.default_rng(0)
    with caplog.at_level(logging.WARNING):
        for _ in range(10):
            feeds = {"input_1": rng.random((1, 3, 192, 192), dtype=np.float32)}
            got, want = engine.run(feeds), reference.run(feeds)
            for key in want:
                np.testing.assert_allclose(got[key], want[key], rtol=1e-5, atol=1e-5)
    warnings = e20_records(caplog)
    assert len(warnings) == 1, warnings  # once, not once per call
    assert "face_mesh on onnxruntime CUDAExecutionProvider" in warnings[0]
    assert "Failed to allocate memory" in warnings[0]
    assert "falling back to onnxruntime CPUExecutionProvider" in warnings[0]
    assert "\n" not in warnings[0]
    assert engine.fell_back == ["onnxruntime CPUExecutionProvider"] and engine.provider == CPU_PROVIDER
    assert engine.device_type == "cpu"  # attributes come from the engine running now


def test_other_errors_are_not_fallen_back_on(models_root: Path) -> None:
    engine = FallbackEngine(cpu_engine("face_mesh"), name="face_mesh",
                            fallbacks=[Fallback("never", lambda: pytest.fail("must not fall back"))])
    with pytest.raises(ort_state.InvalidArgument):  # a wrong input shape is a bug, not memory pressure
        engine.run({"input_1": np.zeros((1, 3, 10, 10), np.float32)})
    assert engine.fell_back == []


def test_no_backend_left_is_e20(models_root: Path) -> None:
    def also_full() -> Engine:
        raise ort_state.RuntimeException("CUDA failure 2: out of memory")

    engine = FallbackEngine(RunsOutOfMemory(cpu_engine("face_mesh"), ok_calls=0), name="face_mesh",
                            fallbacks=[Fallback("onnxruntime CUDAExecutionProvider", also_full)])
    with pytest.raises(BackendError) as info:
        engine.run({"input_1": np.zeros((1, 3, 192, 192), np.float32)})
    assert info.value.code == "E20" and "no backend left" in str(info.value)


def test_run_torch_falls_back_and_keeps_the_callers_device(models_root: Path) -> None:
    torch = pytest.importorskip("torch", reason="torch is not installed")

    class TorchOom(RunsOutOfMemory):
        def run_torch(self, feeds: dict[str, Any]) -> dict[str, Any]:
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 MiB")

    engine = FallbackEngine(TorchOom(cpu_engine("face_mesh"), ok_calls=0), name="face_mesh",
                            fallbacks=[ort_fallback(model_path("face_mesh"), providers=(CPU_PROVIDER,))])
    x = torch.rand(1, 3, 192, 192)
    out = engine.run_torch({"input_1": x})
    want = cpu_engine("face_mesh").run({"input_1": x.numpy()})
    for key, value in out.items():
        assert isinstance(value, torch.Tensor) and value.device == x.device
        np.testing.assert_allclose(value.numpy(), want[key], rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize(("exc", "expected"), [
    (ort_state.RuntimeException(OOM_TEXT), True),
    (ort_state.Fail("CUDA error cudaErrorMemoryAllocation:out of memory"), True),
    (ort_state.EPFail("TensorRT EP failed to create engine from network"), True),
    (ort_state.InvalidArgument("Got invalid dimensions for input: input_1 for the following indices"), False),
    (ort_state.RuntimeException("Non-zero status code returned while running Reshape node"), False),
    (RuntimeError("CUDA error: out of memory"), True),
    (RuntimeError("CUDNN_STATUS_NOT_INITIALIZED"), True),
    (RuntimeError("shape '[1, 3]' is invalid for input of size 4"), False),
    (MemoryError(), True),
    (BackendError("E20", "model.engine: TensorRT execute_async_v3 failed"), True),
    (BackendError("E09", "no GPU"), False),
    (ValueError("bad"), False),
])
def test_resource_errors_are_told_apart(exc: BaseException, expected: bool) -> None:
    assert is_resource_error(exc) is expected


def test_torch_out_of_memory_is_a_resource_error() -> None:
    torch = pytest.importorskip("torch", reason="torch is not installed")
    assert is_resource_error(torch.cuda.OutOfMemoryError("CUDA out of memory"))


def test_fallback_chains(tmp_path: Path) -> None:
    model = tmp_path / "m.onnx"  # never opened: fallbacks open lazily
    both = (CUDA_PROVIDER, CPU_PROVIDER)
    labels = [f.label for f in fallback_chain(model, backend="tensorrt", provider="TensorRT", ort_providers=both)]
    assert labels == ["onnxruntime CUDAExecutionProvider", "onnxruntime CPUExecutionProvider"]
    labels = [f.label for f in fallback_chain(model, backend="tensorrt", provider="TensorRT",
                                              ort_providers=(CPU_PROVIDER,))]
    assert labels == ["onnxruntime CPUExecutionProvider"]
    labels = [f.label for f in fallback_chain(model, backend="onnxruntime", provider=CUDA_PROVIDER,
                                              ort_providers=both)]
    assert labels == ["onnxruntime CPUExecutionProvider"]
    assert fallback_chain(model, backend="onnxruntime", provider=CPU_PROVIDER, ort_providers=both) == []


def test_cpu_fallback_makes_its_model_only_when_needed(models_root: Path, caplog: pytest.LogCaptureFixture) -> None:
    """The inswapper's float32 upcast is made in memory: its CPU fallback makes it again only on a fallback."""
    made: list[int] = []

    def model() -> bytes:
        made.append(1)
        return model_path("face_mesh").read_bytes()

    engine = with_cpu_fallback(RunsOutOfMemory(cpu_engine("face_mesh"), ok_calls=2), model, name="face_mesh")
    feeds = {"input_1": np.zeros((1, 3, 192, 192), np.float32)}
    with caplog.at_level(logging.WARNING):
        for _ in range(2):
            engine.run(feeds)
        assert made == []
        for _ in range(3):
            engine.run(feeds)
    assert made == [1] and len(e20_records(caplog)) == 1 and engine.provider == CPU_PROVIDER
    plain = cpu_engine("face_mesh")
    assert with_cpu_fallback(plain, model, name="face_mesh") is plain  # on CPU already: nothing to fall back to


def test_a_cpu_engine_is_not_wrapped(models_root: Path) -> None:
    from realtime.engines.selection import open_engine

    engine = open_engine(model_path("scrfd"), backend="onnxruntime", device="cpu")
    assert isinstance(engine, OrtEngine)  # nothing to fall back to, nothing to pay


# ---------------------------------------------------------------- the analyzer


def analyzer_with(detector_engine: Engine, mesh_engine: Engine) -> FaceAnalyzer:
    # Two slots and one face: every periodic detection runs at the full input size (not the 160 px check).
    return FaceAnalyzer(detector=ScrfdDetector(detector_engine), mesh=FaceMesh(mesh_engine), redetect_every=2,
                        max_faces=2)


def test_detector_steps_down_then_falls_back(models_root: Path, photo: np.ndarray,
                                             caplog: pytest.LogCaptureFixture) -> None:
    detector = on_gpu_until("scrfd", ok_calls=2)  # out of memory from the third detection on, at any size
    analyzer = analyzer_with(detector, cpu_engine("face_mesh"))
    with caplog.at_level(logging.WARNING):
        counts = [len(analyzer.track(photo, timestamp_s=i / 30)) for i in range(12)]
    assert counts == [1] * 12  # the face is there on every frame
    warnings = e20_records(caplog)
    assert len(warnings) == 2, warnings
    assert "face detector at 320 px" in warnings[0] and "stepping down to 160 px" in warnings[0]
    assert "scrfd on onnxruntime CUDAExecutionProvider" in warnings[1] and "CPUExecutionProvider" in warnings[1]
    assert analyzer.size_cap == 160 and detector.fell_back == ["onnxruntime CPUExecutionProvider"]
    assert analyzer.detections >= 6


def test_a_passing_shortage_needs_only_the_smaller_input(models_root: Path, photo: np.ndarray,
                                                         caplog: pytest.LogCaptureFixture) -> None:
    detector = on_gpu_until("scrfd", ok_calls=1, failures=1)
    analyzer = analyzer_with(detector, cpu_engine("face_mesh"))
    with caplog.at_level(logging.WARNING):
        counts = [len(analyzer.track(photo, timestamp_s=i / 30)) for i in range(6)]
    assert counts == [1] * 6
    assert len(e20_records(caplog)) == 1 and analyzer.size_cap == 160
    assert detector.fell_back == [] and detector.provider == CUDA_PROVIDER  # still "on the GPU"


def test_relief_is_not_offered_for_a_fixed_input(models_root: Path) -> None:
    class FixedShape(RunsOutOfMemory):
        @property
        def inputs(self) -> list[TensorSpec]:
            spec = self.inner.inputs[0]
            return [TensorSpec(name=spec.name, shape=(1, 3, 320, 320), dtype=spec.dtype)]

    engine = FallbackEngine(FixedShape(cpu_engine("scrfd"), ok_calls=0), name="scrfd", fallbacks=[])
    analyzer_with(engine, cpu_engine("face_mesh"))
    assert engine.relief is None  # a TensorRT engine built for one shape cannot take a smaller input
    with pytest.raises(BackendError) as info:
        engine.run({"input.1": np.zeros((1, 3, 320, 320), np.float32)})
    assert info.value.code == "E20" and not isinstance(info.value, ResourcePressure)


# ---------------------------------------------------------------- the live pipeline


def test_stream_goes_on_through_memory_pressure(models_root: Path, caplog: pytest.LogCaptureFixture) -> None:
    """The face swap on a live source: the detector and the mesh run out of memory after a few frames; every
    frame is still swapped, frames keep flowing, and each fallback step is logged once."""
    detector = on_gpu_until("scrfd", ok_calls=1)
    mesh = on_gpu_until("face_mesh", ok_calls=8)
    analyzer = FaceAnalyzer(detector=ScrfdDetector(detector), mesh=FaceMesh(mesh), redetect_every=5)
    swapper = MeshSwapper()
    prepare_swapper(swapper, load_source_faces([sample_path("newton.png")], analyzer))
    processor = FaceSwapProcessor(analyzer=analyzer, swapper=swapper)
    source = ImageSource(str(sample_path("gauss.png")), width=480, height=360, fps=15)
    pipeline = Pipeline(source=source, processor=processor, sinks=[NullSink()],
                        config=PipelineConfig(duration_s=3.0, ring_size=2))
    with caplog.at_level(logging.WARNING):
        start = time.perf_counter()
        pipeline.run()
    stats = pipeline.summary()
    assert time.perf_counter() - start < 6.0
    assert detector.fell_back and mesh.fell_back
    assert stats["errors"]["processor"] == 0  # every failed call was retried within its frame
    assert not [r for r in caplog.records if r.getMessage().startswith("E21")]
    assert stats["frames"]["output"] >= 25  # ≈ 45 at 15 fps; a loaded 2-core machine drops some
    assert processor.frames_swapped == stats["frames"]["processed"]  # the face was swapped in every frame
    times = np.array(pipeline.stats.output_times_ns, dtype=np.int64)
    assert np.diff(times).max() / 1e9 < 1.0  # no stall while the fallbacks opened
    warnings = e20_records(caplog)
    assert len(warnings) == 3, warnings  # detector step-down, detector fallback, mesh fallback: once each
    assert sum("stepping down" in w for w in warnings) == 1


def test_e20_is_in_the_catalogue_with_a_remedy() -> None:
    assert "--device cpu" in SwapcamError("E20").message()
