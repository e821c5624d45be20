"""Sinks: udp MPEG-TS read back on 127.0.0.1, files playable (also after SIGINT/SIGKILL), window, virtualcam."""

from __future__ import annotations

import io
import json
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import av
import numpy as np
import pytest
from platform_helpers import SWAPCAM as SWAPCAM_PATH
from platform_helpers import interrupt, popen_kwargs
from runtime_media import read_video, write_stamped_video

from realtime.config import PipelineConfig
from realtime.errors import OutputError, SwapcamError, UsageError
from realtime.frame import Frame
from realtime.pipeline import Pipeline
from realtime.processors import Passthrough
from realtime.sinks.factory import SinkSpec, open_sink, parse_sink
from realtime.sinks.file import FileSink
from realtime.sinks.stream import StreamSink
from realtime.sinks.virtualcam import VirtualCamSink, parse_target
from realtime.sinks.window import WindowSink, gui_framework
from realtime.sources.synthetic import SyntheticSource
from realtime.sources.video import VideoSource
from realtime.stamp import draw_stamp, read_stamp

SWAPCAM = [SWAPCAM_PATH]


def without_repeats(values: list[int | None]) -> list[int | None]:
    """Collapse runs of the same value (the pipeline's re-sends)."""
    return [v for i, v in enumerate(values) if i == 0 or v != values[i - 1]]


def run_pipeline(sink: object, *, frames: int, size: tuple[int, int] = (320, 240), fps: float = 30) -> Pipeline:
    source = SyntheticSource(width=size[0], height=size[1], fps=fps)
    pipeline = Pipeline(source=source, processor=Passthrough(), sinks=[sink],  # type: ignore[list-item]
                        config=PipelineConfig(max_frames=frames))
    pipeline.run()
    return pipeline


# -- udp stream ---------------------------------------------------------------------------


class UdpCollector:
    """Receives datagrams on 127.0.0.1 in a thread (the listening end a player such as OBS would be)."""

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8 << 20)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(0.1)
        self.port = self.sock.getsockname()[1]
        self.data = bytearray()
        self.datagrams = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._receive, daemon=True)
        self._thread.start()

    def _receive(self) -> None:
        while not self._stop.is_set():
            try:
                self.data.extend(self.sock.recv(65536))
                self.datagrams += 1
            except TimeoutError:
                continue

    def close(self) -> bytes:
        time.sleep(0.2)
        self._stop.set()
        self._thread.join(2.0)
        self.sock.close()
        return bytes(self.data)


def test_udp_stream_decodes_to_the_synthetic_sequence() -> None:
    collector = UdpCollector()
    sink = StreamSink(f"udp://127.0.0.1:{collector.port}", width=320, height=240, fps=30)
    pipeline = run_pipeline(sink, frames=45)
    data = collector.close()
    assert collector.datagrams > 10
    with av.open(io.BytesIO(data), mode="r", format="mpegts") as container:
        stream = container.streams.video[0]
        assert stream.codec_context.name == "h264"
        assert (stream.codec_context.width, stream.codec_context.height) == (320, 240)
        decoded = [read_stamp(f.to_ndarray(format="bgr24")) for f in container.decode(stream)]
    assert None not in decoded
    assert without_repeats(decoded) == list(pipeline.stats.sequences)
    assert len(decoded) == pipeline.summary()["frames"]["output"] + pipeline.summary()["frames"]["resent"]


