"""The Makefile's targets for machines without make (Windows): ``python tools/task.py demo|test``.

Needs nothing but Python 3.10+. It does what ``make`` does: creates ``.venv``,
installs the package with the cpu and dev extras, fetches the models, then
runs the demo or the tests. Keep it in step with the Makefile.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
VENV = ROOT / ".venv"
DEMO_CLIP = Path("out") / "demo_target.mp4"
TORCH = "torch==2.13.0"  # as the Makefile: required, the torch-path tests must run


@dataclass(frozen=True)
class Step:
    """One command of a target."""

    argv: tuple[str, ...]


def venv_bin(name: str, *, platform: str = sys.platform, venv: Path = VENV) -> str:
    """A program inside the virtual environment: Scripts\\name.exe on Windows, bin/name elsewhere."""
    if platform == "win32":
        return str(venv / "Scripts" / f"{name}.exe")
    return str(venv / "bin" / name)


def setup_steps(*, platform: str = sys.platform, python: str = sys.executable) -> list[Step]:
    """Create .venv and install swapcam with the cpu and dev extras (skipped when it is up to date)."""
    stamp = VENV / ".installed"
    pyproject = ROOT / "pyproject.toml"
    if stamp.exists() and stamp.stat().st_mtime >= pyproject.stat().st_mtime:
        return []
    pip = (venv_bin("python", platform=platform), "-m", "pip")
    return [
        Step((python, "-m", "venv", str(VENV))),
        Step((*pip, "install", "--quiet", "--upgrade", "pip")),
        Step((*pip, "install", "--quiet", "-e", ".[cpu,dev]")),
        Step((*pip, "install", "--quiet", TORCH)),
        Step((venv_bin("python", platform=platform), "-c", f"import pathlib; pathlib.Path({str(stamp)!r}).touch()")),
    ]


def plan(target: str, *, platform: str = sys.platform, python: str = sys.executable) -> list[Step]:
    """The commands ``target`` runs, in order."""
    def bin_(name: str) -> str:
        return venv_bin(name, platform=platform)

    steps = setup_steps(platform=platform, python=python)
    if target == "setup":
        return steps
    steps.append(Step((bin_("swapcam"), "models", "fetch", "--samples")))
    if target == "models":
        return steps
    if target == "demo":
        if not (ROOT / DEMO_CLIP).exists():
            steps.append(Step((bin_("python"), "tools/render_demo_clip.py", "--output", str(DEMO_CLIP))))
        steps.append(Step((bin_("swapcam"), "run", "--face", str(Path("models/samples/gauss.png")),
                           "--input", str(DEMO_CLIP), "--output", f"file:{Path('out/demo_swapped.mp4')}",
                           "--duration", "20")))
        return steps
    if target == "test":
        return [*steps, Step((bin_("python"), "-m", "pytest", "-q")), *lint_steps(platform)]
    if target == "lint":
        return [*setup_steps(platform=platform, python=python), *lint_steps(platform)]
    raise ValueError(f"unknown target {target!r}")


def lint_steps(platform: str) -> list[Step]:
    """ruff and mypy, as CI runs them."""
    return [Step((venv_bin("ruff", platform=platform), "check", "realtime", "tools", "tests")),
            Step((venv_bin("mypy", platform=platform),))]


def run(steps: Sequence[Step]) -> int:
    """Run ``steps`` from the repository root; the first one that fails ends the run."""
    for step in steps:
        print("+", " ".join(step.argv), flush=True)
        status = subprocess.run(step.argv, cwd=ROOT, check=False).returncode
        if status != 0:
            return status
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Parse the target and run it."""
    parser = argparse.ArgumentParser(prog="python tools/task.py", description=__doc__.splitlines()[0])
    parser.add_argument("target", choices=("setup", "models", "demo", "test", "lint"))
    parser.add_argument("--dry-run", action="store_true", help="print the commands without running them")
    args = parser.parse_args(argv)
    steps = plan(args.target)
    if args.dry_run:
        for step in steps:
            print(" ".join(step.argv))
        return 0
    os.environ.setdefault("PYTHONUTF8", "1")  # the children print "→" and "—"; the console may not be UTF-8
    # As the Makefile: a checkout keeps its models and engines in the repository's folders.
    os.environ.setdefault("SWAPCAM_MODELS", str(ROOT / "models"))
    os.environ.setdefault("SWAPCAM_ENGINES", str(ROOT / "engines"))
    status = run(steps)
    if status == 0 and args.target == "demo":
        print("demo: wrote out/demo_swapped.mp4 — to watch live, rerun the last command with --output window")
    return status


if __name__ == "__main__":
    sys.exit(main())
