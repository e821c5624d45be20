"""The steerable face swap: the controller that prepares live changes, and the processor that applies them.

Control surfaces (panel, API, hotkeys) call :class:`LiveController` on their own threads. A
face switch loads and analyses the photo there (or takes the cached analysis), builds a
swapper prepared with it, and publishes it in one assignment; the inference thread picks
the new state up on its next frame.
"""

from __future__ import annotations

import copy
import logging
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from realtime.control.gallery import FaceGallery, GalleryFace
from realtime.control.settings import LiveOptions, LiveSettings, LiveState
from realtime.errors import InputError, UsageError
from realtime.faces.types import Face
from realtime.faceswap import Analyzer, choose_face, swap_faces
from realtime.frame import Frame
from realtime.images import load_image
from realtime.sinks.base import Sink
from realtime.swappers.base import Swapper

log = logging.getLogger(__name__)

# Options that need a new prepared swapper when they change (the rest apply per frame).
_SWAPPER_KEYS = ("face", "face_index", "keep_mouth", "keep_eyes", "feather", "color_match", "swapper",
                 "enhancer", "enhancer_blend")
PREPARED_KEPT = 8  # prepared swappers kept for switching back


@dataclass(frozen=True)
class EngineChoice:
    """Where lazily opened models (inswapper, GFPGAN) run."""

    backend: str = "auto"
    device: str = "auto"
    threads: int = 1
    root: Path | None = None  # the models folder (--models)
    precision: str = "fp32"
    cuda_graph: bool = False


class LiveController:
    """Owns the live settings and the gallery; every change goes through :meth:`change`."""

    def __init__(self, *, analyzer: Any, gallery: FaceGallery, options: LiveOptions,
                 engines: EngineChoice | None = None) -> None:
        self.analyzer = analyzer
        self.gallery = gallery
        self.engines = engines or EngineChoice()
        self.settings = LiveSettings(LiveState(options=replace(options, face=None)))
        self._sources: dict[tuple[str, int | None], tuple[np.ndarray, Face]] = {}
        self._models: dict[str, Any] = {}
        self._models_lock = threading.Lock()
        self._prepared: dict[tuple[Any, ...], Swapper] = {}  # oldest first
        if options.face is not None:
            self.change({"face": options.face})

    @property
    def options(self) -> LiveOptions:
        """The live options now."""
        return self.settings.current.options

    def change(self, changes: Mapping[str, Any]) -> LiveOptions:
        """Apply changes (API keys); raises a coded error and keeps the current state if one is bad."""
        return self.settings.change(changes, self._prepare).options

    def add_face(self, data: bytes, name: str) -> tuple[GalleryFace, bool]:
        """Check and store an uploaded photo (E03/E04/E05 when it is unusable); its analysis is kept."""
        found: list[tuple[np.ndarray, Face]] = []

        def check(path: Path) -> None:
            found.append(self._analyse(path, self.options.face_index))

        face, new = self.gallery.add_bytes(data, name, check)
        if found:
            self._sources[(face.id, self.options.face_index)] = found[0]
        return face, new

    def add_file(self, path: Path) -> GalleryFace:
        """Put a local photo (a ``--face`` argument) into the gallery, checked like an upload."""
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise InputError("E03", f"{path}: {exc.strerror or exc}") from exc
        return self.add_face(data, path.name)[0]

    def remove_face(self, face_id: str) -> None:
        """Delete a gallery face; the live one cannot be deleted (E01)."""
        if face_id == self.options.face:
            raise UsageError("E01", f"face {face_id} is live", remedy="switch to another face before deleting it")
        self.gallery.remove(face_id)
        for key in [k for k in self._sources if k[0] == face_id]:
            self._sources.pop(key, None)
        for key in [k for k in self._prepared if k[0] == face_id]:
            self._prepared.pop(key, None)

    def pick(self, number: int) -> LiveOptions:
        """Make the gallery's ``number``-th face (1-based, oldest first) live (the hotkeys 1–9)."""
        faces = self.gallery.list()
        if not 1 <= number <= len(faces):
            raise UsageError("E24", f"#{number}: the gallery has {len(faces)} face(s)")
        return self.change({"face": faces[number - 1].id})

    def toggle_swap(self) -> LiveOptions:
        """Swap on ↔ off."""
        return self.change({"swap": not self.options.swap})

    # -- preparation (on the caller's thread, never the inference thread)

    def _prepare(self, old: LiveState, options: LiveOptions) -> LiveState:
        same = all(getattr(old.options, key) == getattr(options, key) for key in _SWAPPER_KEYS)
        if same and old.swapper is not None:
            return LiveState(options=options, swapper=old.swapper, version=old.version)
        if options.face is None:
            return LiveState(options=options, swapper=None, version=old.version + 1)
        face = self.gallery.get(options.face)
        prepared_key = tuple(getattr(options, key) for key in _SWAPPER_KEYS)
        swapper = self._prepared.pop(prepared_key, None)
        if swapper is None:
            key = (face.id, options.face_index)
            source = self._sources.get(key) or self._analyse(self.gallery.path(face), options.face_index)
            self._sources[key] = source
            swapper = self._build_swapper(options)
            swapper.prepare(*source)
        # Switching back to a recent face (or option set) takes its prepared swapper as it was.
        self._prepared[prepared_key] = swapper
        while len(self._prepared) > PREPARED_KEPT:
            self._prepared.pop(next(iter(self._prepared)))
        log.info("live face: %s (%s), %s swapper", face.id, face.name, swapper.name)
        return LiveState(options=options, swapper=swapper, version=old.version + 1)

    def _analyse(self, path: Path, face_index: int | None) -> tuple[np.ndarray, Face]:
        image = load_image(path)
        # Landmarks only for the faces up to the one chosen: a group photo would otherwise cost a mesh
        # run per person (seconds on a busy CPU) before the switch lands.
        faces = self.analyzer.analyze_still(image, max_faces=(face_index or 0) + 1)
        return image, choose_face(faces, path=path, face_index=face_index)

    def _build_swapper(self, options: LiveOptions) -> Swapper:
        swapper: Swapper
        if options.swapper == "mesh":
            from realtime.swappers.mesh import MeshSwapOptions, MeshSwapper

            mesh = MeshSwapOptions(keep_mouth=options.keep_mouth, keep_eyes=options.keep_eyes,
                                   feather=options.feather, color_match=options.color_match > 0,
                                   color_strength=options.color_match)
            swapper = MeshSwapper(options=mesh)
        else:
            base = self._model("inswapper", self._open_inswapper)
            swapper = copy.copy(base)
            swapper.options = replace(base.options, keep_mouth=options.keep_mouth,  # type: ignore[attr-defined]
                                      color_correct=options.color_match > 0)
        if options.enhancer:
            from realtime.enhancers.gfpgan import EnhancedSwapper

            enhancer = copy.copy(self._model("gfpgan", self._open_gfpgan))
            enhancer.options = replace(enhancer.options, blend=options.enhancer_blend)
            swapper = EnhancedSwapper(swapper=swapper, enhancer=enhancer)
        return swapper

    def _model(self, name: str, opener: Callable[[], Any]) -> Any:
        with self._models_lock:
            if name not in self._models:
                self._models[name] = opener()
            return self._models[name]

    def _open_inswapper(self) -> Any:
        from realtime.swappers.inswapper import InswapperSwapper

        e = self.engines
        return InswapperSwapper.open(root=e.root, backend=e.backend, device=e.device, threads=e.threads,
                                     precision=e.precision, cuda_graph=e.cuda_graph)

    def _open_gfpgan(self) -> Any:
        from realtime.enhancers.gfpgan import GfpganEnhancer, GfpganOptions

        e = self.engines
        return GfpganEnhancer.open(root=e.root, backend=e.backend, device=e.device, threads=e.threads,
                                   options=GfpganOptions(live=True))

    def close(self) -> None:
        """Release the lazily opened models."""
        for model in self._models.values():
            closer = getattr(model, "close", None)
            if callable(closer):
                closer()


