#!/usr/bin/env python3
"""Every GPU check in one call, for a machine with an NVIDIA GPU (and nothing but the project on it).

    python tools/gpu_check.py --out out/gpu-check              # about 5-7 minutes on a GPU machine
    python tools/gpu_check.py --out out/gpu-check --quick      # shorter runs (a first look)

It writes ``report.json`` and ``report.md`` into --out, and the raw bench JSON and test logs next to them:

1. environment: GPU, driver, CUDA, torch, cuDNN, and whether TensorRT, onnxruntime-gpu (its CUDA
   provider), onnx2torch, torchvision and PyAV are there;
2. the gpu- and tensorrt-marked tests that can run here (the others are skipped with their reason),
   plus the CPU-side contract and torch-backend tests;
3. realtime.gpu_ops on CUDA against the CPU: time per call and the largest difference;
4. the face pipeline (``swapcam bench``, still image fed at 120 fps, 720p and 1080p) on the CPU (ONNX
   Runtime) and with ``--backend torch --device cuda`` in fp32, fp16, fp32 with CUDA-graph replay and
   fp16 with it: frames processed per second, latency p50/p95/p99 and the stage split (p50 per stage).

Without a CUDA device it says so plainly at the top of both reports, runs the CPU-side checks (tests,
gpu_ops on the CPU, the pipeline on the CPU with ONNX Runtime and with torch) and exits 0. Each step
has its own time limit; a step that fails is reported and the others still run. Exit status: 0 when
the script ran to the end (whatever it found), 2 for a bad option.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import importlib.util
import json
import os
import platform
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
SIZES = ("1280x720", "1920x1080")
CUDA_CONFIGS = (("torch cuda fp32", ["--precision", "fp32"]), ("torch cuda fp16", ["--precision", "fp16"]),
                ("torch cuda fp32 + graph", ["--precision", "fp32", "--cuda-graph"]),
                ("torch cuda fp16 + graph", ["--precision", "fp16", "--cuda-graph"]))


def environment() -> dict[str, Any]:
    """What the machine has: GPU, driver, CUDA, torch, TensorRT, onnxruntime(-gpu), onnx2torch, ..."""
    env: dict[str, Any] = {"python": sys.version.split()[0], "platform": platform.platform(),
                           "cpu_count": os.cpu_count()}
    smi = shutil.which("nvidia-smi")
    if smi:
        done = subprocess.run([smi, "--query-gpu=name,driver_version,memory.total,compute_cap",
                               "--format=csv,noheader"], capture_output=True, text=True, timeout=20, check=False)
        env["nvidia_smi"] = done.stdout.strip() or done.stderr.strip()
    else:
        env["nvidia_smi"] = None
    try:
        import torch

        env["torch"] = torch.__version__
        env["torch_cuda_build"] = torch.version.cuda
        env["cuda_available"] = bool(torch.cuda.is_available())
        if env["cuda_available"]:
            env["gpu"] = torch.cuda.get_device_name(0)
            env["compute_capability"] = ".".join(map(str, torch.cuda.get_device_capability(0)))
            env["cudnn"] = torch.backends.cudnn.version()
    except ImportError as exc:
        env.update(torch=None, cuda_available=False, torch_error=str(exc))
    for module in ("tensorrt", "onnxruntime", "torchvision", "av"):
        env[module] = _version(module)
    try:
        env["onnx2torch"] = importlib.metadata.version("onnx2torch")
    except importlib.metadata.PackageNotFoundError:
        env["onnx2torch"] = None
    try:
        import onnxruntime

        env["onnxruntime_providers"] = onnxruntime.get_available_providers()
    except ImportError:
        env["onnxruntime_providers"] = []
    env["onnxruntime_gpu"] = "CUDAExecutionProvider" in env["onnxruntime_providers"]
    from realtime.engines.torch_engine import torch_status

    env["torch_backend"] = torch_status()[2] or "usable"
    return env


def _version(module: str) -> str | None:
    if importlib.util.find_spec(module) is None:
        return None
    try:
        imported = __import__(module)
    except Exception as exc:  # present but broken (e.g. torchvision built for another torch)
        return f"present but cannot be imported: {type(exc).__name__}: {exc}"[:200]
    return str(getattr(imported, "__version__", "present"))


def run_tests(out: Path, *, timeout_s: int) -> dict[str, Any]:
    """The gpu/tensorrt-marked tests and the CPU-side GPU-path tests, with pytest's summary line."""
    files = ["tests/test_trt_contract.py", "tests/test_torch_backend.py", "tests/test_gpu_fixes.py",
             "tests/test_engines_gpu.py", "tests/test_torch_ops.py"]
    results = {}
    for label, args in (("gpu/tensorrt-marked", ["-m", "gpu or tensorrt"]), ("GPU-path files", files)):
        log_file = out / f"pytest-{label.split('/')[0].split()[0].lower()}.log"
        command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-rs", *args]
        started = time.perf_counter()
        try:
            done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=timeout_s, check=False)
            text, status = done.stdout + done.stderr, done.returncode
        except subprocess.TimeoutExpired as exc:
            partial = exc.stdout.decode(errors="replace") if isinstance(exc.stdout, bytes) else (exc.stdout or "")
            text, status = f"{partial}\nTIMED OUT after {timeout_s} s", -1
        log_file.write_text(text, encoding="utf-8")
        lines = [line for line in text.splitlines() if line.strip()]
        results[label] = {"exit": status, "summary": lines[-1] if lines else "", "log": log_file.name,
                          "seconds": round(time.perf_counter() - started, 1)}
    return results


