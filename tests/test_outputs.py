"""Outputs during a run: a failing one is removed while the others go on; outputs added and removed while
running; stop with real file and UDP outputs."""

from __future__ import annotations

import logging
import socket
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from runtime_media import free_udp_port, read_video

from realtime.config import PipelineConfig
from realtime.errors import OutputError
from realtime.frame import Frame
from realtime.pipeline import Pipeline
from realtime.processors import Passthrough
from realtime.sinks.factory import open_sink, parse_sink
from realtime.sources.base import EndOfStream
from realtime.sources.synthetic import SyntheticSource


class Recorder:
    """Remembers every write (sequence number, time); optionally slow to close or stuck in a write."""

    def __init__(self, name: str = "recorder", *, close_s: float = 0.0) -> None:
        self.name = name
        self.close_s = close_s
        self.writes: list[tuple[int, float]] = []
        self.inside = threading.Event()
        self.release = threading.Event()
        self.release.set()
        self.closed = 0
        self.closed_while_inside = False

    def write(self, frame: Frame) -> None:
        self.inside.set()
        try:
            self.release.wait(10)
            self.writes.append((frame.seq, time.perf_counter()))
        finally:
            self.inside.clear()

    def close(self) -> None:
        self.closed_while_inside = self.closed_while_inside or self.inside.is_set()
        time.sleep(self.close_s)
        self.closed += 1


class DiskFull(Recorder):
    """A recording whose writes fail from frame ``fail_from`` on, like a file on a full disk."""

    failure_code = "E14"

    def __init__(self, *, fail_from: int) -> None:
        super().__init__("file:full.mp4")
        self.fail_from = fail_from
        self.attempts = 0

    def write(self, frame: Frame) -> None:
        self.attempts += 1
        if frame.seq >= self.fail_from:
            raise OutputError("E14", "full.mp4: [Errno 28] No space left on device")
        super().write(frame)


class Counted:
    """An offline source of ``count`` frames."""

    name, width, height, fps, live = "counted", 64, 48, 30.0, False

    def __init__(self, count: int) -> None:
        self.count, self.seq = count, 0

    def read(self) -> np.ndarray:
        if self.seq >= self.count:
            raise EndOfStream("done")
        self.seq += 1
        return np.full((48, 64, 3), self.seq % 256, np.uint8)

    def close(self) -> None:
        pass


def e14_lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if "E14" in r.getMessage()]


