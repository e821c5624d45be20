"""The face gallery: photos the user can make live, kept under generated names in the data folder.

Ids are the first 12 hex digits of the photo's sha256: the same photo keeps its id across
runs (so a saved setting or a script's ``{"face": ID}`` stays valid) and is stored once.
A client's file name is only ever a display name; it never becomes part of a path.
"""

from __future__ import annotations

import hashlib
import json
import re
import threading
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import cv2

from realtime.clock import wall_s
from realtime.errors import InputError, OutputError
from realtime.images import load_image

MAX_UPLOAD_BYTES = 20 * 1024 * 1024
INDEX = "gallery.json"
THUMB_PX = 160


@dataclass(frozen=True)
class GalleryFace:
    """One photo in the gallery."""

    id: str
    name: str  # display name only
    file: str  # generated name inside the gallery folder
    added: float


def display_name(raw: str) -> str:
    """A short, harmless label from a client's file name (the last path part, printable characters)."""
    last = re.split(r"[\\/]", raw or "")[-1]
    cleaned = re.sub(r"[^\w .()-]", "_", last).strip(" .")
    return cleaned[:64] or "photo"


class FaceGallery:
    """The photos in ``folder`` and their index; safe to use from several threads."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self._lock = threading.Lock()
        self._thumbs: dict[str, bytes] = {}
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise OutputError("E14", f"{folder}: {exc.strerror or exc}") from exc
        self._faces = self._load_index()

    def _load_index(self) -> dict[str, GalleryFace]:
        try:
            entries = json.loads((self.folder / INDEX).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return {}
        faces = {}
        for entry in entries if isinstance(entries, list) else []:
            try:
                face = GalleryFace(**entry)
            except TypeError:
                continue
            if (self.folder / face.file).is_file():
                faces[face.id] = face
        return faces

    def _save_index(self) -> None:
        tmp = self.folder / (INDEX + ".tmp")
        tmp.write_text(json.dumps([asdict(f) for f in self._faces.values()], indent=1), encoding="utf-8")
        tmp.replace(self.folder / INDEX)

    def list(self) -> list[GalleryFace]:
        """Every face, oldest first."""
        with self._lock:
            return sorted(self._faces.values(), key=lambda f: (f.added, f.id))

    def get(self, face_id: str) -> GalleryFace:
        """The face with this id; E24 when there is none."""
        with self._lock:
            face = self._faces.get(face_id)
        if face is None:
            raise InputError("E24", repr(face_id))
        return face

    def path(self, face: GalleryFace) -> Path:
        """Where the photo is stored."""
        return self.folder / face.file

    def add_bytes(self, data: bytes, name: str, check: Callable[[Path], Any]) -> tuple[GalleryFace, bool]:
        """Store a photo if ``check(path)`` accepts it (it raises E03/E04/E05 otherwise).

        Returns the face and whether it is new (an identical photo returns the existing entry).
        """
        if len(data) > MAX_UPLOAD_BYTES:
            raise InputError("E03", f"upload of {len(data)} bytes is over the {MAX_UPLOAD_BYTES // 2**20} MB cap",
                             remedy="use a smaller photo (a face needs far less than 20 MB)")
        face_id = hashlib.sha256(data).hexdigest()[:12]
        with self._lock:
            existing = self._faces.get(face_id)
        if existing is not None:
            return existing, False
        tmp = self.folder / f"upload-{uuid.uuid4().hex}.tmp"
        try:
            tmp.write_bytes(data)
            try:
                check(tmp)
            except InputError as exc:  # name the photo as the user knows it, not by our temporary file
                raise InputError(exc.code, exc.detail.replace(str(tmp), display_name(name)),
                                 remedy=exc.remedy) from exc
            face = GalleryFace(id=face_id, name=display_name(name), file=f"{face_id}.img", added=wall_s())
            tmp.replace(self.folder / face.file)
        except OSError as exc:
            if isinstance(exc, InputError):
                raise
            raise OutputError("E14", f"{self.folder}: {exc.strerror or exc}") from exc
        finally:
            tmp.unlink(missing_ok=True)
        with self._lock:
            self._faces[face.id] = face
            self._save_index()
        return face, True

    def add_file(self, path: Path, check: Callable[[Path], Any]) -> GalleryFace:
        """Copy a local photo (a ``--face`` argument) into the gallery."""
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise InputError("E03", f"{path}: {exc.strerror or exc}") from exc
        return self.add_bytes(data, path.name, check)[0]

    def remove(self, face_id: str) -> None:
        """Delete a face and its photo; E24 when there is none."""
        face = self.get(face_id)
        with self._lock:
            self._faces.pop(face.id, None)
            self._thumbs.pop(face.id, None)
            self._save_index()
        (self.folder / face.file).unlink(missing_ok=True)

    def thumbnail(self, face_id: str) -> bytes:
        """A small JPEG of the photo (made once, then cached)."""
        face = self.get(face_id)
        cached = self._thumbs.get(face.id)
        if cached is not None:
            return cached
        image = load_image(self.path(face), max_side=THUMB_PX * 2)
        scale = THUMB_PX / max(image.shape[:2])
        if scale < 1:
            image = cv2.resize(image, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
        ok, jpeg = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, 85])
        data = jpeg.tobytes() if ok else b""
        self._thumbs[face.id] = data
        return data
