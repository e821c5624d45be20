"""Faults during a run: a lost source, injected failures, and the error catalogue itself."""

from __future__ import annotations

import re
import time
from pathlib import Path

import numpy as np
import pytest

from realtime.chaos import ChaosProcessor, ChaosSource, parse_chaos
from realtime.config import PipelineConfig
from realtime.errors import CATALOGUE, SwapcamError, UsageError
from realtime.frame import Frame
from realtime.pipeline import Pipeline
from realtime.processors import Passthrough
from realtime.sinks.null import NullSink
from realtime.sources.base import SignalLost
from realtime.sources.synthetic import SyntheticSource

REPO = Path(__file__).resolve().parents[1]


class FlakyCamera:
    """A synthetic camera that is unplugged between two times and comes back on reconnect."""

    live = True

    def __init__(self, *, lost_from: float, lost_until: float) -> None:
        self.inner = SyntheticSource(width=160, height=120, fps=50)
        self.name, self.width, self.height, self.fps = "flaky", 160, 120, 50.0
        self.start = time.perf_counter()
        self.lost_from, self.lost_until = lost_from, lost_until
        self.reconnects = 0

    def read(self) -> np.ndarray:
        elapsed = time.perf_counter() - self.start
        if self.lost_from <= elapsed < self.lost_until:
            time.sleep(0.01)
            raise SignalLost("device unplugged")
        return self.inner.read()

    def reconnect(self) -> None:
        self.reconnects += 1
        if time.perf_counter() - self.start < self.lost_until:
            raise SignalLost("still unplugged")

    def close(self) -> None:
        self.inner.close()


def test_lost_source_keeps_outputs_running_and_recovers() -> None:
    source = FlakyCamera(lost_from=0.4, lost_until=1.2)
    sink = NullSink(decode_stamps=True)
    pipeline = Pipeline(source=source, processor=Passthrough(), sinks=[sink],
                        config=PipelineConfig(ring_size=2, duration_s=3.2, on_signal_loss="black"))
    pipeline.run()
    stats = pipeline.summary()
    assert stats["errors"]["source"] >= 1 and source.reconnects >= 1
    # While lost, the NO SIGNAL frame (no stamp) was sent at about the frame rate: the output never stalled.
    no_signal = sum(1 for stamp in sink.stamps if stamp is None)
    assert no_signal >= 0.8 * 0.8 * 50 * 0.5
    # Frames came back after the loss, in order.
    seen = [s for s in sink.stamps if s is not None]
    assert seen == sorted(seen) and len(seen) > 20 + 40  # ~20 before the loss, 50 fps after
    assert not pipeline.signal_lost.is_set()


def test_last_frame_is_repeated_when_asked() -> None:
    source = FlakyCamera(lost_from=0.3, lost_until=0.9)
    sink = NullSink(decode_stamps=True)
    pipeline = Pipeline(source=source, processor=Passthrough(), sinks=[sink],
                        config=PipelineConfig(duration_s=1.3, on_signal_loss="last"))
    pipeline.run()
    assert None not in sink.stamps  # the last good frame, never a blank one
    assert pipeline.summary()["frames"]["resent"] > 10


def test_chaos_run_goes_on_and_counts_every_fault() -> None:
    source = ChaosSource(SyntheticSource(width=160, height=120, fps=100), rate=0.05, seed=3)
    processor = ChaosProcessor(Passthrough(), rate=0.1, seed=3)
    sink = NullSink(decode_stamps=True)
    pipeline = Pipeline(source=source, processor=processor, sinks=[sink],
                        config=PipelineConfig(ring_size=4, duration_s=1.5))
    pipeline.run()
    stats = pipeline.summary()
    assert processor.injected > 5 and source.injected > 2
    assert stats["errors"]["processor"] == processor.injected
    assert stats["errors"]["source"] == source.injected
    assert stats["frames"]["output"] == stats["frames"]["captured"] - sum(stats["drops"].values())


def test_processor_failure_passes_the_original_frame() -> None:
    class Broken:
        name = "broken"

        def process(self, frame: Frame) -> np.ndarray:
            raise MemoryError("simulated out of memory")

        def close(self) -> None:
            pass

    sink = NullSink(decode_stamps=True)
    pipeline = Pipeline(source=SyntheticSource(width=160, height=120, fps=60), processor=Broken(), sinks=[sink],
                        config=PipelineConfig(max_frames=30))
    pipeline.run()
    stats = pipeline.summary()
    stamps = [s for s in sink.stamps if s is not None]  # the original frames, stamps intact
    assert stamps == sorted(stamps) and len(set(stamps)) == stats["frames"]["output"]
    assert stats["frames"]["output"] + sum(stats["drops"].values()) == 30
    assert stats["errors"]["processor"] == stats["frames"]["processed"] > 0


@pytest.mark.parametrize("text", ["source=2", "disk=0.1", "source=abc"])
def test_bad_chaos_spec_is_a_usage_error(text: str) -> None:
    with pytest.raises(UsageError):
        parse_chaos(text)


def test_every_code_used_is_in_the_catalogue() -> None:
    used: set[str] = set()
    for path in (REPO / "realtime").rglob("*.py"):
        used |= set(re.findall(r"""["'](E\d\d)["']""", path.read_text(encoding="utf-8")))
    assert used, "no codes found: the scan is broken"
    assert used <= set(CATALOGUE), f"codes missing from the catalogue: {sorted(used - set(CATALOGUE))}"


def test_error_message_has_code_cause_and_remedy() -> None:
    error = SwapcamError("E05", "me.jpg")
    assert error.message().startswith("E05 no face found in the source photo: me.jpg — use a photo")
    assert error.exit_status == 2
    assert isinstance(UsageError("E01"), ValueError)


def test_readme_error_table_matches_the_catalogue() -> None:
    import subprocess
    import sys

    command = [sys.executable, str(REPO / "tools" / "error_table.py"), "--check", str(REPO / "README.md")]
    result = subprocess.run(command, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
