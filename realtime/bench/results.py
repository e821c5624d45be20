"""What a bench run measures for one configuration: its rounds folded into totals, CPU, memory and GPU
memory samples, and the configuration's part of the JSON report."""

from __future__ import annotations

import sys
from array import array
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import psutil

from realtime.bench.loopback import HopSamples
from realtime.bench.overrides import Plan
from realtime.bench.stamps import (
    StageSplits,
    StampCheck,
    StampedSource,
    StampProbe,
    check_stamps,
    disagreements,
    stamp_latencies,
)
from realtime.config import PipelineConfig, SourceConfig
from realtime.errors import SwapcamError
from realtime.processors import Processor
from realtime.sources.base import Source
from realtime.stats import Stats, summarize_ms


@dataclass(frozen=True)
class Hooks:
    """Optional wrappers around each run's source and processor (fault injection, tracing)."""

    wrap_source: Callable[[Source], Source] | None = None
    wrap_processor: Callable[[Processor], Processor] | None = None




def gpu_memory_mb() -> float | None:
    """Peak GPU memory torch has allocated in this process, or None when torch has not used a GPU."""
    torch = sys.modules.get("torch")  # only if a processor already imported it: importing it costs seconds
    if torch is None:
        return None
    try:
        if not (torch.cuda.is_available() and torch.cuda.is_initialized()):
            return None
        return float(torch.cuda.max_memory_allocated()) / 2**20
    except Exception:  # a broken CUDA install must not end the benchmark
        return None


class ResourceSampler:
    """Process CPU % (100 = one core) and resident memory, sampled when ``sample`` is called."""

    def __init__(self) -> None:
        self._process = psutil.Process()
        self.cpu_percent: list[float] = []
        self.rss_mb: list[float] = []
        self.gpu_mb: list[float] = []

    def prime(self) -> None:
        """Start a CPU measurement interval (psutil measures between calls) and a GPU peak interval."""
        self._process.cpu_percent(None)
        torch = sys.modules.get("torch")
        try:
            if torch is not None and torch.cuda.is_available() and torch.cuda.is_initialized():
                torch.cuda.reset_peak_memory_stats()
        except Exception:  # a broken CUDA install must not end the benchmark
            pass

    def sample(self, _stats: object = None) -> None:
        """Record CPU % since the last call, RSS and GPU memory."""
        self.cpu_percent.append(self._process.cpu_percent(None))
        self.rss_mb.append(self._process.memory_info().rss / 2**20)
        gpu = gpu_memory_mb()
        if gpu is not None:
            self.gpu_mb.append(gpu)

    def as_dict(self) -> dict[str, Any]:
        """Mean and max of each resource (None when never sampled)."""
        def spread(values: list[float]) -> dict[str, float] | None:
            return {"mean": float(np.mean(values)), "max": float(np.max(values))} if values else None

        return {
            "cpu_percent": spread(self.cpu_percent),
            "rss_mb": spread(self.rss_mb),
            "gpu_memory_mb": {"peak": max(self.gpu_mb)} if self.gpu_mb else None,
        }


@dataclass
class Rate:
    """Frames per second while frames flowed: intervals between the first and last event of each round.

    Start-up and the final drain (an unbounded queue can take long to empty)
    are left out, so fps in and out are comparable across round lengths.
    """

    intervals: int = 0
    span_ns: int = 0

    def add(self, times_ns: list[int]) -> None:
        """Add one round's event times."""
        if len(times_ns) >= 2:
            self.intervals += len(times_ns) - 1
            self.span_ns += max(times_ns) - min(times_ns)

    def fps(self) -> float:
        """Events per second (0 when fewer than two events were seen)."""
        return self.intervals / (self.span_ns / 1e9) if self.span_ns > 0 else 0.0


@dataclass
class RoundData:
    """What one measured pipeline run produced."""

    stats: Stats
    source: StampedSource
    probe: StampProbe
    elapsed_s: float
    read_back: list[tuple[int | None, int]] | None = None
    faults: list[InjectedFaults] = field(default_factory=list)


@dataclass
class InjectedFaults:
    """What one fault injector (realtime.chaos) did in one run."""

    kind: str  # "source" or "processor": the stats error counter the faults land in
    injected: int
    last_ns: int  # monotonic ns of the last one (0: none)


