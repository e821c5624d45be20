"""``swapcam`` command line: parse, configure logging, run a command, exit.

This is the only module that exits or prints remedies; commands return an
exit status and library code raises coded errors.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from typing import NoReturn

from realtime import __version__
from realtime.commands import bench, devices, doctor, models, run, serve, swap, triton
from realtime.console import break_interrupts, never_fail_on_encoding
from realtime.container import apply_thread_defaults
from realtime.errors import EXIT_RUNTIME, EXIT_USAGE, SwapcamError, UsageError

COMMANDS = (run, swap, bench, models, devices, doctor, serve, triton)


class CodedParser(argparse.ArgumentParser):
    """argparse whose usage errors (a bad number, an unknown choice, a missing option) print the same coded
    one-line error as every other failure, with exit status 2; sub-command parsers inherit it."""

    def error(self, message: str) -> NoReturn:
        coded = UsageError("E01", message, remedy=f"see `{self.prog} --help`")
        self.exit(EXIT_USAGE, f"error: {coded.message()}\n")


def build_parser() -> argparse.ArgumentParser:
    """The top-level parser with every sub-command."""
    parser = CodedParser(prog="swapcam", description="Live face swap with measured latency.")
    parser.add_argument("--version", action="version", version=f"swapcam {__version__}")
    parser.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"],
                        help="log verbosity; debug also prints tracebacks")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for command in COMMANDS:
        command.add_parser(sub)
    return parser


def _setup_logging(level: str) -> None:
    logging.basicConfig(level=getattr(logging, level.upper()), stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s", datefmt="%H:%M:%S")


def main(argv: list[str] | None = None) -> None:
    """Entry point of the ``swapcam`` console script."""
    never_fail_on_encoding(sys.stdout, sys.stderr)
    break_interrupts()
    parser = build_parser()
    # --log-level is accepted before or after the sub-command.
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parser.parse_args(argv)
    _setup_logging(args.log_level)
    apply_thread_defaults(os.environ)  # inside a container with --cpus, thread pools follow the quota
    debug = args.log_level == "debug"
    try:
        if getattr(args, "config", None) is not None:
            from realtime.control.config_file import apply_config

            args = apply_config(parser, argv, args)
        status = args.handler(args)
    except SwapcamError as exc:
        logging.getLogger("swapcam").debug("traceback", exc_info=True)
        print(f"error: {exc.message()}", file=sys.stderr)
        sys.exit(exc.exit_status)
    except KeyboardInterrupt:
        sys.exit(130)
    except Exception as exc:
        if debug:
            raise
        print(f"error: E17 {type(exc).__name__}: {exc} — rerun with --log-level debug and report the traceback",
              file=sys.stderr)
        sys.exit(EXIT_RUNTIME)
    sys.exit(status if isinstance(status, int) else EXIT_USAGE)


def add_log_level(parser: argparse.ArgumentParser) -> None:
    """Let a sub-command accept --log-level after its name too."""
    parser.add_argument("--log-level", default=argparse.SUPPRESS,
                        choices=["debug", "info", "warning", "error"], help="log verbosity")
