"""Fuzzing the frame decoding path: random and mutated video files read to the end, and the stamp decoder.

A video file is untrusted input: whatever its bytes, VideoSource must either refuse it with E12 or give
frames of the size it announced until a clean EndOfStream — never another exception, never a hang (each
case runs in a thread with a time limit, so even a hang inside FFmpeg fails the test instead of blocking it).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from runtime_media import write_stamped_video

from realtime.errors import InputError
from realtime.sources.base import EndOfStream
from realtime.sources.video import VideoSource
from realtime.stamp import STAMP_HEIGHT, STAMP_WIDTH, draw_stamp, read_stamp

CASE_LIMIT_S = 10.0  # a generous bound per case on a loaded 2-core machine; cases take milliseconds
MAX_FRAMES = 5000  # the clips hold 12 frames: a mutant decoding into thousands would be a runaway
def fuzz(examples: int) -> settings:
    """``examples`` cases, no per-case deadline (``bounded`` limits each case), fixtures shared across cases."""
    return settings(max_examples=examples, deadline=None,
                    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])

# Container signatures, so random bytes get past the format probe and reach the demuxers and decoders.
MAGIC = [
    b"",
    b"\x00\x00\x00\x18ftypisom\x00\x00\x02\x00isomiso2avc1mp41",  # MP4
    b"\x1aE\xdf\xa3\x9fB\x86\x81\x01B\xf7\x81\x01B\xf2\x81\x04B\xf3\x81\x08B\x82\x84webm",  # Matroska/WebM
    b"RIFF\x00\x10\x00\x00AVI LIST",  # AVI
    b"\x47\x40\x00\x10\x00",  # MPEG-TS
    b"FLV\x01\x05\x00\x00\x00\x09",  # FLV
    b"\x00\x00\x00\x01\x67\x42\xc0\x1e",  # raw H.264 (SPS)
]


def decode_all(path: Path) -> str:
    """Open and read ``path`` to the end; how it ended ("refused E12", "ended after N frames")."""
    try:
        source = VideoSource(str(path), loop=False, realtime=False, network=False)
    except InputError as exc:
        assert exc.code == "E12", exc.message()
        return "refused E12"
    try:
        for count in range(MAX_FRAMES):
            try:
                image = source.read()
            except EndOfStream:
                return f"ended after {count} frames"
            assert image.dtype == np.uint8 and image.shape == (source.height, source.width, 3)
        raise AssertionError(f"more than {MAX_FRAMES} frames from a {path.stat().st_size}-byte file")
    finally:
        source.close()


def bounded(action: Callable[[], str], what: str) -> str:
    """Run ``action`` in a thread; fail on any exception it raises, or when it is still running after the limit."""
    outcome: list[str] = []
    errors: list[BaseException] = []

    def target() -> None:
        try:
            outcome.append(action())
        except BaseException as exc:
            errors.append(exc)

    worker = threading.Thread(target=target, name="fuzz-case", daemon=True)
    worker.start()
    worker.join(CASE_LIMIT_S)
    if worker.is_alive():
        pytest.fail(f"decoding {what} did not finish within {CASE_LIMIT_S:g} s (hang)")
    if errors:
        raise errors[0]
    return outcome[0]


@pytest.fixture(scope="session")
def real_clips(tmp_path_factory: pytest.TempPathFactory) -> dict[str, bytes]:
    """Tiny real clips (H.264 in MP4 and in Matroska, 12 frames, a key frame every 4), rendered once."""
    folder = tmp_path_factory.mktemp("fuzz_clips")
    clips = {}
    for suffix in (".mp4", ".mkv"):
        path = write_stamped_video(folder / f"clip{suffix}", frames=12, width=128, height=96, gop=4)
        clips[suffix] = path.read_bytes()
    return clips


def test_the_unmutated_clips_decode_completely(tmp_path: Path, real_clips: dict[str, bytes]) -> None:
    for suffix, data in real_clips.items():
        path = tmp_path / f"clip{suffix}"
        path.write_bytes(data)
        assert bounded(lambda path=path: decode_all(path), suffix) == "ended after 12 frames"


@fuzz(100)
@given(data=st.data(), body=st.binary(min_size=0, max_size=4096),
       suffix=st.sampled_from([".mp4", ".mkv", ".avi", ".ts", ".bin"]))
def test_random_bytes_are_refused_or_end_cleanly(tmp_path: Path, real_clips: dict[str, bytes], data: st.DataObject,
                                                 body: bytes, suffix: str) -> None:
    """Random bytes after a container signature, or after the real header of a clip (its first bytes)."""
    heads = [clip[:size] for clip in real_clips.values() for size in (64, 700, 2000)]
    prefix = data.draw(st.sampled_from(MAGIC + heads))
    path = tmp_path / f"random{suffix}"
    path.write_bytes(prefix + body)
    event(bounded(lambda: decode_all(path), f"{len(prefix + body)} random bytes"))


@st.composite
def mutants(draw: st.DrawFn, clips: dict[str, bytes]) -> tuple[str, bytes]:
    """A real clip cut short, with bytes flipped, garbage inserted or a piece repeated."""
    suffix = draw(st.sampled_from(sorted(clips)))
    data = bytearray(clips[suffix])
    operations = draw(st.lists(st.sampled_from(["cut", "flip", "insert", "repeat", "zero"]), min_size=1, max_size=4))
    for operation in operations:
        if not data:
            break
        at = draw(st.integers(0, len(data) - 1))
        if operation == "cut":
            del data[at:]
        elif operation == "flip":
            data[at] ^= draw(st.integers(1, 255))
        elif operation == "insert":
            data[at:at] = draw(st.binary(min_size=1, max_size=64))
        elif operation == "repeat":
            data[at:at] = data[at:at + draw(st.integers(1, 512))]
        else:
            data[at:at + draw(st.integers(1, 256))] = b""
    return suffix, bytes(data)


@fuzz(150)
@given(data=st.data())
def test_mutated_real_videos_are_refused_or_end_cleanly(tmp_path: Path, real_clips: dict[str, bytes],
                                                        data: st.DataObject) -> None:
    suffix, content = data.draw(mutants(real_clips))
    path = tmp_path / f"mutant{suffix}"
    path.write_bytes(content)
    outcome = bounded(lambda: decode_all(path), f"a mutated {suffix} of {len(content)} bytes")
    event(outcome if outcome == "refused E12" else "ended after some frames")


# ---------------------------------------------------------------- the stamp decoder

IMAGE_SHAPES = st.one_of(
    hnp.array_shapes(min_dims=2, max_dims=2, min_side=1, max_side=120),  # greyscale
    st.tuples(st.integers(1, 120), st.integers(1, 160), st.sampled_from([1, 3, 4])),
)


@fuzz(100)
@given(image=hnp.arrays(np.uint8, IMAGE_SHAPES, elements=st.integers(0, 255)))
def test_stamp_decoder_on_random_images(image: np.ndarray) -> None:
    value = read_stamp(image)
    assert value is None or 0 <= value < 2**24
    if image.shape[0] < STAMP_HEIGHT or image.shape[1] < STAMP_WIDTH:
        assert value is None


@fuzz(50)
@given(seq=st.integers(0, 2**24 - 1), background=hnp.arrays(np.uint8, (60, 110, 3), elements=st.integers(0, 255)))
def test_stamp_round_trip_over_any_background(seq: int, background: np.ndarray) -> None:
    image = background.copy()
    draw_stamp(image, seq)
    assert read_stamp(image) == seq
    assert np.array_equal(image[STAMP_HEIGHT:], background[STAMP_HEIGHT:])  # only the corner is drawn on


def test_video_stream_without_a_decoder_is_e12(tmp_path: Path, real_clips: dict[str, bytes]) -> None:
    """Found by the mutation fuzzing: a damaged codec id leaves the stream without a decoder (PyAV gives it no
    codec context), which used to end in an AttributeError."""
    path = tmp_path / "unknown_codec.mkv"
    assert real_clips[".mkv"].count(b"V_MPEG4/ISO/AVC") == 1
    path.write_bytes(real_clips[".mkv"].replace(b"V_MPEG4/ISO/AVC", b"V_MPEG4/ISO/XYZ"))
    with pytest.raises(InputError, match="no decoder") as info:
        VideoSource(str(path), loop=False, realtime=False, network=False)
    assert info.value.code == "E12"
