"""Side by side: the same ``swapcam run`` from two source trees, in alternating rounds; medians per tree.

Made to check that moving every timestamp and timed wait to ``perf_counter`` (realtime/clock.py)
changed no figure beyond noise on Linux, where ``monotonic`` and ``perf_counter`` are the same clock:

    git archive <old commit> realtime | tar -x -C /tmp/old
    python tools/bench_clock.py --old /tmp/old --rounds 3 --duration 15
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RUN = ["run", "--synthetic", "--size", "1280x720", "--fps", "30", "--processor", "sleep:20", "--output", "null"]
FIGURES = ("p50", "p95", "p99")


def one_round(tree: Path, duration_s: float, folder: Path, label: str, index: int) -> dict[str, float]:
    """Run the pipeline from ``tree`` once; returns its latency percentiles, fps out and drops."""
    stats = folder / f"{label}-{index}.json"
    env = {**os.environ, "PYTHONPATH": str(tree)}
    command = [sys.executable, "-c", "from realtime.cli import main; main()", "--log-level", "warning", *RUN,
               "--duration", str(duration_s), "--stats-json", str(stats)]
    # cwd=tree: "python -c" puts the working folder first on sys.path, so the tree's package is imported.
    subprocess.run(command, env=env, cwd=tree, check=True, capture_output=True, timeout=duration_s + 60)
    summary = json.loads(stats.read_text())
    row = {name: float(summary["latency_ms"][name]) for name in FIGURES}
    row["fps_out"] = float(summary["fps"]["out"])
    row["drops"] = float(sum(summary["drops"].values()))
    return row


def main() -> int:
    """Alternate old/new rounds and print the medians and the new/old ratios."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--old", type=Path, required=True, help="a folder holding the old realtime/ package")
    parser.add_argument("--new", type=Path, default=ROOT, help="a folder holding the new one (default: this tree)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--duration", type=float, default=15.0, help="seconds per round")
    args = parser.parse_args()
    rows: dict[str, list[dict[str, float]]] = {"old": [], "new": []}
    with tempfile.TemporaryDirectory() as tmp:
        for index in range(args.rounds):
            for label, tree in (("old", args.old), ("new", args.new)):
                rows[label].append(one_round(tree, args.duration, Path(tmp), label, index))
                print(label, index, rows[label][-1], flush=True)
    columns = [*FIGURES, "fps_out", "drops"]
    medians = {label: {c: statistics.median(r[c] for r in found) for c in columns} for label, found in rows.items()}
    print("medians  " + "  ".join(f"{c:>8}" for c in columns))
    for label in ("old", "new"):
        print(f"{label:<8} " + "  ".join(f"{medians[label][c]:8.2f}" for c in columns))
    ratios = [medians["new"][c] / medians["old"][c] if medians["old"][c] else float("nan") for c in columns]
    print("new/old  " + "  ".join(f"{r:8.3f}" for r in ratios))
    return 0


if __name__ == "__main__":
    sys.exit(main())
