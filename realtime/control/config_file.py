"""``swapcam run --config FILE``: every ``run`` option from a TOML file; the command line wins.

Keys are option names without the dashes (``face-index = 0`` or ``face_index = 0``); a
repeatable option takes a list (``output = ["virtualcam", "file:out.mp4"]``), a switch a
boolean (``panel = true``).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from realtime.errors import UsageError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

NOT_IN_FILE = {"config", "help", "log_level"}


def add_config_option(parser: argparse.ArgumentParser) -> None:
    """--config FILE."""
    parser.add_argument("--config", type=Path, metavar="FILE",
                        help="read options from a TOML file (keys are option names: face-index = 0, "
                             "output = [\"virtualcam\"]); options on the command line win")


def read_config(path: Path, parser: argparse.ArgumentParser) -> dict[str, Any]:
    """The file's values by option dest, converted and checked like the command line would (E26)."""
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise UsageError("E26", f"{path}: {exc.strerror or exc}") from exc
    except tomllib.TOMLDecodeError as exc:
        raise UsageError("E26", f"{path}: {exc}") from exc
    actions = {a.dest: a for a in parser._actions if a.option_strings and a.dest not in NOT_IN_FILE}
    values = {}
    for key, value in raw.items():
        dest = key.replace("-", "_")
        action = actions.get(dest)
        if action is None:
            raise UsageError("E26", f"{path}: unknown option {key!r}")
        values[dest] = _convert(path, key, action, value)
    return values


def _convert(path: Path, key: str, action: argparse.Action, value: Any) -> Any:
    if action.nargs == 0:  # a switch: store_true / --x/--no-x
        if not isinstance(value, bool):
            raise UsageError("E26", f"{path}: {key} = {value!r}", remedy=f"write {key} = true or false")
        return value
    if isinstance(action, argparse._AppendAction):
        items = value if isinstance(value, list) else [value]
        return [_one(path, key, action, item) for item in items]
    return _one(path, key, action, value)


def _one(path: Path, key: str, action: argparse.Action, value: Any) -> Any:
    if isinstance(value, (dict, list, bool)):
        raise UsageError("E26", f"{path}: {key} = {value!r}", remedy=f"see `swapcam run --help` for --{key}")
    converter = action.type if callable(action.type) else None
    try:
        converted = converter(value if not isinstance(value, (int, float)) or converter is not Path
                              else str(value)) if converter is not None else str(value)
    except (TypeError, ValueError) as exc:
        raise UsageError("E26", f"{path}: {key} = {value!r}", remedy=f"see `swapcam run --help` for --{key}") from exc
    if action.choices is not None and converted not in action.choices:
        raise UsageError("E26", f"{path}: {key} = {value!r}",
                         remedy=f"use one of: {', '.join(map(str, action.choices))}")
    return converted


def apply_config(parser: argparse.ArgumentParser, argv: list[str], args: argparse.Namespace) -> argparse.Namespace:
    """Parse ``argv`` again with the file's values as the sub-command's defaults (so flags win)."""
    sub: argparse.ArgumentParser = args.config_parser
    sub.set_defaults(**read_config(args.config, sub))
    return parser.parse_args(argv)
