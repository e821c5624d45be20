"""Every timestamp and timed wait uses one high-resolution clock (time.perf_counter_ns)."""

from __future__ import annotations

import re
import time
from pathlib import Path

import pytest

from realtime.config import PipelineConfig
from realtime.frame import Frame
from realtime.pipeline import Pipeline
from realtime.processors import Passthrough
from realtime.sources.synthetic import SyntheticSource

ROOT = Path(__file__).resolve().parents[1]
# time.monotonic ticks every 15.6 ms on Windows before 3.13; time.time jumps with the wall clock.
COARSE_CLOCK = re.compile(r"\btime\.(monotonic|monotonic_ns|time|time_ns)\(")


class KeepingSink:
    name = "keeping"

    def __init__(self) -> None:
        self.frames: list[Frame] = []

    def write(self, frame: Frame) -> None:
        self.frames.append(frame)

    def close(self) -> None:
        pass


def test_no_module_reads_a_coarse_clock() -> None:
    offenders = [f"{path.relative_to(ROOT)}:{number}"
                 for folder in ("realtime", "tools") for path in sorted((ROOT / folder).rglob("*.py"))
                 for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
                 if COARSE_CLOCK.search(line)]
    assert not offenders, f"use realtime.clock (perf_counter) instead: {offenders}"


def test_pipeline_timestamps_come_from_perf_counter_ns(monkeypatch: pytest.MonkeyPatch) -> None:
    # Shift perf_counter far from monotonic: stamps taken from any other clock land far below the offset.
    offset = 10**15
    real = time.perf_counter_ns
    monkeypatch.setattr(time, "perf_counter_ns", lambda: real() + offset)
    sink = KeepingSink()
    source = SyntheticSource(width=64, height=48, fps=100.0)
    pipeline = Pipeline(source=source, processor=Passthrough(), sinks=[sink], config=PipelineConfig(max_frames=5))
    stats = pipeline.run()
    sent = [f for f in sink.frames if f.seq >= 0]
    assert sent, "no frame reached the sink"
    for frame in sent:
        assert frame.t_capture >= offset and frame.t_output >= frame.t_capture
        assert all(start >= offset and end >= start for start, end in frame.stages.values())
    assert 0 <= (sent[0].t_output - sent[0].t_capture) < 1e9
    assert stats.summary()["latency_ms"]["max"] < 1000