def gpu_ops_check(cuda: bool, *, repeats: int) -> dict[str, Any]:
    """Time the per-face torch operations on a 1080p frame on the CPU and, with a GPU, on CUDA; compare."""
    import numpy as np
    import torch

    from realtime import gpu_ops
    from realtime.swappers.inswapper.device import match_colors_torch

    rng = np.random.default_rng(0)
    frame = rng.integers(0, 256, (1080, 1920, 3), dtype=np.uint8)
    matrix = np.array([[0.35, 0.05, -560.0], [-0.05, 0.35, -250.0]])

    def work(device: torch.device) -> tuple[Any, ...]:
        image = gpu_ops.upload(frame, device)
        crop = gpu_ops.crop_align(image, matrix, (128, 128), border="replicate")
        back = gpu_ops.warp_affine(crop * 255.0, gpu_ops.invert_affine(matrix), (480, 480), border="replicate")[0]
        region = image[200:680, 500:980].permute(2, 0, 1).to(torch.float32)
        weight = torch.ones((1, 480, 480), device=device)
        moved = match_colors_torch(back, region, weight)
        return crop, moved

    def timed(device: torch.device) -> tuple[float, tuple[Any, ...]]:
        result = work(device)  # warm-up
        if device.type == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        for _ in range(repeats):
            result = work(device)
        if device.type == "cuda":
            torch.cuda.synchronize()
        return (time.perf_counter() - start) / repeats * 1000, result

    cpu_ms, cpu_out = timed(torch.device("cpu"))
    report: dict[str, Any] = {"what": "upload 1080p + crop_align 128 + warp back 480 + colour transfer",
                              "cpu_ms": round(cpu_ms, 3)}
    if cuda:
        cuda_ms, cuda_out = timed(torch.device("cuda"))
        report["cuda_ms"] = round(cuda_ms, 3)
        report["max_abs_diff"] = {name: float((a.cpu() - b).abs().max()) for name, a, b
                                  in zip(("crop", "colour"), cuda_out, cpu_out, strict=True)}
    return report


def bench(out: Path, label: str, backend_args: list[str], *, seconds: float, timeout_s: int) -> dict[str, Any]:
    """``swapcam bench`` on a still at 720p and 1080p with ``backend_args``; fps, latency and stages."""
    from realtime import models

    target = models.sample_path("newton.png")
    source = models.sample_path("gauss.png")
    json_path = out / f"bench-{label.replace(' ', '_').replace('+', 'plus')}.json"
    command = [sys.executable, "-c", "from realtime.cli import main; main()", "bench", "--image", str(target),
               "--face", str(source), "--fps", "120", "--duration", str(seconds), "--warmup", "2", "--rounds", "1",
               "--sweep", "size=" + ",".join(SIZES), "--json", str(json_path), *backend_args]
    try:
        done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=timeout_s, check=False)
    except subprocess.TimeoutExpired:
        return {"label": label, "error": f"timed out after {timeout_s} s"}
    if done.returncode != 0 or not json_path.is_file():
        return {"label": label, "error": (done.stderr or done.stdout).strip().splitlines()[-3:]}
    report = json.loads(json_path.read_text(encoding="utf-8"))
    rows = []
    for config in report.get("configs", []):
        if config.get("status") != "ok":
            rows.append({"size": config.get("label"), "skipped": config.get("skip_reason")})
            continue
        latency = config["latency_ms"]["frame"]
        stages = {name: round(value["p50"], 2) for name, value in config.get("stages_ms", {}).items()}
        processed = config["frames"]["processed"] / max(config.get("measured_s") or 1.0, 1e-6)
        rows.append({"size": config.get("label"), "fps_processed": round(processed, 1),
                     "frames_processed": config["frames"]["processed"],
                     "p50_ms": round(latency["p50"], 1), "p95_ms": round(latency["p95"], 1),
                     "p99_ms": round(latency["p99"], 1), "stages_p50_ms": stages,
                     "gpu_memory_mb": config.get("resources", {}).get("gpu_memory_mb")})
    return {"label": label, "args": backend_args, "swapper": report["configs"][0].get("processor")
            if report.get("configs") else None, "rows": rows, "json": json_path.name}


