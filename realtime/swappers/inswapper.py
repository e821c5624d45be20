"""The neural swapper: InsightFace's inswapper_128 driven by an ArcFace identity embedding.

Source (once per photo): align the face to the ArcFace 112 template, RGB,
(x − 127.5) / 127.5, NCHW → ArcFace → 512 values → L2-normalise. Several
photos of one person: average of the normalised embeddings, renormalised.
Then × ``emap`` (the 512×512 matrix stored as the swapper graph's last
initializer) and L2-normalise again: that is the ``source`` input.

Target (per face, per frame): align to the 128 template (the 112 one shifted
8 px right), RGB in [0, 1], NCHW → inswapper → 128×128 RGB in [0, 1]; pasted
back with the inverse transform under a feathered mask (crop box ∩ face
oval), the target's mouth interior kept (468-point landmarks), optional
colour correction. With torch + CUDA the crop → swap → paste path runs on
the GPU (see :class:`DevicePath`).

Wiring (for ``--swapper inswapper|auto``)::

    from realtime.swappers.inswapper import InswapperSwapper, neural_models_present
    if neural_models_present():
        swapper = InswapperSwapper.open(backend="auto", device="auto", threads=1,
                                        color_correct=True, keep_mouth=True)
        swapper.prepare_many([(photo, face), ...])   # or prepare(photo, face)
        swapper.swap(frame_image, target_face, frame)

Embedding cache: in memory, per swapper instance, keyed by the sha256 of the
photo's pixels and keypoints. An on-disk cache would save one ArcFace run
(~0.1 s on CPU) per photo per start, but its key would have to cover the
photo, the detector's keypoints and the ArcFace file to never go stale; the
in-memory one cannot go stale and covers the repeated case (the same photo
prepared again, e.g. by ``bench --compare`` or a re-prepare after a switch).
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from realtime import blend
from realtime.engines.base import Engine, TensorSpec
from realtime.errors import ModelError
from realtime.faces import align
from realtime.faces import mesh_topology as topo
from realtime.faces.types import Face
from realtime.frame import Frame

log = logging.getLogger(__name__)

SWAPPER_FP16 = "inswapper_128_fp16"  # manifest name of the pinned swapper file
SWAPPER_FP32_FILE = "inswapper_128.onnx"  # the original float32 file, if the user put it there by hand
ARCFACE = "arcface_w600k_r50"
CROP = 128
ARCFACE_CROP = 112
EMBEDDING = 512
MIN_FACE_PX = 16  # smaller faces (eye distance × 3, roughly) are left alone


# ---------------------------------------------------------------- pre/post-processing


def l2_normalize(vector: np.ndarray) -> np.ndarray:
    """``vector`` / ‖vector‖ (float32); ValueError for a zero or non-finite vector."""
    vector = np.asarray(vector, dtype=np.float64)
    norm = float(np.linalg.norm(vector))
    if not np.isfinite(norm) or norm < 1e-12:
        raise ValueError("cannot normalise a zero or non-finite embedding")
    return (vector / norm).astype(np.float32)


def arcface_blob(crop_bgr: np.ndarray) -> np.ndarray:
    """A 112×112 BGR uint8 crop as the ArcFace input: 1×3×112×112 RGB, (x − 127.5) / 127.5."""
    rgb = crop_bgr[:, :, ::-1].astype(np.float32)
    return np.ascontiguousarray(((rgb - 127.5) / 127.5).transpose(2, 0, 1)[None])


def target_blob(crop_bgr: np.ndarray) -> np.ndarray:
    """A 128×128 BGR uint8 crop as the inswapper ``target``: 1×3×128×128 RGB in [0, 1]."""
    rgb = crop_bgr[:, :, ::-1].astype(np.float32) / 255.0
    return np.ascontiguousarray(rgb.transpose(2, 0, 1)[None])


def output_to_crop(output: np.ndarray) -> np.ndarray:
    """The inswapper output (1×3×128×128 RGB in [0, 1]) as a 128×128 BGR uint8 crop."""
    rgb = np.clip(np.asarray(output, dtype=np.float32)[0].transpose(1, 2, 0), 0.0, 1.0)
    return np.ascontiguousarray(np.round(rgb[:, :, ::-1] * 255.0).astype(np.uint8))


def mean_identity(embeddings: Sequence[np.ndarray]) -> np.ndarray:
    """Several raw ArcFace embeddings of one person → one unit vector (mean of unit vectors, renormalised)."""
    if not embeddings:
        raise ValueError("need at least one embedding")
    return l2_normalize(np.mean([l2_normalize(e.reshape(-1)) for e in embeddings], axis=0))


def source_latent(identity: np.ndarray, emap: np.ndarray) -> np.ndarray:
    """The inswapper ``source`` input (1×512 float32): unit identity × emap, L2-normalised."""
    return l2_normalize(identity.reshape(1, -1).astype(np.float64) @ emap.astype(np.float64)).reshape(1, -1)


def read_onnx(path: Path) -> Any:
    """The parsed ONNX model (onnx.ModelProto); ModelError E07 when the file is not readable ONNX."""
    import onnx

    try:
        return onnx.load(str(path), load_external_data=False)
    except Exception as exc:  # onnx raises DecodeError, OSError, ValueError… for a broken file
        raise ModelError("E07", f"{path.name} is not a readable ONNX file ({exc})") from exc


def emap_of(model: Any, name: str) -> np.ndarray:
    """The 512×512 ``emap`` matrix: the last initializer of the inswapper graph, as float32 (E07 if absent)."""
    from onnx import numpy_helper

    initializers = model.graph.initializer
    if not initializers:
        raise ModelError("E07", f"{name} has no initializers: not an inswapper model")
    emap = numpy_helper.to_array(initializers[-1])
    if emap.shape != (EMBEDDING, EMBEDDING):
        raise ModelError("E07", f"{name}: last initializer is {emap.shape}, not the 512×512 emap of inswapper_128")
    return np.ascontiguousarray(emap, dtype=np.float32)


def load_emap(path: Path) -> np.ndarray:
    """The emap of the inswapper file at ``path`` (see :func:`emap_of`)."""
    return emap_of(read_onnx(path), path.name)


def has_float16_weights(model: Any) -> bool:
    """True when the graph stores float16 initializers (an fp16 conversion)."""
    from onnx import TensorProto

    return any(init.data_type == TensorProto.FLOAT16 for init in model.graph.initializer)


def upcast_to_float32(model: Any) -> bytes:
    """The serialized model with every float16 initializer, constant, cast and tensor type made float32.

    The weights keep their float16-rounded values; only the arithmetic moves to
    float32. Used on ONNX Runtime, where the float16 inswapper graph is known to
    produce distorted or black faces since 1.17 (microsoft/onnxruntime#19437) and
    where the CPU provider has no fast float16 kernels anyway. ``model`` is changed in place.
    """
    from onnx import TensorProto, numpy_helper

    f16, f32 = TensorProto.FLOAT16, TensorProto.FLOAT

    def as_float32(tensor: Any) -> Any:
        return numpy_helper.from_array(numpy_helper.to_array(tensor).astype(np.float32), tensor.name)

    graph = model.graph
    for i, init in enumerate(graph.initializer):
        if init.data_type == f16:
            graph.initializer[i].CopyFrom(as_float32(init))
    for node in graph.node:
        for attr in node.attribute:
            if node.op_type == "Cast" and attr.name == "to" and attr.i == f16:
                attr.i = f32
            elif attr.HasField("t") and attr.t.data_type == f16:
                attr.t.CopyFrom(as_float32(attr.t))
    for value in (*graph.input, *graph.output, *graph.value_info):
        if value.type.tensor_type.elem_type == f16:
            value.type.tensor_type.elem_type = f32
    return bytes(model.SerializeToString())


def model_input(engine: Engine, name: str, shape: tuple[int, ...], model: str) -> TensorSpec:
    """The input called ``name`` (or the only one), checked against ``shape`` (dynamic axes pass)."""
    specs = [s for s in engine.inputs if s.name == name] or (engine.inputs if len(engine.inputs) == 1 else [])
    if not specs:
        raise ModelError("E07", f"{model}: no input named {name!r} (has {[s.name for s in engine.inputs]})")
    spec = specs[0]
    fixed = [(d, want) for d, want in zip(spec.shape, shape, strict=False) if isinstance(d, int)]
    if len(spec.shape) != len(shape) or any(d != want for d, want in fixed):
        raise ModelError("E07", f"{model}: input {spec.name} is {spec.shape}, expected {shape}")
    return spec


# ---------------------------------------------------------------- models


class ArcFace:
    """ArcFace (w600k_r50): an aligned 112×112 face → a 512-value identity embedding."""

    def __init__(self, *, engine: Engine) -> None:
        self.engine = engine
        self.input = model_input(engine, engine.inputs[0].name, (1, 3, ARCFACE_CROP, ARCFACE_CROP), "ArcFace")
        self.output = engine.outputs[0].name

    def embed(self, image: np.ndarray, keypoints: np.ndarray) -> np.ndarray:
        """The raw (not normalised) embedding of the face with these 5 keypoints in a BGR image."""
        crop, _ = align.align_crop(image, keypoints, ARCFACE_CROP)
        blob = arcface_blob(crop).astype(self.input.dtype, copy=False)
        values = np.asarray(self.engine.run({self.input.name: blob})[self.output], dtype=np.float32).reshape(-1)
        if values.size != EMBEDDING:
            raise ModelError("E07", f"ArcFace gave {values.size} values, expected {EMBEDDING}")
        return values


class Inswapper:
    """inswapper_128: aligned target crop + source latent → swapped crop. Handles fp16 and fp32 files.

    Inputs are cast to the dtypes the engine declares, so a file converted to
    float16 with float16 inputs works as well as one that kept float32 inputs.
    """

    def __init__(self, *, engine: Engine, emap: np.ndarray) -> None:
        if emap.shape != (EMBEDDING, EMBEDDING):
            raise ValueError(f"emap must be 512×512, got {emap.shape}")
        self.engine = engine
        self.emap = emap
        self.target = model_input(engine, "target", (1, 3, CROP, CROP), "inswapper")
        self.source = model_input(engine, "source", (1, EMBEDDING), "inswapper")
        self.output = engine.outputs[0].name

    @classmethod
    def from_file(cls, path: Path, *, engine: Engine) -> Inswapper:
        """The model on ``engine`` with the emap read from the same ``path``."""
        return cls(engine=engine, emap=load_emap(path))

    @classmethod
    def open(cls, path: Path, *, backend: str = "auto", device: str = "auto", threads: int = 1,
             upcast_fp16: bool = True) -> Inswapper:
        """Open ``path`` on the backend selection picks; a float16 file runs upcast to float32 on ONNX Runtime.

        TensorRT gets the file as it is (float16 is what it is fast at).
        """
        from realtime import models
        from realtime.engines.fallback import with_cpu_fallback
        from realtime.engines.probe import probe_availability
        from realtime.engines.selection import choose, open_engine

        model = read_onnx(path)
        emap = emap_of(model, path.name)
        name = path.name.removesuffix(".onnx")
        available = probe_availability()
        if upcast_fp16 and has_float16_weights(model):
            choice = choose(model_name=name, model_sha256=models.cached_sha256(path), available=available,
                            backend=backend, device=device)
            if choice.backend == "onnxruntime":
                log.info("%s; float16 weights upcast to float32 (ONNX Runtime's float16 run of this graph is "
                         "unreliable: onnxruntime#19437)", choice.summary())
                engine = _ort_engine(upcast_to_float32(model), list(choice.providers), threads, name, device)
                engine = with_cpu_fallback(engine, lambda: upcast_to_float32(read_onnx(path)), name=name,
                                           threads=threads)  # out of GPU memory mid-run: CPU (E20)
                return cls(engine=engine, emap=emap)
        del model
        engine = open_engine(path, backend=backend, device=device, threads=threads, available=available,
                             model_name=name)
        return cls(engine=engine, emap=emap)

    def run(self, target: np.ndarray, latent: np.ndarray) -> np.ndarray:
        """1×3×128×128 RGB [0, 1] target and 1×512 latent → 1×3×128×128 RGB [0, 1] (float32)."""
        feeds = {self.target.name: target.astype(self.target.dtype, copy=False),
                 self.source.name: latent.astype(self.source.dtype, copy=False)}
        return np.asarray(self.engine.run(feeds)[self.output], dtype=np.float32)

    def run_torch(self, target: Any, latent: Any) -> Any:
        """The same on torch tensors (engine with ``run_torch``; without one, through the host)."""
        import torch

        feeds = {self.target.name: target.to(_torch_dtype(self.target.dtype)).contiguous(),
                 self.source.name: latent.to(_torch_dtype(self.source.dtype)).contiguous()}
        if hasattr(self.engine, "run_torch"):
            out = self.engine.run_torch(feeds)[self.output]
        else:
            host = {k: v.cpu().numpy() for k, v in feeds.items()}
            out = torch.from_numpy(np.asarray(self.engine.run(host)[self.output])).to(target.device)
        return out.float()


def _ort_engine(model: bytes, providers: list[str], threads: int, name: str, device: str) -> Engine:
    """An ONNX Runtime engine from model bytes, refusing (``--device cuda``) or reporting a lost CUDA provider."""
    from realtime.engines.ort import CPU_PROVIDER, OrtEngine
    from realtime.errors import BackendError, warning_text

    engine = OrtEngine(model, providers=providers, intra_threads=threads)
    lost = [p for p in engine.lost_providers() if p != CPU_PROVIDER]
    if lost:
        detail = f"{name}: {', '.join(lost)} failed to load, running on {engine.provider}"
        if device == "cuda":
            raise BackendError("E19", detail)
        log.warning("%s", warning_text("E19", detail))
    return engine


def _torch_dtype(dtype: np.dtype) -> Any:
    import torch

    return torch.float16 if np.dtype(dtype) == np.float16 else torch.float32


# ---------------------------------------------------------------- the swapper


@dataclass(frozen=True)
class InswapperOptions:
    """How the swapped crop goes back into the frame; sizes are fractions of the 128 px crop or face."""

    color_correct: bool = True
    keep_mouth: bool = True
    crop_margin: float = 0.06  # of the crop, faded out at each crop edge
    crop_feather: float = 0.06  # blur of the crop-box mask (fraction of the crop)
    oval_erode: float = 0.03  # of the face size, for the face-oval mask (when landmarks exist)
    oval_feather: float = 0.04
    mouth_feather: float = 0.03


@dataclass(frozen=True)
class Placement:
    """Where a 128 crop goes in the frame: ROI (x0, y0, x1, y1) and crop → ROI transform."""

    x0: int
    y0: int
    x1: int
    y1: int
    to_roi: np.ndarray  # 2×3, crop pixels → ROI pixels


def placement(matrix: np.ndarray, width: int, height: int, size: int = CROP) -> Placement | None:
    """The frame region the crop of ``matrix`` (image → crop) covers, clipped to the frame; None if outside."""
    inverse = align.invert(matrix)
    corners = align.apply(inverse, np.array([[0, 0], [size, 0], [0, size], [size, size]], np.float64))
    x0, y0 = np.floor(corners.min(axis=0)).astype(int)
    x1, y1 = np.ceil(corners.max(axis=0)).astype(int) + 1
    x0, y0, x1, y1 = max(0, x0), max(0, y0), min(width, x1), min(height, y1)
    if x1 - x0 < 2 or y1 - y0 < 2:
        return None
    to_roi = inverse.copy()
    to_roi[:, 2] -= (x0, y0)
    return Placement(int(x0), int(y0), int(x1), int(y1), to_roi)


def crop_box_mask(size: int, *, margin: float, feather: float) -> np.ndarray:
    """uint8 size×size alpha: 255 inside, fading to 0 towards the crop edges (fractions of ``size``)."""
    mask = np.zeros((size, size), np.uint8)
    m = max(1, round(margin * size))
    mask[m:size - m, m:size - m] = 255
    blur = feather * size
    if blur < 1:
        return mask
    return np.asarray(cv2.GaussianBlur(mask, (blend.odd(2 * blur), blend.odd(2 * blur)), 0), np.uint8)


class InswapperSwapper:
    """The neural swapper (implements :class:`realtime.swappers.base.Swapper`)."""

    name = "inswapper"

    def __init__(self, *, swapper: Inswapper, arcface: ArcFace, options: InswapperOptions | None = None,
                 device_path: DevicePath | None = None) -> None:
        self.model = swapper
        self.arcface = arcface
        self.options = options or InswapperOptions()
        self.device_path = device_path
        self.latent: np.ndarray | None = None
        self.identity: np.ndarray | None = None
        self._box_mask = crop_box_mask(CROP, margin=self.options.crop_margin, feather=self.options.crop_feather)
        self._cache: dict[str, np.ndarray] = {}

    @classmethod
    def open(cls, *, root: Path | None = None, backend: str = "auto", device: str = "auto", threads: int = 1,
             color_correct: bool = True, keep_mouth: bool = True, upcast_fp16: bool = True) -> InswapperSwapper:
        """Open the fetched models from the models folder (E06 missing, E07 checksum mismatch).

        ``upcast_fp16``: run a float16 swapper file in float32 on ONNX Runtime (see :func:`upcast_to_float32`).
        """
        from realtime.engines.selection import open_engine

        swapper_path, arcface_path = neural_model_paths(root, device=device)
        arcface = ArcFace(engine=open_engine(arcface_path, backend=backend, device=device, threads=threads,
                                             model_name=ARCFACE))
        model = Inswapper.open(swapper_path, backend=backend, device=device, threads=threads, upcast_fp16=upcast_fp16)
        options = InswapperOptions(color_correct=color_correct, keep_mouth=keep_mouth)
        return cls(swapper=model, arcface=arcface, options=options,
                   device_path=DevicePath.create(model.engine, options))

    # -- source

    def prepare(self, source_image: np.ndarray, source_face: Face) -> None:
        """Compute the source latent from one photo and its analysed face."""
        self.prepare_many([(source_image, source_face)])

    def prepare_many(self, pairs: Sequence[tuple[np.ndarray, Face]]) -> None:
        """Compute the source latent from several photos of one person (embeddings averaged)."""
        if not pairs:
            raise ValueError("prepare_many needs at least one (image, face) pair")
        embeddings = [self.embedding(image, face) for image, face in pairs]
        self.identity = mean_identity(embeddings)
        self.latent = source_latent(self.identity, self.model.emap)

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
        with stage(frame, "align"):
            crop = align.warp(image, matrix, CROP, border=cv2.BORDER_REPLICATE)
        with stage(frame, "swap"):
            swapped = output_to_crop(self.model.run(target_blob(crop), self.latent))
        with stage(frame, "blend"):
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


@contextmanager
def stage(frame: Frame | None, name: str) -> Iterator[None]:
    """``frame.stage(name)`` when there is a frame, else nothing."""
    if frame is None:
        yield
    else:
        with frame.stage(name):
            yield


# ---------------------------------------------------------------- the GPU path


class DevicePath:
    """Crop → swap → paste with torch on the engine's device (C's ``realtime.gpu_ops``).

    Per face the frame region goes up once and comes back once; the crop, the
    model's input and output, the warp back, the colour correction and the
    blend stay on the device (the engine's ``run_torch`` takes and returns
    device tensors). Only the small uint8 alpha (computed with OpenCV from the
    landmarks) is uploaded besides. Runs on CPU tensors too, which is how the
    tests compare it with the NumPy/OpenCV path.
    """

    def __init__(self, *, device: Any, options: InswapperOptions) -> None:
        self.device = device
        self.options = options
        self._latent: tuple[int, Any] | None = None

    @classmethod
    def create(cls, engine: Engine, options: InswapperOptions) -> DevicePath | None:
        """A device path when ``engine`` runs on CUDA with a torch path and torch sees the GPU; else None."""
        if not hasattr(engine, "run_torch"):
            return None
        try:
            import torch
        except ImportError:
            return None
        if not torch.cuda.is_available():
            return None
        device = getattr(engine, "device", None)  # TensorRT engines name their torch device
        if isinstance(device, torch.device) and device.type == "cuda":
            return cls(device=device, options=options)
        if getattr(engine, "device_type", "cpu") == "cuda":
            return cls(device=torch.device("cuda", getattr(engine, "device_id", 0)), options=options)
        return None

    def swap(self, image: np.ndarray, matrix: np.ndarray, place: Placement, model: Inswapper,
             latent: np.ndarray, alpha: np.ndarray, frame: Frame | None) -> None:
        """Swap one face: ``image`` is edited in place inside ``place`` (the face region)."""
        import torch

        from realtime import gpu_ops

        w, h = place.x1 - place.x0, place.y1 - place.y0
        roi_host = image[place.y0:place.y1, place.x0:place.x1]
        with torch.inference_mode():
            with stage(frame, "align"):
                roi = gpu_ops.upload(roi_host, self.device)
                to_crop = matrix.copy()
                to_crop[:, 2] += matrix[:, :2] @ np.array([place.x0, place.y0], np.float64)
                target = gpu_ops.crop_align(roi, to_crop, (CROP, CROP), border="replicate")
            with stage(frame, "swap"):
                out = model.run_torch(target, self._latent_tensor(latent))
            with stage(frame, "blend"):
                bgr = (out.clamp(0, 1) * 255.0).round().flip(1)  # 1×3×128×128, BGR, whole levels like the CPU path
                warped = gpu_ops.warp_affine(bgr, place.to_roi, (w, h), border="replicate")[0]
                weight = gpu_ops.upload(alpha, self.device).to(torch.float32)[None] / 255.0
                region = roi.permute(2, 0, 1).to(torch.float32)
                if self.options.color_correct:
                    warped = match_colors_torch(warped, region, weight)
                blended = weight * warped + (1.0 - weight) * region
                result = blended.round().clamp(0, 255).to(torch.uint8).permute(1, 2, 0)
                roi_host[:] = gpu_ops.download(result)

    def _latent_tensor(self, latent: np.ndarray) -> Any:
        """The latent on the device, uploaded once per prepared source."""
        import torch

        if self._latent is None or self._latent[0] != id(latent):
            self._latent = (id(latent), torch.from_numpy(latent).to(self.device))
        return self._latent[1]


def match_colors_torch(src: Any, dst: Any, weight: Any) -> Any:
    """Torch twin of :func:`realtime.blend.match_colors`: move ``src``'s Lab mean/std to ``dst``'s.

    ``src``, ``dst``: 3×h×w BGR float in 0..255; ``weight``: 1×h×w in 0..1 (statistics
    where it is above one half). Same gain cap as the NumPy path.
    """
    import torch

    from realtime import gpu_ops

    inside = weight[0] > 0.5
    if int(inside.sum()) < 2:
        return src
    src_lab = gpu_ops.bgr_to_lab(src.permute(1, 2, 0) / 255.0)
    dst_lab = gpu_ops.bgr_to_lab(dst.permute(1, 2, 0) / 255.0)
    s, d = src_lab[inside], dst_lab[inside]
    floor = torch.tensor([blend.MIN_STD * 100 / 255, blend.MIN_STD, blend.MIN_STD], device=src.device)
    gain = (torch.maximum(d.std(dim=0, unbiased=False), floor)
            / torch.maximum(s.std(dim=0, unbiased=False), floor)).clamp(blend.MIN_GAIN, blend.MAX_GAIN)
    moved = (src_lab - s.mean(dim=0)) * gain + d.mean(dim=0)
    return (gpu_ops.lab_to_bgr(moved) * 255.0).permute(2, 0, 1)


# ---------------------------------------------------------------- model files


def neural_model_paths(root: Path | None = None, *, device: str = "auto") -> tuple[Path, Path]:
    """(swapper file, ArcFace file), checked against their pinned sha256 (E06 missing, E07 mismatch).

    The pinned fp16 swapper is preferred; the original float32 ``inswapper_128.onnx``
    (not pinned, put there by hand) is used when the fp16 one is absent, or on
    CPU when both are there (float16 graphs run slower on CPU).
    """
    from realtime import models

    root = models.models_dir() if root is None else root
    if not neural_models_present(root):
        raise ModelError("E06", f"neural models not present in {root} (need {_entry_file(root, SWAPPER_FP16).name} "
                                f"and {_entry_file(root, ARCFACE).name})", remedy="run `swapcam models fetch --neural`")
    fp32 = root / SWAPPER_FP32_FILE
    arcface = models.model_path(ARCFACE, root=root)
    if fp32.is_file() and (device == "cpu" or not _entry_file(root, SWAPPER_FP16).is_file()):
        log.info("using %s (float32, not checksum-pinned: supplied by hand)", fp32)
        return fp32, arcface
    return models.model_path(SWAPPER_FP16, root=root), arcface


def _entry_file(root: Path, name: str) -> Path:
    from realtime import models

    return root / models.load_manifest()["neural"][name]["file"]


def neural_models_present(root: Path | None = None) -> bool:
    """True when the swapper (fp16 or fp32) and ArcFace files are in the models folder (no hashing)."""
    from realtime import models

    root = models.models_dir() if root is None else root
    try:
        swapper = _entry_file(root, SWAPPER_FP16).is_file() or (root / SWAPPER_FP32_FILE).is_file()
        return swapper and _entry_file(root, ARCFACE).is_file()
    except (KeyError, ModelError):
        return False
