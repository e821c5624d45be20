"""``--compare`` and ``--sweep``: configurations as overrides of the options ``run`` takes.

A configuration is the bench's own parsed options with some ``run`` options
replaced, e.g. ``ring-size=8``. The overrides are parsed by a parser built
from the same ``add_*_options`` functions ``run`` uses, so an option added
there (``--swapper``, ``--backend``) can be compared without changes here.
"""

from __future__ import annotations

import argparse
import copy
import itertools
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import NoReturn

from realtime.config import parse_size
from realtime.errors import UsageError

TRUE_WORDS = ("true", "yes", "on")
FALSE_WORDS = ("false", "no", "off")
SWEEP_KEYS = ("size",)
COMPARE_REMEDY = "use --compare KEY=V1,V2 with KEY a `swapcam run` option, e.g. --compare ring-size=1,2,8"


@dataclass(frozen=True)
class Axis:
    """One ``KEY=V1,V2,...`` specification."""

    key: str
    values: tuple[str, ...]


@dataclass(frozen=True)
class Plan:
    """One configuration to measure: its label, its overrides and the options it runs with."""

    label: str
    overrides: dict[str, str] = field(default_factory=dict)
    args: argparse.Namespace = field(default_factory=argparse.Namespace)


class _RaisingParser(argparse.ArgumentParser):
    """An ArgumentParser that raises a coded error instead of exiting."""

    def error(self, message: str) -> NoReturn:
        raise UsageError("E01", f"--compare/--sweep: {message}", remedy=COMPARE_REMEDY)


def parse_axis(text: str, *, option: str = "--compare") -> Axis:
    """'ring-size=1,2,8' → Axis('ring-size', ('1', '2', '8')); E01 when malformed."""
    key, sep, rest = text.partition("=")
    key = key.strip().lstrip("-").replace("_", "-")
    values = tuple(v.strip() for v in rest.split(",") if v.strip())
    if not sep or not key or not values:
        raise UsageError("E01", f"{option} {text!r} is not KEY=V1,V2", remedy=COMPARE_REMEDY)
    if len(set(values)) != len(values):
        raise UsageError("E01", f"{option} {text!r} repeats a value", remedy="list each value once")
    return Axis(key, values)


def parse_sweep(text: str) -> Axis:
    """``--sweep size=640x480,1280x720``: only frame size is swept; each size is checked."""
    axis = parse_axis(text, option="--sweep")
    if axis.key not in SWEEP_KEYS:
        raise UsageError("E01", f"--sweep {axis.key}", remedy="sweep the frame size: --sweep size=640x480,1280x720")
    for value in axis.values:
        parse_size(value)
    return axis


def override_tokens(key: str, value: str) -> list[str]:
    """Command-line tokens for one override (``swapper=none`` means no processing at all)."""
    if key in ("swapper", "processor") and value.lower() == "none":
        return ["--processor", "passthrough"]
    if value.lower() in TRUE_WORDS + FALSE_WORDS:
        return [f"--{key}"]  # a flag such as --offline; apply_overrides handles false
    return [f"--{key}={value}"]


def apply_overrides(
    base: argparse.Namespace, overrides: dict[str, str], add_options: Callable[[argparse.ArgumentParser], None]
) -> argparse.Namespace:
    """A copy of ``base`` with ``overrides`` parsed by a parser that ``add_options`` fills."""
    parser = _RaisingParser(prog="swapcam bench", add_help=False)
    add_options(parser)
    args = copy.copy(base)
    for key, value in overrides.items():
        tokens = override_tokens(key, value)
        try:
            parser.parse_args(tokens, namespace=args)
        except UsageError:
            if tokens == [f"--{key}"]:  # a word like 'on' given to an option that takes a value
                parser.parse_args([f"--{key}={value}"], namespace=args)
            else:
                raise
        if tokens == [f"--{key}"] and value.lower() in FALSE_WORDS:
            setattr(args, key.replace("-", "_"), False)
    return args


def plan_configs(
    base: argparse.Namespace,
    axes: Sequence[Axis],
    add_options: Callable[[argparse.ArgumentParser], None],
    *,
    default_label: str,
) -> list[Plan]:
    """Every combination of the axes' values (the first is the baseline), options resolved."""
    if not axes:
        return [Plan(label=default_label, args=copy.copy(base))]
    keys = [axis.key for axis in axes]
    if len(set(keys)) != len(keys):
        raise UsageError("E01", f"--compare/--sweep name {keys} more than once", remedy="give each KEY once")
    plans = []
    for values in itertools.product(*(axis.values for axis in axes)):
        overrides = dict(zip(keys, values, strict=True))
        label = " ".join(f"{k}={v}" for k, v in overrides.items())
        plans.append(Plan(label=label, overrides=overrides, args=apply_overrides(base, overrides, add_options)))
    return plans


def option_dests(add_options: Callable[[argparse.ArgumentParser], None]) -> tuple[str, ...]:
    """The attribute names the options added by ``add_options`` fill (e.g. the processing options)."""
    parser = _RaisingParser(prog="swapcam bench", add_help=False)
    add_options(parser)
    return tuple(sorted(vars(parser.parse_known_args([])[0])))
