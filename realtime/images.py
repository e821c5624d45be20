"""Loading user photos: many formats, EXIF orientation, odd modes, huge sizes."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from realtime.errors import InputError

MAX_SIDE = 2048  # bigger photos are downscaled: detection needs no more, memory stays small
MAX_PIXELS = 400_000_000  # refuse decompression bombs before decoding
MIN_SIDE = 16

_HEIF_SUFFIXES = {".heic", ".heif", ".avif"}


def _register_plugins() -> bool:
    """Register HEIC/AVIF support if pillow-heif is installed; True when it is."""
    try:
        import pillow_heif
    except ImportError:
        return False
    pillow_heif.register_heif_opener()
    if hasattr(pillow_heif, "register_avif_opener"):
        pillow_heif.register_avif_opener()
    return True


def load_image(path: str | Path, *, max_side: int = MAX_SIDE) -> np.ndarray:
    """Read a photo as an H×W×3 uint8 BGR array, upright and at most ``max_side`` px.

    Raises InputError E03 (unreadable) or E04 (format plugin missing).
    """
    path = Path(path)
    if not path.is_file():
        raise InputError("E03", f"{path}: no such file")
    if path.stat().st_size == 0:
        raise InputError("E03", f"{path}: the file is empty")
    has_heif = _register_plugins()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            Image.MAX_IMAGE_PIXELS = MAX_PIXELS
            with Image.open(path) as opened:
                image = _to_rgb(ImageOps.exif_transpose(opened) or opened, max_side)
    except UnidentifiedImageError as exc:
        if path.suffix.lower() in _HEIF_SUFFIXES and not has_heif:
            raise InputError("E04", f"{path}: HEIC/AVIF needs pillow-heif") from exc
        raise InputError("E03", f"{path}: not an image Pillow can read") from exc
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise InputError("E03", f"{path}: image too large ({exc})",
                         remedy="use a photo under 400 megapixels") from exc
    except (OSError, ValueError, SyntaxError, EOFError) as exc:
        raise InputError("E03", f"{path}: truncated or corrupt ({exc})") from exc
    if min(image.shape[:2]) < MIN_SIDE:
        raise InputError("E03", f"{path}: {image.shape[1]}x{image.shape[0]} is too small",
                         remedy="use a photo at least 128 px on each side with the face clearly visible")
    return image


def _to_rgb(image: Image.Image, max_side: int) -> np.ndarray:
    """Any Pillow mode → BGR uint8, downscaled to ``max_side``."""
    if image.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        array = np.asarray(image, dtype=np.float64)
        peak = array.max() or 1.0
        image = Image.fromarray((array * (255.0 / peak)).clip(0, 255).astype(np.uint8))
    if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        image = Image.alpha_composite(background, rgba)
    image = image.convert("RGB")
    if max(image.size) > max_side:
        image.thumbnail((max_side, max_side), Image.Resampling.LANCZOS)
    rgb = np.asarray(image, dtype=np.uint8)
    return np.ascontiguousarray(rgb[:, :, ::-1])
