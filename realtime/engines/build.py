"""Building TensorRT engines from the ONNX models (used by tools/build_engines.py).

TensorRT 10 builds FP16 from the FP32 ONNX with ``BuilderFlag.FP16`` (weak
typing). TensorRT 11 removed the precision flags — networks are strongly
typed — so FP16 there means converting the ONNX graph to FP16 first (inputs
and outputs stay FP32). Dynamic inputs get one optimization profile, from the
model manifest's ``trt_profile`` entry, a ``--profile`` override, or a default.
"""

from __future__ import annotations

import contextlib
import re
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from realtime.engines.sidecar import (
    HARDWARE_LEVELS,
    EngineSidecar,
    GpuInfo,
    engine_file_name,
    write_sidecar,
)
from realtime.errors import BackendError, UsageError
from realtime.hashing import file_sha256

Shape = list[int]
Profiles = dict[str, dict[str, Shape]]  # input name -> {"min", "opt", "max"}
DEFAULT_DYNAMIC = (64, 320, 1280)  # min/opt/max for a dynamic axis other than the batch
PRECISIONS = ("fp16", "fp32")


@dataclass(frozen=True)
class BuildOptions:
    """How to build: precision, limits, cache and compatibility."""

    engines_dir: Path
    precision: str = "fp16"
    workspace_mib: int = 4096
    timing_cache: Path | None = None  # default: <engines_dir>/timing-sm<cc>-trt<version>.cache
    version_compatible: bool = False
    hardware_compatibility: str = "none"
    profile_overrides: Profiles = field(default_factory=dict)
    device_id: int = 0

    def __post_init__(self) -> None:
        if self.precision not in PRECISIONS:
            raise UsageError("E01", f"--precision {self.precision}", remedy="use fp16 or fp32")
        if self.hardware_compatibility not in HARDWARE_LEVELS:
            raise UsageError("E01", f"--hardware-compatible {self.hardware_compatibility}",
                             remedy=f"use one of: {', '.join(HARDWARE_LEVELS[1:])}")
        if self.workspace_mib <= 0:
            raise UsageError("E01", f"--workspace-mib {self.workspace_mib}", remedy="use a positive size in MiB")


@dataclass(frozen=True)
class BuildResult:
    """One built engine."""

    engine_path: Path
    sidecar: EngineSidecar


def parse_profile_arg(text: str) -> tuple[str, dict[str, Shape]]:
    """``NAME=1x3x64x64:1x3x320x320:1x3x1280x1280`` → (name, {"min", "opt", "max"})."""
    match = re.fullmatch(r"(.+)=([\dx]+):([\dx]+):([\dx]+)", text)
    if not match:
        raise UsageError("E01", f"--profile {text}", remedy="write NAME=MINxDIMS:OPTxDIMS:MAXxDIMS, "
                         "e.g. input.1=1x3x64x64:1x3x320x320:1x3x1280x1280")
    shapes = [[int(d) for d in part.split("x")] for part in match.groups()[1:]]
    if len({len(s) for s in shapes}) != 1 or any(lo > hi for lo, hi in zip(shapes[0], shapes[2], strict=True)):
        raise UsageError("E01", f"--profile {text}", remedy="min, opt and max need the same rank and min ≤ max")
    return match.group(1), dict(zip(("min", "opt", "max"), shapes, strict=True))


def onnx_input_dims(model: Any) -> dict[str, list[int | None]]:
    """Each graph input (initializers excluded) with None for a dynamic axis."""
    initializers = {init.name for init in model.graph.initializer}
    dims = {}
    for value in model.graph.input:
        if value.name in initializers:
            continue
        shape = value.type.tensor_type.shape.dim
        dims[value.name] = [d.dim_value if d.HasField("dim_value") and d.dim_value > 0 else None for d in shape]
    return dims


def input_profiles(dims: dict[str, list[int | None]], *, manifest_profile: Profiles | None = None,
                   overrides: Profiles | None = None, note: Callable[[str], None] = print) -> Profiles:
    """min/opt/max per input: fixed inputs as they are; dynamic ones from overrides, manifest or default."""
    profiles: Profiles = {}
    for name, shape in dims.items():
        given = (overrides or {}).get(name) or (manifest_profile or {}).get(name)
        if given is not None:
            _check_profile(name, shape, given)
            profiles[name] = {key: list(given[key]) for key in ("min", "opt", "max")}
            continue
        if None not in shape:
            fixed = [int(d) for d in shape if d is not None]
            profiles[name] = {"min": fixed, "opt": fixed, "max": list(fixed)}
            continue
        low, opt, high = ([1 if axis == 0 and d is None else (d if d is not None else pick) for axis, d
                           in enumerate(shape)] for pick in DEFAULT_DYNAMIC)
        profiles[name] = {"min": low, "opt": opt, "max": high}
        note(f"  {name}: no trt_profile in the manifest, using min {low} opt {opt} max {high}")
    return profiles


