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

The package, by concern: ``preprocess`` (blobs, embeddings: plain functions),
``graph`` (the emap, input checks), ``models`` (ArcFace, Inswapper), ``paste``
(placement and masks), ``swapper`` (InswapperSwapper), ``device`` (the torch
path), ``files`` (the model files).

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

from realtime.engines.onnx_graph import has_float16_weights, read_onnx, upcast_to_float32
from realtime.frame import maybe_stage as stage
from realtime.swappers.inswapper.device import DevicePath, match_colors_torch
from realtime.swappers.inswapper.files import (
    ARCFACE,
    SWAPPER_FP16,
    SWAPPER_FP32_FILE,
    neural_model_paths,
    neural_models_present,
)
from realtime.swappers.inswapper.graph import emap_of, load_emap, model_input
from realtime.swappers.inswapper.models import ArcFace, Inswapper
from realtime.swappers.inswapper.paste import InswapperOptions, Placement, crop_box_mask, placement
from realtime.swappers.inswapper.preprocess import (
    ARCFACE_CROP,
    CROP,
    EMBEDDING,
    arcface_blob,
    l2_normalize,
    mean_identity,
    output_to_crop,
    source_latent,
    target_blob,
)
from realtime.swappers.inswapper.swapper import MIN_FACE_PX, InswapperSwapper

__all__ = [
    "ARCFACE", "ARCFACE_CROP", "CROP", "EMBEDDING", "MIN_FACE_PX", "SWAPPER_FP16", "SWAPPER_FP32_FILE",
    "ArcFace", "DevicePath", "Inswapper", "InswapperOptions", "InswapperSwapper", "Placement", "arcface_blob",
    "crop_box_mask", "emap_of", "has_float16_weights", "l2_normalize", "load_emap", "match_colors_torch",
    "mean_identity", "model_input", "neural_model_paths", "neural_models_present", "output_to_crop",
    "placement", "read_onnx", "source_latent", "stage", "target_blob", "upcast_to_float32",
]