def encode_jpeg(image: np.ndarray, width: int) -> bytes:
    """A JPEG of ``image`` at most ``width`` px wide."""
    if image.shape[1] > width:
        height = round(image.shape[0] * width / image.shape[1])
        image = cv2.resize(image, (width, height), interpolation=cv2.INTER_LINEAR)
    ok, data = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, 75])
    return data.tobytes() if ok else b""


class PreviewSlot(Sink):
    """The latest output frame (and, while someone watches it, a copy of the latest input).

    It is a sink: the output thread stores a reference per frame and nothing else. The
    server encodes what it finds here, on its own thread, only while a client watches.
    """

    name = "preview"

    def __init__(self) -> None:
        self.output: Frame | None = None
        self.input: np.ndarray | None = None
        self.input_watchers = 0
        self.streams = 0  # preview streams being served (output and input)

    def write(self, frame: Frame) -> None:
        """Keep a reference to the frame."""
        self.output = frame

    def close(self) -> None:
        """Nothing to release."""


class LiveSwapProcessor:
    """The face-swap processor steered by a :class:`LiveController` (implements Processor).

    Per frame it reads one state snapshot: swap off or no face → the frame passes through
    untouched; else it tracks and swaps up to ``max_faces`` faces with the snapshot's swapper.
    """

    name = "faceswap:live"

    def __init__(self, *, controller: LiveController, analyzer: Analyzer,
                 preview: PreviewSlot | None = None) -> None:
        self.controller = controller
        self.analyzer = analyzer
        self.preview = preview
        self.frames_swapped = 0
        self.first_seq: dict[int, int] = {}  # state version → first frame seq it was applied to

    def process(self, frame: Frame) -> np.ndarray:
        """The frame with the current live state applied (a new buffer when faces are swapped)."""
        state = self.controller.settings.current
        if self.preview is not None and self.preview.input_watchers > 0:
            self.preview.input = frame.image.copy()  # only while someone watches the input
        options = state.options
        if not options.swap or state.swapper is None:
            return frame.image
        tracker = getattr(self.analyzer, "options", None)
        if tracker is not None and tracker.max_faces != options.max_faces:
            self.analyzer.options = replace(tracker, max_faces=options.max_faces)  # type: ignore[attr-defined]
        faces = self.analyzer.track(frame.image, frame)
        if not faces:
            return frame.image
        result = swap_faces(frame.image, faces[: options.max_faces], state.swapper, frame)
        self.frames_swapped += 1
        self.first_seq.setdefault(state.version, frame.seq)
        return result

    def close(self) -> None:
        """Release the analyzer and the controller's models."""
        closer = getattr(self.analyzer, "close", None)
        if callable(closer):
            closer()
        self.controller.close()
