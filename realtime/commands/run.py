"""``swapcam run``: the live pipeline."""

from __future__ import annotations

import argparse
import logging
import signal
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from realtime.chaos import ChaosConfig, ChaosProcessor, ChaosSource, parse_chaos
from realtime.commands.options import (
    StatusPrinter,
    add_pipeline_options,
    add_source_options,
    pipeline_config,
    source_config,
    write_json,
)
from realtime.commands.processing import add_processing_options, build_processor
from realtime.config import PipelineConfig, SourceConfig
from realtime.control.config_file import add_config_option
from realtime.control.session import LiveSession, add_panel_options, steerable
from realtime.pipeline import Pipeline
from realtime.processors import Processor
from realtime.sinks.base import Sink
from realtime.sinks.factory import open_sink, parse_sink
from realtime.sources.base import Source
from realtime.sources.factory import open_source

log = logging.getLogger("swapcam")


def add_parser(sub: Any) -> None:
    """Register ``run``."""
    parser = sub.add_parser("run", help="run the live pipeline",
                            description="Capture → swap → output, with a live status line.")
    add_source_options(parser)
    add_pipeline_options(parser)
    add_processing_options(parser)
    add_panel_options(parser)
    add_config_option(parser)
    # The defaults as built, before a --config file changes them: options left at these take saved live settings.
    parser.set_defaults(handler=handle, config_parser=parser,
                        plain_defaults={a.dest: a.default for a in parser._actions})


def open_sinks(config: PipelineConfig, *, width: int, height: int, fps: float, live: bool = True) -> list[Sink]:
    """Open every sink; if one fails the ones already open are closed first."""
    specs = [parse_sink(text) for text in config.sink_specs]
    sinks: list[Sink] = []
    try:
        for spec in specs:
            sinks.append(open_sink(spec, width=width, height=height, fps=fps, live=live))
    except BaseException:
        for sink in sinks:
            sink.close()
        raise
    return sinks


def build_pipeline(
    source_cfg: SourceConfig, config: PipelineConfig, processor: Processor, chaos: ChaosConfig | None = None
) -> Pipeline:
    """Open the source and sinks and wire them with ``processor`` (and injected faults, if asked)."""
    for text in config.sink_specs:
        parse_sink(text)  # fail on a bad spec before opening a camera
    source: Source = open_source(source_cfg)
    if chaos is not None and chaos.source_fail_rate > 0:
        source = ChaosSource(source, rate=chaos.source_fail_rate, seed=chaos.seed)
    if chaos is not None and chaos.processor_fail_rate > 0:
        processor = ChaosProcessor(processor, rate=chaos.processor_fail_rate, seed=chaos.seed)
    try:
        sinks = open_sinks(config, width=source.width, height=source.height, fps=source.fps, live=source.live)
    except BaseException:
        source.close()
        raise
    log.info("source %s (%dx%d @ %g fps) → %s", source.name, source.width, source.height, source.fps,
             ", ".join(s.name for s in sinks))
    return Pipeline(source=source, processor=processor, sinks=sinks, config=config)


@contextmanager
def stop_on_signals(pipeline: Pipeline) -> Iterator[None]:
    """SIGINT/SIGTERM ask the pipeline to stop; it then closes every sink cleanly."""
    def handler(signum: int, _frame: object) -> None:
        log.info("%s: stopping", signal.Signals(signum).name)
        pipeline.request_stop()

    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


def format_summary(summary: dict[str, Any]) -> str:
    """A short human-readable report of a finished run."""
    lat, fps, frames = summary["latency_ms"], summary["fps"], summary["frames"]
    lines = [
        f"frames: {frames['captured']} captured, {frames['output']} output, {frames['resent']} re-sent; "
        f"drops {summary['drops']}; errors {summary['errors']}",
        f"fps: in {fps['in']:.1f}, out {fps['out']:.1f}",
        f"latency ms (capture→output): p50 {lat['p50']:.1f}  p95 {lat['p95']:.1f}  "
        f"p99 {lat['p99']:.1f}  max {lat['max']:.1f}",
    ]
    for name, stage in summary["stages_ms"].items():
        lines.append(f"  stage {name:<10} p50 {stage['p50']:7.2f}  p95 {stage['p95']:7.2f} ms")
    return "\n".join(lines)


def handle(args: argparse.Namespace) -> int:
    """Run until the source ends, the duration or frame count is reached, or Ctrl-C."""
    source_cfg = source_config(args)
    config = pipeline_config(args)
    chaos = parse_chaos(args.chaos)
    session = LiveSession.create(args, args.plain_defaults) if steerable(args) else None
    processor = session.processor if session is not None else build_processor(args)
    try:
        pipeline = build_pipeline(source_cfg, config, processor, chaos)
    except BaseException:
        if session is not None:  # the panel's port and the models were opened first
            session.close()
            processor.close()
        raise
    printer = StatusPrinter(extra=None if session is None else session.status_suffix)
    with stop_on_signals(pipeline):
        try:
            if session is not None:
                session.attach(pipeline)
            pipeline.run(on_tick=printer)
        finally:
            if session is not None:
                session.close()
            printer.finish()
            summary = pipeline.summary()
            if args.stats_json:
                write_json(args.stats_json, summary)
    print(format_summary(summary), file=sys.stdout)
    return 0
