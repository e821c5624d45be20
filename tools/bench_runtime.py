#!/usr/bin/env python3
"""The streaming-runtime benchmark of issue 2.

    python tools/bench_runtime.py                      # (a) 20 s, then (b) 60 s
    python tools/bench_runtime.py --duration 5 --duration-a 5 --window 1   # a quick check

(a) synthetic 1280×720 @ 30 fps → pass-through → null: output fps and capture-to-output
    latency (targets: ≥ 29.5 fps, p99 ≤ 10 ms).
(b) a processor that takes 50 ms per frame at 30 fps input, through the drop-oldest ring
    and, at the same time, through an unbounded queue (benchmark-only): latency p95 per
    window side by side, and the drops. The ring stays flat (target p95 ≤ 120 ms); the
    queue grows without bound. Both run concurrently so machine noise hits them alike.
    The unbounded queue holds every frame it falls behind by: about 7 MB/s at 640×360.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from realtime.clock import now_ns, now_s
from realtime.config import PipelineConfig, parse_size
from realtime.pipeline import Pipeline
from realtime.processors import Passthrough, Processor, Sleeper
from realtime.sinks.null import NullSink
from realtime.sources.synthetic import SyntheticSource
from realtime.stats import summarize_ms

TARGET_FPS, TARGET_P99_MS, TARGET_P95_MS = 29.5, 10.0, 120.0


def build(size: tuple[int, int], fps: float, processor: Processor, *, queue: str, ring_size: int) -> Pipeline:
    """Synthetic source → ``processor`` → null sink."""
    source = SyntheticSource(width=size[0], height=size[1], fps=fps)
    config = PipelineConfig(ring_size=ring_size, queue=queue)
    return Pipeline(source=source, processor=processor, sinks=[NullSink()], config=config)


def run_together(pipelines: list[Pipeline], duration_s: float, on_second: Any = None) -> int:
    """Start all pipelines, let them run ``duration_s``, stop them; returns the start time (monotonic ns)."""
    started = now_ns()
    for pipeline in pipelines:
        pipeline.start()
    deadline = now_s() + duration_s
    while (left := deadline - now_s()) > 0:
        time.sleep(min(1.0, left))
        if on_second is not None:
            on_second()
    for pipeline in pipelines:
        pipeline.stop()
    return started


def passthrough(duration_s: float, ring_size: int) -> dict[str, Any]:
    """(a): 720p30 → pass-through → null."""
    pipeline = build((1280, 720), 30.0, Passthrough(), queue="ring", ring_size=ring_size)
    started = run_together([pipeline], duration_s)
    stats = pipeline.stats
    times = np.asarray(stats.output_times_ns, dtype=np.int64)
    # fps over the steady part: first to last output, so start-up does not count against it.
    fps = (len(times) - 1) / ((times[-1] - times[0]) / 1e9) if len(times) > 1 else 0.0
    return {
        "size": "1280x720", "input_fps": 30.0, "duration_s": duration_s,
        "fps_out": fps, "frames_out": stats.output, "drops": stats.drops(),
        "latency_ms": summarize_ms(stats.latencies_ms),
        "started_ns": started,
    }


def windows(pipeline: Pipeline, started_ns: int, window_s: float, count: int) -> list[dict[str, float]]:
    """Latency p95 and frame count per ``window_s`` of the run, by output time."""
    times = (np.asarray(pipeline.stats.output_times_ns, dtype=np.int64) - started_ns) / 1e9
    latencies = np.asarray(pipeline.stats.latencies_ms, dtype=np.float64)
    rows = []
    for index in range(count):
        mask = (times >= index * window_s) & (times < (index + 1) * window_s)
        chosen = latencies[mask]
        rows.append({
            "p95_ms": float(np.percentile(chosen, 95)) if chosen.size else float("nan"),
            "frames": int(chosen.size),
        })
    return rows


def slow_processor(duration_s: float, window_s: float, size: tuple[int, int], ring_size: int) -> dict[str, Any]:
    """(b): 50 ms per frame at 30 fps, ring and unbounded queue side by side."""
    ring = build(size, 30.0, Sleeper(50), queue="ring", ring_size=ring_size)
    unbounded = build(size, 30.0, Sleeper(50), queue="unbounded", ring_size=ring_size)
    backlog: list[int] = []
    started = run_together([ring, unbounded], duration_s,
                           on_second=lambda: backlog.append(len(unbounded.ring_in) + len(unbounded.ring_out)))
    count = max(1, int(np.ceil(duration_s / window_s)))
    result: dict[str, Any] = {"size": f"{size[0]}x{size[1]}", "input_fps": 30.0, "processor_ms": 50,
                              "duration_s": duration_s, "window_s": window_s, "ring_size": ring_size}
    for name, pipeline in (("ring", ring), ("unbounded", unbounded)):
        result[name] = {
            "windows": windows(pipeline, started, window_s, count),
            "latency_ms": summarize_ms(pipeline.stats.latencies_ms),
            "frames_in": pipeline.stats.captured, "frames_out": pipeline.stats.output,
            "drops": pipeline.stats.drops(),
        }
    result["unbounded"]["backlog_per_second"] = backlog
    return result


def print_passthrough(result: dict[str, Any]) -> None:
    lat = result["latency_ms"]
    ok = result["fps_out"] >= TARGET_FPS and lat["p99"] <= TARGET_P99_MS
    print(f"(a) synthetic 1280x720@30 → passthrough → null, {result['duration_s']:g} s")
    print(f"    fps out {result['fps_out']:.2f} (target ≥ {TARGET_FPS}); latency ms p50 {lat['p50']:.2f} "
          f"p95 {lat['p95']:.2f} p99 {lat['p99']:.2f} max {lat['max']:.2f} (target p99 ≤ {TARGET_P99_MS:g}); "
          f"drops {result['drops']} — {'PASS' if ok else 'FAIL'}")


def print_slow(result: dict[str, Any]) -> None:
    ring, unbounded = result["ring"], result["unbounded"]
    window = result["window_s"]
    print(f"(b) {result['size']}@30 → sleep:50 → null, {result['duration_s']:g} s, ring size {result['ring_size']} "
          "vs unbounded queue, run concurrently")
    print(f"    {'window':>12} | {'ring p95 ms':>11} {'frames':>6} | {'unbounded p95 ms':>16} {'frames':>6}")
    for index, (a, b) in enumerate(zip(ring["windows"], unbounded["windows"], strict=True)):
        span = f"{index * window:g}-{(index + 1) * window:g} s"
        print(f"    {span:>12} | {a['p95_ms']:11.1f} {a['frames']:6d} | {b['p95_ms']:16.1f} {b['frames']:6d}")
    ring_ok = ring["latency_ms"]["p95"] <= TARGET_P95_MS
    print(f"    ring:      p95 {ring['latency_ms']['p95']:.1f} ms over the run (target ≤ {TARGET_P95_MS:g}) — "
          f"{'PASS' if ring_ok else 'FAIL'}; {ring['frames_in']} in, {ring['frames_out']} out, drops {ring['drops']}")
    print(f"    unbounded: p95 {unbounded['latency_ms']['p95']:.1f} ms, max {unbounded['latency_ms']['max']:.1f} ms; "
          f"{unbounded['frames_in']} in, {unbounded['frames_out']} out, drops {unbounded['drops']}, "
          f"backlog at the end {unbounded['backlog_per_second'][-1] if unbounded['backlog_per_second'] else 0} frames")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--duration", type=float, default=60.0, help="seconds for (b) (default 60)")
    parser.add_argument("--duration-a", type=float, default=20.0, help="seconds for (a) (default 20)")
    parser.add_argument("--window", type=float, default=10.0, help="window for the p95 table of (b) (default 10 s)")
    parser.add_argument("--size", default="640x360", help="frame size for (b) (default 640x360: the queue's memory)")
    parser.add_argument("--ring-size", type=int, default=PipelineConfig.ring_size,
                        help=f"ring capacity (default {PipelineConfig.ring_size}, as swapcam run)")
    parser.add_argument("--only", choices=["a", "b"], help="run just one part")
    parser.add_argument("--json", type=Path, help="also write the results as JSON")
    args = parser.parse_args(argv)
    results: dict[str, Any] = {"command": " ".join(["python", "tools/bench_runtime.py", *sys.argv[1:]])}
    if args.only in (None, "a"):
        results["passthrough"] = passthrough(args.duration_a, args.ring_size)
        print_passthrough(results["passthrough"])
    if args.only in (None, "b"):
        results["slow_processor"] = slow_processor(args.duration, args.window, parse_size(args.size), args.ring_size)
        print_slow(results["slow_processor"])
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
