"""Provider choice per platform (machine records faked), CUDA libraries preloaded, what the doctor says."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import onnxruntime
import pytest

from realtime.commands import doctor
from realtime.engines.ort import CPU_PROVIDER, CUDA_PROVIDER, OrtEngine
from realtime.engines.probe import Availability
from realtime.engines.selection import choose
from realtime.errors import BackendError

CPU_ONLY = Availability(ort_distributions=("onnxruntime 1.31.1",), ort_providers=(CPU_PROVIDER,),
                        tensorrt_error="not installed", gpu_error="not probed", platform="linux")
COREML = "CoreMLExecutionProvider"
DML = "DmlExecutionProvider"


def test_macos_auto_keeps_coreml_opt_in_until_measured() -> None:
    mac = replace(CPU_ONLY, ort_distributions=("onnxruntime 1.31.1",), ort_providers=(COREML, CPU_PROVIDER),
                  platform="darwin")
    auto = choose(model_name="scrfd", model_sha256=None, available=mac)
    assert auto.providers == (CPU_PROVIDER,)
    assert any(COREML in reason and "--device coreml" in reason for reason in auto.skipped)
    assert choose(model_name="scrfd", model_sha256=None, available=mac, device="coreml").provider == COREML


def test_device_coreml_without_the_provider_is_e23() -> None:
    with pytest.raises(BackendError) as caught:
        choose(model_name="scrfd", model_sha256=None, available=CPU_ONLY, device="coreml")
    assert caught.value.code == "E23" and COREML in caught.value.detail


def test_windows_directml_is_taken_by_auto() -> None:
    windows = replace(CPU_ONLY, ort_distributions=("onnxruntime-directml 1.23.0",),
                      ort_providers=(DML, CPU_PROVIDER), platform="win32")
    assert choose(model_name="scrfd", model_sha256=None, available=windows).providers == (DML, CPU_PROVIDER)


def test_windows_tensorrt_without_cuda_torch_says_where_cuda_torch_comes_from() -> None:
    windows = replace(CPU_ONLY, tensorrt_version="10.4.0", tensorrt_error=None, torch_cuda=False,
                      platform="win32")
    from realtime.engines.sidecar import GpuInfo

    windows = replace(windows, gpu=GpuInfo(name="RTX 4070", compute_capability="8.9"))
    choice = choose(model_name="scrfd", model_sha256=None, available=windows)
    assert any("download.pytorch.org/whl/cu" in reason for reason in choice.skipped)


def test_cuda_libraries_are_preloaded_before_the_first_cuda_session(
    monkeypatch: pytest.MonkeyPatch, model_file: Any
) -> None:
    calls: list[str] = []
    real_session = onnxruntime.InferenceSession

    def session(*args: Any, **kwargs: Any) -> Any:
        calls.append("session")
        return real_session(*args, **kwargs)

    monkeypatch.setattr(onnxruntime, "preload_dlls", lambda: calls.append("preload"), raising=False)
    monkeypatch.setattr(onnxruntime, "InferenceSession", session)
    model: Path = model_file("scrfd")
    OrtEngine(model, providers=[CUDA_PROVIDER, CPU_PROVIDER])  # this CPU build falls back to CPU
    assert calls == ["preload", "session"]
    calls.clear()
    OrtEngine(model, providers=[CPU_PROVIDER])
    assert calls == ["session"]  # nothing to preload for the CPU


def test_doctor_names_directml_instead_of_cpu_only(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(doctor, "cuda_driver_version", lambda: None)
    windows = replace(CPU_ONLY, ort_providers=(DML, CPU_PROVIDER), platform="win32")
    [check] = doctor.check_cuda(windows)
    assert DML in check.detail and "CPU only" not in check.detail
    mac = replace(CPU_ONLY, ort_providers=(COREML, CPU_PROVIDER), platform="darwin")
    [check] = doctor.check_cuda(mac)
    assert COREML in check.detail and "--device coreml" in check.detail
    [check] = doctor.check_cuda(CPU_ONLY)
    assert "CPU only" in check.detail
