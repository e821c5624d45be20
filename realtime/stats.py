"""Latency percentiles, fps, drops and per-stage times for one run."""

from __future__ import annotations

import threading
from array import array
from collections import defaultdict, deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from realtime.clock import now_ns
from realtime.frame import Frame
from realtime.ring import Ring

PERCENTILES = (50, 95, 99)
# Per-frame samples a run keeps: 2.4 h at 30 fps (≈ 20 MB). Past that every other sample is dropped and
# only every 2nd (4th...) frame is recorded: a uniform sample of the whole run, and memory stays flat.
MAX_SAMPLES = 1 << 18


def summarize_ms(values: Sequence[float] | np.ndarray) -> dict[str, float]:
    """p50/p95/p99/max/mean of a list of milliseconds (zeros when empty)."""
    arr = np.asarray(values, dtype=np.float64)
    if arr.size == 0:
        return {"p50": 0.0, "p95": 0.0, "p99": 0.0, "max": 0.0, "mean": 0.0, "count": 0}
    p50, p95, p99 = np.percentile(arr, PERCENTILES)
    return {
        "p50": float(p50), "p95": float(p95), "p99": float(p99),
        "max": float(arr.max()), "mean": float(arr.mean()), "count": int(arr.size),
    }


@dataclass
class Stats:
    """Collects what the pipeline threads report.

    The methods take a lock and may be called from any thread while the workers
    run (``status_line`` and ``summary`` give a consistent view). The fields
    themselves are written by the workers: read them directly only once the run
    has ended. Counters count every frame; the per-frame arrays (latencies,
    output times, sequences, stage times) hold at most ``max_samples`` (None: no
    limit) — see MAX_SAMPLES.
    """

    rings: dict[str, Ring[Any]] = field(default_factory=dict)
    captured: int = 0
    processed: int = 0
    output: int = 0
    resent: int = 0
    processor_errors: int = 0
    sink_errors: int = 0
    source_errors: int = 0
    failed_outputs: list[dict[str, str]] = field(default_factory=list)  # name, code, message of each removed
    # Compact arrays, not lists of Python floats: memory stays small over hours-long runs.
    latencies_ms: array[float] = field(default_factory=lambda: array("d"))
    output_times_ns: array[int] = field(default_factory=lambda: array("q"))
    sequences: array[int] = field(default_factory=lambda: array("q"))
    stage_ms: dict[str, array[float]] = field(default_factory=lambda: defaultdict(lambda: array("d")))
    max_samples: int | None = MAX_SAMPLES
    sample_every: int = 1  # frames per recorded sample; doubles each time the arrays are thinned
    started_ns: int = field(default_factory=now_ns)
    _recent_in: deque[int] = field(default_factory=lambda: deque(maxlen=4096))
    _recent_out: deque[int] = field(default_factory=lambda: deque(maxlen=4096))
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def on_capture(self, frame: Frame) -> None:
        """Called by the capture thread for each frame read."""
        with self._lock:
            self.captured += 1
            self._recent_in.append(frame.t_capture)

    def on_processed(self, frame: Frame, *, failed: bool) -> None:
        """Called by the inference thread after each frame."""
        with self._lock:
            self.processed += 1
            self.processor_errors += int(failed)

    def on_output(self, frame: Frame, *, resent: bool) -> None:
        """Called by the output thread after the sinks have written ``frame``."""
        now = frame.t_output or now_ns()
        with self._lock:
            if resent:
                self.resent += 1
                return
            self.output += 1
            self._recent_out.append(now)
            if (self.output - 1) % self.sample_every:
                return
            self.latencies_ms.append((now - frame.t_capture) / 1e6)
            self.output_times_ns.append(now)
            self.sequences.append(frame.seq)
            for name, (start, end) in frame.stages.items():
                self.stage_ms[name].append((end - start) / 1e6)
            if self.max_samples is not None and len(self.latencies_ms) >= self.max_samples:
                self._thin()

    def _thin(self) -> None:
        """Keep every other sample and record half as often from now on (caller holds the lock)."""
        self.latencies_ms = self.latencies_ms[::2]
        self.output_times_ns = self.output_times_ns[::2]
        self.sequences = self.sequences[::2]
        for name, values in self.stage_ms.items():
            self.stage_ms[name] = values[::2]
        self.sample_every *= 2

    def count(self, counter: str) -> None:
        """Increment one of the error counters (``sink_errors``, ``source_errors``...)."""
        with self._lock:
            setattr(self, counter, getattr(self, counter) + 1)

    def on_output_failed(self, *, name: str, code: str, message: str) -> None:
        """Called when an output was removed because its writes failed."""
        with self._lock:
            self.failed_outputs.append({"name": name, "code": code, "message": message})

    def drops(self) -> dict[str, int]:
        """Frames dropped by each ring so far."""
        return {name: ring.dropped for name, ring in self.rings.items()}

    def _rate(self, times: deque[int], now: int, window_s: float = 1.0) -> float:
        cutoff = now - int(window_s * 1e9)
        recent = [t for t in times if t >= cutoff]
        return len(recent) / window_s

    def status_line(self) -> str:
        """One line for the terminal: fps, latency over the last second, drops."""
        now = now_ns()
        with self._lock:
            fps_in = self._rate(self._recent_in, now)
            fps_out = self._rate(self._recent_out, now)
            recent = self.latencies_ms[-max(1, int(fps_out) or 1):]
            lat = summarize_ms(recent)
            errors = self.processor_errors
        drops = sum(self.drops().values())
        return (
            f"in {fps_in:5.1f} fps | out {fps_out:5.1f} fps | latency p50 {lat['p50']:6.1f} ms "
            f"p95 {lat['p95']:6.1f} ms | dropped {drops} | errors {errors}"
        )

    def recent(self, window_s: float = 1.0) -> dict[str, Any]:
        """The last ``window_s`` seconds: fps in/out, latency percentiles, mean ms per frame of each stage; plus the
        drop and error totals (the control panel's live figures)."""
        now = now_ns()
        with self._lock:
            fps_in = self._rate(self._recent_in, now, window_s)
            fps_out = self._rate(self._recent_out, now, window_s)
            count = max(1, round(fps_out * window_s / self.sample_every)) if fps_out else 0
            latency = summarize_ms(self.latencies_ms[-count:] if count else [])
            stages = self._stage_split(count)
            errors = {"processor": self.processor_errors, "sink": self.sink_errors, "source": self.source_errors}
            frames = {"captured": self.captured, "output": self.output, "resent": self.resent}
        return {"fps": {"in": fps_in, "out": fps_out}, "latency_ms": latency, "stages_ms": stages,
                "drops": self.drops(), "errors": errors, "frames": frames}

    def _stage_split(self, count: int) -> dict[str, float]:
        """Mean ms per output frame of each stage over the last ``count`` samples (caller holds the lock).

        A stage that runs on some frames only (the detector) has fewer samples: its share of the
        recent ones is estimated from its share of all of them.
        """
        frames = len(self.latencies_ms)
        if not count or not frames:
            return {}
        split = {}
        for name, values in self.stage_ms.items():
            recent = max(1, round(count * len(values) / frames)) if len(values) else 0
            split[name] = float(sum(values[-recent:]) / count) if recent else 0.0
        return split

    def summary(self) -> dict[str, Any]:
        """Everything measured so far, as plain JSON-able values."""
        with self._lock:
            elapsed = max((now_ns() - self.started_ns) / 1e9, 1e-9)
            stages = {name: summarize_ms(v) for name, v in self.stage_ms.items()}
            return {
                "elapsed_s": elapsed,
                "frames": {
                    "captured": self.captured, "processed": self.processed, "output": self.output,
                    "resent": self.resent,
                },
                "fps": {"in": self.captured / elapsed, "out": self.output / elapsed},
                "drops": self.drops(),
                "errors": {
                    "processor": self.processor_errors, "sink": self.sink_errors,
                    "source": self.source_errors,
                },
                "latency_ms": summarize_ms(self.latencies_ms),
                "stages_ms": stages,
                "failed_outputs": [dict(entry) for entry in self.failed_outputs],
            }
