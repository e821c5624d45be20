"""Measure each configuration: build its processor once, warm it up, run it in alternating rounds.

Rounds alternate the configurations (round r starts with the r-th one) so
that drift on a noisy machine hits them all alike. Pipelines, sources and
sinks are rebuilt every round (cheap); processors are built once per distinct
set of processing options and lent to each run (models load once).
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from array import array
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import psutil

from realtime.bench.loopback import HopSamples, LoopbackReader, resolve_device
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
from realtime.chaos import ChaosProcessor, ChaosSource
from realtime.config import PipelineConfig, SourceConfig
from realtime.errors import SwapcamError, UsageError
from realtime.frame import Frame
from realtime.pipeline import Pipeline
from realtime.processors import Processor
from realtime.session import SinkOpener, open_pipeline, spec_opener
from realtime.sinks.base import Sink
from realtime.sinks.factory import parse_sink
from realtime.sources.base import Source
from realtime.sources.factory import open_source
from realtime.stats import Stats, summarize_ms

log = logging.getLogger(__name__)

MIN_ROUND_S = 0.2
SOAK_FROM_S = 120.0  # runs this long report the soak verdict without --soak
SOAK_WINDOW_S = 60.0  # the soak compares the p99 of the first and the last minute


@dataclass(frozen=True)
class BenchSettings:
    """How long to measure each configuration, and how.

    ``duration_s`` is the measured time per configuration, split evenly over
    ``rounds``; ``warmup_s`` runs once per configuration first and is discarded.
    """

    duration_s: float = 10.0
    warmup_s: float = 1.0
    rounds: int = 1
    loopback: str | None = None
    soak: bool = False  # report the soak verdict; on by itself from SOAK_FROM_S (see realtime.bench.soak)
    soak_window_s: float = SOAK_WINDOW_S

    def __post_init__(self) -> None:
        if not 0 < self.duration_s <= 3600:
            raise UsageError("E01", f"--duration {self.duration_s}", remedy="use 0 < seconds <= 3600, e.g. 10")
        if not 0 <= self.warmup_s <= 60:
            raise UsageError("E01", f"--warmup {self.warmup_s}", remedy="use a warm-up from 0 to 60 s")
        if not 1 <= self.rounds <= 1000:
            raise UsageError("E01", f"--rounds {self.rounds}", remedy="use from 1 to 1000 rounds")
        if self.duration_s / self.rounds < MIN_ROUND_S:
            raise UsageError("E01", f"--duration {self.duration_s:g} s over {self.rounds} rounds is too short",
                             remedy=f"give each round at least {MIN_ROUND_S} s: raise --duration or lower --rounds")
        if not 0 < self.soak_window_s <= 3600:
            raise UsageError("E01", f"--soak-window {self.soak_window_s}", remedy="use 0 < seconds <= 3600, e.g. 60")

    @property
    def soak_active(self) -> bool:
        """True when the report includes the soak verdict."""
        return self.soak or self.duration_s >= SOAK_FROM_S


@dataclass(frozen=True)
class Hooks:
    """Optional wrappers around each run's source and processor (fault injection, tracing)."""

    wrap_source: Callable[[Source], Source] | None = None
    wrap_processor: Callable[[Processor], Processor] | None = None


@dataclass(frozen=True)
class Setup:
    """How one configuration's options become its parts: the same functions ``run`` uses."""

    source_config: Callable[[argparse.Namespace], SourceConfig]
    pipeline_config: Callable[[argparse.Namespace], PipelineConfig]
    build_processor: Callable[[argparse.Namespace], Processor]
    # Configurations with the same key share one processor (e.g. ring-size=1,2,8).
    processor_key: Callable[[argparse.Namespace], str]
    hooks: Callable[[argparse.Namespace], Hooks] = lambda _args: Hooks()


class KeptOpen:
    """Lends a processor to one pipeline run; the run's ``close`` does not close it."""

    def __init__(self, inner: Processor) -> None:
        self.inner = inner
        self.name = inner.name

    def process(self, frame: Frame) -> np.ndarray:
        """The lent processor's result."""
        return self.inner.process(frame)

    def close(self) -> None:
        """Left to the bench, which closes each processor once at the end."""


