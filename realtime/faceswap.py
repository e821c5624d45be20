"""The face-swap processor: track faces in each frame and put the source face on them.

It implements :class:`realtime.processors.Processor` for the pipeline, and
``swap_still`` for single images. The source face comes from one or more
photos, analysed once (:func:`load_source_faces`, :func:`prepare_swapper`).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np

from realtime.errors import InputError, UsageError
from realtime.faces.types import Face
from realtime.frame import Frame
from realtime.images import load_image
from realtime.swappers.base import Swapper

log = logging.getLogger(__name__)


class Analyzer(Protocol):
    """What the processor needs from :class:`realtime.faces.analyzer.FaceAnalyzer`."""

    def analyze_still(self, image: np.ndarray, *, max_faces: int | None = None) -> list[Face]: ...

    def track(self, image: np.ndarray, frame: Frame | None = None, *,
              timestamp_s: float | None = None) -> list[Face]: ...


@dataclass(frozen=True)
class SourceFace:
    """One source photo and the face chosen in it."""

    path: Path
    image: np.ndarray
    face: Face


def choose_face(faces: Sequence[Face], *, path: Path, face_index: int | None) -> Face:
    """The face to use from a photo's faces (largest first).

    No face → E05. Several and no ``face_index`` → the largest, with a warning naming
    ``--face-index``. An index past the last face → E01.
    """
    if not faces:
        raise InputError("E05", str(path))
    if face_index is None:
        if len(faces) > 1:
            log.warning("%s: %d faces found; using the largest — choose another with --face-index N "
                        "(0 = largest, 1 = next, ...)", path, len(faces))
        return faces[0]
    if not 0 <= face_index < len(faces):
        raise UsageError("E01", f"--face-index {face_index}: {path} has {len(faces)} face(s)",
                         remedy=f"use --face-index from 0 to {len(faces) - 1} (0 = the largest face)")
    return faces[face_index]


def load_source_faces(paths: Sequence[str | Path], analyzer: Analyzer, *,
                      face_index: int | None = None) -> list[SourceFace]:
    """Load each photo (any supported format, EXIF-upright) and pick its face.

    Raises E03/E04 for an unreadable photo, E05 when a photo shows no face.
    """
    if not paths:
        raise UsageError("E01", "no source photo", remedy="pass --face PHOTO")
    sources = []
    for raw in paths:
        path = Path(raw)
        image = load_image(path)
        face = choose_face(analyzer.analyze_still(image), path=path, face_index=face_index)
        sources.append(SourceFace(path=path, image=image, face=face))
    return sources


def prepare_swapper(swapper: Swapper, sources: Sequence[SourceFace]) -> None:
    """Give the swapper its source face(s): all of them if it can average several, else the first."""
    pairs = [(source.image, source.face) for source in sources]
    prepare_many = getattr(swapper, "prepare_many", None)
    if len(pairs) > 1 and callable(prepare_many):
        prepare_many(pairs)
        return
    if len(pairs) > 1:
        log.warning("the %s swapper uses one photo: %s (the others are ignored)", swapper.name, sources[0].path)
    swapper.prepare(*pairs[0])


def swap_faces(image: np.ndarray, faces: Sequence[Face], swapper: Swapper, frame: Frame | None) -> np.ndarray:
    """A copy of ``image`` with ``faces`` swapped. A copy, not in place: when a later face raises, the frame
    still goes out exactly as captured (the pipeline passes the original through)."""
    result = image.copy()
    for face in faces:
        swapper.swap(result, face, frame)
    return result


class FaceSwapProcessor:
    """Tracks faces and swaps the prepared source face onto up to ``max_faces`` of them.

    ``process`` swaps into a copy of the frame's image and returns the copy; the
    frame's own image is never written, so when a step fails part-way the
    pipeline passes the frame through exactly as captured. A frame without a
    face is returned as it is (no copy).
    ``fps``: when set (offline rendering), the tracker's smoothing clock is the
    frame's position in the video (seq / fps) instead of the wall clock.
    """

    def __init__(self, *, analyzer: Analyzer, swapper: Swapper, max_faces: int = 1,
                 fps: float | None = None) -> None:
        if max_faces < 1:
            raise UsageError("E01", f"--max-faces {max_faces}", remedy="use 1 or more faces")
        self.analyzer = analyzer
        self.swapper = swapper
        self.max_faces = max_faces
        self.fps = fps
        self.name = f"faceswap:{swapper.name}"
        self.frames_swapped = 0  # frames in which at least one face was swapped

    def process(self, frame: Frame) -> np.ndarray:
        """The image with the faces found in ``frame.image`` swapped (a new buffer when there are faces)."""
        timestamp = None if self.fps is None else frame.seq / self.fps
        faces = self.analyzer.track(frame.image, frame, timestamp_s=timestamp)
        if not faces:
            return frame.image
        result = swap_faces(frame.image, faces[: self.max_faces], self.swapper, frame)
        self.frames_swapped += 1
        return result

    def swap_still(self, image: np.ndarray) -> tuple[np.ndarray, int]:
        """A swapped copy of one photo and the number of faces swapped (no tracking)."""
        faces = self.analyzer.analyze_still(image, max_faces=self.max_faces)
        return swap_faces(image, faces, self.swapper, None), len(faces)

    def close(self) -> None:
        """Release the analyzer's and swapper's resources, where they have any."""
        for part in (self.analyzer, self.swapper):
            closer = getattr(part, "close", None)
            if callable(closer):
                closer()
