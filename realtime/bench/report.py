"""The bench report: the JSON-able dict, the comparison and sweep rows, and the terminal tables."""

from __future__ import annotations

import datetime as dt
import os
import platform
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from realtime import __version__
from realtime.bench.runner import BenchSettings, ConfigRun
from realtime.bench.schema import SCHEMA_VERSION
from realtime.bench.soak import chaos_summary, chaos_text, soak_summary, soak_text
from realtime.bench.tables import format_table
from realtime.errors import SwapcamError
from realtime.priority import frame_threads_can_be_raised

JSONABLE = (str, int, float, bool, type(None))


def machine_info() -> dict[str, Any]:
    """Where the numbers were taken: OS, CPU, core count, load average, whether the frame threads may run
    real-time (realtime.priority: it changes the tail when other programs are busy)."""
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else None
    return {
        "platform": platform.platform(),
        "python": platform.python_version(),
        "cpu": _cpu_model(),
        "cpu_count": os.cpu_count() or 0,
        "loadavg_1m": load,
        "frame_threads_raised": frame_threads_can_be_raised(),
    }


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def build_report(
    runs: Sequence[ConfigRun],
    *,
    settings: BenchSettings,
    options: dict[str, Any],
    loopback_error: SwapcamError | None = None,
    loopback_device: str | None = None,
    interrupted: bool = False,
    machine: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Everything measured, in the shape ``schema.SCHEMA`` documents."""
    configs = []
    for run in runs:
        entry = run.result()
        prepared = run.processor is not None  # skipped at setup: nothing ran, nothing to judge
        entry["soak"] = (soak_summary(run, window_s=settings.soak_window_s)
                         if settings.soak_active and prepared else None)
        entry["chaos"] = chaos_summary(run, entry["errors"])
        configs.append(entry)
    loopback = None
    if settings.loopback is not None:
        loopback = {
            "device": loopback_device or settings.loopback,
            "status": "skipped" if loopback_error else "ok",
            "reason": loopback_error.message() if loopback_error else None,
        }
    return {
        "schema_version": SCHEMA_VERSION,
        "tool": "swapcam bench",
        "swapcam_version": __version__,
        "created": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "machine": machine or machine_info(),
        "settings": {
            "duration_s": settings.duration_s, "warmup_s": settings.warmup_s, "rounds": settings.rounds,
            "loopback": settings.loopback, "soak": settings.soak_active, "soak_window_s": settings.soak_window_s,
        },
        "options": _plain_options(options),
        "interrupted": interrupted,
        "configs": configs,
        "comparison": comparison(configs) if len(configs) > 1 else None,
        "sweep": sweep(configs) if any("size" in c["overrides"] for c in configs) else None,
        "loopback": loopback,
    }


def _plain_options(options: dict[str, Any]) -> dict[str, Any]:
    """The command's options as JSON values: paths as text, other objects (the handler) left out."""
    plain: dict[str, Any] = {}
    for key, value in sorted(options.items()):
        if isinstance(value, JSONABLE):
            plain[key] = value
        elif isinstance(value, Path):
            plain[key] = str(value)
        elif isinstance(value, (list, tuple)) and all(isinstance(v, (*JSONABLE, Path)) for v in value):
            plain[key] = [str(v) if isinstance(v, Path) else v for v in value]
    return plain


def _measured(config: dict[str, Any]) -> bool:
    return config["status"] == "ok" and config["latency_ms"] is not None


def _ratio(value: float, base: float) -> float | None:
    return value / base if base > 0 else None


def comparison(configs: list[dict[str, Any]]) -> dict[str, Any]:
    """p50, p95 and fps-out of each configuration and their ratios against the first one measured."""
    base = next((c for c in configs if _measured(c)), None)
    rows = []
    for config in configs:
        row: dict[str, Any] = {"label": config["label"], "status": config["status"]}
        if base is None or not _measured(config):
            rows.append(row | dict.fromkeys(("p50_ms", "p95_ms", "fps_out", "p50_ratio", "p95_ratio", "fps_ratio")))
            continue
        lat, base_lat = config["latency_ms"]["frame"], base["latency_ms"]["frame"]
        fps, base_fps = config["fps"]["out"], base["fps"]["out"]
        rows.append(row | {
            "p50_ms": lat["p50"], "p95_ms": lat["p95"], "fps_out": fps,
            "p50_ratio": _ratio(lat["p50"], base_lat["p50"]), "p95_ratio": _ratio(lat["p95"], base_lat["p95"]),
            "fps_ratio": _ratio(fps, base_fps),
        })
    return {"baseline": base["label"] if base else None, "rows": rows}


def sweep(configs: list[dict[str, Any]]) -> dict[str, Any]:
    """How latency and fps scale with pixels; ratios against the first size with the same other overrides."""
    rows: list[dict[str, Any]] = []
    firsts: dict[tuple[tuple[str, str], ...], tuple[float, float, float]] = {}
    for config in configs:
        width, height = _size(config)
        megapixels = width * height / 1e6
        group = tuple(sorted((k, v) for k, v in config["overrides"].items() if k != "size"))
        row: dict[str, Any] = {"label": config["label"], "status": config["status"],
                               "size": f"{width}x{height}", "megapixels": megapixels}
        keys = ("fps_out", "p50_ms", "p95_ms", "p50_ms_per_mp", "pixels_ratio", "p50_ratio", "fps_ratio")
        if not _measured(config):
            rows.append(row | dict.fromkeys(keys))
            continue
        lat, fps = config["latency_ms"]["frame"], config["fps"]["out"]
        first = firsts.setdefault(group, (megapixels, lat["p50"], fps))
        rows.append(row | {
            "fps_out": fps, "p50_ms": lat["p50"], "p95_ms": lat["p95"], "p50_ms_per_mp": lat["p50"] / megapixels,
            "pixels_ratio": megapixels / first[0], "p50_ratio": _ratio(lat["p50"], first[1]),
            "fps_ratio": _ratio(fps, first[2]),
        })
    return {"key": "size", "rows": rows}


def _size(config: dict[str, Any]) -> tuple[int, int]:
    if config["source"]:
        return int(config["source"]["width"]), int(config["source"]["height"])
    width, _, height = config["overrides"].get("size", "0x0").lower().partition("x")
    return int(width or 0), int(height or 0)


# -- terminal tables -------------------------------------------------------------------


def _num(value: float | None, digits: int = 1) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def _times(value: float | None) -> str:
    return "-" if value is None else f"×{value:.2f}"


def format_report(report: dict[str, Any]) -> str:
    """Every table for the terminal."""
    configs = report["configs"]
    settings = report["settings"]
    machine = report["machine"]
    parts = [
        f"swapcam bench: {len(configs)} configuration(s), {settings['duration_s']:g} s each "
        f"({settings['rounds']} round(s), {settings['warmup_s']:g} s warm-up) on {machine['cpu_count']} CPU(s), "
        f"load {_num(machine['loadavg_1m'], 2)}, frame threads "
        f"{'raised (unless --frame-priority normal)' if machine['frame_threads_raised'] else 'at ordinary priority'}"
        + (" — INTERRUPTED, partial results" if report["interrupted"] else ""),
        "",
        latency_table(configs),
    ]
    skipped = [f"{c['label']}: skipped: {c['skip_reason']}" for c in configs if c["status"] == "skipped"]
    if skipped:
        parts += ["", *skipped]
    measured = [c for c in configs if c["latency_ms"] is not None]
    if measured:
        parts += ["", "stage split (ms, p50 / p95)", stage_table(measured)]
        parts += ["", "sequence stamps vs counters", stamp_table(measured)]
    sweep_only = all(set(c["overrides"]) <= {"size"} for c in configs)
    if report["comparison"] and not (report["sweep"] and sweep_only):
        parts += ["", f"comparison (ratios against {report['comparison']['baseline']})",
                  comparison_table(report["comparison"])]
    if report["sweep"]:
        parts += ["", "size sweep (ratios against the first size)", sweep_table(report["sweep"])]
    if report["loopback"]:
        parts += ["", loopback_text(report["loopback"], measured)]
    if any(c["chaos"] for c in configs):
        parts += ["", chaos_text(configs)]
    if any(c["soak"] for c in configs):
        parts += ["", soak_text(configs)]
    return "\n".join(parts)


def latency_table(configs: list[dict[str, Any]]) -> str:
    """fps, latency percentiles from frame timestamps and from stamps, drops, CPU and memory."""
    headers = ["config", "status", "fps in", "fps out", "p50", "p95", "p99", "max", "stamp p50", "stamp p95",
               "drops", "re-sent", "cpu %", "rss MB"]
    rows = []
    for c in configs:
        if c["latency_ms"] is None:
            rows.append([c["label"], c["status"], *["-"] * (len(headers) - 2)])
            continue
        lat, stamp, res = c["latency_ms"]["frame"], c["latency_ms"]["stamp"], c["resources"]
        cpu, rss = res["cpu_percent"], res["rss_mb"]
        rows.append([
            c["label"], c["status"], _num(c["fps"]["in"]), _num(c["fps"]["out"]),
            _num(lat["p50"]), _num(lat["p95"]), _num(lat["p99"]), _num(lat["max"]),
            _num(stamp["p50"]), _num(stamp["p95"]), str(c["drops"]["total"]), str(c["frames"]["resent"]),
            _num(cpu["mean"] if cpu else None, 0), _num(rss["max"] if rss else None, 0),
        ])
    return "latency, capture → output (ms)\n" + format_table(headers, rows)


def stage_table(configs: list[dict[str, Any]]) -> str:
    """p50 / p95 of every stage, one column per stage name."""
    names: list[str] = []
    for c in configs:
        names += [n for n in c["stages_ms"] if n not in names]
    first, last = ("queue_in", "infer"), ("queue_out", "output")
    names = ([n for n in first if n in names] + [n for n in names if n not in (*first, *last)]
             + [n for n in last if n in names])
    rows = []
    for c in configs:
        stages = c["stages_ms"]
        rows.append([c["label"], *(
            f"{stages[n]['p50']:.2f} / {stages[n]['p95']:.2f}" if n in stages else "-" for n in names
        )])
    return format_table(["config", *names], rows)


def stamp_table(configs: list[dict[str, Any]]) -> str:
    """What the decoded stamps saw next to what the counters say, and every disagreement."""
    headers = ["config", "frames out", "repeats", "reordered", "gaps", "unreadable", "counted drops",
               "counted re-sends", "verdict"]
    rows, notes = [], []
    for c in configs:
        s = c["stamps"]
        rows.append([c["label"], str(s["unique"]), str(s["repeats"]), str(s["reordered"]), str(s["gaps"]),
                     str(s["undecodable"]), str(s["counted_drops"]), str(s["counted_resent"]),
                     "agree" if s["agree"] else "DISAGREE"])
        notes += [f"  {c['label']}: {text}" for text in s["disagreements"]]
    return "\n".join([format_table(headers, rows), *notes])


def comparison_table(comparison_: dict[str, Any]) -> str:
    """p50/p95/fps and their ratios against the baseline."""
    headers = ["config", "p50 ms", "p50", "p95 ms", "p95", "fps out", "fps"]
    rows = []
    for r in comparison_["rows"]:
        if r["p50_ms"] is None:
            rows.append([r["label"], r["status"], "-", "-", "-", "-", "-"])
            continue
        rows.append([r["label"], _num(r["p50_ms"]), _times(r["p50_ratio"]), _num(r["p95_ms"]),
                     _times(r["p95_ratio"]), _num(r["fps_out"]), _times(r["fps_ratio"])])
    return format_table(headers, rows)


def sweep_table(sweep_: dict[str, Any]) -> str:
    """Size, megapixels, fps and latency, per-megapixel latency and ratios."""
    headers = ["config", "size", "MP", "fps out", "p50 ms", "p95 ms", "p50 ms/MP", "pixels", "p50", "fps"]
    rows = []
    for r in sweep_["rows"]:
        if r["p50_ms"] is None:
            rows.append([r["label"], r["size"], _num(r["megapixels"], 2), r["status"], *["-"] * 6])
            continue
        rows.append([r["label"], r["size"], _num(r["megapixels"], 2), _num(r["fps_out"]), _num(r["p50_ms"]),
                     _num(r["p95_ms"]), _num(r["p50_ms_per_mp"], 2), _times(r["pixels_ratio"]),
                     _times(r["p50_ratio"]), _times(r["fps_ratio"])])
    return format_table(headers, rows)


def loopback_text(loopback: dict[str, Any], configs: list[dict[str, Any]]) -> str:
    """The virtual-camera hop, or why it was skipped."""
    if loopback["status"] != "ok":
        return f"loopback {loopback['device']}: skipped: {loopback['reason']}"
    headers = ["config", "read back", "unique", "repeats", "missed", "hop p50", "hop p95", "total p50", "total p95"]
    rows = []
    for c in configs:
        hop = c["loopback"]
        if hop is None:
            continue
        rows.append([c["label"], str(hop["frames_read"]), str(hop["unique"]), str(hop["repeats"]),
                     str(hop["missed"]), _num(hop["hop_ms"]["p50"]), _num(hop["hop_ms"]["p95"]),
                     _num(hop["total_ms"]["p50"]), _num(hop["total_ms"]["p95"])])
    return f"virtual-camera hop via {loopback['device']} (ms)\n" + format_table(headers, rows)
