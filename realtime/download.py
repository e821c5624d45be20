"""Downloading a model file: progress bar, resume of a broken transfer, sha256 check, atomic rename.

The bytes go to ``<dest>.part``; a later call resumes it with an HTTP Range
request. Only a file whose sha256 matches the pinned value is renamed to
``dest``: a mismatch deletes the partial file and raises E07. Network
failures raise E16 and keep the partial file for the next attempt.
Plain urllib, so no dependency is added for it.
"""

from __future__ import annotations

import http.client
import logging
import os
import re
import ssl
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from realtime import __version__
from realtime.clock import now_s
from realtime.errors import ModelError, OutputError
from realtime.hashing import file_sha256

log = logging.getLogger(__name__)

CHUNK = 1 << 20
RETRY_PAUSE_S = 1.0
_CONTENT_RANGE = re.compile(r"bytes\s+(\d+)-(\d+)/(\d+|\*)")


@dataclass(frozen=True)
class Remote:
    """A file to fetch: where from, its pinned sha256 and (if known) its size in bytes."""

    url: str
    sha256: str
    size: int | None = None




class ProgressBar:
    """A one-line progress display on a stream: redrawn in place on a terminal, every 10 % otherwise."""

    def __init__(self, label: str, total: int | None, *, stream: IO[str] | None = None) -> None:
        self.label = label
        self.total = total
        self.stream = stream if stream is not None else sys.stderr
        self.tty = bool(getattr(self.stream, "isatty", lambda: False)())
        self._start = now_s()
        self._start_bytes: int | None = None
        self._last_draw = 0.0
        self._last_decile = -1

    def update(self, done: int) -> None:
        """Show ``done`` bytes (rate-limited)."""
        if self._start_bytes is None:
            self._start_bytes = done
        now = now_s()
        if self.tty:
            if now - self._last_draw >= 0.1:
                self.stream.write("\r\x1b[2K" + self.text(done, now))
                self.stream.flush()
                self._last_draw = now
        elif self.total:
            decile = int(10 * done / self.total)
            if decile > self._last_decile:
                self.stream.write(self.text(done, now) + "\n")
                self.stream.flush()
                self._last_decile = decile

    def finish(self, done: int) -> None:
        """Draw the final state and end the line."""
        text = self.text(done, now_s())
        self.stream.write(("\r\x1b[2K" + text + "\n") if self.tty else (text + "\n"))
        self.stream.flush()

    def text(self, done: int, now: float) -> str:
        """``label  12.3/265.0 MB   4.6 %  3.1 MB/s``."""
        elapsed = max(now - self._start, 1e-6)
        rate = (done - (self._start_bytes or 0)) / elapsed / 1e6
        if self.total:
            return (f"{self.label}  {done / 1e6:.1f}/{self.total / 1e6:.1f} MB"
                    f"  {100.0 * done / self.total:5.1f} %  {rate:.1f} MB/s")
        return f"{self.label}  {done / 1e6:.1f} MB  {rate:.1f} MB/s"


def download(remote: Remote, dest: Path, *, progress: IO[str] | None = None, timeout_s: float = 30.0,
             attempts: int = 3, chunk: int = CHUNK) -> Path:
    """Fetch ``remote`` to ``dest`` unless a file with the right sha256 is already there.

    A broken transfer is resumed (``attempts`` tries in this call, and again by
    the next call from the kept ``.part`` file). Raises ModelError E16 when the
    server cannot be reached or keeps failing, E07 when the finished file has
    the wrong sha256 (the partial file is removed), OutputError E14 when the
    folder cannot be written. ``progress``: stream for the progress bar (None: stderr).
    """
    if dest.is_file():
        if file_sha256(dest) == remote.sha256:
            log.info("%s is present and its sha256 matches", dest.name)
            return dest
        log.warning("%s is present but its sha256 does not match: downloading it again", dest.name)
    part = dest.with_name(dest.name + ".part")
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError("E14", f"{dest.parent}: {exc.strerror or exc}") from exc
    error = _fetch_with_retries(remote, part, progress=progress, timeout_s=timeout_s, attempts=attempts,
                                chunk=chunk, label=dest.name)
    if error is not None:
        kept = part.stat().st_size if part.exists() else 0
        state = f"{kept} bytes kept in {part.name}; run the command again to resume" if kept else "nothing received"
        raise ModelError("E16", f"{remote.url}: {error} ({state})")
    _verify_and_move(remote, part, dest)
    return dest


