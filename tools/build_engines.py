#!/usr/bin/env python3
"""Build TensorRT engines for the fetched ONNX models.

    python tools/build_engines.py                 # every fetched model, FP16
    python tools/build_engines.py scrfd face_mesh --precision fp32
    python tools/build_engines.py scrfd --profile input.1=1x3x64x64:1x3x320x320:1x3x1280x1280

Writes engines/<model>-<sha8>-sm<cc>-trt<version>-<precision>.engine and a JSON
sidecar next to each (model sha256, TensorRT version, GPU, precision, profile,
build time, flags); `swapcam run --backend auto` takes an engine only when its
sidecar matches the model file, this GPU and this TensorRT. An engine whose
sidecar already matches is kept unless --force.

Exit status: 0 every engine built (or already current); 1 a model failed to
build (parser errors are printed); 2 TensorRT or a CUDA GPU is missing (E09),
or a bad option or model name.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

from realtime import models
from realtime.engines.build import BuildOptions, Profiles, build_engine, parse_profile_arg
from realtime.engines.probe import default_engines_dir, detect_gpu, tensorrt_version
from realtime.engines.sidecar import GpuInfo, mismatches, scan_engines
from realtime.errors import SwapcamError
from realtime.hashing import file_sha256

EXIT_BUILD_FAILED = 1
EXIT_UNAVAILABLE = 2


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("names", nargs="*", metavar="MODEL", help="model names from realtime/manifest.json "
                        "(default: every fetched model)")
    parser.add_argument("--models-dir", type=Path, help="models folder (default: $SWAPCAM_MODELS, else the user cache)")
    parser.add_argument("--engines-dir", type=Path,
                        help="output folder (default: $SWAPCAM_ENGINES, else the user cache)")
    parser.add_argument("--precision", choices=["fp16", "fp32"], default="fp16")
    parser.add_argument("--workspace-mib", type=int, default=4096, help="builder workspace limit (default 4096)")
    parser.add_argument("--timing-cache", type=Path,
                        help="timing cache file (default: engines/timing-sm<cc>-trt<version>.cache)")
    parser.add_argument("--version-compatible", action="store_true",
                        help="engine runs on later TensorRT versions too (can be slower)")
    parser.add_argument("--hardware-compatible", choices=["ampere_plus", "same_compute_capability"],
                        help="engine runs on other GPUs of that range (can be slower)")
    parser.add_argument("--profile", action="append", default=[], metavar="INPUT=MIN:OPT:MAX",
                        help="optimization profile for a dynamic input, shapes as 1x3x64x64 "
                             "(overrides the manifest's trt_profile)")
    parser.add_argument("--device-id", type=int, default=0, help="CUDA device (default 0)")
    parser.add_argument("--force", action="store_true", help="rebuild even when a matching engine exists")
    return parser.parse_args(argv)


def gpu_stack(device_id: int) -> tuple[Any, GpuInfo]:
    """The tensorrt module and the GPU, or E09."""
    version, why = tensorrt_version()
    if version is None:
        raise SwapcamError("E09", f"tensorrt {why}")
    gpu, gpu_error = detect_gpu(device_id)
    if gpu is None:
        raise SwapcamError("E09", f"no CUDA GPU ({gpu_error})")
    import tensorrt

    return tensorrt, gpu


def manifest_entries() -> dict[str, dict[str, Any]]:
    """Every model of the manifest (default and neural) by name."""
    manifest = models.load_manifest()
    return {**manifest.get("models", {}), **manifest.get("neural", {})}


def selected_models(names: list[str], root: Path) -> list[tuple[str, Path]]:
    """(name, verified path) of the requested models, or of every fetched one."""
    entries = manifest_entries()
    unknown = [n for n in names if n not in entries]
    if unknown:
        raise SwapcamError("E01", f"unknown model {', '.join(unknown)}",
                           remedy=f"use one of: {', '.join(sorted(entries))}")
    chosen = []
    for name in names or sorted(entries):
        try:
            chosen.append((name, models.model_path(name, root=root)))
        except SwapcamError as exc:
            if names:
                raise
            print(f"{name}: skipped — {exc.message()}")
    return chosen


def up_to_date(engines_dir: Path, path: Path, tensorrt: Any, gpu: GpuInfo, precision: str) -> Path | None:
    """An existing engine for this exact model file, GPU, TensorRT and precision."""
    sha = file_sha256(path)
    found, _ = scan_engines(engines_dir)
    for engine, sidecar in found:
        if sidecar.precision == precision and not mismatches(sidecar, model_sha256=sha, gpu=gpu,
                                                             tensorrt_version=tensorrt.__version__):
            return engine
    return None


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        overrides: Profiles = dict(parse_profile_arg(p) for p in args.profile)
        options = BuildOptions(engines_dir=args.engines_dir or default_engines_dir(), precision=args.precision,
                               workspace_mib=args.workspace_mib, timing_cache=args.timing_cache,
                               version_compatible=args.version_compatible,
                               hardware_compatibility=args.hardware_compatible or "none",
                               profile_overrides=overrides, device_id=args.device_id)
        tensorrt, gpu = gpu_stack(args.device_id)
        todo = selected_models(args.names, args.models_dir or models.models_dir())
    except SwapcamError as exc:
        print(f"error: {exc.message()}", file=sys.stderr)
        return EXIT_UNAVAILABLE
    print(f"TensorRT {tensorrt.__version__} on {gpu.name} (sm{gpu.sm}), {len(todo)} model(s) → {options.engines_dir}")
    failed = 0
    entries = manifest_entries()
    for index, (name, path) in enumerate(todo, 1):
        print(f"[{index}/{len(todo)}] {name} ({path.name})")
        existing = None if args.force else up_to_date(options.engines_dir, path, tensorrt, gpu, options.precision)
        if existing is not None:
            print(f"  up to date: {existing.name} (--force rebuilds)")
            continue
        started = time.perf_counter()
        try:
            result = build_engine(tensorrt, path, model_name=name, gpu=gpu, options=options,
                                  manifest_profile=entries.get(name, {}).get("trt_profile"))
        except SwapcamError as exc:
            print(f"  FAILED: {exc.message()}", file=sys.stderr)
            failed += 1
            continue
        size_mib = result.engine_path.stat().st_size / (1 << 20)
        print(f"  built {result.engine_path.name} ({size_mib:.1f} MiB) in {time.perf_counter() - started:.1f} s")
    return EXIT_BUILD_FAILED if failed else 0


if __name__ == "__main__":
    sys.exit(main())
