"""``--enhancer gfpgan``: GFPGAN v1.4 face restoration after the swap (off by default).

The face is aligned to the FFHQ 512 template from its 5 keypoints, given to
the model as 1×3×512×512 RGB in [-1, 1] (input ``input``), and the output
(``output``, same layout and range) is pasted back with the inverse
transform under a feathered mask, mixed with the swapped face by ``blend``.

It is slow: hundreds of milliseconds per face on CPU, several on a GPU. In
live mode it logs its measured cost per frame once, after the first frames.

Wiring: :func:`with_enhancer` wraps a swapper so the pipeline sees one
swapper whose ``swap`` also enhances the face it just swapped.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from realtime import blend
from realtime.engines.base import Engine
from realtime.errors import UsageError
from realtime.faces import align
from realtime.faces.types import Face
from realtime.frame import Frame, maybe_stage
from realtime.swappers.base import Swapper
from realtime.swappers.inswapper import crop_box_mask, model_input, placement

log = logging.getLogger(__name__)

MODEL = "gfpgan_1.4"  # manifest name
CROP = 512
ENHANCERS = ("none", "gfpgan")


def gfpgan_blob(crop_bgr: np.ndarray) -> np.ndarray:
    """A 512×512 BGR uint8 crop as the GFPGAN input: 1×3×512×512 RGB, (x / 255 − 0.5) / 0.5."""
    rgb = crop_bgr[:, :, ::-1].astype(np.float32) / 255.0
    return np.ascontiguousarray(((rgb - 0.5) / 0.5).transpose(2, 0, 1)[None])


def gfpgan_output(output: np.ndarray) -> np.ndarray:
    """The GFPGAN output (1×3×512×512 RGB in [-1, 1]) as a 512×512 BGR uint8 crop."""
    rgb = (np.clip(np.asarray(output, dtype=np.float32)[0], -1.0, 1.0) + 1.0) / 2.0
    return np.ascontiguousarray(np.round(rgb.transpose(1, 2, 0)[:, :, ::-1] * 255.0).astype(np.uint8))


class Gfpgan:
    """GFPGAN v1.4: an FFHQ-aligned 512×512 face → the restored face."""

    def __init__(self, *, engine: Engine) -> None:
        self.engine = engine
        self.input = model_input(engine, "input", (1, 3, CROP, CROP), "GFPGAN")
        self.output = engine.outputs[0].name

    def restore(self, crop_bgr: np.ndarray) -> np.ndarray:
        """The restored 512×512 BGR crop."""
        blob = gfpgan_blob(crop_bgr).astype(self.input.dtype, copy=False)
        return gfpgan_output(self.engine.run({self.input.name: blob})[self.output])


@dataclass(frozen=True)
class GfpganOptions:
    """``blend``: weight of the restored face (0 = off, 1 = all); ``warn_after``: frames measured in live mode."""

    blend: float = 0.8
    crop_margin: float = 0.08
    crop_feather: float = 0.08
    live: bool = False
    warn_after: int = 30

    def __post_init__(self) -> None:
        if not 0.0 <= self.blend <= 1.0:
            raise UsageError("E01", f"--enhancer-blend {self.blend}", remedy="use a weight from 0 to 1, e.g. 0.8")


class GfpganEnhancer:
    """Restores each swapped face with GFPGAN and blends it in; measures what that costs."""

    name = "gfpgan"

    def __init__(self, *, model: Gfpgan, options: GfpganOptions | None = None) -> None:
        self.model = model
        self.options = options or GfpganOptions()
        self._mask = crop_box_mask(CROP, margin=self.options.crop_margin, feather=self.options.crop_feather)
        self._seconds = 0.0
        self._frames: set[int] = set()
        self._calls = 0
        self._warned = False

    @classmethod
    def open(cls, *, root: Path | None = None, backend: str = "auto", device: str = "auto", threads: int = 1,
             options: GfpganOptions | None = None) -> GfpganEnhancer:
        """Open the fetched GFPGANv1.4.onnx (E06 missing, E07 checksum mismatch)."""
        from realtime.engines.opening import open_model

        engine = open_model(MODEL, root=root, backend=backend, device=device, threads=threads)
        return cls(model=Gfpgan(engine=engine), options=options)

    def enhance(self, image: np.ndarray, face: Face, frame: Frame | None = None) -> None:
        """Restore ``face`` in ``image`` (in place, face-sized region only)."""
        if self.options.blend <= 0.0:
            return
        start = time.perf_counter()
        try:
            matrix = align.alignment(face.keypoints, CROP)
        except ValueError:
            return
        place = placement(matrix, image.shape[1], image.shape[0], CROP)
        if place is None:
            return
        with maybe_stage(frame, "enhance"):
            crop = align.warp(image, matrix, CROP, border=cv2.BORDER_REPLICATE)
            restored = self.model.restore(crop)
            w, h = place.x1 - place.x0, place.y1 - place.y0
            warped = cv2.warpAffine(restored, place.to_roi, (w, h), flags=cv2.INTER_LINEAR,
                                    borderMode=cv2.BORDER_REPLICATE)
            alpha = cv2.warpAffine(self._mask, place.to_roi, (w, h), flags=cv2.INTER_LINEAR,
                                   borderMode=cv2.BORDER_CONSTANT, borderValue=0)
            alpha = np.round(alpha.astype(np.float32) * self.options.blend).astype(np.uint8)
            blend.composite(image[place.y0:place.y1, place.x0:place.x1], warped, alpha)
        self._account(time.perf_counter() - start, frame)

    def cost_ms_per_frame(self) -> float | None:
        """Mean time spent per frame so far (all faces of a frame together); None before the first."""
        frames = len(self._frames) or self._calls
        return None if frames == 0 else 1000.0 * self._seconds / frames

    def _account(self, seconds: float, frame: Frame | None) -> None:
        self._seconds += seconds
        self._calls += 1
        if frame is not None:
            self._frames.add(frame.seq)
        frames = len(self._frames) or self._calls
        if self.options.live and not self._warned and frames >= self.options.warn_after:
            self._warned = True
            log.warning("--enhancer gfpgan costs %.1f ms per frame (measured over %d frames); it adds that to "
                        "the latency — drop --enhancer or lower --enhancer-blend to 0 if it is too slow",
                        self.cost_ms_per_frame(), frames)


class EnhancedSwapper:
    """A swapper followed by an enhancer on each face it swapped (implements the Swapper protocol)."""

    def __init__(self, *, swapper: Swapper, enhancer: GfpganEnhancer) -> None:
        self.swapper = swapper
        self.enhancer = enhancer
        self.name = f"{swapper.name}+{enhancer.name}"

    def prepare(self, source_image: np.ndarray, source_face: Face) -> None:
        """Prepare the wrapped swapper."""
        self.swapper.prepare(source_image, source_face)

    def prepare_many(self, pairs: Sequence[tuple[np.ndarray, Face]]) -> None:
        """Several source photos, when the wrapped swapper takes several; else the first."""
        many = getattr(self.swapper, "prepare_many", None)
        if callable(many):
            many(pairs)
        else:
            self.swapper.prepare(*pairs[0])

    def swap(self, image: np.ndarray, face: Face, frame: Frame | None = None) -> None:
        """Swap, then enhance the same face."""
        self.swapper.swap(image, face, frame)
        self.enhancer.enhance(image, face, frame)

    def close(self) -> None:
        """Close the wrapped swapper if it has resources."""
        closer: Any = getattr(self.swapper, "close", None)
        if callable(closer):
            closer()


def with_enhancer(swapper: Swapper, name: str, *, backend: str = "auto", device: str = "auto", threads: int = 1,
                  blend_weight: float = 0.8, live: bool = False, root: Path | None = None) -> Swapper:
    """``swapper`` unchanged for ``--enhancer none``; wrapped with GFPGAN (from models folder ``root``) for
    ``--enhancer gfpgan``."""
    if name == "none":
        return swapper
    if name != "gfpgan":
        raise UsageError("E01", f"--enhancer {name!r}", remedy="use none or gfpgan")
    enhancer = GfpganEnhancer.open(root=root, backend=backend, device=device, threads=threads,
                                   options=GfpganOptions(blend=blend_weight, live=live))
    log.info("enhancer: gfpgan, blend %.2f", blend_weight)
    return EnhancedSwapper(swapper=swapper, enhancer=enhancer)
