"""``--plot PATH``: latency over time, its distribution (CDF) and the stage breakdown, as one PNG."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from realtime.errors import OutputError

TOP_STAGES = ("queue_in", "infer", "queue_out")


def stacked_stage_means(stages: dict[str, dict[str, float]]) -> list[tuple[str, float]]:
    """Mean ms per output frame of each stage, in pipeline order, adding up to the mean latency.

    Processor sub-stages are carved out of ``infer`` (the rest is shown as
    ``infer (other)``); a sub-stage that ran on only some frames counts as 0
    on the others.
    """
    infer = stages.get("infer")
    if infer is None or not infer["count"]:
        return []
    frames = infer["count"]

    def per_frame(name: str) -> float:
        return stages[name]["mean"] * stages[name]["count"] / frames

    subs = [(name, per_frame(name)) for name in stages if name not in (*TOP_STAGES, "output")]
    other = max(0.0, per_frame("infer") - sum(ms for _, ms in subs))
    parts = [("queue_in", per_frame("queue_in"))] if "queue_in" in stages else []
    parts += [*subs, ("infer (other)" if subs else "infer", other)]
    parts += [("queue_out", per_frame("queue_out"))] if "queue_out" in stages else []
    return parts


def plot_report(report: dict[str, Any], path: Path) -> None:
    """Draw the report's measured configurations into a PNG at ``path`` (E14 if it cannot be written)."""
    from matplotlib.figure import Figure  # imported here: matplotlib costs ~0.5 s and only --plot needs it

    configs = [c for c in report["configs"] if c["latency_ms"] is not None]
    fig = Figure(figsize=(12, 8.5), dpi=100, layout="constrained")
    grid = fig.add_gridspec(2, 2)
    over_time, cdf, stages = fig.add_subplot(grid[0, :]), fig.add_subplot(grid[1, 0]), fig.add_subplot(grid[1, 1])
    colours = [f"C{i % 10}" for i in range(len(configs))]
    for config, colour in zip(configs, colours, strict=True):
        _latency_over_time(over_time, config, colour)
        _cdf(cdf, config, colour)
    _stages(stages, configs)
    machine = report["machine"]
    fig.suptitle(f"swapcam bench — {machine['cpu_count']} CPU(s), {machine['cpu']}, "
                 f"{report['settings']['duration_s']:g} s per configuration", fontsize=11)
    if configs:
        over_time.legend(loc="upper right", fontsize=8)
        cdf.legend(loc="lower right", fontsize=8)
    try:
        fig.savefig(path, format="png")
    except OSError as exc:
        raise OutputError("E14", f"{path}: {exc.strerror or exc}") from exc


def _latency_over_time(ax: Any, config: dict[str, Any], colour: str) -> None:
    series = config["series"]["frame"]
    ax.plot(series["t_s"], series["latency_ms"], ".", markersize=3, color=colour, label=config["label"])
    ax.set_title("capture → output latency of each frame over time")
    ax.set_xlabel("seconds since the bench started")
    ax.set_ylabel("ms")
    ax.grid(alpha=0.3)


def _cdf(ax: Any, config: dict[str, Any], colour: str) -> None:
    for key, style in (("frame", "-"), ("stamp", "--")):
        values = np.sort(np.asarray(config["series"][key]["latency_ms"], dtype=float))
        if values.size:
            label = config["label"] + (" (stamps)" if key == "stamp" else "")
            ax.step(values, np.arange(1, values.size + 1) / values.size, style, where="post", color=colour,
                    label=label)
    ax.set_title("latency distribution (CDF; dashed: from sequence stamps)")
    ax.set_xlabel("ms")
    ax.set_ylabel("fraction of frames")
    ax.set_ylim(0, 1.02)
    ax.grid(alpha=0.3)


def _stages(ax: Any, configs: list[dict[str, Any]]) -> None:
    labels = [c["label"] for c in configs]
    colours: dict[str, str] = {}
    for row, config in enumerate(configs):
        left = 0.0
        for name, ms in stacked_stage_means(config["stages_ms"]):
            colour = colours.setdefault(name, f"C{len(colours) % 10}")
            ax.barh(row, ms, left=left, color=colour, label=name if row == _first_row(configs, name) else None)
            left += ms
    ax.set_yticks(range(len(labels)), labels, fontsize=8)
    ax.invert_yaxis()
    ax.set_title("where the time goes (mean ms per frame)")
    ax.set_xlabel("ms")
    ax.grid(axis="x", alpha=0.3)
    if colours:
        ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.14), ncol=4, fontsize=8, frameon=False)


def _first_row(configs: list[dict[str, Any]], name: str) -> int:
    """The first configuration that has stage ``name`` (so the legend lists each stage once)."""
    for row, config in enumerate(configs):
        if any(n == name for n, _ in stacked_stage_means(config["stages_ms"])):
            return row
    return -1
