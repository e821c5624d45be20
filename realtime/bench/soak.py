"""The soak verdict and the injected-fault lines of a bench report.

Soak (``--soak``, or any ``--duration`` of 120 s or more): memory must stay
flat — resident memory at the end of the measured time at most RSS_LIMIT_MB
above its start —, no pipeline worker may die, and the p99 latency of the
last window (a minute) may be at most P99_TOLERANCE above the first window's.
The check is one-sided: it looks for latency creeping up; a last window
faster than the first (a busy start, a warming cache) is not a failure.
Windows shorter than a minute are used when the run is shorter than two
(each then covers half of it), or when ``--soak-window`` asks.

Chaos (``--chaos``): for each kind of injected fault, how many were injected,
how many the pipeline counted, and whether frames kept reaching the output
after the last one.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from realtime.bench.results import ConfigRun
from realtime.bench.tables import format_table

RSS_LIMIT_MB = 30.0
P99_TOLERANCE = 0.10  # the last window's p99 may be at most this much (relative) above the first's
MIN_WINDOW_SAMPLES = 20  # fewer frames than this in a window give no p99 worth comparing

FAULT_NAMES = {"source": "source read failures", "processor": "processor exceptions"}


def soak_summary(run: ConfigRun, *, window_s: float) -> dict[str, Any]:
    """RSS growth, worker deaths and first/last-window p99 of one configuration, with the verdict."""
    rss = _rss(run)
    p99 = _p99_windows(run, window_s)
    checks = {
        "rss": rss["growth"] is not None and rss["growth"] <= RSS_LIMIT_MB,
        "workers": not run.worker_errors,
        "p99": p99["change"] is not None and p99["change"] <= P99_TOLERANCE,
    }
    return {
        "rss_mb": rss,
        "workers": {"deaths": len(run.worker_errors), "errors": list(run.worker_errors[:5])},
        "p99_ms": p99,
        "checks": checks,
        "passed": all(checks.values()),
    }


def _rss(run: ConfigRun) -> dict[str, Any]:
    start, end = run.rss_start_mb, run.rss_end_mb
    growth = end - start if start is not None and end is not None else None
    return {"start": start, "end": end, "growth": growth, "limit": RSS_LIMIT_MB}


def _p99_windows(run: ConfigRun, window_s: float) -> dict[str, Any]:
    """p99 of the frames output in the first and in the last window of the measured time."""
    times = np.asarray(run.latency_t_s, dtype=np.float64)
    latency = np.asarray(run.latency_ms, dtype=np.float64)
    result: dict[str, Any] = {"window_s": None, "first": None, "last": None, "change": None,
                              "tolerance": P99_TOLERANCE}
    if times.size < 2 * MIN_WINDOW_SAMPLES:
        return result
    start, end = float(times.min()), float(times.max())
    window = min(window_s, (end - start) / 2)
    first, last = latency[times < start + window], latency[times >= end - window]
    result["window_s"] = window
    if first.size < MIN_WINDOW_SAMPLES or last.size < MIN_WINDOW_SAMPLES:
        return result
    result["first"] = float(np.percentile(first, 99))
    result["last"] = float(np.percentile(last, 99))
    if result["first"] > 0:
        result["change"] = result["last"] / result["first"] - 1.0
    return result


def chaos_summary(run: ConfigRun, counted: dict[str, int] | None) -> list[dict[str, Any]] | None:
    """One entry per kind of injected fault (None without ``--chaos``).

    ``counted``: the run's error counters (``errors`` in the report). The stream went on when frames
    reached the output after the last injected fault of that kind.
    """
    if not run.injected:
        return None
    entries = []
    for kind in sorted(run.injected):
        after = run.output_after_fault[kind]
        entries.append({
            "fault": kind,
            "injected": run.injected[kind],
            "counted": (counted or {}).get(kind, 0),
            "output_after_last": after,
            "went_on": after > 0 or run.injected[kind] == 0,
        })
    return entries


# -- terminal ---------------------------------------------------------------------------


def _mb(value: float | None, sign: bool = False) -> str:
    if value is None:
        return "-"
    return f"{value:+.1f}" if sign else f"{value:.1f}"


def soak_text(configs: list[dict[str, Any]]) -> str:
    """The soak table and each failure in words."""

    headers = ["config", "rss start MB", "rss end MB", "growth MB", "worker deaths", "p99 first ms",
               "p99 last ms", "p99 change", "verdict"]
    rows, notes = [], []
    window = None
    for c in configs:
        soak = c["soak"]
        if soak is None:
            continue
        rss, p99 = soak["rss_mb"], soak["p99_ms"]
        window = p99["window_s"] if p99["window_s"] is not None else window
        change = "-" if p99["change"] is None else f"{p99['change'] * 100:+.1f}%"
        rows.append([c["label"], _mb(rss["start"]), _mb(rss["end"]), _mb(rss["growth"], sign=True),
                     str(soak["workers"]["deaths"]), _mb(p99["first"]), _mb(p99["last"]), change,
                     "PASS" if soak["passed"] else "FAIL"])
        checks = soak["checks"]
        if not checks["rss"]:
            notes.append(f"  {c['label']}: memory grew {_mb(rss['growth'], sign=True)} MB "
                         f"(limit {rss['limit']:g} MB)")
        if not checks["workers"]:
            notes += [f"  {c['label']}: worker failed: {error}" for error in soak["workers"]["errors"]]
        if not checks["p99"]:
            notes.append(f"  {c['label']}: p99 of the last window {_mb(p99['last'])} ms vs the first "
                         f"{_mb(p99['first'])} ms (at most +{p99['tolerance'] * 100:g}% allowed)")
    span = "-" if window is None else f"{window:.3g} s"
    return "\n".join([f"soak (memory, workers, p99 of the first vs the last {span})",
                      format_table(headers, rows), *notes])


def chaos_text(configs: list[dict[str, Any]]) -> str:
    """One line per configuration and injected fault kind."""
    lines = ["injected faults (--chaos)"]
    for c in configs:
        for entry in c["chaos"] or ():
            went_on = (f"the stream went on ({entry['output_after_last']} frames output after the last one)"
                       if entry["went_on"] else "NO frame was output after the last one")
            lines.append(f"  {c['label']}: {FAULT_NAMES.get(entry['fault'], entry['fault'])}: "
                         f"{entry['injected']} injected, {entry['counted']} counted; {went_on}")
    return "\n".join(lines)
