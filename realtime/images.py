"""Loading user photos: many formats, EXIF orientation, odd modes, huge sizes."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from realtime.errors import InputError

MAX_SIDE = 2048  # bigger photos are downscaled: detection needs no more, memory stays small
MAX_PIXELS = 100_000_000  # refuse decompression bombs before decoding (a 100 MP photo is already rare)
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
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # we check the size ourselves
            with Image.open(path) as opened:
                _check_pixels(path, opened.size)
                # JPEG decodes at 1/2, 1/4 or 1/8 scale for free: huge photos load fast and small.
                opened.draft("RGB", (max_side, max_side))
                image = _to_rgb(ImageOps.exif_transpose(opened) or opened, max_side)
    except InputError:
        raise
    except UnidentifiedImageError as exc:
        if path.suffix.lower() in _HEIF_SUFFIXES and not has_heif:
            raise InputError("E04", f"{path}: HEIC/AVIF needs pillow-heif") from exc
        raise InputError("E03", f"{path}: not an image Pillow can read") from exc
    except Image.DecompressionBombError as exc:
        raise _too_large(path) from exc
    except PermissionError as exc:
        raise InputError("E03", f"{path}: permission denied",
                         remedy="make the file readable (chmod +r) or copy it somewhere you can read") from exc
    except Exception as exc:  # any decoder failure on untrusted bytes means the same to the user
        raise InputError("E03", f"{path}: truncated or corrupt ({type(exc).__name__}: {exc})") from exc
    if min(image.shape[:2]) < MIN_SIDE:
        raise InputError("E03", f"{path}: {image.shape[1]}x{image.shape[0]} is too small",
                         remedy="use a photo at least 128 px on each side with the face clearly visible")
    return image


def _too_large(path: Path) -> InputError:
    return InputError("E03", f"{path}: image too large",
                      remedy=f"use a photo under {MAX_PIXELS // 1_000_000} megapixels")


def _check_pixels(path: Path, size: tuple[int, int]) -> None:
    if size[0] * size[1] > MAX_PIXELS:
        raise _too_large(path)


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