def worker_failures(pipeline: Pipeline) -> list[str]:
    """One line per pipeline worker that died with an exception or did not stop."""
    lines = [f"{type(exc).__name__}: {exc}" for exc in pipeline.errors]
    if not pipeline.finished:
        lines.append("a worker thread did not stop within the join timeout")
    return lines


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


class Bench:
    """Runs every configuration: prepare, warm up, then measured rounds in alternating order."""

    def __init__(
        self,
        *,
        plans: list[Plan],
        settings: BenchSettings,
        setup: Setup,
        progress: Callable[[str], None] | None = None,
    ) -> None:
        self.plans = plans
        self.settings = settings
        self.setup = setup
        self.progress = progress or log.info
        self.loopback_error: SwapcamError | None = None
        self.loopback_device: str | None = None  # the resolved --loopback device
        self.interrupted = False
        self.t0_ns = time.monotonic_ns()

    def run(self) -> list[ConfigRun]:
        """Measure every configuration; returns them in plan order, skipped ones included."""
        runs = [ConfigRun(plan=plan) for plan in self.plans]
        processors: dict[str, Processor] = {}
        self.t0_ns = time.monotonic_ns()
        try:
            for config_run in runs:
                self._prepare(config_run, processors)
            self._check_loopback()
            if self.settings.warmup_s > 0:
                for config_run in runs:
                    self._attempt(config_run, "warm-up", self.settings.warmup_s, measure=False)
            per_round = self.settings.duration_s / self.settings.rounds
            for index in range(self.settings.rounds):
                shift = index % len(runs)
                for config_run in runs[shift:] + runs[:shift]:
                    self._attempt(config_run, f"round {index + 1}/{self.settings.rounds}", per_round, measure=True)
        except KeyboardInterrupt:
            # The interrupted run is discarded (its frames in flight would read as losses); report the rest.
            self.interrupted = True
            self.progress("interrupted: reporting the rounds that finished")
        finally:
            for processor in processors.values():
                try:
                    processor.close()
                except Exception as exc:  # every processor gets closed
                    log.error("error while closing %s: %s", processor.name, exc)
        return runs

    def _prepare(self, config_run: ConfigRun, processors: dict[str, Processor]) -> None:
        """Resolve the configuration's options and build (or share) its processor."""
        args = config_run.plan.args
        try:
            config_run.source_cfg = self.setup.source_config(args)
            config_run.pipeline_cfg = self.setup.pipeline_config(args)
            config_run.hooks = self.setup.hooks(args)
            key = self.setup.processor_key(args)
            if key not in processors:
                processors[key] = self.setup.build_processor(args)
            config_run.processor = processors[key]
        except SwapcamError as exc:
            self._skip(config_run, exc, "setup")

    def _check_loopback(self) -> None:
        if self.settings.loopback is None:
            return
        try:
            self.loopback_device = resolve_device(self.settings.loopback)
        except SwapcamError as exc:
            self.loopback_error = exc
            self.progress(f"loopback skipped: {exc.message()}")

    def _attempt(self, config_run: ConfigRun, phase: str, duration_s: float, *, measure: bool) -> None:
        if not config_run.ok:
            return
        sampler = config_run.resources if measure else ResourceSampler()
        first_sample = len(sampler.rss_mb)
        try:
            data = self._run_once(config_run, duration_s, sampler)
        except SwapcamError as exc:
            self._skip(config_run, exc, phase)
            return
        except Exception as exc:  # a worker's bug: reported like any other skip; other configurations go on
            log.debug("%s failed", config_run.plan.label, exc_info=True)
            self._skip(config_run, SwapcamError("E17", f"{type(exc).__name__}: {exc}"), phase)
            return
        if measure:
            # Taken while the pipeline runs (the samples once a second; the last one is after the stop), so
            # the start already holds the running pipeline's working set and growth means accumulation.
            running = sampler.rss_mb[first_sample:-1] or sampler.rss_mb[-1:]
            if config_run.rss_start_mb is None:
                config_run.rss_start_mb = running[0]
            config_run.rss_end_mb = running[-1]
            config_run.add_round(data, t0_ns=self.t0_ns)
        lat = summarize_ms(data.stats.latencies_ms)
        self.progress(f"{phase:<13} {config_run.plan.label}: {data.stats.output / max(data.elapsed_s, 1e-9):5.1f} "
                      f"fps out, latency p50 {lat['p50']:.1f} ms p95 {lat['p95']:.1f} ms")

    def _skip(self, config_run: ConfigRun, exc: SwapcamError, phase: str) -> None:
        config_run.skipped, config_run.skipped_at = exc, phase
        self.progress(f"skipped {config_run.plan.label} ({phase}): {exc.message()}")

    def _run_once(self, config_run: ConfigRun, duration_s: float, sampler: ResourceSampler) -> RoundData:
        """One pipeline run of ``duration_s``; it ends by itself, so every captured frame is accounted for."""
        assert config_run.source_cfg is not None and config_run.pipeline_cfg is not None
        assert config_run.processor is not None
        config = replace(config_run.pipeline_cfg, duration_s=duration_s, max_frames=None)
        hooks = config_run.hooks
        opened: list[StampedSource] = []
        source_cfg = config_run.source_cfg

        def open_stamped() -> Source:
            raw = open_source(source_cfg)
            if hooks.wrap_source is not None:
                raw = hooks.wrap_source(raw)
            opened.append(StampedSource(raw))
            return opened[0]

        probe = StampProbe()
        processor: Processor = KeptOpen(config_run.processor)
        if hooks.wrap_processor is not None:
            processor = hooks.wrap_processor(processor)
        stats = Stats(max_samples=None)  # a bench run is bounded in time; its rates need every frame
        pipeline = open_pipeline(source=open_stamped, sinks=self._sink_openers(config, probe), processor=processor,
                                 config=config, stats=stats, owns_processor=False)
        source, raw = opened[0], opened[0].inner
        config_run.source_info = {"name": source.name, "width": source.width, "height": source.height,
                                  "fps": source.fps}
        reader = self._open_reader()
        sampler.prime()
        start = time.monotonic()
        try:
            pipeline.run(on_tick=sampler.sample)
        finally:
            elapsed = time.monotonic() - start
            sampler.sample()
            if reader is not None:
                reader.stop()
            config_run.worker_errors += worker_failures(pipeline)
        faults = [InjectedFaults(kind=part.fault, injected=part.injected, last_ns=part.last_injected_ns)
                  for part in (raw, processor) if isinstance(part, (ChaosSource, ChaosProcessor))]
        return RoundData(stats=stats, source=source, probe=probe, elapsed_s=elapsed,
                         read_back=reader.seen if reader is not None else None, faults=faults)

    def _sink_openers(self, config: PipelineConfig, probe: StampProbe) -> list[SinkOpener]:
        """The user's --output sinks, then the probe, then the loopback virtual camera (if any)."""
        specs = [parse_sink(text) for text in config.sink_specs]
        loopback = None
        if self.loopback_device is not None and self.loopback_error is None:
            loopback = parse_sink(f"virtualcam:{self.loopback_device}")
            if loopback not in specs:
                specs.append(loopback)

        def the_probe(_source: Source) -> Sink:
            return probe

        openers: list[SinkOpener] = []
        for spec in specs:
            if spec == loopback:
                openers.append(the_probe)  # the probe sees each frame just before the virtual camera does
            openers.append(spec_opener(spec))
        if the_probe not in openers:
            openers.append(the_probe)
        return openers

    def _open_reader(self) -> LoopbackReader | None:
        """Start reading the virtual camera back; on failure the loopback is skipped, not the run."""
        if self.loopback_device is None or self.loopback_error is not None:
            return None
        try:
            reader = LoopbackReader(self.loopback_device)
        except SwapcamError as exc:
            self.loopback_error = exc
            self.progress(f"loopback skipped: {exc.message()}")
            return None
        reader.start()
        return reader
