"""Sources: synthetic, image, video file (paced, offline, loop, damaged), network URL, camera."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import av
import cv2
import numpy as np
import pytest
from runtime_media import free_udp_port, write_stamped_video

from realtime.config import SourceConfig
from realtime.errors import InputError
from realtime.frame import Frame
from realtime.sinks.stream import StreamSink
from realtime.sources.base import EndOfStream, SignalLost
from realtime.sources.camera import CameraSource
from realtime.sources.factory import open_source
from realtime.sources.image import ImageSource
from realtime.sources.synthetic import SyntheticSource
from realtime.sources.video import VideoSource
from realtime.stamp import read_stamp


def drain(source: VideoSource, limit: int = 10_000) -> tuple[list[int | None], list[float]]:
    """Stamps and read-return times until EndOfStream."""
    stamps: list[int | None] = []
    times: list[float] = []
    for _ in range(limit):
        try:
            image = source.read()
        except EndOfStream:
            break
        times.append(time.perf_counter())
        stamps.append(read_stamp(image))
    return stamps, times


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """30 stamped frames at 30 fps (one second)."""
    return write_stamped_video(tmp_path_factory.mktemp("clip") / "clip.mp4", frames=30)


# -- synthetic and image ------------------------------------------------------------------


def test_synthetic_is_paced_moving_and_stamped() -> None:
    source = SyntheticSource(width=320, height=240, fps=30)
    start = time.perf_counter()
    frames = [source.read() for _ in range(16)]
    elapsed = time.perf_counter() - start
    assert 0.4 <= elapsed <= 1.0  # 15 intervals of 33 ms
    assert all(f.shape == (240, 320, 3) and f.dtype == np.uint8 for f in frames)
    assert [read_stamp(f) for f in frames] == list(range(16))
    assert np.abs(frames[1][60:].astype(int) - frames[0][60:]).mean() > 1  # the content moves


def test_synthetic_is_cheap_at_1080p() -> None:
    source = SyntheticSource(width=1920, height=1080, fps=60, paced=False)
    start = time.perf_counter()
    for _ in range(30):
        source.read()
    assert (time.perf_counter() - start) / 30 < 1 / 60  # faster than 60 fps on one core


def test_image_source_letterboxes_and_repeats(tmp_path: Path) -> None:
    photo = tmp_path / "still.png"
    cv2.imwrite(str(photo), np.full((300, 200, 3), (10, 200, 30), np.uint8))
    source = ImageSource(str(photo), width=320, height=240, fps=30)
    first, second = source.read(), source.read()
    assert first.shape == (240, 320, 3)
    assert first is not second and np.array_equal(first, second)
    assert tuple(first[120, 160]) == (10, 200, 30) and not first[120, 5].any()  # bars left and right


def test_image_source_unreadable_photo_is_e03(tmp_path: Path) -> None:
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"not a jpeg at all")
    with pytest.raises(InputError) as info:
        ImageSource(str(bad), width=320, height=240, fps=30)
    assert info.value.code == "E03"


# -- video files --------------------------------------------------------------------------


def test_offline_file_gives_every_frame_fast(clip: Path) -> None:
    source = VideoSource(str(clip), loop=False, realtime=False, network=False)
    assert (source.width, source.height, source.fps, source.live) == (320, 240, 30.0, False)
    start = time.perf_counter()
    stamps, _ = drain(source)
    assert stamps == list(range(30))
    assert time.perf_counter() - start < 0.8  # well under the clip's one second
    source.close()


def test_paced_file_follows_its_timestamps(clip: Path) -> None:
    source = VideoSource(str(clip), loop=False, realtime=True, network=False)
    assert source.live
    stamps, times = drain(source)
    assert stamps == list(range(30))
    gaps = np.diff(times)
    assert 0.85 <= times[-1] - times[0] <= 1.3  # 29 intervals of 33.3 ms
    assert np.median(gaps) == pytest.approx(1 / 30, abs=0.006)
    source.close()


def test_loop_restarts_with_continuous_pacing(clip: Path) -> None:
    source = VideoSource(str(clip), loop=True, realtime=True, network=False)
    stamps, times = drain(source, limit=75)
    assert stamps == [i % 30 for i in range(75)]
    gaps = np.diff(times)
    wraps = [gaps[29], gaps[59]]  # from the last frame of a pass to the first of the next
    assert all(0.015 < gap < 0.07 for gap in wraps), wraps  # one interval: no pause, no burst
    source.close()


def test_offline_loop_plays_the_file_again(clip: Path) -> None:
    source = VideoSource(str(clip), loop=True, realtime=False, network=False)
    stamps, _ = drain(source, limit=65)
    assert stamps == [i % 30 for i in range(65)]
    source.close()


def test_odd_sized_video_is_cropped_to_even(tmp_path: Path) -> None:
    """Encoders downstream need even sizes: a 321×241 video comes out as 320×240."""
    path = tmp_path / "odd.mkv"
    with av.open(str(path), mode="w") as container:
        stream = container.add_stream("ffv1", rate=30)  # lossless 4:4:4 allows odd sizes (H.264 4:2:0 does not)
        stream.width, stream.height, stream.pix_fmt = 321, 241, "yuv444p"
        for value in (0, 100, 200):
            image = np.full((241, 321, 3), value, np.uint8)
            container.mux(stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")))
        container.mux(stream.encode(None))
    source = VideoSource(str(path), loop=False, realtime=False, network=False)
    assert (source.width, source.height) == (320, 240)
    frames = [source.read() for _ in range(3)]
    assert [f.shape for f in frames] == [(240, 320, 3)] * 3
    assert [int(f[10, 10, 0]) for f in frames] == [0, 100, 200]
    source.close()


@pytest.mark.parametrize("content", [b"", b"\x00garbage" * 500])
def test_garbage_file_is_e12(tmp_path: Path, content: bytes) -> None:
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(content)
    with pytest.raises(InputError) as info:
        VideoSource(str(bad), loop=False, realtime=False, network=False)
    assert info.value.code == "E12"


def test_missing_file_is_e12(tmp_path: Path) -> None:
    with pytest.raises(InputError) as info:
        VideoSource(str(tmp_path / "nope.mp4"), loop=False, realtime=False, network=False)
    assert info.value.code == "E12"


def test_truncated_mp4_is_e12(tmp_path: Path, clip: Path) -> None:
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(clip.read_bytes()[: clip.stat().st_size // 2])  # the index (moov) is at the end
    with pytest.raises(InputError) as info:
        VideoSource(str(cut), loop=False, realtime=False, network=False)
    assert info.value.code == "E12"


def test_damaged_tail_ends_the_stream_cleanly(tmp_path: Path) -> None:
    """An MKV cut in the middle: the frames before the cut come out intact, then EndOfStream."""
    full = write_stamped_video(tmp_path / "full.mkv", frames=60, gop=10)
    cut = tmp_path / "cut.mkv"
    data = full.read_bytes()
    cut.write_bytes(data[: len(data) * 6 // 10] + b"\xff\x00" * 3000)
    source = VideoSource(str(cut), loop=False, realtime=False, network=False)
    stamps, _ = drain(source)
    valid = [s for s in stamps if s is not None]
    assert 10 <= len(stamps) < 60
    assert valid == list(range(len(valid))) and len(valid) >= len(stamps) - 2
    source.close()


# -- network ------------------------------------------------------------------------------


def test_unreachable_udp_url_is_e13_within_the_timeout() -> None:
    start = time.perf_counter()
    with pytest.raises(InputError) as info:
        VideoSource(f"udp://127.0.0.1:{free_udp_port()}", loop=False, realtime=True, network=True, timeout_s=1.5)
    assert info.value.code == "E13"
    assert time.perf_counter() - start < 4.0


def test_refused_http_url_is_e13_at_once() -> None:
    start = time.perf_counter()
    with pytest.raises(InputError) as info:
        VideoSource("http://127.0.0.1:9/none.ts", loop=False, realtime=True, network=True)
    assert info.value.code == "E13"
    assert time.perf_counter() - start < 2.0


def test_udp_url_source_reads_a_live_stream() -> None:
    """Our own udp sink sends; the url source joins late and reads the stamps in order."""
    port = free_udp_port()
    stop = threading.Event()

    def send() -> None:
        source = SyntheticSource(width=320, height=240, fps=30)
        sink = StreamSink(f"udp://127.0.0.1:{port}", width=320, height=240, fps=30)
        seq = 0
        while not stop.is_set():
            sink.write(Frame(image=source.read(), seq=seq, t_capture=time.perf_counter_ns()))
            seq += 1
        sink.close()

    sender = threading.Thread(target=send, daemon=True)
    sender.start()
    try:
        source = VideoSource(f"udp://127.0.0.1:{port}", loop=False, realtime=True, network=True)
        assert source.live and (source.width, source.height) == (320, 240)
        stamps = [read_stamp(source.read()) for _ in range(20)]
        source.close()
    finally:
        stop.set()
        sender.join(5.0)
    assert None not in stamps
    assert stamps == list(range(stamps[0], stamps[0] + 20))


def _send_stamped(port: int, frames: int) -> None:
    source = SyntheticSource(width=320, height=240, fps=30)
    sink = StreamSink(f"udp://127.0.0.1:{port}", width=320, height=240, fps=30)
    for seq in range(frames):
        sink.write(Frame(image=source.read(), seq=seq, t_capture=time.perf_counter_ns()))
    sink.close()


def test_udp_url_source_reports_a_lost_stream_and_reconnects() -> None:
    """The sender stops: SignalLost after the read timeout; it comes back: reconnect() resumes."""
    port = free_udp_port()
    first = threading.Thread(target=_send_stamped, args=(port, 45), daemon=True)
    first.start()
    source = VideoSource(f"udp://127.0.0.1:{port}", loop=False, realtime=True, network=True, timeout_s=1.0)
    received = 0
    with pytest.raises(SignalLost):
        for _ in range(100):
            source.read()
            received += 1
    assert received >= 10
    first.join(5.0)
    second = threading.Thread(target=_send_stamped, args=(port, 60), daemon=True)
    second.start()
    source.reconnect()
    stamps = [read_stamp(source.read()) for _ in range(5)]
    source.close()
    second.join(5.0)
    assert None not in stamps and stamps == list(range(stamps[0], stamps[0] + 5))


# -- camera and factory -------------------------------------------------------------------


@pytest.mark.parametrize("location", ["/dev/video99", "9"])
def test_missing_camera_is_e11(location: str) -> None:
    with pytest.raises(InputError) as info:
        CameraSource(location, width=640, height=480, fps=30)
    assert info.value.code == "E11"
    assert "swapcam devices" in info.value.remedy


@pytest.mark.camera
@pytest.mark.skipif(os.environ.get("SWAPCAM_TEST_CAMERA") != "1",
                    reason="opt-in: set SWAPCAM_TEST_CAMERA=1 with a webcam attached")
def test_real_camera_delivers_frames() -> None:
    source = CameraSource(os.environ.get("SWAPCAM_CAMERA", "0"), width=640, height=480, fps=30)
    frames = [source.read() for _ in range(10)]
    source.close()
    assert all(f.shape == (source.height, source.width, 3) for f in frames)
    assert source.fps > 0


def test_factory_opens_each_kind(tmp_path: Path, clip: Path) -> None:
    photo = tmp_path / "p.png"
    cv2.imwrite(str(photo), np.zeros((64, 64, 3), np.uint8))
    opened = [
        open_source(SourceConfig(kind="synthetic", width=320, height=240)),
        open_source(SourceConfig(kind="image", location=str(photo), width=320, height=240)),
        open_source(SourceConfig(kind="file", location=str(clip), realtime=False)),
    ]
    assert [type(s).__name__ for s in opened] == ["SyntheticSource", "ImageSource", "VideoSource"]
    assert opened[2].live is False
    for source in opened:
        assert source.read().shape[2] == 3
        source.close()