def _check_profile(name: str, shape: list[int | None], given: dict[str, Shape]) -> None:
    for key in ("min", "opt", "max"):
        if key not in given or len(given[key]) != len(shape):
            raise UsageError("E01", f"profile for {name}: {key} missing or not of rank {len(shape)}",
                             remedy="give min, opt and max shapes with one size per axis")
        for axis, (size, fixed) in enumerate(zip(given[key], shape, strict=True)):
            if fixed is not None and size != fixed:
                raise UsageError("E01", f"profile for {name}: axis {axis} is fixed at {fixed}, {key} says {size}",
                                 remedy="leave fixed axes at their size")


def has_fp16_weights(model: Any) -> bool:
    """Whether the graph already stores float16 initializers (e.g. inswapper_128.fp16.onnx)."""
    from onnx import TensorProto

    return any(init.data_type == TensorProto.FLOAT16 for init in model.graph.initializer)


def convert_to_fp16(model: Any) -> Any:
    """An FP16 copy of an FP32 ONNX graph with FP32 inputs and outputs (for strongly typed builds)."""
    try:
        from onnxconverter_common import float16
    except ImportError as exc:
        raise BackendError("E23", "onnxconverter-common is needed for FP16 with TensorRT 11 "
                           "(pip install .[gpu])") from exc
    return float16.convert_float_to_float16(model, keep_io_types=True)


def timing_cache_path(options: BuildOptions, gpu: GpuInfo, tensorrt_version: str) -> Path:
    """One timing cache per GPU architecture and TensorRT version (a cache from another is useless)."""
    return options.timing_cache or options.engines_dir / f"timing-sm{gpu.sm}-trt{tensorrt_version}.cache"


class _Progress:
    """Prints TensorRT's top-level build phases (TensorRT ≥ 10 has IProgressMonitor)."""

    def __init__(self, trt: Any, say: Callable[[str], None]) -> None:
        base = trt.IProgressMonitor

        class Monitor(base):  # type: ignore[misc, valid-type]
            def __init__(self) -> None:
                base.__init__(self)

            def phase_start(self, phase_name: str, parent_phase: str | None, num_steps: int) -> None:
                if parent_phase is None:
                    say(f"  phase: {phase_name} ({num_steps} steps)")

            def step_complete(self, phase_name: str, step: int) -> bool:
                return True  # keep building

            def phase_finish(self, phase_name: str) -> None:
                return None

        self.monitor = Monitor()


def build_engine(trt: Any, model_path: Path, *, model_name: str, gpu: GpuInfo, options: BuildOptions,
                 manifest_profile: Profiles | None = None, say: Callable[[str], None] = print) -> BuildResult:
    """Parse, configure and build one engine; write it and its sidecar. BackendError on failure."""
    import onnx

    started = time.perf_counter()
    sha = file_sha256(model_path)
    model = onnx.load(str(model_path))
    dims = onnx_input_dims(model)
    profiles = input_profiles(dims, manifest_profile=manifest_profile, overrides=options.profile_overrides, note=say)
    dynamic = {name for name, shape in dims.items() if None in shape}
    strongly_typed = not hasattr(trt.BuilderFlag, "FP16")  # TensorRT 11: precision comes from the graph
    flags = [options.precision]
    if options.precision == "fp16" and strongly_typed and not has_fp16_weights(model):
        say("  converting the ONNX graph to FP16 (TensorRT 11 networks are strongly typed)")
        model = convert_to_fp16(model)
        flags.append("onnx-fp16")
    with cuda_device(options.device_id):  # TensorRT builds on the current CUDA device
        plan, config, cache_file, cache = _build_plan(trt, model, model_path, options=options, profiles=profiles,
                                                      dynamic=dynamic, flags=flags, gpu=gpu, say=say)
    if plan is None:
        raise BackendError("E20", f"{model_path.name}: TensorRT could not build an engine",
                           remedy="see the TensorRT messages above; try --precision fp32 or a larger --workspace-mib")
    _save_timing_cache(config.get_timing_cache() or cache, cache_file)
    engine_path = options.engines_dir / engine_file_name(
        model_name=model_name, model_sha256=sha, gpu=gpu, tensorrt_version=trt.__version__,
        precision=options.precision)
    options.engines_dir.mkdir(parents=True, exist_ok=True)
    tmp = engine_path.with_name(engine_path.name + ".tmp")
    tmp.write_bytes(bytes(memoryview(plan)))
    tmp.replace(engine_path)
    sidecar = EngineSidecar(
        model_name=model_name, model_sha256=sha, tensorrt_version=trt.__version__, gpu_name=gpu.name,
        compute_capability=gpu.compute_capability, precision=options.precision, profiles=profiles,
        build_seconds=round(time.perf_counter() - started, 2),
        built_at=datetime.now(timezone.utc).isoformat(timespec="seconds"), builder_flags=tuple(flags),
        version_compatible=options.version_compatible, hardware_compatibility=options.hardware_compatibility,
        workspace_mib=options.workspace_mib)
    write_sidecar(engine_path, sidecar)
    return BuildResult(engine_path=engine_path, sidecar=sidecar)



