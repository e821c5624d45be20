"""What this machine offers for inference: packages, providers, GPU, TensorRT, engines.

:func:`probe_availability` fills an :class:`Availability` record from the real
machine; selection decides over that record only, so tests can hand it fakes.
Probing is cheap on a CPU-only machine: the GPU is only queried when something
that could use it (TensorRT, a CUDA provider) is installed, or when asked.
"""

from __future__ import annotations

import ctypes
import importlib.metadata
import importlib.util
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

from realtime.engines.sidecar import EngineSidecar, GpuInfo, scan_engines
from realtime.paths import user_cache

# Distributions that each install the `onnxruntime` module; two of them together overwrite each other.
ORT_DISTRIBUTIONS = (
    "onnxruntime", "onnxruntime-gpu", "onnxruntime-directml", "onnxruntime-openvino",
    "onnxruntime-silicon", "onnxruntime-qnn", "onnxruntime-rocm", "onnxruntime-migraphx",
    "onnxruntime-training",
)
CUDA_PROVIDER = "CUDAExecutionProvider"
PROVIDER_ORDER = (CUDA_PROVIDER, "DmlExecutionProvider", "CoreMLExecutionProvider", "CPUExecutionProvider")


@dataclass(frozen=True)
class Availability:
    """Everything selection needs to know about the machine, as plain data."""

    ort_distributions: tuple[str, ...] = ()  # e.g. ("onnxruntime 1.31.1",)
    ort_providers: tuple[str, ...] = ()
    ort_error: str | None = None  # why onnxruntime could not be imported
    tensorrt_version: str | None = None
    tensorrt_error: str | None = None  # "not installed" or the import failure
    torch_cuda: bool = False  # torch with a usable CUDA device (TensorRT buffers are torch tensors)
    torch_version: str | None = None  # the torch backend's torch (None: not probed or not installed)
    torch_error: str | None = "not probed"  # why the torch backend cannot run (torch or onnx2torch missing)
    gpu: GpuInfo | None = None
    gpu_error: str | None = None
    engines: tuple[tuple[Path, EngineSidecar], ...] = field(default_factory=tuple)
    engine_problems: tuple[str, ...] = ()
    platform: str = sys.platform


def default_engines_dir() -> Path:
    """``$SWAPCAM_ENGINES`` if set, else ``engines`` in the user's cache folder (next to ``models``)."""
    env = os.environ.get("SWAPCAM_ENGINES")
    return Path(env).expanduser() if env else user_cache() / "engines"


def installed_ort_distributions() -> tuple[str, ...]:
    """Installed onnxruntime distributions as ``"name version"`` (more than one is a broken install)."""
    found = []
    for name in ORT_DISTRIBUTIONS:
        try:
            found.append(f"{name} {importlib.metadata.version(name)}")
        except importlib.metadata.PackageNotFoundError:
            continue
    return tuple(found)


def ort_providers() -> tuple[tuple[str, ...], str | None]:
    """ONNX Runtime's available providers, or () and the reason it cannot be imported."""
    try:
        import onnxruntime
    except ImportError as exc:
        return (), f"onnxruntime cannot be imported: {exc}"
    return tuple(onnxruntime.get_available_providers()), None


def tensorrt_version() -> tuple[str | None, str | None]:
    """The importable TensorRT's version, or None and why not."""
    if importlib.util.find_spec("tensorrt") is None:
        return None, "not installed"
    try:
        import tensorrt
    except Exception as exc:  # a broken CUDA library install raises OSError, ImportError, ...
        return None, f"installed but cannot be imported ({type(exc).__name__}: {exc})"
    return str(tensorrt.__version__), None


def parse_nvidia_smi(text: str) -> list[GpuInfo]:
    """Parse the CSV of ``nvidia-smi --query-gpu=index,name,compute_cap,memory.total,driver_version``."""
    gpus = []
    for line in text.strip().splitlines():
        parts = [part.strip() for part in line.split(",")]
        if len(parts) != 5:
            continue
        index, name, cc, memory, driver = parts
        gpus.append(GpuInfo(name=name, compute_capability=cc,
                            memory_mib=int(memory) if memory.isdigit() else None,
                            driver_version=driver, index=int(index) if index.isdigit() else 0))
    return gpus


