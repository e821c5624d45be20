"""``swapcam bench``: run the real pipeline and measure it — latency percentiles, stage split,
stamps, comparisons, size sweeps, JSON and plots."""

from __future__ import annotations

import argparse
import dataclasses
import logging
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from realtime.bench.overrides import Axis, Plan, option_dests, parse_axis, parse_sweep, plan_configs
from realtime.bench.report import build_report, format_report
from realtime.bench.runner import SOAK_WINDOW_S, Bench, BenchSettings, Hooks, Setup
from realtime.bench.schema import write_report
from realtime.chaos import ChaosProcessor, ChaosSource, parse_chaos
from realtime.commands.options import add_pipeline_options, add_source_options, pipeline_config, source_config
from realtime.commands.processing import add_face_options, add_processing_options, build_processor
from realtime.config import PipelineConfig
from realtime.errors import OutputError, UsageError
from realtime.processors import Processor
from realtime.sources.base import Source

log = logging.getLogger("swapcam")

DEFAULT_DURATION_S = 10.0
COMPARE_ROUNDS = 3

EPILOG = """\
examples:
  swapcam bench --duration 10 --json bench.json --plot bench.png
  swapcam bench --processor sleep:20 --duration 3
  swapcam bench --compare ring-size=1,2,8 --duration 6
  swapcam bench --compare queue=ring,unbounded --processor sleep:40
  swapcam bench --image me.jpg --face you.jpg --compare swapper=none,mesh
  swapcam bench --image me.jpg --face you.jpg --compare backend=onnxruntime,tensorrt
      (tensorrt is reported as skipped, with the reason, where it cannot run)
  swapcam bench --sweep size=640x480,1280x720,1920x1080
  swapcam bench --loopback /dev/video10   (reads the virtual camera back; skipped, with the reason, without one)
  swapcam bench --input clip.mp4 --loop --face me.jpg --duration 600 --chaos source=0.01,processor=0.02
      (a soak: RSS growth, worker deaths and p99 of minute 1 vs the last minute; exit 1 if it fails)
"""


def add_config_options(parser: argparse.ArgumentParser) -> None:
    """The options a configuration is made of: exactly those of ``swapcam run``."""
    add_source_options(parser)
    add_pipeline_options(parser)
    add_processing_options(parser)


