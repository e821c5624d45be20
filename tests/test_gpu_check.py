"""tools/gpu_check.py: the report says plainly when there is no GPU (the full run is a manual step)."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tools"))
import gpu_check


def test_report_without_a_gpu_says_so_and_lists_what_ran() -> None:
    report = {"started": "2026-11-30T23:00:00Z", "seconds": 40.0,
              "environment": {"cuda_available": False, "torch": "2.13.0+cpu", "platform": "Linux", "cpu_count": 2},
              "tests": {"gpu/tensorrt-marked": {"summary": "16 skipped", "exit": 0, "seconds": 5.0, "log": "a.log"}},
              "gpu_ops": {"what": "crop", "cpu_ms": 12.5},
              "pipeline": [{"label": "cpu onnxruntime", "rows": [
                  {"size": "size=1280x720", "fps_processed": 30.0, "p50_ms": 9.5, "p95_ms": 16.0, "p99_ms": 20.0,
                   "stages_p50_ms": {"detect": 15.9}}]},
                  {"label": "cpu torch", "error": "timed out after 90 s"}]}
    text = gpu_check.markdown(report)
    assert text.splitlines()[2].startswith("**No CUDA GPU here**")
    assert "| cpu onnxruntime (None) | size=1280x720 | 30.0 | 9.5 | 16.0 | 20.0 | detect 15.9 |" in text
    assert "error: timed out after 90 s" in text and "16 skipped" in text and "CPU 12.5 ms" in text


def test_environment_names_the_backends() -> None:
    env = gpu_check.environment()
    for key in ("torch", "cuda_available", "tensorrt", "onnxruntime_gpu", "onnx2torch", "torch_backend", "av"):
        assert key in env