def _build_plan(trt: Any, model: Any, model_path: Path, *, options: BuildOptions, profiles: Profiles,
                dynamic: set[str], flags: list[str], gpu: GpuInfo, say: Callable[[str], None]
                ) -> tuple[Any, Any, Path, Any]:
    """Parse and build on the current device: (plan or None, builder config, timing-cache file, timing cache)."""
    from realtime.engines.trt import trt_logger

    logger = trt_logger(trt)
    builder = trt.Builder(logger)
    network = builder.create_network(0)
    parser = trt.OnnxParser(network, logger)
    if not parser.parse(model.SerializeToString(), str(model_path)):
        errors = [str(parser.get_error(i)) for i in range(parser.num_errors)]
        for error in errors:
            say(f"  parser error: {error}")
        raise BackendError("E20", f"{model_path.name}: the ONNX parser reported {len(errors)} error(s)",
                           remedy="see the parser errors above; the model may need a newer TensorRT")
    # TensorRT requires the monitor to outlive the build: keep a reference here.
    monitor = _Progress(trt, say).monitor if hasattr(trt, "IProgressMonitor") else None
    config = _configure(trt, builder, network, options, profiles, flags, say, dynamic=dynamic)
    if monitor is not None:
        config.progress_monitor = monitor
    cache_file = timing_cache_path(options, gpu, trt.__version__)
    cache = _load_timing_cache(config, cache_file, say)
    say(f"  building ({', '.join(flags)}, workspace {options.workspace_mib} MiB) …")
    return builder.build_serialized_network(network, config), config, cache_file, cache


@contextlib.contextmanager
def cuda_device(device_id: int) -> Iterator[None]:
    """Make ``device_id`` the current CUDA device for TensorRT (through torch, which the runtime needs anyway)."""
    try:
        import torch
    except ImportError as exc:
        raise BackendError("E09", "torch is not installed (pip install .[gpu])") from exc
    with torch.cuda.device(device_id):
        yield

def _configure(trt: Any, builder: Any, network: Any, options: BuildOptions, profiles: Profiles,
               flags: list[str], say: Callable[[str], None], *, dynamic: set[str]) -> Any:
    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, options.workspace_mib << 20)
    if options.precision == "fp16" and hasattr(trt.BuilderFlag, "FP16"):
        config.set_flag(trt.BuilderFlag.FP16)
    if options.version_compatible:
        config.set_flag(trt.BuilderFlag.VERSION_COMPATIBLE)
        flags.append("version-compatible")
    if options.hardware_compatibility != "none":
        level = getattr(trt.HardwareCompatibilityLevel, options.hardware_compatibility.upper(), None)
        if level is None:
            raise UsageError("E01", f"--hardware-compatible {options.hardware_compatibility}",
                             remedy=f"TensorRT {trt.__version__} does not offer it; use ampere_plus or leave it out")
        config.hardware_compatibility_level = level
        flags.append(f"hardware-compatible:{options.hardware_compatibility}")
    # Every input with a dynamic axis in the ONNX graph needs a profile, even one pinned to a single shape
    # (ArcFace: batch axis dynamic, profile 1..1): without it TensorRT refuses to build.
    profiled = {name: p for name, p in profiles.items() if name in dynamic or p["min"] != p["max"]}
    if profiled:
        profile = builder.create_optimization_profile()
        for name, shapes in profiled.items():
            profile.set_shape(name, shapes["min"], shapes["opt"], shapes["max"])
            say(f"  profile {name}: min {shapes['min']} opt {shapes['opt']} max {shapes['max']}")
        config.add_optimization_profile(profile)
    return config


def _load_timing_cache(config: Any, path: Path, say: Callable[[str], None]) -> Any:
    data = path.read_bytes() if path.is_file() else b""
    cache = config.create_timing_cache(data)
    if not config.set_timing_cache(cache, ignore_mismatch=False):
        say(f"  timing cache {path.name} does not fit this GPU/TensorRT; starting a new one")
        cache = config.create_timing_cache(b"")
        config.set_timing_cache(cache, ignore_mismatch=False)
    elif data:
        say(f"  timing cache: {path} ({len(data) >> 10} KiB)")
    return cache


def _save_timing_cache(cache: Any, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(bytes(memoryview(cache.serialize())))
    tmp.replace(path)