def markdown(report: dict[str, Any]) -> str:
    """The report as Markdown: environment, tests, gpu_ops, pipeline tables."""
    env = report["environment"]
    lines = ["# swapcam GPU check", ""]
    if not env.get("cuda_available"):
        lines += ["**No CUDA GPU here** (torch sees no CUDA device): only the CPU-side checks ran. "
                  "Run this script on a machine with an NVIDIA GPU for the GPU figures.", ""]
    lines += [f"Run {report['started']} for {report['seconds']} s. Machine: {env.get('gpu') or 'no GPU'}; "
              f"{env.get('platform')}; {env.get('cpu_count')} CPUs.", "", "## Environment", ""]
    lines += [f"- {key}: {value}" for key, value in env.items()]
    lines += ["", "## Tests", ""]
    lines += [f"- {label}: {value['summary']} (exit {value['exit']}, {value['seconds']} s, log {value['log']})"
              for label, value in report["tests"].items()]
    ops = report["gpu_ops"]
    lines += ["", "## gpu_ops", "", f"{ops.get('what')}: CPU {ops.get('cpu_ms')} ms"
              + (f", CUDA {ops['cuda_ms']} ms, largest difference {ops.get('max_abs_diff')}" if "cuda_ms" in ops
                 else f" {ops.get('error', '')}"), "", "## Face pipeline (swapcam bench, still image)", "",
              "| config | size | fps processed | p50 ms | p95 ms | p99 ms | stages p50 ms |",
              "|---|---|---|---|---|---|---|"]
    for run in report["pipeline"]:
        if "error" in run:
            lines.append(f"| {run['label']} | — | error: {run['error']} | | | | |")
            continue
        for row in run["rows"]:
            if "skipped" in row:
                lines.append(f"| {run['label']} | {row['size']} | skipped: {row['skipped']} | | | | |")
                continue
            stages = ", ".join(f"{k} {v}" for k, v in row["stages_p50_ms"].items())
            lines.append(f"| {run['label']} ({run.get('swapper')}) | {row['size']} | {row['fps_processed']} "
                         f"| {row['p50_ms']} | {row['p95_ms']} | {row['p99_ms']} | {stages} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, required=True, help="folder for report.json, report.md and logs")
    parser.add_argument("--quick", action="store_true", help="shorter bench runs and fewer repeats")
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    started, clock = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), time.perf_counter()
    env = environment()
    cuda = bool(env.get("cuda_available"))
    print("GPU check:", env.get("gpu") or "NO CUDA GPU HERE — running the CPU-side checks only", flush=True)
    report: dict[str, Any] = {"started": started, "environment": env}
    print("tests ...", flush=True)
    report["tests"] = run_tests(args.out, timeout_s=150 if cuda else 240)
    print("gpu_ops ...", flush=True)
    try:
        report["gpu_ops"] = gpu_ops_check(cuda, repeats=5 if args.quick else 30)
    except Exception as exc:  # report it and go on: the pipeline runs are still worth having
        report["gpu_ops"] = {"error": f"{type(exc).__name__}: {exc}"}
    seconds = 3.0 if args.quick else 6.0
    runs = [("cpu onnxruntime", ["--backend", "onnxruntime", "--device", "cpu"])]
    if cuda:
        runs += [(label, ["--backend", "torch", "--device", "cuda", *extra]) for label, extra in CUDA_CONFIGS]
    elif env["torch_backend"] == "usable":
        runs.append(("cpu torch", ["--backend", "torch", "--device", "cpu"]))
    report["pipeline"] = []
    for label, backend_args in runs:
        print(f"pipeline: {label} ...", flush=True)
        report["pipeline"].append(bench(args.out, label, backend_args, seconds=seconds, timeout_s=90))
    report["seconds"] = round(time.perf_counter() - clock, 1)
    (args.out / "report.json").write_text(json.dumps(report, indent=2, default=str), encoding="utf-8")
    (args.out / "report.md").write_text(markdown(report), encoding="utf-8")
    print(f"wrote {args.out / 'report.md'} and report.json in {report['seconds']} s")
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    sys.exit(main())