def test_udp_stream_is_low_latency_h264() -> None:
    """No B-frames, a keyframe every second with the headers repeated (a late receiver can start)."""
    collector = UdpCollector()
    sink = StreamSink(f"udp://127.0.0.1:{collector.port}", width=320, height=240, fps=30)
    source = SyntheticSource(width=320, height=240, fps=30, paced=False)
    for seq in range(75):
        sink.write(Frame(image=source.read(), seq=seq, t_capture=time.perf_counter_ns()))
    sink.close()
    data = collector.close()
    with av.open(io.BytesIO(data), mode="r", format="mpegts") as container:
        packets = [p for p in container.demux(video=0) if p.size]
    keyframes = [i for i, p in enumerate(packets) if p.is_keyframe]
    assert keyframes == [0, 30, 60]
    assert all(p.pts == p.dts for p in packets)  # decode order == display order: no B-frames
    # A receiver joining mid-stream (cut at a TS packet boundary) starts at the next keyframe.
    cut = len(data) // 2 // 188 * 188
    with av.open(io.BytesIO(data[cut:]), mode="r", format="mpegts") as container:
        late = [read_stamp(f.to_ndarray(format="bgr24")) for f in container.decode(video=0)]
    assert late[:3] in ([30, 31, 32], [60, 61, 62]), late[:5]


def test_stream_url_errors() -> None:
    with pytest.raises(UsageError) as info:
        StreamSink("udp://127.0.0.1", width=320, height=240, fps=30)
    assert info.value.code == "E01"
    with pytest.raises(OutputError) as info2:
        StreamSink("udp://no-such-host.invalid:5000", width=320, height=240, fps=30)
    assert info2.value.code == "E15"


def test_srt_works_or_says_the_build_lacks_it() -> None:
    port = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    port.bind(("127.0.0.1", 0))
    number = port.getsockname()[1]
    port.close()
    try:
        sink = StreamSink(f"srt://127.0.0.1:{number}", width=320, height=240, fps=30)
    except OutputError as exc:
        assert exc.code in ("E23", "E15")  # E23: no SRT in this FFmpeg; E15: SRT there, no receiver
        if exc.code == "E23":
            assert "udp://" in exc.remedy
        return
    sink.close()


# -- file -----------------------------------------------------------------------------------


@pytest.mark.parametrize("suffix", [".mp4", ".mkv"])
def test_file_sink_plays_with_every_output_frame(tmp_path: Path, suffix: str) -> None:
    path = tmp_path / f"out{suffix}"
    sink = FileSink(path, width=320, height=240, fps=30)
    pipeline = run_pipeline(sink, frames=40)
    stamps, times = read_video(path)
    assert stamps == list(pipeline.stats.sequences)
    assert len(stamps) == pipeline.summary()["frames"]["output"]
    assert times == sorted(set(times))
    assert times[-1] == pytest.approx((stamps[-1] - stamps[0]) / 30, abs=0.05)  # real speed


def test_file_sink_times_frames_by_capture_and_skips_repeats(tmp_path: Path) -> None:
    path = tmp_path / "gaps.mp4"
    sink = FileSink(path, width=160, height=120, fps=30)
    t0 = time.perf_counter_ns()
    image = np.zeros((120, 160, 3), np.uint8)
    for seq, ms in [(0, 0), (1, 33), (1, 33), (4, 133), (5, 167), (5, 167)]:  # 2 and 3 dropped; two re-sends
        sink.write(Frame(image=image.copy(), seq=seq, t_capture=t0 + ms * 1_000_000))
    sink.close()
    _, times = read_video(path)
    assert times == pytest.approx([0.0, 0.033, 0.133, 0.167], abs=0.002)
    assert sink.frames_written == 4


def test_file_sink_times_an_offline_render_by_frame_index(tmp_path: Path) -> None:
    path = tmp_path / "offline.mp4"
    sink = FileSink(path, width=160, height=120, fps=25, timing="sequence")
    t0 = time.perf_counter_ns()
    image = np.zeros((120, 160, 3), np.uint8)
    for seq in range(5):  # rendered far faster than real time: capture times 1 ms apart
        sink.write(Frame(image=image.copy(), seq=seq, t_capture=t0 + seq * 1_000_000))
    sink.close()
    _, times = read_video(path)
    assert times == pytest.approx([0.0, 0.04, 0.08, 0.12, 0.16], abs=0.002)