def add_parser(sub: Any) -> None:
    """Register ``bench``."""
    parser = sub.add_parser(
        "bench", help="measure latency: percentiles, stage split, comparisons, sweeps",
        description="Run the real pipeline for --duration (default 10 s per configuration) and measure "
                    "capture-to-output latency from the frames' timestamps and, independently, from sequence "
                    "stamps decoded at the output. Output goes to a measuring null sink; --output adds more.",
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_config_options(parser)
    group = parser.add_argument_group("benchmark")
    group.add_argument("--warmup", type=float, default=1.0, metavar="S",
                       help="discarded warm-up per configuration (default 1 s)")
    group.add_argument("--rounds", type=int, metavar="N",
                       help=f"split each configuration's --duration into N alternating rounds "
                            f"(default 1, or {COMPARE_ROUNDS} with --compare/--sweep)")
    group.add_argument("--compare", action="append", metavar="KEY=V1,V2",
                       help="measure each value of a `run` option, e.g. ring-size=1,2,8, queue=ring,unbounded, "
                            "swapper=none,mesh, backend=onnxruntime,tensorrt (repeatable: every combination)")
    group.add_argument("--sweep", metavar="size=WxH,...", help="measure each frame size, e.g. "
                       "size=640x480,1280x720,1920x1080")
    group.add_argument("--json", type=Path, metavar="PATH", help="write the report as JSON (docs/bench_schema.json)")
    group.add_argument("--plot", type=Path, metavar="PATH", help="draw latency over time, CDF and stages as PNG")
    group.add_argument("--soak", action="store_true",
                       help="report the soak verdict: RSS growth ≤ 30 MB, no worker death, p99 of the last minute "
                            "at most 10%% above the first (on by itself from --duration 120); exit 1 if it fails")
    group.add_argument("--soak-window", type=float, default=SOAK_WINDOW_S, help=argparse.SUPPRESS)
    group.add_argument("--loopback", nargs="?", const="auto", metavar="DEVICE",
                       help="also output to a virtual camera (default: the first v4l2loopback device) and read "
                            "it back as a capture device, to time the virtual-camera hop")
    parser.set_defaults(handler=handle)


def bench_pipeline_config(args: argparse.Namespace) -> PipelineConfig:
    """``run``'s pipeline config, with only the sinks the user named (the bench adds its own probe)."""
    return dataclasses.replace(pipeline_config(args), sink_specs=tuple(args.output or ()))


def processing_key(args: argparse.Namespace) -> str:
    """The processing options' values: configurations that agree on them share one processor."""
    return repr([(dest, getattr(args, dest, None)) for dest in option_dests(add_processing_options)])


def chaos_hooks(args: argparse.Namespace) -> Hooks:
    """--chaos faults wrap the raw source (before stamping) and the processor, as in ``run``."""
    chaos = parse_chaos(args.chaos)
    wrap_source: Callable[[Source], Source] | None = None
    wrap_processor: Callable[[Processor], Processor] | None = None
    if chaos.source_fail_rate > 0:
        def wrap_source(source: Source) -> Source:
            return ChaosSource(source, rate=chaos.source_fail_rate, seed=chaos.seed)
    if chaos.processor_fail_rate > 0:
        def wrap_processor(processor: Processor) -> Processor:
            return ChaosProcessor(processor, rate=chaos.processor_fail_rate, seed=chaos.seed)
    return Hooks(wrap_source=wrap_source, wrap_processor=wrap_processor)


def check_face_overrides(plans: list[Plan]) -> None:
    """E01 when --compare changes the face swap but no --face was given: every configuration would be
    the same passthrough, and the comparison would mislead."""
    face_dests = option_dests(add_face_options)
    for plan in plans:
        args = plan.args
        changed = [k for k, v in plan.overrides.items() if k.replace("-", "_") in face_dests and v != "none"]
        if changed and not args.face and args.processor in ("auto", "face"):
            raise UsageError("E01", f"--compare {changed[0]}={plan.overrides[changed[0]]} without --face",
                             remedy="add --face PHOTO, and a source that shows a face (e.g. --image PHOTO)")


def _check_writable(path: Path | None) -> None:
    """Fail before measuring, not after, when a report path cannot be written."""
    if path is None:
        return
    folder = path.parent if str(path.parent) else Path(".")
    if not folder.is_dir() or not os.access(folder, os.W_OK):
        raise OutputError("E14", f"{path}: folder {folder} does not exist or is not writable")


def _axes(args: argparse.Namespace) -> list[Axis]:
    axes = [parse_axis(text) for text in args.compare or []]
    if args.sweep:
        axes.append(parse_sweep(args.sweep))
    return axes


def handle(args: argparse.Namespace) -> int:
    """Measure every configuration, print the tables, write --json/--plot."""
    if args.frames is not None:
        raise UsageError("E01", "--frames", remedy="bench measures for a time: use --duration S")
    json_path = args.json or args.stats_json
    for path in (json_path, args.plot):
        _check_writable(path)
    axes = _axes(args)
    settings = BenchSettings(
        duration_s=args.duration or DEFAULT_DURATION_S, warmup_s=args.warmup,
        rounds=args.rounds if args.rounds is not None else (COMPARE_ROUNDS if axes else 1), loopback=args.loopback,
        soak=args.soak, soak_window_s=args.soak_window,
    )
    plans = plan_configs(args, axes, add_config_options, default_label="default")
    check_face_overrides(plans)
    setup = Setup(source_config=source_config, pipeline_config=bench_pipeline_config,
                  build_processor=build_processor, processor_key=processing_key, hooks=chaos_hooks)
    bench = Bench(plans=plans, settings=settings, setup=setup)
    runs = bench.run()
    report = build_report(runs, settings=settings, options=vars(args), loopback_error=bench.loopback_error,
                          loopback_device=bench.loopback_device, interrupted=bench.interrupted)
    print(format_report(report), file=sys.stdout)
    if json_path is not None:
        write_report(json_path, report)
    if args.plot is not None:
        from realtime.bench.plot import plot_report

        plot_report(report, args.plot)
    if bench.interrupted:
        return 130
    if any(c["soak"] is not None and not c["soak"]["passed"] for c in report["configs"]):
        return 1
    measured = [run for run in runs if run.rounds]
    if not measured and runs[0].skipped is not None:
        return runs[0].skipped.exit_status
    return 0