def _fetch_with_retries(remote: Remote, part: Path, *, progress: IO[str] | None, timeout_s: float,
                        attempts: int, chunk: int, label: str) -> str | None:
    """Transfer, resuming after a break; None when done, else why the last attempt failed.

    An attempt that received bytes is resumed at once; a server error (5xx) is
    retried after a pause; a server that cannot be reached is not retried.
    """
    for attempt in range(1, max(1, attempts) + 1):
        before = part.stat().st_size if part.exists() else 0
        try:
            _transfer(remote, part, progress=progress, timeout_s=timeout_s, chunk=chunk, label=label)
            return None
        except _TransientError as exc:
            moved = (part.stat().st_size if part.exists() else 0) > before
            if not (moved or exc.retry) or attempt >= attempts:
                return str(exc)
            log.warning("download of %s interrupted (%s); attempt %d of %d", label, exc, attempt + 1, attempts)
            time.sleep(0.0 if moved else RETRY_PAUSE_S)
    return "no attempt made"


def tls_context() -> ssl.SSLContext | None:
    """Certificates from the OS trust store where ``truststore`` is installed, else Python's default (None).

    Python from python.org on macOS ships no CA certificates until "Install Certificates.command" has run,
    so every https download fails there; the OS store (Keychain, Windows' store) also holds the
    certificates of corporate proxies.
    """
    try:
        import truststore
    except ImportError:
        return None
    context: ssl.SSLContext = truststore.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    return context


class _TransientError(Exception):
    """A failure that a later attempt may get past; ``retry``: worth retrying at once even without progress."""

    def __init__(self, message: str, *, retry: bool = False) -> None:
        super().__init__(message)
        self.retry = retry


def _transfer(remote: Remote, part: Path, *, progress: IO[str] | None, timeout_s: float, chunk: int,
              label: str) -> None:
    """Append the missing bytes of ``remote`` to ``part``; returns when the server says it sent them all."""
    offset = part.stat().st_size if part.exists() else 0
    if remote.size is not None and offset >= remote.size:
        return  # nothing left to fetch: the checksum decides whether it is good
    request = urllib.request.Request(remote.url, headers={"User-Agent": f"swapcam/{__version__}"})
    if offset:
        request.add_header("Range", f"bytes={offset}-")
    try:
        response = urllib.request.urlopen(request, timeout=timeout_s, context=tls_context())
    except urllib.error.HTTPError as exc:
        if exc.code == 416 and offset:
            return  # the partial file already holds the whole file
        if exc.code >= 500:
            raise _TransientError(f"HTTP {exc.code} {exc.reason}", retry=True) from exc
        raise ModelError("E16", f"{remote.url}: HTTP {exc.code} {exc.reason}") from exc
    except (urllib.error.URLError, OSError, http.client.HTTPException) as exc:
        reason = getattr(exc, "reason", exc)
        raise _TransientError(f"cannot reach the server ({reason})") from exc
    with response:
        offset, total = _resume_point(response, offset, remote.size)
        bar = ProgressBar(label, total, stream=progress)
        done = _copy_body(response, part, offset, chunk, bar)
        bar.finish(done)
    if total is not None and done < total:
        raise _TransientError(f"transfer broke off after {done} of {total} bytes")


def _copy_body(response: http.client.HTTPResponse, part: Path, offset: int, chunk: int,
               bar: ProgressBar) -> int:
    """Write the response body into ``part`` from ``offset`` on; returns the bytes now in the file."""
    done = offset
    try:
        out = part.open("r+b" if offset else "wb")
    except OSError as exc:
        raise OutputError("E14", f"{part}: {exc.strerror or exc}") from exc
    with out:
        out.seek(offset)
        out.truncate()
        while True:
            try:
                block = response.read(chunk)
            except (OSError, http.client.HTTPException) as exc:
                raise _TransientError(f"transfer broke off after {done} bytes ({exc})") from exc
            if not block:
                break
            try:
                out.write(block)
            except OSError as exc:
                raise OutputError("E14", f"{part}: {exc.strerror or exc}") from exc
            done += len(block)
            bar.update(done)
        out.flush()
        os.fsync(out.fileno())
    return done


