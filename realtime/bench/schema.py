"""The JSON schema of ``swapcam bench --json`` (docs/bench_schema.json is a copy) and the writer.

``schema_version`` changes when a field is removed, renamed or changes
meaning; tools reading the report should check it. (Version 1 gained the
``soak`` and ``chaos`` fields of each configuration and ``settings.soak*``
later: additions, readers of the earlier fields are unaffected.)
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from realtime.errors import OutputError

SCHEMA_VERSION = 1

_NUMBER = {"type": "number"}
_NULLABLE_NUMBER = {"type": ["number", "null"]}
_COUNT = {"type": "integer", "minimum": 0}
_STRING_OR_NULL = {"type": ["string", "null"]}


def _object(properties: dict[str, Any], *, nullable: bool = False) -> dict[str, Any]:
    """An object with exactly these properties, all required."""
    schema: dict[str, Any] = {
        "type": ["object", "null"] if nullable else "object",
        "properties": properties,
        "required": sorted(properties),
        "additionalProperties": False,
    }
    return schema


_SUMMARY = _object({
    "p50": _NUMBER, "p95": _NUMBER, "p99": _NUMBER, "max": _NUMBER, "mean": _NUMBER, "count": _COUNT,
})
_SUMMARY["description"] = "milliseconds over every frame: percentiles, max, mean and the number of samples"

_SPREAD = _object({"mean": _NUMBER, "max": _NUMBER}, nullable=True)

_SERIES = _object({
    "t_s": {"type": "array", "items": _NUMBER, "description": "output time, seconds since the bench started"},
    "latency_ms": {"type": "array", "items": _NUMBER},
})

_STAMPS = _object({
    "writes": {**_COUNT, "description": "frames written to the measurement sink, re-sends included"},
    "decoded": _COUNT,
    "undecodable": {**_COUNT, "description": "writes whose stamp could not be read"},
    "unique": {**_COUNT, "description": "distinct captured frames that reached the output"},
    "repeats": {**_COUNT, "description": "writes of a stamp already seen (re-sent frames)"},
    "reordered": {**_COUNT, "description": "new stamps older than one already seen"},
    "gaps": {**_COUNT, "description": "captured frames never seen at the output"},
    "foreign": {**_COUNT, "description": "stamps seen that were never captured"},
    "counted_drops": {**_COUNT, "description": "drops counted by the rings"},
    "counted_resent": {**_COUNT, "description": "re-sends counted by the output thread"},
    "agree": {"type": "boolean", "description": "stamps and counters tell the same story"},
    "disagreements": {"type": "array", "items": {"type": "string"}},
})

_RESOURCES = _object({
    "cpu_percent": {**_SPREAD, "description": "process CPU %, 100 = one core, sampled once a second"},
    "rss_mb": {**_SPREAD, "description": "resident memory, MiB"},
    "gpu_memory_mb": {**_object({"peak": _NUMBER}, nullable=True),
                      "description": "peak GPU memory allocated by torch; null when no GPU was used"},
})

_LOOPBACK = _object({
    "frames_read": _COUNT, "undecodable": _COUNT, "unique": _COUNT, "repeats": _COUNT,
    "missed": {**_COUNT, "description": "frames output but never read back"},
    "hop_ms": {**_SUMMARY, "description": "output sink → read back from the virtual camera"},
    "total_ms": {**_SUMMARY, "description": "capture → read back from the virtual camera"},
}, nullable=True)


def _nullable(schema: dict[str, Any]) -> dict[str, Any]:
    """``schema`` or null (measurements of a configuration skipped before its first round)."""
    return {"anyOf": [schema, {"type": "null"}]}


_SOAK = _object({
    "rss_mb": _object({
        "start": {**_NULLABLE_NUMBER, "description": "resident memory 1 s into the first measured round"},
        "end": {**_NULLABLE_NUMBER,
                "description": "resident memory at the last sample (once a second) before the last round stopped"},
        "growth": _NULLABLE_NUMBER,
        "limit": {**_NUMBER, "description": "the most growth that passes"},
    }),
    "workers": _object({
        "deaths": {**_COUNT, "description": "pipeline workers that died or did not stop, warm-up included"},
        "errors": {"type": "array", "items": {"type": "string"}, "description": "the first five, in words"},
    }),
    "p99_ms": _object({
        "window_s": {**_NULLABLE_NUMBER, "description": "length of the first and the last window"},
        "first": _NULLABLE_NUMBER, "last": _NULLABLE_NUMBER,
        "change": {**_NULLABLE_NUMBER, "description": "last / first - 1"},
        "tolerance": {**_NUMBER, "description": "the largest change that passes (one-sided: any fall passes)"},
    }),
    "checks": _object({"rss": {"type": "boolean"}, "workers": {"type": "boolean"}, "p99": {"type": "boolean"}}),
    "passed": {"type": "boolean"},
}, nullable=True)
_SOAK["description"] = "the soak verdict (--soak, or --duration of 120 s or more); null otherwise"

_CHAOS = {
    "type": ["array", "null"],
    "description": "one entry per kind of fault --chaos injected; null without --chaos",
    "items": _object({
        "fault": {"enum": ["source", "processor"]},
        "injected": _COUNT,
        "counted": {**_COUNT, "description": "the matching error counter (errors.source / errors.processor)"},
        "output_after_last": {**_COUNT, "description": "frames output after the last injected fault"},
        "went_on": {"type": "boolean"},
    }),
}

_CONFIG = _object({
    "label": {"type": "string", "description": "the overrides, e.g. 'ring-size=2'; 'default' without any"},
    "overrides": {"type": "object", "additionalProperties": {"type": "string"}},
    "status": {"enum": ["ok", "skipped"]},
    "skip_code": _STRING_OR_NULL,
    "skip_reason": {**_STRING_OR_NULL, "description": "the coded error that made it skip"},
    "skipped_at": {**_STRING_OR_NULL, "description": "setup, warm-up or 'round i/n'"},
    "processor": _STRING_OR_NULL,
    "source": _object({"name": {"type": "string"}, "width": _COUNT, "height": _COUNT, "fps": _NUMBER},
                      nullable=True),
    "rounds": _COUNT,
    "measured_s": _NUMBER,
    "frames": _nullable(_object({"captured": _COUNT, "processed": _COUNT, "output": _COUNT, "resent": _COUNT})),
    "fps": _nullable(_object({"in": _NUMBER, "out": _NUMBER})),
    "drops": _nullable({"type": "object", "required": ["total"], "additionalProperties": _COUNT,
                        "description": "frames dropped by each ring (capture, output) and in total"}),
    "errors": _nullable(_object({"processor": _COUNT, "sink": _COUNT, "source": _COUNT})),
    "latency_ms": _nullable(_object({
        "frame": {**_SUMMARY, "description": "from each frame's own capture and output timestamps"},
        "stamp": {**_SUMMARY, "description": "from the sequence stamp: capture time recorded by the source "
                                             "wrapper, arrival time at the measurement sink"},
    })),
    "stages_ms": _nullable({
        "type": "object", "additionalProperties": _SUMMARY,
        "description": "queue_in (capture → inference start), infer, processor sub-stages, queue_out "
                       "(inference end → measurement sink), output (writing to every sink)",
    }),
    "stamps": _nullable(_STAMPS),
    "resources": _nullable(_RESOURCES),
    "loopback": _LOOPBACK,
    "series": _nullable(_object({"frame": _SERIES, "stamp": _SERIES})),
    "soak": _SOAK,
    "chaos": _CHAOS,
})

_RATIO_ROW = _object({
    "label": {"type": "string"}, "status": {"enum": ["ok", "skipped"]},
    "p50_ms": _NULLABLE_NUMBER, "p95_ms": _NULLABLE_NUMBER, "fps_out": _NULLABLE_NUMBER,
    "p50_ratio": _NULLABLE_NUMBER, "p95_ratio": _NULLABLE_NUMBER, "fps_ratio": _NULLABLE_NUMBER,
})

_SWEEP_ROW = _object({
    "label": {"type": "string"}, "status": {"enum": ["ok", "skipped"]},
    "size": {"type": "string"}, "megapixels": _NUMBER,
    "fps_out": _NULLABLE_NUMBER, "p50_ms": _NULLABLE_NUMBER, "p95_ms": _NULLABLE_NUMBER,
    "p50_ms_per_mp": _NULLABLE_NUMBER, "pixels_ratio": _NULLABLE_NUMBER, "p50_ratio": _NULLABLE_NUMBER,
    "fps_ratio": _NULLABLE_NUMBER,
})

SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "$id": "https://github.com/swapcam/swapcam/docs/bench_schema.json",
    "title": "swapcam bench report",
    "description": "What `swapcam bench --json PATH` writes. Times are milliseconds unless named _s.",
    **_object({
        "schema_version": {"const": SCHEMA_VERSION},
        "tool": {"const": "swapcam bench"},
        "swapcam_version": {"type": "string"},
        "created": {"type": "string", "description": "UTC, ISO 8601"},
        "machine": _object({
            "platform": {"type": "string"}, "python": {"type": "string"}, "cpu": {"type": "string"},
            "cpu_count": _COUNT, "loadavg_1m": _NULLABLE_NUMBER,
            "frame_threads_raised": {"type": "boolean", "description": "live runs' frame threads may go ahead of "
                                     "other programs' threads here (Linux: the real-time class; --frame-priority)"},
        }),
        "settings": _object({
            "duration_s": {**_NUMBER, "description": "measured seconds per configuration, over all rounds"},
            "warmup_s": {**_NUMBER, "description": "discarded seconds run once per configuration first"},
            "rounds": _COUNT,
            "loopback": _STRING_OR_NULL,
            "soak": {"type": "boolean", "description": "the soak verdict is reported"},
            "soak_window_s": {**_NUMBER, "description": "the longest first/last window the soak compares"},
        }),
        "options": {"type": "object", "description": "the command's options (paths as text)"},
        "interrupted": {"type": "boolean", "description": "Ctrl-C ended the run; only finished rounds count"},
        "configs": {"type": "array", "items": _CONFIG, "minItems": 1},
        "comparison": _object({"baseline": _STRING_OR_NULL, "rows": {"type": "array", "items": _RATIO_ROW}},
                              nullable=True),
        "sweep": _object({"key": {"const": "size"}, "rows": {"type": "array", "items": _SWEEP_ROW}},
                         nullable=True),
        "loopback": _object({"device": {"type": "string"}, "status": {"enum": ["ok", "skipped"]},
                             "reason": _STRING_OR_NULL}, nullable=True),
    }),
}


def schema_text() -> str:
    """The schema as the text of docs/bench_schema.json."""
    return json.dumps(SCHEMA, indent=2) + "\n"


def write_report(path: Path, report: dict[str, Any]) -> None:
    """Write the report as JSON (atomically; E14 when the path is not writable)."""
    tmp = path.with_name(path.name + ".tmp")
    try:
        tmp.write_text(json.dumps(report, indent=1) + "\n", encoding="utf-8")
        tmp.replace(path)
    except OSError as exc:
        raise OutputError("E14", f"{path}: {exc.strerror or exc}") from exc


if __name__ == "__main__":  # python -m realtime.bench.schema > docs/bench_schema.json
    print(schema_text(), end="")