def test_offline_run_writes_the_file_at_its_own_frame_rate(tmp_path: Path) -> None:
    clip = write_stamped_video(tmp_path / "in.mp4", frames=30, fps=30)
    out = tmp_path / "out.mp4"
    source = VideoSource(str(clip), loop=False, realtime=False, network=False)
    sink = open_sink(parse_sink(f"file:{out}"), width=source.width, height=source.height, fps=source.fps,
                     live=source.live)
    Pipeline(source=source, processor=Passthrough(), sinks=[sink], config=PipelineConfig()).run()
    stamps, times = read_video(out)
    assert stamps == list(range(30))
    assert times == pytest.approx([i / 30 for i in range(30)], abs=0.002)


def test_file_sink_resizes_odd_frames(tmp_path: Path) -> None:
    path = tmp_path / "resized.mkv"
    sink = FileSink(path, width=320, height=240, fps=30)
    big = np.zeros((480, 640, 3), np.uint8)
    draw_stamp(big, 3)
    sink.write(Frame(image=big, seq=0, t_capture=time.perf_counter_ns()))
    sink.close()
    with av.open(str(path)) as container:
        frame = next(container.decode(video=0))
        assert (frame.width, frame.height) == (320, 240)


def test_unwritable_path_is_e14_before_the_run(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    with pytest.raises(OutputError) as info:
        FileSink(blocker / "out.mp4", width=320, height=240, fps=30)
    assert info.value.code == "E14"


def test_unknown_file_type_is_a_usage_error(tmp_path: Path) -> None:
    with pytest.raises(UsageError):
        FileSink(tmp_path / "out.avi", width=320, height=240, fps=30)


def test_missing_folders_are_created(tmp_path: Path) -> None:
    sink = FileSink(tmp_path / "a" / "b" / "out.mp4", width=160, height=120, fps=30)
    sink.close()
    assert (tmp_path / "a" / "b" / "out.mp4").is_file()


def _start_recording(tmp_path: Path) -> tuple[subprocess.Popen[str], Path, Path]:
    video, stats = tmp_path / "rec.mp4", tmp_path / "stats.json"
    process = subprocess.Popen(
        [*SWAPCAM, "run", "--synthetic", "--size", "320x240", "--fps", "30",
         "--output", f"file:{video}", "--stats-json", str(stats)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **popen_kwargs(),
    )
    deadline = time.perf_counter() + 20
    # The first one-second fragment on disk means the run is up and recording.
    while time.perf_counter() < deadline and (not video.exists() or video.stat().st_size < 10_000):
        assert process.poll() is None, process.communicate()
        time.sleep(0.1)
    return process, video, stats


def test_file_is_finalised_after_sigint(tmp_path: Path) -> None:
    process, video, stats = _start_recording(tmp_path)
    sent = time.perf_counter()
    interrupt(process)
    _out, err = process.communicate(timeout=10)
    assert time.perf_counter() - sent < 3.0  # stop within 2 s (plus process exit)
    assert process.returncode == 0, err
    summary = json.loads(stats.read_text())
    stamps, times = read_video(video)
    assert len(stamps) == summary["frames"]["output"] > 30
    assert None not in stamps and stamps == sorted(set(stamps))
    assert times == sorted(set(times))


def test_file_survives_sigkill_up_to_the_last_second(tmp_path: Path) -> None:
    """Fragmented MP4: killed outright, the file still plays up to the last complete fragment."""
    process, video, _stats = _start_recording(tmp_path)
    time.sleep(1.2)
    process.kill()
    process.communicate(timeout=10)
    stamps, _ = read_video(video, until_damage=True)
    assert len(stamps) >= 30  # at least the first one-second fragment
    assert stamps[0] == 0 and stamps == sorted(set(stamps))


# -- window, virtualcam, null, factory ----------------------------------------------------


def test_window_without_a_display_is_a_coded_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    if gui_framework() and not sys.platform.startswith("linux"):
        pytest.skip("this OpenCV has a GUI and the OS always has a display")
    with pytest.raises(OutputError) as info:
        WindowSink()
    assert info.value.code == "E23"
    if not gui_framework():
        assert "opencv-python" in info.value.remedy
    else:
        assert "display" in info.value.detail


def _loopback_devices() -> list[str]:
    if not sys.platform.startswith("linux"):
        return []
    from realtime.v4l2 import loopback_devices

    return [d.path for d in loopback_devices()]


@pytest.mark.skipif(sys.platform.startswith("linux") and bool(_loopback_devices()),
                    reason="a v4l2loopback device exists here")
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the no-device path is checked on Linux")
def test_virtualcam_without_a_device_is_e10_with_the_remedy() -> None:
    with pytest.raises(OutputError) as info:
        VirtualCamSink("", width=320, height=240, fps=30)
    assert info.value.code == "E10"
    assert "modprobe v4l2loopback" in info.value.remedy


@pytest.mark.virtualcam
@pytest.mark.skipif(not _loopback_devices(), reason="no v4l2loopback device (sudo modprobe v4l2loopback)")
def test_virtualcam_frames_reach_a_reader() -> None:
    import cv2

    device = _loopback_devices()[0]
    sink = VirtualCamSink(device, width=320, height=240, fps=30)
    source = SyntheticSource(width=320, height=240, fps=30)
    stop = threading.Event()

    def feed() -> None:
        seq = 0
        while not stop.is_set():
            sink.write(Frame(image=source.read(), seq=seq, t_capture=time.perf_counter_ns()))
            seq += 1

    feeder = threading.Thread(target=feed, daemon=True)
    feeder.start()
    try:
        capture = cv2.VideoCapture(device, cv2.CAP_V4L2)
        assert capture.isOpened()
        stamps = []
        for _ in range(10):
            ok, image = capture.read()
            assert ok
            stamps.append(read_stamp(image))
        capture.release()
    finally:
        stop.set()
        feeder.join(2.0)
        sink.close()
    seen = [s for s in stamps if s is not None]
    assert len(seen) >= 5 and seen == sorted(seen)


def test_virtualcam_target_syntax() -> None:
    assert parse_target("") == parse_target(" ")
    assert parse_target("/dev/video10").device == "/dev/video10"
    target = parse_target("device=/dev/video3,backend=v4l2loopback")
    assert (target.device, target.backend) == ("/dev/video3", "v4l2loopback")
    assert parse_target("backend=OBS").backend == "obs"
    for bad in ("backend=nope", "colour=red"):
        with pytest.raises(UsageError):
            parse_target(bad)


@pytest.mark.parametrize(("text", "expected"), [
    ("null", SinkSpec("null")),
    ("window", SinkSpec("window")),
    ("virtualcam", SinkSpec("virtualcam", "")),
    ("virtualcam:/dev/video10", SinkSpec("virtualcam", "/dev/video10")),
    ("file:out/x.mp4", SinkSpec("file", "out/x.mp4")),
    ("udp://127.0.0.1:5000", SinkSpec("stream", "udp://127.0.0.1:5000")),
    ("srt://127.0.0.1:9000", SinkSpec("stream", "srt://127.0.0.1:9000")),
])
def test_parse_sink(text: str, expected: SinkSpec) -> None:
    assert parse_sink(text) == expected


@pytest.mark.parametrize("text", ["rtmp://x", "file:", "tcp://127.0.0.1:1", "screen"])
def test_unknown_sink_is_e02(text: str) -> None:
    with pytest.raises(SwapcamError) as info:
        parse_sink(text)
    assert info.value.code == "E02"


def test_open_sink_null_counts_every_write() -> None:
    sink = open_sink(SinkSpec("null"), width=320, height=240, fps=30)
    pipeline = run_pipeline(sink, frames=10)
    frames = pipeline.summary()["frames"]
    assert sink.name == "null"
    assert sink.written == frames["output"] + frames["resent"] and frames["output"] > 0  # type: ignore[attr-defined]
