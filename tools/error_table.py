"""Print the error catalogue as the Markdown table README.md carries.

    python tools/error_table.py            # print the table
    python tools/error_table.py --check README.md   # exit 1 if README's table differs
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from realtime.errors import CATALOGUE

EXIT_CLASSES = {2: "2 (usage)", 3: "3 (missing model/hardware)", 4: "4 (runtime)"}


def markdown_table() -> str:
    """The catalogue as a Markdown table, one row per code."""
    rows = ["| code | exit | cause | remedy |", "|---|---|---|---|"]
    for spec in CATALOGUE.values():
        remedy = spec.remedy.replace("|", "\\|")
        rows.append(f"| {spec.code} | {EXIT_CLASSES[spec.exit_status]} | {spec.cause} | {remedy} |")
    return "\n".join(rows)


def main() -> int:
    """Print the table, or check that a README contains it verbatim."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--check", type=Path, metavar="README", help="check the table in this file")
    args = parser.parse_args()
    table = markdown_table()
    if args.check is None:
        print(table)
        return 0
    if table in args.check.read_text(encoding="utf-8"):
        return 0
    print(f"{args.check}: error table is out of date; paste the output of tools/error_table.py", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())
