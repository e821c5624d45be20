"""The neural swapper: the prepared source identity swapped onto each tracked face."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from realtime import blend
from realtime.faces import align
from realtime.faces import mesh_topology as topo
from realtime.faces.types import Face
from realtime.frame import Frame, maybe_stage
from realtime.swappers.inswapper.device import DevicePath
from realtime.swappers.inswapper.files import ARCFACE, SWAPPER_FP16, SWAPPER_FP32_FILE, neural_model_paths
from realtime.swappers.inswapper.models import ArcFace, Inswapper
from realtime.swappers.inswapper.paste import InswapperOptions, Placement, crop_box_mask, placement
from realtime.swappers.inswapper.preprocess import CROP, mean_identity, output_to_crop, source_latent, target_blob

MIN_FACE_PX = 16  # smaller faces (eye distance × 3, roughly) are left alone
SOURCE_DETECTOR = "scrfd_10g"  # det_10g: the detector ArcFace's alignment is made with
SOURCE_DETECT_SIZE = 640


class InswapperSwapper:
    """The neural swapper (implements :class:`realtime.swappers.base.Swapper`)."""

    name = "inswapper"

    def __init__(self, *, swapper: Inswapper, arcface: ArcFace, options: InswapperOptions | None = None,
                 device_path: DevicePath | None = None, source_detector: Any = None) -> None:
        self.model = swapper
        self.source_detector = source_detector  # det_10g's ScrfdDetector: the source photo's 5 points
        self.arcface = arcface
        self.options = options or InswapperOptions()
        self.device_path = device_path
        self.latent: np.ndarray | None = None
        self.identity: np.ndarray | None = None
        self._box_mask = crop_box_mask(CROP, margin=self.options.crop_margin, feather=self.options.crop_feather)
        self._cache: dict[str, np.ndarray] = {}

    @classmethod
    def open(cls, *, root: Path | None = None, backend: str = "auto", device: str = "auto", threads: int = 1,
             color_correct: bool = True, keep_mouth: bool = True, upcast_fp16: bool = True,
             precision: str = "fp32", cuda_graph: bool = False) -> InswapperSwapper:
        """Open the fetched models from the models folder (E06 missing, E07 checksum mismatch).

        ``upcast_fp16``: run a float16 swapper file in float32 on ONNX Runtime
        (see :func:`realtime.engines.onnx_graph.upcast_to_float32`).
        """
        from realtime.engines.opening import open_model

        swapper_path, arcface_path = neural_model_paths(root, device=device)
        arcface = ArcFace(engine=open_model(ARCFACE, path=arcface_path, backend=backend, device=device,
                                            threads=threads, precision=precision))
        name = SWAPPER_FP16 if swapper_path.name != SWAPPER_FP32_FILE else swapper_path.stem
        model = Inswapper.open(swapper_path, name=name, backend=backend, device=device, threads=threads,
                               upcast_fp16=upcast_fp16, precision=precision, cuda_graph=cuda_graph)
        options = InswapperOptions(color_correct=color_correct, keep_mouth=keep_mouth)
        return cls(swapper=model, arcface=arcface, options=options,
                   device_path=DevicePath.create(model.engine, options),
                   source_detector=_source_detector(root, backend=backend, device=device, threads=threads))

    # -- source

    def prepare(self, source_image: np.ndarray, source_face: Face) -> None:
        """Compute the source latent from one photo and its analysed face."""
        self.prepare_many([(source_image, source_face)])

    def prepare_many(self, pairs: Sequence[tuple[np.ndarray, Face]]) -> None:
        """Compute the source latent from several photos of one person (embeddings averaged)."""
        if not pairs:
            raise ValueError("prepare_many needs at least one (image, face) pair")
        embeddings = [self.embedding(image, self.source_keypoints(image, face)) for image, face in pairs]
        self.identity = mean_identity(embeddings)
        self.latent = source_latent(self.identity, self.model.emap)

    def source_keypoints(self, image: np.ndarray, face: Face) -> Face:
        """``face`` with det_10g's keypoints when that detector is there and finds the same face (the
        pairing ArcFace was trained with); else ``face`` as it is."""
        if self.source_detector is None:
            return face
        from realtime.faces.detector import iou

        found = self.source_detector.detect(image, size=SOURCE_DETECT_SIZE)
        overlaps = [float(iou(face.box, other.box[None])[0]) for other in found]
        if not overlaps or max(overlaps) < 0.5:
            return face
        return replace(face, keypoints=found[int(np.argmax(overlaps))].keypoints)

    def embedding(self, image: np.ndarray, face: Face) -> np.ndarray:
        """The raw ArcFace embedding of one source face, cached by the photo's content hash."""
        digest = hashlib.sha256(np.ascontiguousarray(image).data)
        digest.update(repr(image.shape).encode())
        digest.update(np.asarray(face.keypoints, np.float32).tobytes())
        key = digest.hexdigest()
        if key not in self._cache:
            self._cache[key] = self.arcface.embed(image, face.keypoints)
        return self._cache[key]

    # -- target

    def swap(self, image: np.ndarray, face: Face, frame: Frame | None = None) -> None:
        """Swap the prepared source face onto ``face`` in ``image`` (in place, face-sized region only)."""
        if self.latent is None:
            raise RuntimeError("InswapperSwapper.prepare() must be called before swap()")
        if _eye_distance(face.keypoints) * 3 < MIN_FACE_PX:
            return
        try:
            matrix = align.alignment(face.keypoints, CROP)
        except ValueError:
            return  # degenerate keypoints: leave this face alone
        place = placement(matrix, image.shape[1], image.shape[0])
        if place is None:
            return
        if self.device_path is not None:
            self.device_path.swap(image, matrix, place, self.model, self.latent, self.alpha(face, place), frame)
            return
        with maybe_stage(frame, "align"):
            crop = align.warp(image, matrix, CROP, border=cv2.BORDER_REPLICATE)
        with maybe_stage(frame, "swap"):
            swapped = output_to_crop(self.model.run(target_blob(crop), self.latent))
        with maybe_stage(frame, "blend"):
            self.paste(image, swapped, place, self.alpha(face, place))

    def paste(self, image: np.ndarray, swapped: np.ndarray, place: Placement, alpha: np.ndarray) -> None:
        """Blend the swapped 128 crop into ``image`` at ``place`` under ``alpha`` (colour-corrected if set)."""
        w, h = place.x1 - place.x0, place.y1 - place.y0
        roi = image[place.y0:place.y1, place.x0:place.x1]
        warped = cv2.warpAffine(swapped, place.to_roi, (w, h), flags=cv2.INTER_LINEAR,
                                borderMode=cv2.BORDER_REPLICATE)
        if self.options.color_correct:
            warped = blend.match_colors(cv2.cvtColor(warped, cv2.COLOR_BGR2Lab), roi, alpha)
        blend.composite(roi, warped, alpha)

    def alpha(self, face: Face, place: Placement) -> np.ndarray:
        """uint8 alpha over the ROI: the feathered crop box, ∩ the face oval, minus the mouth opening.

        The oval and the mouth need the 468 landmarks; without them the crop box alone is used.
        """
        w, h = place.x1 - place.x0, place.y1 - place.y0
        alpha = cv2.warpAffine(self._box_mask, place.to_roi, (w, h), flags=cv2.INTER_LINEAR,
                               borderMode=cv2.BORDER_CONSTANT, borderValue=0)
        if face.landmarks is None or len(face.landmarks) != topo.NUM_POINTS:
            return alpha
        opts = self.options
        points = face.landmarks[:, :2].astype(np.float32) - np.array([place.x0, place.y0], np.float32)
        face_px = float(np.ptp(points, axis=0).max())
        oval = blend.feathered_mask(alpha.shape, topo.contour(points, topo.FACE_OVAL),
                                    erode_px=opts.oval_erode * face_px, blur_px=opts.oval_feather * face_px)
        alpha = ((alpha.astype(np.uint16) * oval + 127) // 255).astype(np.uint8)
        if opts.keep_mouth:
            blend.cut_hole(alpha, topo.contour(points, topo.LIPS_INNER), feather_px=opts.mouth_feather * face_px)
        return alpha


def _eye_distance(keypoints: np.ndarray) -> float:
    kps = np.asarray(keypoints, dtype=np.float64)
    return float(np.hypot(*(kps[1] - kps[0])))


def _source_detector(root: Path | None, *, backend: str, device: str, threads: int) -> Any:
    """det_10g on its engine when it was fetched (``models fetch --neural``) and verifies; else None."""
    from realtime import models
    from realtime.engines.opening import open_model
    from realtime.errors import SwapcamError
    from realtime.faces.detector import ScrfdDetector

    try:
        path = models.model_path(SOURCE_DETECTOR, root=root)
    except SwapcamError:
        return None
    return ScrfdDetector(open_model(SOURCE_DETECTOR, path=path, backend=backend, device=device, threads=threads))