def gpus_from_nvidia_smi(timeout_s: float = 10.0) -> tuple[list[GpuInfo], str | None]:
    """CUDA GPUs as nvidia-smi lists them, or [] and why not."""
    exe = shutil.which("nvidia-smi")
    if exe is None:
        return [], "nvidia-smi not found (no NVIDIA driver installed)"
    query = "--query-gpu=index,name,compute_cap,memory.total,driver_version"
    try:
        done = subprocess.run([exe, query, "--format=csv,noheader,nounits"], capture_output=True,
                              text=True, timeout=timeout_s, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return [], f"nvidia-smi failed: {exc}"
    if done.returncode != 0:
        return [], f"nvidia-smi failed: {(done.stderr or done.stdout).strip()[:200]}"
    gpus = parse_nvidia_smi(done.stdout)
    return gpus, None if gpus else "nvidia-smi lists no GPU"


def gpus_from_torch() -> tuple[list[GpuInfo], str | None]:
    """CUDA GPUs as torch sees them (used when nvidia-smi is missing or too old for compute_cap)."""
    if importlib.util.find_spec("torch") is None:
        return [], "torch not installed"
    import torch

    if not torch.cuda.is_available():
        return [], f"torch {torch.__version__} sees no CUDA device"
    gpus = []
    for index in range(torch.cuda.device_count()):
        props = torch.cuda.get_device_properties(index)
        gpus.append(GpuInfo(name=props.name, compute_capability=f"{props.major}.{props.minor}",
                            memory_mib=props.total_memory // (1 << 20), index=index))
    return gpus, None


def cuda_driver_version() -> str | None:
    """The CUDA version the NVIDIA driver supports (cuDriverGetVersion), e.g. "12.4"; None without a driver."""
    names = ["nvcuda.dll"] if sys.platform == "win32" else ["libcuda.so.1", "libcuda.so"]
    for name in names:
        try:
            library = ctypes.CDLL(name)
        except OSError:
            continue
        version = ctypes.c_int(0)
        if library.cuDriverGetVersion(ctypes.byref(version)) == 0 and version.value:
            return f"{version.value // 1000}.{version.value % 1000 // 10}"
    return None


def detect_gpu(device_index: int = 0) -> tuple[GpuInfo | None, str | None]:
    """The CUDA GPU at ``device_index``, or None and why none was found."""
    gpus, error = gpus_from_nvidia_smi()
    if not gpus and cuda_driver_version() is None:
        return None, f"{error}; no CUDA driver library"
    if not gpus:
        gpus, torch_error = gpus_from_torch()
        error = f"{error}; {torch_error}" if torch_error else error
    for gpu in gpus:
        if gpu.index == device_index:
            return gpu, None
    return None, error or f"no GPU with index {device_index}"


def torch_cuda_available() -> bool:
    """Whether torch is installed with CUDA and sees a device."""
    if importlib.util.find_spec("torch") is None:
        return False
    import torch

    return bool(torch.cuda.is_available())


def _torch_backend_status() -> tuple[str | None, bool, str | None]:
    """torch's version, whether it sees a CUDA device, and why the torch backend cannot run (or None).

    Cheap where it can be: a CPU-only torch build ("+cpu") is known from its version without importing
    torch (about a second), and onnx2torch is only looked for, not imported.
    """
    try:
        version = importlib.metadata.version("torch")
    except importlib.metadata.PackageNotFoundError:
        return None, False, "torch is not installed"
    why = None if importlib.util.find_spec("onnx2torch") is not None else \
        "onnx2torch is not installed (pip install --no-deps onnx2torch==1.5.15)"
    if version.endswith("+cpu"):
        return version, False, why
    return version, torch_cuda_available(), why


def probe_availability(engines_dir: Path | None = None, *, probe_gpu: bool | None = None) -> Availability:
    """Look at the real machine. ``probe_gpu=None`` queries the GPU only if something could use it."""
    providers, ort_error = ort_providers()
    trt_version, trt_error = tensorrt_version()
    if probe_gpu is None:
        probe_gpu = trt_version is not None or CUDA_PROVIDER in providers
    gpu, gpu_error = detect_gpu() if probe_gpu else (None, "not probed (nothing installed that uses a GPU)")
    torch_version, torch_cuda, torch_error = _torch_backend_status()
    engines, problems = scan_engines(engines_dir or default_engines_dir())
    return Availability(
        ort_distributions=installed_ort_distributions(),
        ort_providers=providers,
        ort_error=ort_error,
        tensorrt_version=trt_version,
        tensorrt_error=trt_error,
        torch_cuda=torch_cuda,
        torch_version=torch_version,
        torch_error=torch_error,
        gpu=gpu,
        gpu_error=gpu_error,
        engines=tuple(engines),
        engine_problems=tuple(problems),
    )
