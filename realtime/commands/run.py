"""``swapcam run``: the live pipeline.

Exit status: 0 when the run ended normally (source ended, --duration/--frames reached, one Ctrl-C or
SIGTERM); 4 when an output failed and was removed during the run; 130 on a second Ctrl-C/SIGTERM, which
quits at once after a best-effort flush of the recordings.
"""

from __future__ import annotations

import argparse
import logging
import os
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
from realtime.errors import EXIT_RUNTIME
from realtime.pipeline import Pipeline
from realtime.processors import Processor
from realtime.session import open_pipeline, sink_openers
from realtime.sources.base import Source
from realtime.sources.factory import open_source

log = logging.getLogger("swapcam")

EXIT_INTERRUPTED = 130
FLUSH_S = 0.5  # a second Ctrl-C: how long the recordings get to finalise before the process ends


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


def build_pipeline(
    source_cfg: SourceConfig, config: PipelineConfig, processor: Processor, chaos: ChaosConfig | None = None
) -> Pipeline:
    """Open the source and sinks and wire them with ``processor`` (and injected faults, if asked).

    If anything fails to open, what was opened is closed again, ``processor`` included.
    """
    sinks = sink_openers(config.sink_specs)  # a bad spec fails here, before a camera opens

    def source() -> Source:
        opened: Source = open_source(source_cfg)
        if chaos is not None and chaos.source_fail_rate > 0:
            return ChaosSource(opened, rate=chaos.source_fail_rate, seed=chaos.seed)
        return opened

    if chaos is not None and chaos.processor_fail_rate > 0:
        processor = ChaosProcessor(processor, rate=chaos.processor_fail_rate, seed=chaos.seed)
    return open_pipeline(source=source, sinks=sinks, processor=processor, config=config)


def stop_signals() -> tuple[signal.Signals, ...]:
    """The signals that stop a run: SIGINT, SIGTERM, and SIGBREAK where it exists (Windows: Ctrl-Break, and
    what a supervisor sends, since SIGTERM is never delivered there)."""
    return tuple(getattr(signal, name) for name in ("SIGINT", "SIGTERM", "SIGBREAK") if hasattr(signal, name))


@contextmanager
def stop_on_signals(pipeline: Pipeline) -> Iterator[None]:
    """The first SIGINT/SIGTERM (SIGBREAK on Windows) asks the pipeline to stop (it then closes every sink
    cleanly, within 2 s); a second one gives the recordings FLUSH_S to finalise and ends the process at once
    with status 130."""
    received = 0

    def handler(signum: int, _frame: object) -> None:
        nonlocal received
        received += 1
        name = signal.Signals(signum).name
        if received == 1:
            log.info("%s: stopping (send it again to quit at once)", name)
            pipeline.request_stop()
            return
        if received == 2:
            log.warning("%s again: quitting now", name)
            pipeline.flush_outputs_now(FLUSH_S)
        sys.stderr.flush()
        sys.stdout.flush()
        os._exit(EXIT_INTERRUPTED)

    previous = {sig: signal.signal(sig, handler) for sig in stop_signals()}
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
    for failed in summary.get("failed_outputs", []):
        lines.append(f"output failed and removed: {failed['name']} ({failed['code']})")
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
        if session is not None:  # the panel's port was opened first (build_pipeline closed the processor)
            session.close()
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
    return EXIT_RUNTIME if summary["failed_outputs"] else 0