def _resume_point(response: http.client.HTTPResponse, offset: int, size: int | None) -> tuple[int, int | None]:
    """Where the body starts in the file and the file's total size, from the response headers."""
    length = response.headers.get("Content-Length")
    if response.status == 206:
        match = _CONTENT_RANGE.match(response.headers.get("Content-Range", ""))
        if match and int(match.group(1)) == offset:
            total = int(match.group(3)) if match.group(3) != "*" else size
            return offset, total
        # A range we did not ask for: start over rather than splice wrong bytes.
        raise _TransientError("server answered with an unexpected byte range")
    if offset:
        log.info("server does not resume downloads: starting over")
    return 0, int(length) if length and length.isdigit() else size


def _verify_and_move(remote: Remote, part: Path, dest: Path) -> None:
    """Check the finished ``part`` against the pinned sha256; rename it to ``dest`` or delete it."""
    actual = file_sha256(part)
    if actual != remote.sha256:
        part.unlink(missing_ok=True)
        raise ModelError("E07", f"{dest.name} downloaded from {remote.url} has sha256 {actual}, "
                                f"expected {remote.sha256}",
                         remedy="the partial file was deleted; run the command again, or download the file "
                                "by hand and check its sha256")
    os.replace(part, dest)
    log.info("%s downloaded and verified (sha256 %s…)", dest.name, actual[:12])


# ---------------------------------------------------------------- the neural models

NEURAL_NOTICE = (
    "The neural models (inswapper_128, ArcFace w600k_r50, SCRFD 10G from InsightFace; GFPGAN v1.4 as "
    "distributed with them) are licensed for NON-COMMERCIAL research use only. Downloading them means you "
    "accept that licence; do not use them, or what they produce, commercially."
)
MIRROR_ENV = "SWAPCAM_NEURAL_MIRROR"  # a base URL that replaces the release URL's folder (a mirror or cache)


def neural_entries() -> dict[str, dict[str, Any]]:
    """The manifest's "neural" section: name → {url, sha256, file, licence, description}."""
    from realtime.models import load_manifest

    return dict(load_manifest().get("neural", {}))


def neural_url(entry: dict[str, Any]) -> str:
    """The entry's URL, or the same file name under ``$SWAPCAM_NEURAL_MIRROR`` when that is set."""
    mirror = os.environ.get(MIRROR_ENV, "").strip()
    if not mirror:
        return str(entry["url"])
    return mirror.rstrip("/") + "/" + str(entry["url"]).rsplit("/", 1)[-1]


def manual_instructions(root: Path, entries: dict[str, dict[str, Any]]) -> str:
    """Which files to download by hand, from where, and where to put them (one line)."""
    files = "; ".join(f"{entry['file']} from {entry['url']}" for entry in entries.values())
    return f"download by hand into {root}: {files}; then `swapcam models list` checks their sha256"


def fetch_neural(root: Path, *, entries: dict[str, dict[str, Any]] | None = None,
                 progress: IO[str] | None = None, timeout_s: float = 30.0, attempts: int = 3) -> list[str]:
    """Download the neural models that are missing or wrong into ``root``; returns the names fetched.

    Each file is resumed if a ``.part`` is there and checked against its pinned
    sha256. E16 (no network, server error) carries the manual-download
    instructions as its remedy; E07 when a finished file does not match.
    """
    from realtime.models import cached_sha256

    entries = neural_entries() if entries is None else entries
    fetched = []
    for name, entry in entries.items():
        dest = root / entry["file"]
        if dest.is_file() and cached_sha256(dest) == entry["sha256"]:
            log.info("%s is present and verified", entry["file"])
            continue
        remote = Remote(neural_url(entry), str(entry["sha256"]), entry.get("size"))
        try:
            download(remote, dest, progress=progress, timeout_s=timeout_s, attempts=attempts)
        except ModelError as exc:
            if exc.code != "E16":
                raise
            raise ModelError("E16", exc.detail, remedy=manual_instructions(root, entries)) from exc
        fetched.append(name)
    return fetched