@dataclass
class ConfigRun:
    """One configuration: its parts, and everything measured over its rounds."""

    plan: Plan
    source_cfg: SourceConfig | None = None
    hooks: Hooks = field(default_factory=Hooks)
    pipeline_cfg: PipelineConfig | None = None
    processor: Processor | None = None
    skipped: SwapcamError | None = None
    skipped_at: str = ""
    source_info: dict[str, Any] = field(default_factory=dict)
    rounds: int = 0
    elapsed_s: float = 0.0
    counters: Counter[str] = field(default_factory=Counter)
    drops: Counter[str] = field(default_factory=Counter)
    # Per-frame series as compact arrays (8 bytes a value, not ~32 for a float in a list): a soak stays flat.
    latency_ms: array[float] = field(default_factory=lambda: array("d"))
    latency_t_s: array[float] = field(default_factory=lambda: array("d"))
    stamp_ms: array[float] = field(default_factory=lambda: array("d"))
    stamp_t_s: array[float] = field(default_factory=lambda: array("d"))
    stamp_check: StampCheck = field(default_factory=StampCheck)
    splits: StageSplits = field(default_factory=StageSplits)
    output_stage_ms: array[float] = field(default_factory=lambda: array("d"))
    resources: ResourceSampler = field(default_factory=ResourceSampler)
    rate_in: Rate = field(default_factory=lambda: Rate())
    rate_out: Rate = field(default_factory=lambda: Rate())
    hops: HopSamples | None = None
    # For the soak and chaos reports (realtime.bench.soak):
    rss_start_mb: float | None = None  # 1 s into the first measured round
    rss_end_mb: float | None = None  # at the last sample before the last measured round stopped
    worker_errors: list[str] = field(default_factory=list)  # workers that died or did not stop, any phase
    injected: Counter[str] = field(default_factory=Counter)  # faults injected, by kind
    output_after_fault: Counter[str] = field(default_factory=Counter)  # frames output after the last one

    @property
    def ok(self) -> bool:
        """True while the configuration has not been skipped."""
        return self.skipped is None

    def add_round(self, data: RoundData, *, t0_ns: int) -> None:
        """Fold one measured run into the totals; times become seconds since ``t0_ns``."""
        stats = data.stats
        self.rounds += 1
        self.elapsed_s += data.elapsed_s
        self.counters.update({
            "captured": stats.captured, "processed": stats.processed, "output": stats.output,
            "resent": stats.resent, "processor": stats.processor_errors, "sink": stats.sink_errors,
            "source": stats.source_errors,
        })
        self.drops.update(stats.drops())
        self.rate_in.add(list(data.source.captured_ns.values()))
        self.rate_out.add(list(stats.output_times_ns))
        self.latency_ms.extend(stats.latencies_ms)
        self.latency_t_s.extend((t - t0_ns) / 1e9 for t in stats.output_times_ns)
        probe_seen = data.probe.seen
        for t_ns, ms in stamp_latencies(probe_seen, data.source.captured_ns):
            self.stamp_t_s.append((t_ns - t0_ns) / 1e9)
            self.stamp_ms.append(ms)
        self.stamp_check += check_stamps([seq for seq, _ in probe_seen], data.source.captured_ns.keys())
        self.splits.extend(data.probe.splits)
        self.output_stage_ms.extend(stats.stage_ms.get("output", ()))
        for fault in data.faults:
            self.injected[fault.kind] += fault.injected
            if fault.injected:
                self.output_after_fault[fault.kind] += sum(t > fault.last_ns for t in stats.output_times_ns)
        if data.read_back is not None:
            written: dict[int, int] = {}
            for seq, t_ns in probe_seen:
                if seq is not None:
                    written.setdefault(seq, t_ns)
            self.hops = self.hops or HopSamples()
            self.hops.add(data.read_back, written, data.source.captured_ns)

    def stages(self) -> dict[str, dict[str, float]]:
        """Per-stage summaries in pipeline order: queue_in, infer, sub-stages, queue_out, output."""
        names = list(self.splits.ms)
        top = ["queue_in", "infer"]
        order = [n for n in top if n in names] + [n for n in names if n not in (*top, "queue_out")]
        order += ["queue_out"] if "queue_out" in names else []
        result = {name: summarize_ms(self.splits.ms[name]) for name in order}
        if self.output_stage_ms:
            result["output"] = summarize_ms(self.output_stage_ms)
        return result

    def result(self) -> dict[str, Any]:
        """This configuration's part of the JSON report."""
        entry: dict[str, Any] = {
            "label": self.plan.label,
            "overrides": dict(self.plan.overrides),
            "status": "ok" if self.ok else "skipped",
            "skip_code": self.skipped.code if self.skipped else None,
            "skip_reason": self.skipped.message() if self.skipped else None,
            "skipped_at": self.skipped_at or None,
            "processor": self.processor.name if self.processor is not None else None,
            "source": self.source_info or None,
            "rounds": self.rounds,
            "measured_s": self.elapsed_s,
        }
        if not self.rounds:
            return entry | dict.fromkeys(MEASUREMENT_KEYS)
        return entry | self._measurements()

    def _measurements(self) -> dict[str, Any]:
        c = self.counters
        dropped, check = sum(self.drops.values()), self.stamp_check
        found = disagreements(check, dropped=dropped, resent=c["resent"], output=c["output"])
        return {
            "frames": {k: c[k] for k in ("captured", "processed", "output", "resent")},
            "fps": {"in": self.rate_in.fps(), "out": self.rate_out.fps()},
            "drops": dict(self.drops) | {"total": dropped},
            "errors": {k: c[k] for k in ("processor", "sink", "source")},
            "latency_ms": {"frame": summarize_ms(self.latency_ms), "stamp": summarize_ms(self.stamp_ms)},
            "stages_ms": self.stages(),
            "stamps": check.as_dict() | {
                "counted_drops": dropped, "counted_resent": c["resent"],
                "agree": not found, "disagreements": found,
            },
            "resources": self.resources.as_dict(),
            "loopback": self.hops.as_dict() if self.hops else None,
            "series": {
                "frame": {"t_s": _rounded(self.latency_t_s), "latency_ms": _rounded(self.latency_ms)},
                "stamp": {"t_s": _rounded(self.stamp_t_s), "latency_ms": _rounded(self.stamp_ms)},
            },
        }


MEASUREMENT_KEYS = ("frames", "fps", "drops", "errors", "latency_ms", "stages_ms", "stamps", "resources",
                    "loopback", "series")


def _rounded(values: Sequence[float]) -> list[float]:
    return [round(v, 3) for v in values]
