"""tools/build_engines.py and TrtEngine against a stand-in ``tensorrt`` that keeps TensorRT's rules.

``fake_tensorrt`` follows the TensorRT 10 and 11 Python APIs and runs the built "engine" with ONNX
Runtime on the CPU, so the build and the runtime go end to end here for SCRFD, the face mesh and the
neural stand-ins (ArcFace included), and every result is compared with ONNX Runtime. The module is
injected as ``tensorrt`` for these tests only. There is no CUDA device: TrtEngine runs with
``device="cpu"`` (host buffers), the "GPU" in the sidecars is the fake's, and the build's
current-device switch (``build.cuda_device``) sets the fake's current device. What this cannot show:
real TensorRT numerics, FP16 accuracy, CUDA streams and graphs (tools/gpu_check.py runs those tests
on a GPU machine where TensorRT is installed).
"""

from __future__ import annotations

import contextlib
import gc
import sys
import weakref
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import fake_tensorrt
import neural_standins as standins
import numpy as np
import pytest

from realtime.engines import build
from realtime.engines.build import BuildOptions, build_engine
from realtime.engines.ort import CPU_PROVIDER, OrtEngine
from realtime.engines.sidecar import GpuInfo
from realtime.errors import BackendError, ModelError

torch = pytest.importorskip("torch")
from realtime.engines.trt import TrtEngine  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tools"))
import build_engines  # noqa: E402

GPU = GpuInfo(name="Fake GPU", compute_capability="8.9", memory_mib=24576, driver_version="999.0")
VERSIONS = ("10.4.0", "11.0.0")


