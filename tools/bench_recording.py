#!/usr/bin/env python3
"""What a file recording costs the live latency: encoded on the output thread, or on its own thread.

    python tools/bench_recording.py                          # 3 rounds of 30 s per mode
    python tools/bench_recording.py --rounds 1 --duration 10  # a quick look

The live face pipeline (``--face`` onto the looping ``--input`` clip, paced at its
frame rate) records to an .mp4 in two ways, alternating A B / B A round by round
so drift on a shared machine hits both alike:

- ``output thread``: the FileSink written by the pipeline's output thread (as
  before swapcam 0.2: x264 time lands on every frame's latency);
- ``own thread``: what ``--output file:`` opens now, a BackgroundSink that
  encodes beside the inference thread.

Prints capture→output latency percentiles, fps, drops and the frames each
recording holds (read back with PyAV), medians over the rounds, and the ratio.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
from pathlib import Path
from typing import Any

import av

from realtime.cli import build_parser
from realtime.clock import now_ns
from realtime.commands.processing import build_processor
from realtime.config import PipelineConfig, SourceConfig
from realtime.pipeline import Pipeline
from realtime.sinks.base import Sink
from realtime.sinks.factory import open_sink, parse_sink
from realtime.sinks.file import FileSink
from realtime.sources.factory import open_source

MODES = ("output thread", "own thread")


def open_recording(mode: str, path: Path, *, width: int, height: int, fps: float) -> Sink:
    """The same H.264 recording, written by the output thread or by its own."""
    if mode == "output thread":
        return FileSink(path, width=width, height=height, fps=fps)
    return open_sink(parse_sink(f"file:{path}"), width=width, height=height, fps=fps)


def frames_in(path: Path) -> int:
    """Frames a recording holds, decoded back."""
    with av.open(str(path)) as container:
        return sum(1 for _ in container.decode(video=0))


def one_run(mode: str, args: argparse.Namespace, face_args: argparse.Namespace, folder: Path) -> dict[str, Any]:
    """One live run of ``args.duration`` s; its summary plus the recording's frame count."""
    processor = build_processor(face_args)  # a fresh one: the pipeline closes it
    source = open_source(SourceConfig(kind="file", location=args.input, loop=True, realtime=True))
    path = folder / f"{mode.replace(' ', '_')}_{now_ns()}.mp4"
    sink = open_recording(mode, path, width=source.width, height=source.height, fps=source.fps)
    config = PipelineConfig(duration_s=args.duration)
    pipeline = Pipeline(source=source, processor=processor, sinks=[sink], config=config)
    summary = pipeline.run().summary()
    summary["recorded"] = frames_in(path)
    path.unlink()
    return summary


def row(mode: str, runs: list[dict[str, Any]]) -> dict[str, float]:
    """Medians over the rounds."""
    def median(get: Any) -> float:
        return statistics.median(get(r) for r in runs)

    return {
        "p50": median(lambda r: r["latency_ms"]["p50"]),
        "p95": median(lambda r: r["latency_ms"]["p95"]),
        "p99": median(lambda r: r["latency_ms"]["p99"]),
        "fps_out": median(lambda r: r["fps"]["out"]),
        "drops": median(lambda r: sum(r["drops"].values())),
        "output_ms_p50": median(lambda r: r["stages_ms"]["output"]["p50"]),
        "recorded": median(lambda r: r["recorded"]),
        "output_frames": median(lambda r: r["frames"]["output"]),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--input", default="out/demo_target.mp4", help="the clip (make demo renders it)")
    parser.add_argument("--face", default="models/samples/gauss.png")
    parser.add_argument("--duration", type=float, default=30.0, help="seconds per run")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--json", type=Path, help="write the runs and medians here")
    args = parser.parse_args()
    if not Path(args.input).is_file():
        print(f"{args.input} is missing: python tools/render_demo_clip.py --output {args.input}", file=sys.stderr)
        return 2
    face_args = build_parser().parse_args(["run", "--face", args.face, "--input", args.input])
    runs: dict[str, list[dict[str, Any]]] = {mode: [] for mode in MODES}
    with tempfile.TemporaryDirectory() as folder:
        for round_no in range(args.rounds):
            order = MODES if round_no % 2 == 0 else MODES[::-1]
            for mode in order:
                summary = one_run(mode, args, face_args, Path(folder))
                runs[mode].append(summary)
                lat = summary["latency_ms"]
                print(f"round {round_no + 1} {mode:<13}: p50 {lat['p50']:5.1f}  p95 {lat['p95']:5.1f}  "
                      f"p99 {lat['p99']:5.1f} ms  {summary['fps']['out']:4.1f} fps  "
                      f"recorded {summary['recorded']} of {summary['frames']['output']}", flush=True)
    medians = {mode: row(mode, runs[mode]) for mode in MODES}
    print(f"\nmedians over {args.rounds} round(s) of {args.duration:g} s, {args.input} at its own pace")
    print(f"{'recording on':<14} {'p50':>6} {'p95':>6} {'p99':>6} {'fps out':>8} {'drops':>6} {'output stage p50':>17}")
    for mode, m in medians.items():
        print(f"{mode:<14} {m['p50']:6.1f} {m['p95']:6.1f} {m['p99']:6.1f} {m['fps_out']:8.1f} {m['drops']:6.0f} "
              f"{m['output_ms_p50']:14.2f} ms")
    a, b = medians["output thread"], medians["own thread"]
    print(f"own thread / output thread: p50 ×{b['p50'] / a['p50']:.2f}, p95 ×{b['p95'] / a['p95']:.2f}, "
          f"p99 ×{b['p99'] / a['p99']:.2f}")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"runs": runs, "medians": medians}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