def test_a_failing_output_is_reported_once_closed_and_removed_while_the_others_go_on(
        caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    full, other = DiskFull(fail_from=5), Recorder("other")
    pipeline = Pipeline(source=Counted(40), processor=Passthrough(), sinks=[full, other], config=PipelineConfig())
    pipeline.run()
    assert [seq for seq, _ in other.writes] == list(range(40))  # the other output got every frame
    assert full.attempts == 5 + 3  # removed after three failed writes in a row, not written again
    assert full.closed == 1 and other.closed == 1
    lines = e14_lines(caplog)
    assert len(lines) == 1 and lines[0].startswith("E14 ") and "file:full.mp4" in lines[0], lines
    failed = pipeline.summary()["failed_outputs"]
    assert [(f["name"], f["code"]) for f in failed] == [("file:full.mp4", "E14")]


def test_when_no_output_is_left_the_run_ends_within_2_s() -> None:
    full = DiskFull(fail_from=0)
    pipeline = Pipeline(source=SyntheticSource(width=64, height=48, fps=30), processor=Passthrough(),
                        sinks=[full], config=PipelineConfig())
    start = time.perf_counter()
    pipeline.run()  # no duration: only the failing output can end it
    assert time.perf_counter() - start < 2.0
    assert full.closed == 1 and pipeline.summary()["failed_outputs"][0]["code"] == "E14"


def test_add_and_remove_an_output_while_running_never_stalls_the_others() -> None:
    """A recording started and stopped mid-run (the panel's button): it gets the frames in between, its
    slow close (1 s) happens off the output thread, and the other output never waits."""
    steady, recording = Recorder("steady"), Recorder("recording", close_s=1.0)
    pipeline = Pipeline(source=SyntheticSource(width=64, height=48, fps=50), processor=Passthrough(),
                        sinks=[steady], config=PipelineConfig(duration_s=2.5))
    pipeline.start()
    time.sleep(0.4)
    added_at = time.perf_counter()
    pipeline.add_sink(recording)
    time.sleep(0.5)
    start = time.perf_counter()
    pipeline.remove_sink(recording, timeout=3.0)
    removed_at = time.perf_counter()
    assert removed_at - start >= 1.0 and recording.closed == 1  # returned once the close was done
    assert pipeline.wait(5.0)
    pipeline.stop()
    assert recording.writes and all(added_at <= t <= start for _, t in recording.writes)
    assert not recording.closed_while_inside and recording.closed == 1
    during = [t for _, t in steady.writes if start <= t <= removed_at]
    gaps = np.diff([start, *during, removed_at])
    assert gaps.max() < 0.25, gaps  # 50 fps went on while the recording closed
    assert steady.closed == 1


def test_remove_an_output_stuck_in_a_write_closes_it_only_when_the_write_returns() -> None:
    stuck = Recorder("stuck")
    pipeline = Pipeline(source=SyntheticSource(width=64, height=48, fps=30), processor=Passthrough(),
                        sinks=[stuck], config=PipelineConfig())
    pipeline.start()
    try:
        time.sleep(0.2)
        stuck.release.clear()
        assert stuck.inside.wait(2.0)
        start = time.perf_counter()
        pipeline.remove_sink(stuck, timeout=0.3)
        assert time.perf_counter() - start < 1.0 and stuck.closed == 0
        stuck.release.set()
        deadline = time.perf_counter() + 3.0
        while stuck.closed == 0 and time.perf_counter() < deadline:
            time.sleep(0.02)
        assert stuck.closed == 1 and not stuck.closed_while_inside
        written = len(stuck.writes)
        time.sleep(0.2)
        assert len(stuck.writes) == written  # no write after the removal
    finally:
        stuck.release.set()
        pipeline.stop()
    assert stuck.closed == 1


def test_stop_with_real_file_and_udp_outputs_is_fast_and_finalises_the_recording(tmp_path: Path) -> None:
    path = tmp_path / "rec.mp4"
    port = free_udp_port()
    receiver = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    receiver.bind(("127.0.0.1", port))
    receiver.settimeout(0.2)
    try:
        sinks = [open_sink(parse_sink(spec), width=320, height=240, fps=30)
                 for spec in (f"file:{path}", f"udp://127.0.0.1:{port}")]
        pipeline = Pipeline(source=SyntheticSource(width=320, height=240, fps=30), processor=Passthrough(),
                            sinks=sinks, config=PipelineConfig())
        pipeline.start()
        time.sleep(1.0)
        start = time.perf_counter()
        pipeline.stop()
        assert time.perf_counter() - start < 2.0
        datagrams = 0
        try:
            while receiver.recv(2048):
                datagrams += 1
        except TimeoutError:
            pass
    finally:
        receiver.close()
    assert datagrams > 10
    stamps, _ = read_video(path)
    output = pipeline.summary()["frames"]["output"]
    assert output >= 15 and len(stamps) == output and stamps == sorted(set(stamps))  # every frame, finalised


def test_a_recording_started_and_stopped_while_running_holds_the_frames_in_between(tmp_path: Path) -> None:
    from realtime.session import add_output

    path = tmp_path / "mid.mp4"
    steady = Recorder("steady")
    pipeline = Pipeline(source=SyntheticSource(width=320, height=240, fps=30), processor=Passthrough(),
                        sinks=[steady], config=PipelineConfig())
    pipeline.start()
    try:
        time.sleep(0.3)
        recording = add_output(pipeline, f"file:{path}")
        time.sleep(1.0)
        pipeline.remove_sink(recording)
        assert recording not in pipeline.sinks
        time.sleep(0.2)
    finally:
        pipeline.stop()
    stamps, _ = read_video(path)
    seen = [seq for seq, _ in steady.writes]
    assert len(stamps) >= 15 and stamps == sorted(set(stamps))
    assert stamps[0] > 0 and stamps[-1] < seen[-1]  # started after the run, stopped before its end
    assert set(stamps) <= set(seen)
