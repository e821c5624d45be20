"""`swapcam run` and `swapcam devices` end to end, in a subprocess."""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

import jsonschema
import pytest
from platform_helpers import SWAPCAM, popen_kwargs, terminate_gracefully, unwritable_path
from runtime_media import read_video, write_stamped_video

LATENCY = {
    "type": "object",
    "required": ["p50", "p95", "p99", "max", "mean", "count"],
    "properties": {k: {"type": "number", "minimum": 0} for k in ("p50", "p95", "p99", "max", "mean", "count")},
}
STATS_SCHEMA = {
    "type": "object",
    "required": ["elapsed_s", "frames", "fps", "drops", "errors", "latency_ms", "stages_ms"],
    "properties": {
        "elapsed_s": {"type": "number", "exclusiveMinimum": 0},
        "frames": {
            "type": "object",
            "required": ["captured", "processed", "output", "resent"],
            "additionalProperties": {"type": "integer", "minimum": 0},
        },
        "fps": {"type": "object", "required": ["in", "out"], "additionalProperties": {"type": "number"}},
        "drops": {"type": "object", "required": ["capture", "output"],
                  "additionalProperties": {"type": "integer", "minimum": 0}},
        "errors": {"type": "object", "additionalProperties": {"type": "integer", "minimum": 0}},
        "latency_ms": LATENCY,
        "stages_ms": {"type": "object", "additionalProperties": LATENCY},
    },
}


def swapcam(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run([SWAPCAM, *args], capture_output=True, text=True, timeout=timeout)


def test_run_prints_status_and_writes_valid_stats(tmp_path: Path) -> None:
    stats = tmp_path / "stats.json"
    result = swapcam("run", "--synthetic", "--size", "320x240", "--fps", "30", "--duration", "2.5",
                     "--output", "null", "--stats-json", str(stats))
    assert result.returncode == 0, result.stderr
    status = [line for line in result.stderr.splitlines() if line.startswith("in ") and "fps | out" in line]
    assert len(status) >= 1  # once a second; plain lines because stderr is not a terminal
    assert "latency p50" in status[-1] and "dropped" in status[-1]
    assert "latency ms (capture→output)" in result.stdout
    summary = json.loads(stats.read_text())
    jsonschema.validate(summary, STATS_SCHEMA)
    assert 60 <= summary["frames"]["output"] <= 80  # 2.5 s at 30 fps
    assert 25 <= summary["fps"]["in"] <= 32
    assert 0 < summary["latency_ms"]["p50"] < 50


def test_offline_render_of_a_file_keeps_every_frame(tmp_path: Path) -> None:
    clip = write_stamped_video(tmp_path / "in.mp4", frames=45)
    out = tmp_path / "out.mkv"
    result = swapcam("run", "--input", str(clip), "--offline", "--output", f"file:{out}")
    assert result.returncode == 0, result.stderr
    stamps, _ = read_video(out)
    assert stamps == list(range(45))


def test_sigterm_stops_within_2_s(tmp_path: Path) -> None:
    stats = tmp_path / "stats.json"
    process = subprocess.Popen([SWAPCAM, "run", "--synthetic", "--size", "320x240", "--stats-json", str(stats)],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **popen_kwargs())
    deadline = time.perf_counter() + 20
    assert process.stderr is not None
    while time.perf_counter() < deadline and "fps | out" not in process.stderr.readline():
        pass
    sent = time.perf_counter()
    terminate_gracefully(process)
    process.communicate(timeout=10)
    assert time.perf_counter() - sent < 2.5
    assert process.returncode == 0
    assert json.loads(stats.read_text())["frames"]["output"] > 0


@pytest.mark.parametrize(("args", "code", "status"), [
    (["--output", "bogus"], "E02", 2),
    (["--output", "virtualcam:backend=nope"], "E02", 2),
    (["--size", "640by480"], "E01", 2),
    (["--size", "641x480"], "E01", 2),
    (["--fps", "0"], "E01", 2),
    (["--ring-size", "0"], "E01", 2),
    (["--input", "/no/such/video.mp4"], "E12", 2),
    (["--output", "file:{unwritable}/out.mp4"], "E14", 2),
    (["--camera", "/dev/video99"], "E11", 3),
])
def test_bad_input_gives_the_coded_error_and_exit_status(args: list[str], code: str, status: int,
                                                         tmp_path: Path) -> None:
    unwritable = unwritable_path(tmp_path, "out").parent
    result = swapcam("run", "--duration", "1", *(arg.format(unwritable=unwritable) for arg in args))
    assert result.returncode == status, result.stderr
    assert f"error: {code} " in result.stderr
    assert "Traceback" not in result.stderr


def test_devices_lists_something_or_says_none() -> None:
    result = swapcam("devices")
    assert result.returncode == 0, result.stderr
    assert "cameras" in result.stdout
    assert "virtual camera" in result.stdout
