"""The photo loader: formats, orientation, modes, sizes and every kind of bad file."""

from __future__ import annotations

import io
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from realtime import images
from realtime.errors import InputError
from realtime.images import load_image


def _gradient(width: int = 96, height: int = 64) -> np.ndarray:
    """An RGB image whose every pixel differs, so orientation and channel order are visible."""
    ys, xs = np.mgrid[0:height, 0:width]
    return np.stack([xs * 255 // width, ys * 255 // height, np.full_like(xs, 40)], axis=2).astype(np.uint8)


@pytest.mark.parametrize("suffix", [".jpg", ".png", ".webp", ".bmp", ".tiff", ".heic", ".avif"])
def test_formats_load_as_bgr(tmp_path: Path, suffix: str) -> None:
    rgb = _gradient()
    path = tmp_path / f"photo{suffix}"
    if suffix in (".heic", ".avif"):
        import pillow_heif

        pillow_heif.register_heif_opener()
    Image.fromarray(rgb).save(path, quality=95)
    bgr = load_image(path)
    assert bgr.shape == rgb.shape and bgr.dtype == np.uint8
    error = np.abs(bgr[:, :, ::-1].astype(int) - rgb).mean()
    assert error == 0 if suffix in (".png", ".bmp", ".tiff") else error < 8
    # The red channel ramps left to right: BGR order puts it last.
    assert bgr[:, -1, 2].mean() > bgr[:, 0, 2].mean() + 100


def test_exif_orientation_is_applied(tmp_path: Path) -> None:
    rgb = _gradient(96, 64)
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90° clockwise to display
    path = tmp_path / "rotated.jpg"
    Image.fromarray(rgb).save(path, exif=exif, quality=95)
    bgr = load_image(path)
    assert bgr.shape[:2] == (96, 64)  # upright: width and height swapped


@pytest.mark.parametrize("mode", ["L", "RGBA", "LA", "P", "I;16", "CMYK", "1"])
def test_modes_become_bgr(tmp_path: Path, mode: str) -> None:
    image = Image.fromarray(_gradient()).convert(mode if mode != "I;16" else "L")
    if mode == "I;16":
        image = Image.fromarray(np.asarray(image).astype(np.uint16) * 257)
    path = tmp_path / ("photo.tiff" if mode in ("CMYK", "I;16") else "photo.png")
    image.save(path)
    bgr = load_image(path)
    assert bgr.shape == (64, 96, 3) and bgr.dtype == np.uint8
    assert bgr.std() > 10  # content survived the conversion


def test_huge_photo_is_downscaled(tmp_path: Path) -> None:
    path = tmp_path / "big.jpg"
    Image.fromarray(np.zeros((3000, 5000, 3), np.uint8)).save(path)
    bgr = load_image(path, max_side=1024)
    assert max(bgr.shape[:2]) == 1024


def _png_header_only(width: int, height: int) -> bytes:
    """A PNG that declares a size but carries no pixels: the size check must fire before decoding."""
    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"")) + chunk(b"IEND", b"")


@pytest.mark.parametrize(
    ("name", "content", "needle"),
    [
        ("empty.jpg", b"", "empty"),
        ("notes.jpg", b"these are my notes, not a photo\n" * 20, "not an image"),
        ("random.png", bytes(np.random.default_rng(1).integers(0, 256, 4096, dtype=np.uint8)), "not an image"),
        ("huge.png", _png_header_only(20000, 20000), "too large"),
    ],
)
def test_bad_files_give_e03(tmp_path: Path, name: str, content: bytes, needle: str) -> None:
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(InputError) as info:
        load_image(path)
    assert info.value.code == "E03" and needle in str(info.value)


def test_missing_file_gives_e03(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="no such file") as info:
        load_image(tmp_path / "nope.jpg")
    assert info.value.code == "E03"


def test_truncated_jpeg_gives_e03(tmp_path: Path) -> None:
    buffer = io.BytesIO()
    Image.fromarray(_gradient(400, 300)).save(buffer, format="JPEG")
    path = tmp_path / "cut.jpg"
    path.write_bytes(buffer.getvalue()[: len(buffer.getvalue()) // 3])
    with pytest.raises(InputError) as info:
        load_image(path)
    assert info.value.code == "E03"


def test_tiny_image_gives_e03(tmp_path: Path) -> None:
    path = tmp_path / "dot.png"
    Image.new("RGB", (1, 1)).save(path)
    with pytest.raises(InputError, match="too small") as info:
        load_image(path)
    assert info.value.code == "E03"


def test_heic_without_plugin_gives_e04(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import pillow_heif

    pillow_heif.register_heif_opener()
    path = tmp_path / "phone.heic"
    Image.fromarray(_gradient()).save(path)
    # A fresh Pillow registry without the HEIF opener, as on a machine without pillow-heif.
    monkeypatch.setattr(images, "_register_plugins", lambda: False)
    monkeypatch.setattr(Image, "OPEN", {k: v for k, v in Image.OPEN.items() if "HEIF" not in k.upper()})
    monkeypatch.setattr(Image, "ID", [k for k in Image.ID if "HEIF" not in k.upper()])
    with pytest.raises(InputError) as info:
        load_image(path)
    assert info.value.code == "E04"


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.binary(min_size=1, max_size=2048), prefix=st.sampled_from(
    [b"", b"\xff\xd8\xff\xe0", b"\x89PNG\r\n\x1a\n", b"RIFF\x00\x00\x00\x00WEBP", b"BM", b"II*\x00"]))
def test_fuzz_loader_only_raises_coded_errors(tmp_path: Path, data: bytes, prefix: bytes) -> None:
    path = tmp_path / "fuzz.img"
    path.write_bytes(prefix + data)
    try:
        image = load_image(path)
    except InputError as exc:
        assert exc.code in ("E03", "E04")
    else:
        assert image.ndim == 3 and image.shape[2] == 3 and image.dtype == np.uint8


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(cut=st.integers(min_value=1, max_value=2000), flips=st.lists(st.integers(0, 1999), max_size=8))
def test_fuzz_mutated_real_jpeg(tmp_path: Path, cut: int, flips: list[int]) -> None:
    buffer = io.BytesIO()
    Image.fromarray(_gradient(64, 48)).save(buffer, format="JPEG")
    raw = bytearray(buffer.getvalue()[: max(cut, 4)])
    for index in flips:
        if index < len(raw):
            raw[index] ^= 0xFF
    path = tmp_path / "mutant.jpg"
    path.write_bytes(bytes(raw))
    try:
        image = load_image(path)
    except InputError as exc:
        assert exc.code == "E03"
    else:
        assert image.shape[2] == 3
