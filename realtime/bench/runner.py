"""Measure each configuration: build its processor once, warm it up, run it in alternating rounds.

Rounds alternate the configurations (round r starts with the r-th one) so
that drift on a noisy machine hits them all alike. Pipelines, sources and
sinks are rebuilt every round (cheap); processors are built once per distinct
set of processing options and lent to each run (models load once).
"""

from __future__ import annotations

import argparse
import logging
from collections.abc import Callable
from dataclasses import dataclass, replace

import numpy as np

from realtime.bench.loopback import LoopbackReader, resolve_device
from realtime.bench.overrides import Plan
from realtime.bench.results import (
    ConfigRun,
    Hooks,
    InjectedFaults,
    ResourceSampler,
    RoundData,
)
from realtime.bench.stamps import StampedSource, StampProbe
from realtime.chaos import ChaosProcessor, ChaosSource
from realtime.clock import now_ns, now_s
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
        self.t0_ns = now_ns()

    def run(self) -> list[ConfigRun]:
        """Measure every configuration; returns them in plan order, skipped ones included."""
        runs = [ConfigRun(plan=plan) for plan in self.plans]
        processors: dict[str, Processor] = {}
        self.t0_ns = now_ns()
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
        start = now_s()
        try:
            pipeline.run(on_tick=sampler.sample)
        finally:
            elapsed = now_s() - start
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
