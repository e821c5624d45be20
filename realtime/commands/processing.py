"""Options that choose the frame processor, and building it."""

from __future__ import annotations

import argparse

from realtime.errors import UsageError
from realtime.processors import Passthrough, Processor, Sleeper


def add_processing_options(parser: argparse.ArgumentParser) -> None:
    """--processor and the face-swap options."""
    parser.add_argument("--processor", default="auto", metavar="NAME",
                        help="auto (face swap when --face is given, else passthrough), face, passthrough, "
                             "or sleep:MS (a stand-in that takes MS per frame, for benchmarks)")


def build_processor(args: argparse.Namespace) -> Processor:
    """The processor the options ask for."""
    name = args.processor
    if name == "passthrough" or (name == "auto" and getattr(args, "face", None) is None):
        return Passthrough()
    if name.startswith("sleep:"):
        try:
            ms = float(name.split(":", 1)[1])
        except ValueError as exc:
            raise UsageError("E01", f"--processor {name}", remedy="use e.g. --processor sleep:50") from exc
        if not 0 <= ms <= 10_000:
            raise UsageError("E01", f"--processor {name}", remedy="use a time from 0 to 10000 ms")
        return Sleeper(ms)
    raise UsageError("E01", f"--processor {name!r}", remedy="use auto, face, passthrough or sleep:MS")
