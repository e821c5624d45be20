"""TensorRT engine files and their JSON sidecars: naming, reading, writing, matching.

An engine is only valid for the exact ONNX file it was built from, the TensorRT
version that built it and the GPU it was built on (unless it was built
version- or hardware-compatible). The sidecar records all of that so that
selection can refuse a mismatched engine with a reason instead of crashing in
``deserialize_cuda_engine``.
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from realtime.errors import ModelError

SIDECAR_FORMAT = 1
ENGINE_SUFFIX = ".engine"
SIDECAR_SUFFIX = ".engine.json"
HARDWARE_LEVELS = ("none", "ampere_plus", "same_compute_capability")


@dataclass(frozen=True)
class GpuInfo:
    """One CUDA device as the engines care about it."""

    name: str
    compute_capability: str  # "8.6"
    memory_mib: int | None = None
    driver_version: str | None = None
    index: int = 0

    @property
    def sm(self) -> str:
        """Compute capability without the dot, as in ``sm86``."""
        return self.compute_capability.replace(".", "")


@dataclass(frozen=True)
class EngineSidecar:
    """What one ``.engine`` file was built from, for and with."""

    model_name: str
    model_sha256: str
    tensorrt_version: str
    gpu_name: str
    compute_capability: str
    precision: str  # "fp16" or "fp32"
    profiles: dict[str, dict[str, list[int]]] = field(default_factory=dict)  # input -> min/opt/max
    build_seconds: float = 0.0
    built_at: str = ""
    builder_flags: tuple[str, ...] = ()
    version_compatible: bool = False
    hardware_compatibility: str = "none"
    workspace_mib: int | None = None
    format: int = SIDECAR_FORMAT

    def to_json(self) -> str:
        """The sidecar as pretty JSON."""
        data = asdict(self)
        data["builder_flags"] = list(self.builder_flags)
        return json.dumps(data, indent=2, sort_keys=True) + "\n"

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> EngineSidecar:
        """Parse a decoded sidecar; ValueError when a field is missing or malformed."""
        known = set(cls.__dataclass_fields__)
        required = {"model_name", "model_sha256", "tensorrt_version", "gpu_name", "compute_capability",
                    "precision"}
        missing = sorted(required - set(data))
        if missing:
            raise ValueError(f"missing fields: {', '.join(missing)}")
        values = {key: value for key, value in data.items() if key in known}
        values["builder_flags"] = tuple(values.get("builder_flags", ()))
        sidecar = cls(**values)
        if not re.fullmatch(r"[0-9a-f]{64}", sidecar.model_sha256):
            raise ValueError("model_sha256 is not a sha256 hex digest")
        if sidecar.hardware_compatibility not in HARDWARE_LEVELS:
            raise ValueError(f"unknown hardware_compatibility {sidecar.hardware_compatibility!r}")
        return sidecar


def engine_file_name(*, model_name: str, model_sha256: str, gpu: GpuInfo, tensorrt_version: str,
                     precision: str) -> str:
    """``<model>-<sha8>-sm<cc>-trt<version>-<precision>.engine``."""
    return f"{model_name}-{model_sha256[:8]}-sm{gpu.sm}-trt{tensorrt_version}-{precision}{ENGINE_SUFFIX}"


def sidecar_path(engine_path: Path) -> Path:
    """The JSON sidecar that sits next to ``engine_path`` (``X.engine`` → ``X.engine.json``)."""
    return engine_path.with_name(engine_path.name + ".json")


def engine_path_for(sidecar_file: Path) -> Path:
    """The engine file a sidecar describes."""
    return sidecar_file.with_name(sidecar_file.name[: -len(".json")])


def write_sidecar(engine_path: Path, sidecar: EngineSidecar) -> Path:
    """Write the sidecar next to ``engine_path`` (atomically) and return its path."""
    path = sidecar_path(engine_path)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(sidecar.to_json())
    tmp.replace(path)
    return path


def read_sidecar(path: Path) -> EngineSidecar:
    """Read a sidecar (or the sidecar of an engine path); E08 when it is missing or unreadable."""
    if path.name.endswith(ENGINE_SUFFIX):
        path = sidecar_path(path)
    try:
        return EngineSidecar.from_dict(json.loads(path.read_text()))
    except FileNotFoundError as exc:
        raise ModelError("E08", f"{path.name} is missing, so the engine cannot be checked") from exc
    except (OSError, ValueError, TypeError) as exc:
        raise ModelError("E08", f"{path.name} is not a valid engine sidecar ({exc})") from exc


def scan_engines(engines_dir: Path) -> tuple[list[tuple[Path, EngineSidecar]], list[str]]:
    """Every (engine path, sidecar) in ``engines_dir``, plus one line per broken or orphaned file."""
    found: list[tuple[Path, EngineSidecar]] = []
    problems: list[str] = []
    if not engines_dir.is_dir():
        return found, problems
    for side in sorted(engines_dir.glob("*" + SIDECAR_SUFFIX)):
        try:
            sidecar = read_sidecar(side)
        except ModelError as exc:
            problems.append(exc.detail)
            continue
        engine = engine_path_for(side)
        if engine.is_file():
            found.append((engine, sidecar))
        else:
            problems.append(f"{side.name} has no engine file {engine.name}")
    for engine in sorted(engines_dir.glob("*" + ENGINE_SUFFIX)):
        if not sidecar_path(engine).is_file():
            problems.append(f"{engine.name} has no sidecar {sidecar_path(engine).name}")
    return found, problems


def _version_tuple(version: str) -> tuple[int, ...]:
    return tuple(int(part) for part in re.findall(r"\d+", version)[:3])


def mismatches(sidecar: EngineSidecar, *, model_sha256: str | None, gpu: GpuInfo | None,
               tensorrt_version: str | None) -> list[str]:
    """Why this engine cannot run here; an empty list means it fits."""
    reasons: list[str] = []
    if model_sha256 is not None and sidecar.model_sha256 != model_sha256:
        reasons.append(f"built from a different model file (sha256 {sidecar.model_sha256[:8]}…, "
                       f"this model {model_sha256[:8]}…)")
    if tensorrt_version is None:
        reasons.append("TensorRT is not installed")
    elif sidecar.version_compatible:
        built, here = _version_tuple(sidecar.tensorrt_version), _version_tuple(tensorrt_version)
        if here < built:
            reasons.append(f"built with TensorRT {sidecar.tensorrt_version}, newer than {tensorrt_version}")
    elif sidecar.tensorrt_version != tensorrt_version:
        reasons.append(f"built with TensorRT {sidecar.tensorrt_version}, this is {tensorrt_version}")
    reasons.extend(_gpu_mismatches(sidecar, gpu))
    return reasons


def _gpu_mismatches(sidecar: EngineSidecar, gpu: GpuInfo | None) -> list[str]:
    if gpu is None:
        return ["no CUDA GPU found"]
    if sidecar.hardware_compatibility == "ampere_plus":
        if _version_tuple(gpu.compute_capability) < (8, 0):
            return [f"built for Ampere or newer (sm80+), this GPU is sm{gpu.sm}"]
        return []
    if sidecar.compute_capability != gpu.compute_capability:
        return [f"built for compute capability {sidecar.compute_capability} ({sidecar.gpu_name}), "
                f"this GPU is {gpu.compute_capability} ({gpu.name})"]
    if sidecar.hardware_compatibility == "none" and sidecar.gpu_name != gpu.name:
        return [f"built on {sidecar.gpu_name}, this GPU is {gpu.name}"]
    return []


