"""Engine selection, sidecars and the ONNX Runtime engine — on this machine and with fakes.

The fakes are :class:`Availability` records (what selection decides over), so
every branch of the decision is covered without a GPU; the real machine is
probed too, and the ONNX Runtime engine runs real models.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from realtime.engines import probe
from realtime.engines.base import Engine, TorchEngine
from realtime.engines.ort import CPU_PROVIDER, CUDA_PROVIDER, OrtEngine
from realtime.engines.probe import Availability, parse_nvidia_smi, probe_availability
from realtime.engines.selection import Choice, choose, open_engine, select_and_open
from realtime.engines.sidecar import (
    EngineSidecar,
    GpuInfo,
    engine_file_name,
    mismatches,
    read_sidecar,
    scan_engines,
    sidecar_path,
    write_sidecar,
)
from realtime.engines.trt import check_input_shape, dims_to_shape
from realtime.errors import BackendError, ModelError, SwapcamError, UsageError
from realtime.hashing import file_sha256

onnx = pytest.importorskip("onnx")
from onnx import TensorProto, helper, numpy_helper  # noqa: E402

SHA = "a" * 64
OTHER_SHA = "b" * 64
RTX = GpuInfo(name="NVIDIA GeForce RTX 4070", compute_capability="8.9", memory_mib=12282, driver_version="560.35")
T4 = GpuInfo(name="Tesla T4", compute_capability="7.5", memory_mib=15360, driver_version="560.35")
WEIGHTS = np.random.default_rng(7).normal(size=(4, 3)).astype(np.float32)
BIAS = np.array([0.1, -0.2, 0.3, 0.0], np.float32)


def tiny_model(path: Path) -> Path:
    """A real ONNX model: 1×1 conv (3→4) + ReLU with dynamic N/H/W, and the mean of the result."""
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", 3, "h", "w"])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, ["n", 4, "h", "w"])
    mean = helper.make_tensor_value_info("mean", TensorProto.FLOAT, [])
    nodes = [
        helper.make_node("Conv", ["x", "W", "B"], ["conv"]),
        helper.make_node("Relu", ["conv"], ["y"]),
        helper.make_node("ReduceMean", ["y"], ["mean"], keepdims=0),
    ]
    inits = [numpy_helper.from_array(WEIGHTS.reshape(4, 3, 1, 1), "W"), numpy_helper.from_array(BIAS, "B")]
    graph = helper.make_graph(nodes, "tiny", [x], [y, mean], initializer=inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return path


def tiny_reference(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    y = np.maximum(np.einsum("oc,nchw->nohw", WEIGHTS, x) + BIAS[None, :, None, None], 0)
    return y, np.asarray(y.mean())


@pytest.fixture()
def tiny(tmp_path: Path) -> Path:
    return tiny_model(tmp_path / "tiny.onnx")


def sidecar(**changes: object) -> EngineSidecar:
    base = EngineSidecar(model_name="tiny", model_sha256=SHA, tensorrt_version="10.4.0", gpu_name=RTX.name,
                         compute_capability=RTX.compute_capability, precision="fp16",
                         profiles={"x": {"min": [1, 3, 32, 32], "opt": [1, 3, 64, 64], "max": [1, 3, 128, 128]}},
                         build_seconds=12.5, built_at="2026-01-02T03:04:05+00:00", builder_flags=("fp16",))
    return replace(base, **changes)  # type: ignore[arg-type]


def gpu_machine(engines: tuple[tuple[Path, EngineSidecar], ...] = (), **changes: object) -> Availability:
    base = Availability(ort_distributions=("onnxruntime-gpu 1.31.1",),
                        ort_providers=(CUDA_PROVIDER, CPU_PROVIDER), tensorrt_version="10.4.0",
                        torch_cuda=True, gpu=RTX, engines=engines, platform="linux")
    return replace(base, **changes)  # type: ignore[arg-type]


CPU_MACHINE = Availability(ort_distributions=("onnxruntime 1.31.1",), ort_providers=(CPU_PROVIDER,),
                           tensorrt_error="not installed", gpu_error="not probed", platform="linux")
ENGINE = Path("engines/tiny-aaaaaaaa-sm89-trt10.4.0-fp16.engine")


# --------------------------------------------------------------------------- selection (fakes)


def test_auto_takes_matching_tensorrt_engine() -> None:
    choice = choose(model_name="tiny", model_sha256=SHA, available=gpu_machine(((ENGINE, sidecar()),)))
    assert choice.backend == "tensorrt" and choice.engine_path == ENGINE and choice.provider == "TensorRT"
    assert choice.skipped == ()


def test_auto_skips_engine_from_other_model_file_and_says_why() -> None:
    available = gpu_machine(((ENGINE, sidecar(model_sha256=OTHER_SHA)),))
    choice = choose(model_name="tiny", model_sha256=SHA, available=available)
    assert choice.backend == "onnxruntime" and choice.providers == (CUDA_PROVIDER, CPU_PROVIDER)
    reason = " ".join(choice.skipped)
    assert "different model file" in reason and "tools/build_engines.py" in reason
    assert "tiny: onnxruntime CUDAExecutionProvider (skipped: tensorrt:" in choice.summary()


@pytest.mark.parametrize(("changes", "phrase"), [
    ({"gpu": T4}, "compute capability 8.9"),
    ({"tensorrt_version": "10.7.0"}, "built with TensorRT 10.4.0, this is 10.7.0"),
    ({"gpu": replace(RTX, name="NVIDIA GeForce RTX 4070 Ti")}, "built on NVIDIA GeForce RTX 4070"),
])
def test_auto_skips_engine_for_other_gpu_or_tensorrt(changes: dict[str, object], phrase: str) -> None:
    choice = choose(model_name="tiny", model_sha256=SHA, available=gpu_machine(((ENGINE, sidecar()),), **changes))
    assert choice.backend == "onnxruntime"
    assert phrase in " ".join(choice.skipped)


def test_no_engine_at_all_says_run_the_build_tool() -> None:
    choice = choose(model_name="tiny", model_sha256=SHA, available=gpu_machine())
    assert choice.skipped == ("tensorrt: no engine for this model built for this GPU — run tools/build_engines.py",)


def test_explicit_tensorrt_with_mismatched_engine_is_e08() -> None:
    available = gpu_machine(((ENGINE, sidecar(compute_capability="7.5", gpu_name=T4.name)),))
    with pytest.raises(ModelError) as info:
        choose(model_name="tiny", model_sha256=SHA, available=available, backend="tensorrt")
    assert info.value.code == "E08" and "compute capability 7.5" in str(info.value)


def test_explicit_engine_file_that_does_not_fit_is_e08(tmp_path: Path) -> None:
    engine = tmp_path / "tiny.engine"
    engine.write_bytes(b"plan")
    write_sidecar(engine, sidecar(tensorrt_version="10.0.1"))
    with pytest.raises(ModelError) as info:
        choose(model_name="tiny", model_sha256=SHA, available=gpu_machine(), engine=engine)
    assert info.value.code == "E08" and "10.0.1" in info.value.detail


def test_explicit_engine_without_sidecar_is_e08(tmp_path: Path) -> None:
    engine = tmp_path / "tiny.engine"
    engine.write_bytes(b"plan")
    with pytest.raises(ModelError, match="E08"):
        choose(model_name="tiny", model_sha256=SHA, available=gpu_machine(), engine=engine)


@pytest.mark.parametrize(("changes", "phrase"), [
    ({"tensorrt_version": None, "tensorrt_error": "not installed"}, "tensorrt: not installed"),
    ({"gpu": None, "gpu_error": "nvidia-smi not found"}, "no CUDA GPU (nvidia-smi not found)"),
    ({"torch_cuda": False}, "torch with CUDA is not installed"),
])
def test_backend_tensorrt_without_tensorrt_or_gpu_is_e09(changes: dict[str, object], phrase: str) -> None:
    available = gpu_machine(((ENGINE, sidecar()),), **changes)
    with pytest.raises(BackendError) as info:
        choose(model_name="tiny", model_sha256=SHA, available=available, backend="tensorrt")
    assert info.value.code == "E09" and phrase in str(info.value)
    auto = choose(model_name="tiny", model_sha256=SHA, available=available)
    assert auto.backend == "onnxruntime" and phrase in auto.skipped[0]


def test_cpu_machine_auto_gives_cpu_with_reasons() -> None:
    choice = choose(model_name="scrfd", model_sha256=None, available=CPU_MACHINE)
    assert choice.providers == (CPU_PROVIDER,)
    assert choice.skipped == ("tensorrt: not installed",
                              "CUDAExecutionProvider: not available in this onnxruntime build",
                              "torch cuda: not probed")


def test_directml_is_taken_where_it_exists_and_coreml_only_when_asked() -> None:
    windows = replace(CPU_MACHINE, ort_providers=("DmlExecutionProvider", CPU_PROVIDER), platform="win32")
    assert choose(model_name="m", model_sha256=None, available=windows).providers[0] == "DmlExecutionProvider"
    mac = replace(CPU_MACHINE, ort_providers=("CoreMLExecutionProvider", CPU_PROVIDER), platform="darwin")
    choice = choose(model_name="m", model_sha256=None, available=mac)
    assert choice.providers == (CPU_PROVIDER,)  # CoreML is not measured yet: opt-in
    assert any("CUDAExecutionProvider" in s for s in choice.skipped)
    assert any("--device coreml" in s for s in choice.skipped)
    asked = choose(model_name="m", model_sha256=None, available=mac, device="coreml")
    assert asked.providers == ("CoreMLExecutionProvider", CPU_PROVIDER)


def test_device_cpu_never_takes_gpu() -> None:
    choice = choose(model_name="tiny", model_sha256=SHA, available=gpu_machine(((ENGINE, sidecar()),)),
                    device="cpu")
    assert choice.backend == "onnxruntime" and choice.providers == (CPU_PROVIDER,)
    assert choice.skipped == ("tensorrt: --device cpu",)


def test_device_cuda_without_cuda_provider_is_e09() -> None:
    with pytest.raises(BackendError) as info:
        choose(model_name="m", model_sha256=None, available=CPU_MACHINE, device="cuda", backend="onnxruntime")
    assert info.value.code == "E09" and "onnxruntime 1.31.1" in info.value.detail


def test_both_onnxruntime_packages_give_e18_warning() -> None:
    both = replace(CPU_MACHINE, ort_distributions=("onnxruntime 1.31.1", "onnxruntime-gpu 1.31.1"))
    choice = choose(model_name="m", model_sha256=None, available=both)
    assert len(choice.warnings) == 1 and choice.warnings[0].startswith("E18 ")
    assert "onnxruntime-gpu 1.31.1" in choice.warnings[0]


def test_no_onnxruntime_is_coded() -> None:
    missing = replace(CPU_MACHINE, ort_distributions=(), ort_providers=(), ort_error="No module named 'x'")
    with pytest.raises(BackendError, match="E23"):
        choose(model_name="m", model_sha256=None, available=missing)


@pytest.mark.parametrize(("backend", "device"), [("fast", "auto"), ("auto", "gpu"), ("tensorrt", "cpu")])
def test_bad_options_are_e01(backend: str, device: str) -> None:
    with pytest.raises(UsageError, match="E01"):
        choose(model_name="m", model_sha256=None, available=CPU_MACHINE, backend=backend, device=device)


def test_prefers_exact_fp16_newest_engine() -> None:
    engines = (
        (Path("a-fp32.engine"), sidecar(precision="fp32")),
        (Path("b-old.engine"), sidecar(built_at="2025-01-01T00:00:00+00:00")),
        (Path("c-compat.engine"), sidecar(version_compatible=True, built_at="2027-01-01T00:00:00+00:00")),
        (Path("d-new.engine"), sidecar(built_at="2026-06-01T00:00:00+00:00")),
    )
    choice = choose(model_name="tiny", model_sha256=SHA, available=gpu_machine(engines))
    assert choice.engine_path == Path("d-new.engine")


# --------------------------------------------------------------------------- sidecars


def test_sidecar_round_trip_and_name(tmp_path: Path) -> None:
    name = engine_file_name(model_name="scrfd", model_sha256=SHA, gpu=RTX, tensorrt_version="10.4.0",
                            precision="fp16")
    assert name == "scrfd-aaaaaaaa-sm89-trt10.4.0-fp16.engine"
    engine = tmp_path / name
    engine.write_bytes(b"plan")
    original = sidecar(version_compatible=True, hardware_compatibility="ampere_plus", workspace_mib=2048)
    path = write_sidecar(engine, original)
    assert path == sidecar_path(engine) and path.name == name + ".json"
    assert read_sidecar(path) == original
    assert read_sidecar(engine) == original  # by engine path too
    assert scan_engines(tmp_path) == ([(engine, original)], [])


def test_scan_reports_broken_and_orphaned_files(tmp_path: Path) -> None:
    (tmp_path / "lonely.engine").write_bytes(b"plan")
    (tmp_path / "ghost.engine.json").write_text(sidecar().to_json())
    (tmp_path / "bad.engine").write_bytes(b"plan")
    (tmp_path / "bad.engine.json").write_text('{"model_name": "x"}')
    found, problems = scan_engines(tmp_path)
    assert found == []
    text = " | ".join(problems)
    assert "lonely.engine has no sidecar" in text and "ghost.engine.json has no engine file" in text
    assert "bad.engine.json is not a valid engine sidecar (missing fields" in text


def test_compatibility_rules() -> None:
    vc = sidecar(version_compatible=True)
    assert mismatches(vc, model_sha256=SHA, gpu=RTX, tensorrt_version="10.9.0") == []
    assert mismatches(vc, model_sha256=SHA, gpu=RTX, tensorrt_version="10.1.0") != []
    ampere = sidecar(hardware_compatibility="ampere_plus")
    a100 = GpuInfo(name="NVIDIA A100", compute_capability="8.0")
    assert mismatches(ampere, model_sha256=SHA, gpu=a100, tensorrt_version="10.4.0") == []
    assert "Ampere or newer" in mismatches(ampere, model_sha256=SHA, gpu=T4, tensorrt_version="10.4.0")[0]
    same_cc = sidecar(hardware_compatibility="same_compute_capability")
    other_89 = GpuInfo(name="NVIDIA L4", compute_capability="8.9")
    assert mismatches(same_cc, model_sha256=SHA, gpu=other_89, tensorrt_version="10.4.0") == []
    assert mismatches(sidecar(), model_sha256=SHA, gpu=other_89, tensorrt_version="10.4.0") != []
    assert mismatches(sidecar(), model_sha256=SHA, gpu=None, tensorrt_version=None) == [
        "TensorRT is not installed", "no CUDA GPU found"]


def test_parse_nvidia_smi() -> None:
    text = "0, NVIDIA GeForce RTX 4070, 8.9, 12282, 560.35.03\n1, Tesla T4, 7.5, 15360, 560.35.03\n"
    gpus = parse_nvidia_smi(text)
    assert gpus[0] == GpuInfo(name="NVIDIA GeForce RTX 4070", compute_capability="8.9", memory_mib=12282,
                              driver_version="560.35.03", index=0)
    assert gpus[1].sm == "75" and gpus[1].index == 1
    assert parse_nvidia_smi("[N/A]\n") == []


def test_trt_input_shape_checks() -> None:
    profile = ((1, 3, 32, 32), (1, 3, 64, 64), (1, 3, 128, 128))
    check_input_shape("x", (1, 3, 96, 64), (1, 3, None, None), profile)
    with pytest.raises(ModelError, match="outside the engine's profile"):
        check_input_shape("x", (1, 3, 160, 64), (1, 3, None, None), profile)
    with pytest.raises(ValueError, match="axis 1 must be 3"):
        check_input_shape("x", (1, 4, 64, 64), (1, 3, None, None), profile)
    with pytest.raises(ValueError, match="needs 4 dimensions"):
        check_input_shape("x", (3, 64, 64), (1, 3, None, None), profile)
    assert dims_to_shape((1, 3, -1, -1)) == (1, 3, None, None)


# --------------------------------------------------------------------------- this machine


def test_probe_this_machine_and_choose() -> None:
    available = probe_availability(Path("/nonexistent-engines"))
    assert CPU_PROVIDER in available.ort_providers
    assert any(d.startswith("onnxruntime") for d in available.ort_distributions)
    choice = choose(model_name="tiny", model_sha256=None, available=available)
    assert choice.backend in ("onnxruntime", "tensorrt")
    if available.tensorrt_version is None:
        assert choice.skipped[0].startswith("tensorrt: ")
    if CUDA_PROVIDER not in available.ort_providers:
        assert choice.providers == (CPU_PROVIDER,)
        assert "CUDAExecutionProvider: not available in this onnxruntime build" in choice.skipped


def test_ort_engine_runs_dynamic_shapes_with_and_without_binding(tiny: Path) -> None:
    engine = open_engine(tiny, engines_dir=tiny.parent, threads=1)
    assert isinstance(engine, Engine) and isinstance(engine, TorchEngine)
    assert engine.backend == "onnxruntime" and engine.provider == CPU_PROVIDER
    assert [s.name for s in engine.inputs] == ["x"] and engine.inputs[0].shape == (None, 3, None, None)
    bound = OrtEngine(tiny, providers=[CPU_PROVIDER], io_binding=True)
    for shape in ((1, 3, 8, 12), (2, 3, 5, 7)):
        x = np.random.default_rng(0).normal(size=shape).astype(np.float32)
        want_y, want_mean = tiny_reference(x)
        for candidate in (engine, bound):
            out = candidate.run({"x": x})
            assert out["y"].shape == want_y.shape
            np.testing.assert_allclose(out["y"], want_y, rtol=1e-5, atol=1e-5)
            np.testing.assert_allclose(out["mean"], want_mean, rtol=1e-5)


def test_ort_run_torch_keeps_tensors(tiny: Path) -> None:
    torch = pytest.importorskip("torch", reason="torch is not installed")
    engine = OrtEngine(tiny, providers=[CPU_PROVIDER])
    x = torch.from_numpy(np.random.default_rng(1).normal(size=(1, 3, 6, 6)).astype(np.float32))
    first = engine.run_torch({"x": x})
    assert isinstance(first["y"], torch.Tensor) and first["y"].device.type == "cpu"
    np.testing.assert_allclose(first["y"].numpy(), tiny_reference(x.numpy())[0], rtol=1e-5, atol=1e-5)
    kept = first["y"].clone()
    engine.run_torch({"x": x * 2})
    assert torch.equal(first["y"], kept)  # a later run does not overwrite an earlier result
    np.testing.assert_allclose(engine.run({"x": x})["y"], kept.numpy(), rtol=1e-6)


def test_cuda_provider_that_does_not_load_is_e19(tiny: Path, caplog: pytest.LogCaptureFixture) -> None:
    """This onnxruntime has no CUDA provider: asked for it, the session really falls back to CPU."""
    if CUDA_PROVIDER in probe.ort_providers()[0]:
        pytest.skip("this onnxruntime has a CUDA provider; the fallback cannot be provoked")
    claims_cuda = replace(CPU_MACHINE, ort_providers=(CUDA_PROVIDER, CPU_PROVIDER))
    engine = OrtEngine(tiny, providers=[CUDA_PROVIDER, CPU_PROVIDER])
    assert engine.lost_providers() == (CUDA_PROVIDER,) and engine.provider == CPU_PROVIDER
    with caplog.at_level(logging.WARNING, logger="realtime.engines.selection"):
        opened, choice = select_and_open(tiny, available=claims_cuda)
    assert choice.providers[0] == CUDA_PROVIDER and opened.provider == CPU_PROVIDER
    assert any(r.getMessage().startswith("E19 ") and "running on CPUExecutionProvider" in r.getMessage()
               for r in caplog.records)
    with pytest.raises(BackendError) as info:
        open_engine(tiny, available=claims_cuda, device="cuda")
    assert info.value.code == "E19"


def test_open_engine_logs_choice(tiny: Path, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="realtime.engines.selection"):
        _, choice = select_and_open(tiny, available=CPU_MACHINE, model_name="tiny")
    assert isinstance(choice, Choice)
    assert "tiny: onnxruntime CPUExecutionProvider (skipped: tensorrt: not installed" in caplog.text


def test_open_engine_missing_model_is_e06(tmp_path: Path) -> None:
    with pytest.raises(SwapcamError) as info:
        open_engine(tmp_path / "nothing.onnx")
    assert info.value.code == "E06"


def test_open_engine_with_explicit_engine_on_cpu_machine_is_e09(tiny: Path, tmp_path: Path) -> None:
    engine = tmp_path / "tiny.engine"
    engine.write_bytes(b"plan")
    write_sidecar(engine, sidecar(model_sha256=file_sha256(tiny)))
    with pytest.raises(BackendError, match="E09"):
        open_engine(tiny, engine=engine, available=CPU_MACHINE)


def test_real_models_run_on_the_chosen_backend(model_file: Callable[[str], Path]) -> None:
    rng = np.random.default_rng(3)
    mesh = open_engine(model_file("face_mesh"))
    out = mesh.run({"input_1": rng.random((1, 3, 192, 192), dtype=np.float32)})
    assert sorted(o.shape for o in out.values()) == [(1, 1, 1, 1), (1, 1404, 1, 1)]
    scrfd = OrtEngine(model_file("scrfd"), providers=[CPU_PROVIDER], io_binding=True)
    image = rng.random((1, 3, 320, 256), dtype=np.float32)
    plain = OrtEngine(model_file("scrfd"), providers=[CPU_PROVIDER]).run({"input.1": image})
    bound = scrfd.run({"input.1": image})
    assert plain.keys() == bound.keys() and len(plain) == 9
    for name in plain:
        np.testing.assert_allclose(bound[name], plain[name], rtol=1e-5, atol=1e-6)
