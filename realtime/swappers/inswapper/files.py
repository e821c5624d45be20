"""The neural model files in the models folder (checked against their pinned sha256)."""

from __future__ import annotations

import logging
from pathlib import Path

from realtime.errors import ModelError

log = logging.getLogger(__name__)

SWAPPER_FP16 = "inswapper_128_fp16"  # manifest name of the pinned swapper file
SWAPPER_FP32_FILE = "inswapper_128.onnx"  # the original float32 file, if the user put it there by hand
ARCFACE = "arcface_w600k_r50"


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
