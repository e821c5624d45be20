"""swapcam as a user gets it: a wheel built with ``python -m build``, installed into a fresh virtual env, run
from a folder outside the checkout (so nothing can be found next to the source tree)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from realtime.images import load_image

ROOT = Path(__file__).resolve().parent.parent
BUILD_TIMEOUT_S = 300
INSTALL_TIMEOUT_S = 600


def _run(command: list[str | Path], *, cwd: Path, env: dict[str, str],
         timeout: float) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(part) for part in command], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=timeout, check=False)


def _clean_env() -> dict[str, str]:
    """This environment without SWAPCAM_* variables and PYTHONPATH (pip keeps its own cache folder)."""
    return {k: v for k, v in os.environ.items() if not k.startswith("SWAPCAM_") and k != "PYTHONPATH"}


def _user_env(home: Path) -> dict[str, str]:
    """The environment of a user who has never run swapcam: no SWAPCAM_* variables, an empty cache folder."""
    return {**_clean_env(), "XDG_CACHE_HOME": str(home / "cache")}


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The ``bin`` folder of a fresh virtual env (no system site-packages) with the built wheel installed."""
    work = tmp_path_factory.mktemp("wheel")
    env = _clean_env()
    # sdist first, then the wheel from the unpacked sdist: what the sdist leaves out, the wheel lacks too.
    built = _run([sys.executable, "-m", "build", "--outdir", work / "dist", ROOT], cwd=work, env=env,
                 timeout=BUILD_TIMEOUT_S)
    assert built.returncode == 0, built.stdout[-3000:] + built.stderr[-3000:]
    [wheel] = (work / "dist").glob("swapcam-*.whl")
    venv = work / "venv"
    # No pip inside the env: the test's own pip installs into it (and reuses its wheel cache), which saves
    # seeding pip into every new env.
    made = _run([sys.executable, "-m", "venv", "--without-pip", venv], cwd=work, env=env, timeout=60)
    assert made.returncode == 0, made.stderr
    python = venv / "bin" / "python"
    pip = _run([sys.executable, "-m", "pip", "--python", python, "install", "--quiet", f"{wheel}[cpu]"],
               cwd=work, env=env, timeout=INSTALL_TIMEOUT_S)
    assert pip.returncode == 0, pip.stdout[-3000:] + pip.stderr[-3000:]
    return venv / "bin"


def test_the_wheel_carries_the_manifest_and_runs_from_its_install(installed: Path, tmp_path: Path) -> None:
    where = _run([installed / "python", "-c", "import realtime.models as m; print(m.__file__); "
                  "print(len(m.load_manifest()['models']))"], cwd=tmp_path, env=_user_env(tmp_path), timeout=60)
    assert where.returncode == 0, where.stderr
    module, count = where.stdout.split()
    assert Path(module).is_relative_to(installed.parent) and int(count) >= 2  # the installed copy, not ROOT


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the cache folder is set through XDG_CACHE_HOME, "
                    "which platformdirs reads on Linux only")
def test_models_go_to_the_user_cache_by_default(installed: Path, tmp_path: Path) -> None:
    listing = _run([installed / "swapcam", "models", "list"], cwd=tmp_path, env=_user_env(tmp_path), timeout=60)
    cache = tmp_path / "cache" / "swapcam" / "models"
    assert listing.returncode == 3, listing.stdout + listing.stderr  # nothing fetched there yet
    assert f"models folder: {cache}" in listing.stdout
    assert f"{cache / 'scrfd.onnx'}" in listing.stdout and "run `swapcam models fetch`" in listing.stdout
    env = {**_user_env(tmp_path), "SWAPCAM_MODELS": str(tmp_path / "elsewhere")}
    moved = _run([installed / "swapcam", "models", "list"], cwd=tmp_path, env=env, timeout=60)
    assert f"models folder: {tmp_path / 'elsewhere'}" in moved.stdout


def test_models_list_and_a_photo_swap_from_another_folder(installed: Path, tmp_path: Path,
                                                          models_root: Path) -> None:
    env = _user_env(tmp_path)
    listing = _run([installed / "swapcam", "models", "list", "--models", models_root], cwd=tmp_path, env=env,
                   timeout=60)
    assert listing.returncode == 0, listing.stdout + listing.stderr
    rows = {line.split()[0]: line.split()[2] for line in listing.stdout.splitlines()[1:] if line.strip()}
    assert rows["scrfd"] == rows["face_mesh"] == rows["newton.png"] == "ok"
    samples = models_root / "samples"
    swapped = tmp_path / "swapped.png"
    swap = _run([installed / "swapcam", "swap", "--models", models_root, "--swapper", "mesh",
                 "--face", samples / "gauss.png", "--target", samples / "newton.png", "--output", swapped.name],
                cwd=tmp_path, env=env, timeout=120)
    assert swap.returncode == 0, swap.stderr
    assert "1 face(s) swapped" in swap.stderr
    target, result = load_image(samples / "newton.png", max_side=8192), load_image(swapped, max_side=8192)
    assert result.shape == target.shape
    changed = np.abs(result.astype(np.int16) - target.astype(np.int16)).max(axis=2) > 8
    assert 0.005 < changed.mean() < 0.5  # the face changed, the rest of the photo did not
