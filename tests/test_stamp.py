"""The sequence stamp survives a round trip, JPEG and H.264."""

from __future__ import annotations

import io
from fractions import Fraction

import av
import cv2
import numpy as np
import pytest

from realtime.sources.synthetic import SyntheticSource
from realtime.stamp import STAMP_HEIGHT, STAMP_WIDTH, draw_stamp, read_stamp

SEQUENCES = [0, 1, 2, 255, 256, 65_535, 1_000_003, 2**24 - 1]


def _noise(seed: int, height: int = 120, width: int = 160) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)


@pytest.mark.parametrize("seq", SEQUENCES)
def test_round_trip(seq: int) -> None:
    image = _noise(seq % 97)
    draw_stamp(image, seq)
    assert read_stamp(image) == seq


def test_sequence_wraps_at_24_bits() -> None:
    image = _noise(1)
    draw_stamp(image, 2**24 + 5)
    assert read_stamp(image) == 5


def test_unstamped_corner_reads_none() -> None:
    misses = sum(read_stamp(_noise(seed)) is not None for seed in range(200))
    assert misses <= 2  # an 8-bit check: a random corner passes about 1 time in 256
    assert read_stamp(np.zeros((120, 160, 3), np.uint8)) is None
    assert read_stamp(np.full((120, 160, 3), 255, np.uint8)) is None


def test_a_damaged_stamp_is_rejected() -> None:
    image = _noise(3)
    draw_stamp(image, 123_456)
    image[:12, :12] = 255 - image[:12, :12]  # flip one cell
    assert read_stamp(image) != 123_456


def test_small_images_are_left_alone() -> None:
    image = np.zeros((STAMP_HEIGHT - 2, STAMP_WIDTH + 10, 3), np.uint8)
    draw_stamp(image, 7)
    assert not image.any()
    assert read_stamp(image) is None


@pytest.mark.parametrize("quality", [50, 80, 95])
def test_survives_jpeg(quality: int) -> None:
    source = SyntheticSource(width=640, height=360, fps=30, paced=False)
    for _ in range(5):
        frame = source.read()
        ok, data = cv2.imencode(".jpg", frame, [cv2.IMWRITE_JPEG_QUALITY, quality])
        assert ok
        decoded = cv2.imdecode(data, cv2.IMREAD_COLOR)
        assert read_stamp(decoded) == read_stamp(frame)


def test_survives_h264_at_streaming_bitrate() -> None:
    """libx264 at 1 Mbit/s for 640×360 (what the stream sink would use): every stamp reads back."""
    width, height, count = 640, 360, 45
    source = SyntheticSource(width=width, height=height, fps=30, paced=False)
    buffer = io.BytesIO()
    with av.open(buffer, mode="w", format="mpegts") as container:
        stream = container.add_stream("libx264", rate=Fraction(30))
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.codec_context.bit_rate = 1_000_000
        stream.codec_context.options = {"preset": "ultrafast", "tune": "zerolatency"}
        for _ in range(count):
            container.mux(stream.encode(av.VideoFrame.from_ndarray(source.read(), format="bgr24")))
        container.mux(stream.encode(None))
    buffer.seek(0)
    with av.open(buffer, mode="r", format="mpegts") as container:
        stamps = [read_stamp(f.to_ndarray(format="bgr24")) for f in container.decode(video=0)]
    assert stamps == list(range(count))
