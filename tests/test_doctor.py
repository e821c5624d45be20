"""``swapcam doctor`` on this machine (subprocess) and its verdict rules."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest

from realtime.commands import doctor
from realtime.commands.doctor import (
    Check,
    driver_supports,
    exit_status,
    frame_priority_check,
    shm_check,
    threads_check,
)
from realtime.engines.probe import Availability
from realtime.engines.sidecar import EngineSidecar, GpuInfo, write_sidecar

ROOT = Path(__file__).resolve().parent.parent
STATUS_WORDS = ("PASS", "WARN", "FAIL")


def run_doctor(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-c", "from realtime.cli import main; main()", "doctor", *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=120, cwd=ROOT,
                          env={**os.environ, **(env or {})}, check=False)


def report_lines(done: subprocess.CompletedProcess[str]) -> tuple[list[str], str]:
    lines = done.stdout.strip().splitlines()
    return lines[:-1], lines[-1]


@pytest.fixture(scope="module")
def plain_run() -> subprocess.CompletedProcess[str]:
    return run_doctor()


def test_doctor_on_this_machine(plain_run: subprocess.CompletedProcess[str]) -> None:
    done = plain_run
    checks, summary = report_lines(done)
    assert "Traceback" not in done.stderr
    assert all(line[:4] in STATUS_WORDS for line in checks), checks
    names = {line[6:].split("  ")[0].strip() for line in checks}
    for expected in ("python", "onnxruntime", "gpu", "tensorrt", "virtual camera", "threads"):
        assert expected in names, (expected, names)
    assert "cuda" in names or "cuda driver" in names
    assert "engines" in names or "engine" in names
    if sys.platform.startswith("linux"):
        assert "/dev/shm" in names
    failed = sum(line.startswith("FAIL") for line in checks)
    assert summary.endswith(f"{failed} fail")
    assert done.returncode == (1 if failed else 0)


def test_doctor_reports_fetched_models_with_checksums(plain_run: subprocess.CompletedProcess[str]) -> None:
    from realtime import models

    present = [row for row in models.list_status() if row.kind == "model" and row.status == "ok"]
    if not present:
        pytest.skip("no model fetched: run `swapcam models fetch`")
    output = plain_run.stdout
    for row in present:
        line = next(line for line in output.splitlines() if f"model {row.name} " in line)
        assert line.startswith("PASS") and models.cached_sha256(row.path)[:16] in line


def test_doctor_json_matches_text() -> None:
    done = run_doctor("--json")
    checks = json.loads(done.stdout)
    assert checks and all(set(c) == {"status", "name", "detail"} for c in checks)
    assert {c["status"] for c in checks} <= {"pass", "warn", "fail"}
    assert done.returncode == (1 if any(c["status"] == "fail" for c in checks) else 0)


def test_doctor_flags_threads_and_engines_that_do_not_fit(tmp_path: Path) -> None:
    engine = tmp_path / "face_mesh-0000aaaa-sm89-trt10.4.0-fp16.engine"
    engine.write_bytes(b"plan")
    write_sidecar(engine, EngineSidecar(model_name="face_mesh", model_sha256="0" * 64, tensorrt_version="10.4.0",
                                        gpu_name="NVIDIA GeForce RTX 4070", compute_capability="8.9",
                                        precision="fp16"))
    (tmp_path / "orphan.engine").write_bytes(b"plan")
    output = run_doctor(env={"SWAPCAM_ENGINES": str(tmp_path), "OMP_NUM_THREADS": "999"}).stdout
    threads = next(line for line in output.splitlines() if "threads" in line)
    assert threads.startswith("WARN") and "OMP_NUM_THREADS=999 exceeds" in threads
    lines = [line for line in output.splitlines() if line[6:].startswith("engine ")]
    assert any(line.startswith("WARN") and "orphan.engine has no sidecar" in line for line in lines)
    misfit = next(line for line in lines if engine.name in line)
    assert misfit.startswith("WARN") and "does not fit this machine" in misfit
    assert "TensorRT is not installed" in misfit or "built" in misfit


def test_cuda_provider_fallback_is_diagnosed() -> None:
    """On a CPU onnxruntime the CUDA session really falls back, and the doctor names the missing library."""
    import onnxruntime

    if "CUDAExecutionProvider" in onnxruntime.get_available_providers():
        pytest.skip("this onnxruntime has a CUDA provider")
    error = doctor.cuda_provider_error()
    assert error is not None and error.startswith("sessions fall back to CPU; loading libonnxruntime_providers_cuda")


def test_two_onnxruntime_packages_fail_with_e18() -> None:
    both = Availability(ort_distributions=("onnxruntime 1.31.1", "onnxruntime-gpu 1.31.1"),
                        ort_providers=("CPUExecutionProvider",))
    [check] = doctor.check_onnxruntime(both)
    assert check.status == "fail" and check.detail.startswith("E18 ") and "pip uninstall" in check.detail


def test_gpu_without_cuda_provider_warns() -> None:
    gpu = GpuInfo(name="NVIDIA GeForce RTX 4070", compute_capability="8.9", memory_mib=12282)
    available = Availability(ort_distributions=("onnxruntime 1.31.1",), ort_providers=("CPUExecutionProvider",),
                             gpu=gpu)
    checks = doctor.check_onnxruntime(available)
    assert [c.status for c in checks] == ["pass", "warn"] and "no CUDA provider" in checks[1].detail
    assert doctor.check_gpu(available)[0].detail == "NVIDIA GeForce RTX 4070, compute capability 8.9, 12282 MiB"
    assert doctor.check_tensorrt(replace(available, tensorrt_error="not installed"))[0].status == "warn"


@pytest.mark.parametrize(("driver", "runtime", "verdict"), [
    ("12.4", "12.1", "pass"), ("12.4", "12.4", "pass"), ("12.2", "12.6", "warn"), ("11.8", "12.1", "fail"),
    ("13.0", "12.8", "pass"),
])
def test_driver_against_runtime(driver: str, runtime: str, verdict: str) -> None:
    assert driver_supports(driver, runtime) == verdict


def test_shm_and_threads_verdicts() -> None:
    assert shm_check(64, container=True).status == "warn" and "--shm-size" in shm_check(64, container=True).detail
    assert shm_check(2048, container=True).status == "pass"
    assert threads_check(None, 8).status == "pass"
    assert threads_check("4", 8).status == "pass"
    assert threads_check("16", 8).status == "warn"
    assert threads_check("many", 8).status == "warn"


def test_exit_status() -> None:
    assert exit_status([Check("pass", "a", ""), Check("warn", "b", "")]) == 0
    assert exit_status([Check("pass", "a", ""), Check("fail", "b", "")]) == 1


def test_doctor_reports_the_torch_backend_and_the_auto_order() -> None:
    gpu = GpuInfo(name="NVIDIA GeForce RTX 4070", compute_capability="8.9", memory_mib=12282)
    torch_gpu = Availability(ort_distributions=("onnxruntime 1.31.1",), ort_providers=("CPUExecutionProvider",),
                             tensorrt_error="not installed", gpu=gpu, torch_cuda=True, torch_version="2.5.1",
                             torch_error=None)
    torch_check, auto = doctor.check_torch(torch_gpu)
    assert torch_check.status == "pass" and "CUDA and CPU" in torch_check.detail
    assert "torch → " not in auto.detail and "here: scrfd: torch cuda (skipped: tensorrt: not installed" in auto.detail
    missing = doctor.check_torch(replace(torch_gpu, torch_error="onnx2torch cannot be imported"))
    assert missing[0].status == "warn" and "onnx2torch" in missing[0].detail
    assert "skipped: " in missing[1].detail and "torch cuda: onnx2torch cannot be imported" in missing[1].detail


def test_doctor_on_this_machine_names_the_torch_backend(plain_run: subprocess.CompletedProcess[str]) -> None:
    assert "torch backend" in plain_run.stdout and "backend auto" in plain_run.stdout


@pytest.mark.parametrize(("raised", "platform_name", "cpus", "container", "status", "words"), [
    (True, "linux", 2, False, "pass", "SCHED_RR"),
    (True, "win32", 8, False, "pass", "highest thread priority"),
    (True, "darwin", 8, False, "pass", "user-interactive"),
    (False, "linux", 4, False, "warn", "/etc/security/limits.d/swapcam.conf"),
    (False, "linux", 4, True, "warn", "docker run `--ulimit rtprio=2`"),
    (False, "linux", 1, False, "pass", "one usable CPU"),
])
def test_frame_priority_verdicts(raised: bool, platform_name: str, cpus: int, container: bool, status: str,
                                 words: str) -> None:
    check = frame_priority_check(raised=raised, platform_name=platform_name, cpus=cpus, rtprio=0, container=container)
    assert check.status == status and words in check.detail


def test_doctor_reports_the_frame_priority(plain_run: subprocess.CompletedProcess[str]) -> None:
    assert any(line.split()[1:3] == ["frame", "priority"] for line in plain_run.stdout.splitlines())
