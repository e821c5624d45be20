"""Running ``swapcam bench`` in-process for the bench tests."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from realtime.bench.schema import SCHEMA
from realtime.cli import build_parser


def run_bench(tmp_path: Path, capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, dict[str, Any]]:
    """Run ``swapcam bench ARGV --json`` in-process; returns exit status, stdout and the validated report."""
    path = tmp_path / "bench.json"
    args = build_parser().parse_args(["bench", *argv, "--json", str(path)])
    status = args.handler(args)
    out = capsys.readouterr().out
    report = json.loads(path.read_text())
    jsonschema.Draft202012Validator(SCHEMA).validate(report)
    return status, out, report