@pytest.fixture(params=VERSIONS)
def trt(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """A fresh fake TensorRT of each version, as ``import tensorrt`` sees it."""
    module = fake_tensorrt.make(request.param)
    monkeypatch.setitem(sys.modules, "tensorrt", module)

    @contextlib.contextmanager
    def on_device(device_id: int) -> Iterator[None]:
        previous, module.state.current_device = module.state.current_device, device_id
        try:
            yield
        finally:
            module.state.current_device = previous

    monkeypatch.setattr(build, "cuda_device", on_device)
    monkeypatch.setattr(build_engines, "detect_gpu", lambda index=0: (GPU, None))
    yield module


def options(tmp_path: Path, **changes: Any) -> BuildOptions:
    return BuildOptions(engines_dir=tmp_path / "engines", **changes)


def build_standin(trt: Any, path: Path, tmp_path: Path, **changes: Any) -> Path:
    result = build_engine(trt, path, model_name=path.stem, gpu=GPU, options=options(tmp_path, **changes),
                          say=lambda line: None)
    return result.engine_path


def same_as_onnxruntime(engine: TrtEngine, model: Path, feeds: dict[str, np.ndarray], atol: float) -> None:
    expected = OrtEngine(model, providers=[CPU_PROVIDER]).run(feeds)
    got = engine.run(feeds)
    assert set(got) == set(expected)
    for name, value in expected.items():
        assert got[name].dtype == value.dtype and got[name].shape == value.shape, name
        np.testing.assert_allclose(got[name], value, atol=atol, err_msg=name)


def test_tool_builds_scrfd_and_mesh_and_they_run_like_onnxruntime(trt: Any, models_root: Path, tmp_path: Path,
                                                                    capsys: pytest.CaptureFixture[str]) -> None:
    engines = tmp_path / "engines"
    status = build_engines.main(["scrfd", "face_mesh", "--models-dir", str(models_root),
                                 "--engines-dir", str(engines), "--precision", "fp32"])
    out = capsys.readouterr().out
    assert status == 0, out
    built = {p.name.split("-")[0]: p for p in engines.glob("*.engine")}
    assert set(built) == {"scrfd", "face_mesh"}
    rng = np.random.default_rng(0)
    scrfd = TrtEngine(built["scrfd"], device="cpu")
    assert scrfd.profile("input.1") == ((1, 3, 64, 64), (1, 3, 192, 320), (1, 3, 1280, 1280))
    for size in ((256, 320), (640, 640)):  # two shapes inside the profile, one after the other
        feeds = {"input.1": rng.uniform(-1, 1, (1, 3, *size)).astype(np.float32)}
        same_as_onnxruntime(scrfd, models_root / "scrfd.onnx", feeds, atol=1e-5)
    mesh = TrtEngine(built["face_mesh"], device="cpu")
    feeds = {"input_1": rng.uniform(0, 1, (1, 3, 192, 192)).astype(np.float32)}
    same_as_onnxruntime(mesh, models_root / "face_mesh.onnx", feeds, atol=1e-4)
    again = build_engines.main(["scrfd", "--models-dir", str(models_root), "--engines-dir", str(engines),
                                "--precision", "fp32"])
    assert again == 0 and "up to date" in capsys.readouterr().out


def test_arcface_dynamic_batch_gets_a_profile(trt: Any, tmp_path: Path) -> None:
    """Rule: a dynamic input needs a profile. ArcFace's batch axis is dynamic and pinned to 1..1."""
    model = standins.arcface(tmp_path / "w600k_r50.onnx")
    engine = TrtEngine(build_standin(trt, model, tmp_path, precision="fp32"), device="cpu")
    assert engine.profile("input.1") == ((1, 3, 112, 112),) * 3
    feeds = {"input.1": np.random.default_rng(1).uniform(-1, 1, (1, 3, 112, 112)).astype(np.float32)}
    same_as_onnxruntime(engine, model, feeds, atol=1e-5)
    assert not trt.state.errors


def test_neural_standins_build_and_run(trt: Any, tmp_path: Path) -> None:
    rng = np.random.default_rng(2)
    swapper = standins.inswapper(tmp_path / "inswapper_128.onnx", gain=0.7, offset=0.1,
                                 probe=rng.normal(size=512), probe_gain=0.05)
    engine = TrtEngine(build_standin(trt, swapper, tmp_path, precision="fp32"), device="cpu")
    feeds = {"target": rng.uniform(0, 1, (1, 3, 128, 128)).astype(np.float32),
             "source": rng.normal(size=(1, 512)).astype(np.float32)}
    same_as_onnxruntime(engine, swapper, feeds, atol=1e-5)
    gfpgan = standins.gfpgan(tmp_path / "GFPGANv1.4.onnx", gain=0.5)
    engine = TrtEngine(build_standin(trt, gfpgan, tmp_path, precision="fp32"), device="cpu")
    same_as_onnxruntime(engine, gfpgan, {"input": rng.uniform(-1, 1, (1, 3, 512, 512)).astype(np.float32)},
                        atol=1e-5)


def test_without_a_profile_the_build_fails(trt: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The rule catches the ArcFace bug: the old rule (profile only when min != max) gives no engine."""
    model = standins.arcface(tmp_path / "w600k_r50.onnx")
    configure = build._configure
    monkeypatch.setattr(build, "_configure", lambda *a, **k: configure(*a, **{**k, "dynamic": set()}))
    with pytest.raises(BackendError) as failed:
        build_standin(trt, model, tmp_path, precision="fp32")
    assert failed.value.code == "E20"
    assert "no optimization profile" in trt.state.errors[-1]


def test_shapes_outside_the_profile_are_refused(trt: Any, models_root: Path, tmp_path: Path) -> None:
    engine = TrtEngine(build_standin(trt, models_root / "scrfd.onnx", tmp_path, precision="fp32"), device="cpu")
    with pytest.raises(ModelError) as outside:
        engine.run({"input.1": np.zeros((1, 3, 32, 32), np.float32)})  # min is 64 (the default profile)
    assert outside.value.code == "E08"
    # The fake refuses it too, when the engine's own check is bypassed.
    context = engine._context
    assert context.set_input_shape("input.1", (1, 3, 32, 32)) is False
    assert "outside the profile" in trt.state.errors[-1]
    assert context.set_input_shape("input.1", (1, 3, 64, 96)) is True


def test_every_io_tensor_needs_an_address(trt: Any, tmp_path: Path) -> None:
    model = standins.inswapper(tmp_path / "inswapper_128.onnx")
    engine = TrtEngine(build_standin(trt, model, tmp_path, precision="fp32"), device="cpu")
    context = engine._engine.create_execution_context()
    target, source = torch.zeros(1, 3, 128, 128), torch.zeros(1, 512)
    assert context.set_tensor_address("target", target.data_ptr())
    assert context.set_tensor_address("source", source.data_ptr())
    assert context.execute_async_v3(0) is False  # "output" has no address
    assert "no address for ['output']" in trt.state.errors[-1]
    out = engine.run({"target": target.numpy(), "source": source.numpy()})["output"]  # TrtEngine binds all
    assert out.shape == (1, 3, 128, 128)


def test_a_refused_address_is_an_error_naming_the_tensor(trt: Any, tmp_path: Path) -> None:
    model = standins.inswapper(tmp_path / "inswapper_128.onnx")
    engine = TrtEngine(build_standin(trt, model, tmp_path, precision="fp32"), device="cpu")
    raw = bytearray(4 * 3 * 128 * 128 + 1)
    misaligned = torch.frombuffer(raw, dtype=torch.float32, offset=1, count=3 * 128 * 128).reshape(1, 3, 128, 128)
    with pytest.raises(BackendError) as refused:
        engine.run_torch({"target": misaligned, "source": torch.zeros(1, 512)})
    assert refused.value.code == "E20" and "refused the buffer of tensor 'target'" in str(refused.value)


def test_dtypes_must_match(trt: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    model = standins.inswapper(tmp_path / "inswapper_128.onnx", gain=0.5)
    engine = TrtEngine(build_standin(trt, model, tmp_path, precision="fp32"), device="cpu")
    feeds = {"target": np.full((1, 3, 128, 128), 0.5, np.float16), "source": np.zeros((1, 512), np.float32)}
    with pytest.raises(TypeError, match=r"must be torch\.float32"):
        engine.run(feeds)
    # Buffers in another dtype than the engine's: the fake reads the bytes as the engine's dtype, so the
    # numbers come out wrong, and the comparison with ONNX Runtime catches it.
    from realtime.engines import trt as trt_module

    wrong = trt_module._torch_dtypes(trt, torch) | {trt.DataType.FLOAT: torch.float64}
    monkeypatch.setattr(trt_module, "_torch_dtypes", lambda *_: wrong)
    broken = TrtEngine(engine.path, device="cpu")
    out = broken.run({"target": np.full((1, 3, 128, 128), 0.5), "source": np.zeros((1, 512))})["output"]
    assert not np.allclose(out, 0.25, atol=1e-3)


def test_tensorrt_11_has_no_fp16_flag_and_gets_an_fp16_graph(trt: Any, tmp_path: Path) -> None:
    model = standins.arcface(tmp_path / "w600k_r50.onnx")
    engine_path = build_standin(trt, model, tmp_path, precision="fp16")
    from realtime.engines.sidecar import read_sidecar

    flags = read_sidecar(engine_path).builder_flags
    if trt.__version__.startswith("11"):
        assert not hasattr(trt.BuilderFlag, "FP16")
        assert "onnx-fp16" in flags  # strongly typed: the graph itself was converted
    else:
        assert "onnx-fp16" not in flags
    engine = TrtEngine(engine_path, device="cpu")
    feeds = {"input.1": np.random.default_rng(4).uniform(-1, 1, (1, 3, 112, 112)).astype(np.float32)}
    same_as_onnxruntime(engine, model, feeds, atol=2e-2)  # float16 weights on the 11 path


def test_one_logger_and_the_requested_device(trt: Any, tmp_path: Path) -> None:
    arcface = build_standin(trt, standins.arcface(tmp_path / "w600k_r50.onnx"), tmp_path, precision="fp32",
                            device_id=1)
    swapper = build_standin(trt, standins.inswapper(tmp_path / "inswapper_128.onnx"), tmp_path, precision="fp32")
    first, second = TrtEngine(arcface, device="cpu"), TrtEngine(swapper, device="cpu")
    assert trt.state.ignored_loggers == 0 and trt.state.builds == 2
    assert first._engine.header["device"] == 1 and second._engine.header["device"] == 0


def test_close_frees_the_engine(trt: Any, tmp_path: Path) -> None:
    engine = TrtEngine(build_standin(trt, standins.inswapper(tmp_path / "i.onnx"), tmp_path, precision="fp32"),
                       device="cpu")
    engine.run({"target": np.zeros((1, 3, 128, 128), np.float32), "source": np.zeros((1, 512), np.float32)})
    context, cuda_engine = weakref.ref(engine._context), weakref.ref(engine._engine)
    engine.close()
    gc.collect()
    assert context() is None and cuda_engine() is None
    with pytest.raises(BackendError):
        engine.run({"target": np.zeros((1, 3, 128, 128), np.float32), "source": np.zeros((1, 512), np.float32)})


def test_out_of_memory_fallback_runs_the_float32_graph(trt: Any, tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """TensorRT runs the float16 inswapper, fails, and ONNX Runtime takes over with the float32 upcast."""
    from realtime.engines import selection
    from realtime.engines import trt as trt_module
    from realtime.engines.fallback import FallbackEngine
    from realtime.engines.opening import float32_maker
    from realtime.engines.probe import Availability
    from realtime.engines.sidecar import scan_engines

    model = standins.inswapper(tmp_path / "inswapper_128.fp16.onnx", gain=0.5, weights="float16")
    build_standin(trt, model, tmp_path, precision="fp16")
    engines, _ = scan_engines(tmp_path / "engines")
    available = Availability(ort_distributions=("onnxruntime 1.31.1",), ort_providers=(CPU_PROVIDER,),
                             tensorrt_version=trt.__version__, torch_cuda=True, gpu=GPU, engines=tuple(engines),
                             platform="linux")
    host_engine = trt_module.TrtEngine
    monkeypatch.setattr(trt_module, "TrtEngine", lambda *a, **k: host_engine(*a, **k, device="cpu"))
    made: list[bytes] = []
    maker = float32_maker(model)
    assert maker is not None

    def upcast() -> bytes:
        made.append(maker())
        return made[-1]

    engine, choice = selection.select_and_open(model, model_name="inswapper_128_fp16", available=available,
                                               ort_model=upcast)
    assert choice.backend == "tensorrt" and isinstance(engine, FallbackEngine)
    feeds = {"target": np.full((1, 3, 128, 128), 0.5, np.float32), "source": np.zeros((1, 512), np.float32)}
    np.testing.assert_allclose(engine.run(feeds)["output"], 0.25, atol=1e-3)
    trt.state.fail_executions = 1
    out = engine.run(feeds)["output"]
    assert engine.fell_back == ["onnxruntime CPUExecutionProvider"]
    assert len(made) == 1, "the fallback must open the float32 upcast, not the float16 file"
    import onnx

    from realtime.engines.onnx_graph import has_float16_weights

    assert not has_float16_weights(onnx.load_model_from_string(made[0]))
    np.testing.assert_allclose(out, 0.25, atol=1e-6)
