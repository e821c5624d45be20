"""The pipeline's contract: errors re-raised, per-frame failures passed through, re-sends, sync delay, stop."""

from __future__ import annotations

import sys
import threading
import time

import cv2
import numpy as np
import pytest
from platform_helpers import NEEDS_REALTIME

from realtime.config import PipelineConfig
from realtime.errors import UsageError
from realtime.frame import Frame
from realtime.pipeline import Pipeline
from realtime.priority import BUSY_WINDOW_S, BUSY_WINDOWS, is_raised
from realtime.processors import Passthrough, Sleeper
from realtime.sinks.null import NullSink
from realtime.sources.base import EndOfStream, FrameClock
from realtime.sources.synthetic import SyntheticSource


class RecordingSink:
    """Remembers the sequence number and arrival time of every write (re-sends included)."""

    name = "recording"

    def __init__(self, *, write_delay_s: float = 0.0) -> None:
        self.writes: list[tuple[int, int]] = []
        self.write_delay_s = write_delay_s
        self.closed = False

    def write(self, frame: Frame) -> None:
        if self.write_delay_s:
            time.sleep(self.write_delay_s)
        self.writes.append((frame.seq, time.perf_counter_ns()))

    def close(self) -> None:
        self.closed = True


class ScriptedSource:
    """Frames at ``fps``, with an optional pause after frame ``pause_after``; ends after ``count``."""

    name = "scripted"

    def __init__(self, *, count: int, fps: float = 20.0, pause_after: int | None = None, pause_s: float = 0.0,
                 live: bool = True, fail_at: int | None = None, block_s: float = 0.0) -> None:
        self.width, self.height, self.fps, self.live = 160, 120, fps, live
        self.count, self.pause_after, self.pause_s = count, pause_after, pause_s
        self.fail_at, self.block_s = fail_at, block_s
        self._clock = FrameClock(fps) if live else None
        self._seq = 0
        self.closed = False

    def read(self) -> np.ndarray:
        if self._seq >= self.count:
            raise EndOfStream("done")
        if self._seq == self.fail_at:
            raise RuntimeError("camera exploded")
        if self.block_s and self._seq > 0:
            time.sleep(self.block_s)  # every read after the first hangs (a dead network stream)
        if self._seq == self.pause_after:
            time.sleep(self.pause_s)
            self._clock = FrameClock(self.fps)
        if self._clock is not None:
            self._clock.wait()
        image = np.full((self.height, self.width, 3), self._seq % 256, np.uint8)
        self._seq += 1
        return image

    def close(self) -> None:
        self.closed = True


def test_a_worker_exception_is_reraised_by_stop() -> None:
    sink = RecordingSink()
    source = ScriptedSource(count=100, fps=100, fail_at=5)
    pipeline = Pipeline(source=source, processor=Passthrough(), sinks=[sink], config=PipelineConfig())
    with pytest.raises(RuntimeError, match="camera exploded"):
        pipeline.run()
    assert pipeline.finished and sink.closed and source.closed


class FailsOnce:
    """Inverts every image except frame ``bad``, on which it raises."""

    name = "fails-once"

    def __init__(self, bad: int) -> None:
        self.bad = bad

    def process(self, frame: Frame) -> np.ndarray:
        if frame.seq == self.bad:
            raise ValueError("model hiccup")
        return 255 - frame.image

    def close(self) -> None:
        pass


def test_a_processor_error_passes_that_frame_through_and_is_counted() -> None:
    seen: dict[int, int] = {}

    class ValueSink(RecordingSink):
        def write(self, frame: Frame) -> None:
            seen[frame.seq] = int(frame.image[0, 0, 0])

    source = ScriptedSource(count=12, live=False)
    pipeline = Pipeline(source=source, processor=FailsOnce(bad=5), sinks=[ValueSink()], config=PipelineConfig())
    pipeline.run()
    assert sorted(seen) == list(range(12))
    assert seen[5] == 5  # the original frame
    assert all(seen[i] == 255 - i for i in seen if i != 5)  # the processed ones
    assert pipeline.summary()["errors"]["processor"] == 1


def test_output_resends_only_when_no_frame_arrived_within_an_interval() -> None:
    """10 fps with a 600 ms hole: the hole is filled with re-sends, the steady part is not."""
    sink = RecordingSink()
    source = ScriptedSource(count=20, fps=10, pause_after=10, pause_s=0.6)
    pipeline = Pipeline(source=source, processor=Passthrough(), sinks=[sink], config=PipelineConfig())
    pipeline.run()
    seqs = [seq for seq, _ in sink.writes]
    repeats = [seqs[i] for i in range(1, len(seqs)) if seqs[i] == seqs[i - 1]]
    in_hole = [seq for seq in repeats if seq == 9]
    assert 3 <= len(in_hole) <= 7, seqs  # 600 ms / (1.2 × 100 ms) ≈ 5 re-sends of the last frame
    # Steady flow: a re-send only if scheduling jitter on a loaded machine exceeded 20 ms.
    assert len(repeats) - len(in_hole) <= 2, seqs
    assert pipeline.summary()["frames"]["resent"] == len(repeats)
    assert sorted(set(seqs)) == list(range(20))


def test_sync_delay_holds_each_frame_until_its_time_without_drops() -> None:
    delay_ms = 150.0
    source = SyntheticSource(width=160, height=120, fps=30)
    sink = RecordingSink()
    pipeline = Pipeline(source=source, processor=Passthrough(), sinks=[sink],
                        config=PipelineConfig(sync_delay_ms=delay_ms, max_frames=45))
    pipeline.run()
    summary = pipeline.summary()
    latency = summary["latency_ms"]
    assert sum(summary["drops"].values()) == 0
    assert summary["frames"]["output"] == 45
    assert min(pipeline.stats.latencies_ms) >= delay_ms
    assert delay_ms <= latency["p50"] <= delay_ms + 20, latency


def test_blocking_mode_for_offline_sources_delivers_every_frame_in_order() -> None:
    source = ScriptedSource(count=60, live=False)
    sink = RecordingSink()
    pipeline = Pipeline(source=source, processor=Sleeper(3), sinks=[sink], config=PipelineConfig(ring_size=1))
    pipeline.run()
    assert [seq for seq, _ in sink.writes] == list(range(60))
    assert sum(pipeline.summary()["drops"].values()) == 0


def test_live_source_faster_than_processor_drops_instead_of_queueing() -> None:
    source = SyntheticSource(width=160, height=120, fps=100)
    sink = NullSink(decode_stamps=True)
    pipeline = Pipeline(source=source, processor=Sleeper(30), sinks=[sink],
                        config=PipelineConfig(ring_size=1, duration_s=1.0, resend_last=False))
    pipeline.run()
    summary = pipeline.summary()
    assert summary["drops"]["capture"] > 20
    assert summary["latency_ms"]["p95"] < 100  # 30 ms processing + at most one 10 ms frame waiting
    stamps = [s for s in sink.stamps if s is not None]
    assert stamps == sorted(set(stamps))


def test_stop_is_fast_on_a_running_pipeline() -> None:
    pipeline = Pipeline(source=SyntheticSource(width=320, height=240, fps=30), processor=Passthrough(),
                        sinks=[NullSink()], config=PipelineConfig())
    pipeline.start()
    time.sleep(0.3)
    start = time.perf_counter()
    pipeline.stop()
    assert time.perf_counter() - start < 2.0
    assert pipeline.finished


def test_stop_stays_within_2_s_when_source_and_sink_hang() -> None:
    """A read and a write that each hang for 3 s: stop() returns within 2 s, and neither the sink nor the
    source is closed while its thread is inside it; each is closed as soon as its thread comes out."""
    source = ScriptedSource(count=1000, fps=30, block_s=3.0)
    first = threading.Event()
    inside = threading.Event()
    closed_inside: list[str] = []

    class HangingSink(RecordingSink):
        def write(self, frame: Frame) -> None:
            first.set()
            inside.set()
            time.sleep(3.0)
            inside.clear()

        def close(self) -> None:
            if inside.is_set():
                closed_inside.append("sink")
            super().close()

    class WatchedSource(ScriptedSource):
        reading = False

        def read(self) -> np.ndarray:
            self.reading = True
            try:
                return super().read()
            finally:
                self.reading = False

        def close(self) -> None:
            if self.reading:
                closed_inside.append("source")
            super().close()

    source = WatchedSource(count=1000, fps=30, block_s=3.0)
    sink = HangingSink()
    pipeline = Pipeline(source=source, processor=Passthrough(), sinks=[sink], config=PipelineConfig())
    pipeline.start()
    assert first.wait(5.0)
    start = time.perf_counter()
    pipeline.stop()
    assert time.perf_counter() - start < 2.0
    assert not sink.closed and not source.closed  # both threads are still inside
    deadline = time.perf_counter() + 5.0
    while not (sink.closed and source.closed) and time.perf_counter() < deadline:
        time.sleep(0.05)
    assert sink.closed and source.closed and closed_inside == []


def test_stamps_reach_the_sink_in_order() -> None:
    sink = NullSink(decode_stamps=True)
    pipeline = Pipeline(source=SyntheticSource(width=320, height=240, fps=60), processor=Passthrough(),
                        sinks=[sink], config=PipelineConfig(max_frames=40, resend_last=False))
    pipeline.run()
    stamps = list(sink.stamps)
    assert None not in stamps
    assert stamps == sorted(set(stamps)) and len(stamps) + sum(pipeline.summary()["drops"].values()) == 40


class PoolProbe(Passthrough):
    """Passes frames through, noting the size of OpenCV's pool the inference thread sees."""

    def __init__(self) -> None:
        self.seen: list[int] = []

    def process(self, frame: Frame) -> np.ndarray:
        self.seen.append(cv2.getNumThreads())
        return frame.image


def test_the_pipeline_sizes_opencvs_pool_from_its_config() -> None:
    before = cv2.getNumThreads()
    try:
        for threads in (2, 1):
            probe = PoolProbe()
            pipeline = Pipeline(source=ScriptedSource(count=3, live=False), processor=probe,
                                sinks=[NullSink()], config=PipelineConfig(frame_threads=threads))
            pipeline.run()
            assert probe.seen == [threads] * 3
    finally:
        cv2.setNumThreads(before)


@pytest.mark.parametrize("threads", [0, 65])
def test_frame_threads_out_of_range_is_a_usage_error(threads: int) -> None:
    with pytest.raises(UsageError) as caught:
        PipelineConfig(frame_threads=threads)
    assert caught.value.code == "E01"


@pytest.mark.parametrize(("given", "usable", "expected"), [([], 8, 1), (["--threads", "3"], 8, 3),
                                                          (["--threads", "6"], 2, 2)])
def test_run_threads_size_opencvs_pool_within_the_usable_cpus(given: list[str], usable: int, expected: int,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    from realtime.cli import build_parser
    from realtime.commands import options

    monkeypatch.setattr(options, "usable_cpus", lambda: usable)
    args = build_parser().parse_args(["run", *given])
    assert options.pipeline_config(args).frame_threads == expected


class CommProbe:
    """A processor that reads the OS name (Linux comm) of the thread it runs on."""

    name = "comm-probe"

    def __init__(self) -> None:
        self.seen: list[str] = []

    def process(self, frame: Frame) -> np.ndarray:
        with open(f"/proc/self/task/{threading.get_native_id()}/comm") as comm:
            self.seen.append(comm.read().strip())
        return frame.image

    def close(self) -> None:
        pass


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads the thread's name from /proc (Linux)")
def test_the_frame_threads_carry_their_names_at_the_os_level() -> None:
    probe = CommProbe()
    Pipeline(source=ScriptedSource(count=2, live=False), processor=probe, sinks=[NullSink()],
             config=PipelineConfig()).run()
    assert probe.seen == ["swapcam-inferen"] * 2  # the kernel keeps 15 characters of "swapcam-inference"


class PolicyProbe:
    """A processor that notes, for each frame, whether the inference thread runs in the real-time class; each
    frame takes ``work_s``."""

    name = "policy-probe"

    def __init__(self, work_s: float = 0.0) -> None:
        self.work_s = work_s
        self.raised: list[bool] = []

    def process(self, frame: Frame) -> np.ndarray:
        self.raised.append(is_raised(threading.get_native_id()))
        time.sleep(self.work_s)
        return frame.image

    def close(self) -> None:
        pass


FRAME_THREADS = {"swapcam-capture", "swapcam-inference", "swapcam-output"}


@NEEDS_REALTIME
def test_a_live_runs_frame_threads_run_real_time_where_the_system_allows_it() -> None:
    probe = PolicyProbe()
    pipeline = Pipeline(source=ScriptedSource(count=10, fps=50), processor=probe, sinks=[NullSink()],
                        config=PipelineConfig())
    pipeline.run()
    assert probe.raised and all(probe.raised)
    assert pipeline.raised_threads == FRAME_THREADS


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads the Linux scheduling policy")
@pytest.mark.parametrize(("live", "priority"), [(True, "normal"), (False, "realtime")])
def test_frame_priority_normal_and_offline_runs_keep_the_ordinary_class(live: bool, priority: str) -> None:
    probe = PolicyProbe()
    pipeline = Pipeline(source=ScriptedSource(count=10, fps=50, live=live), processor=probe, sinks=[NullSink()],
                        config=PipelineConfig(frame_priority=priority))
    pipeline.run()
    assert probe.raised and not any(probe.raised)
    assert not pipeline.raised_threads


@NEEDS_REALTIME
def test_an_inference_thread_that_keeps_a_core_busy_steps_back_down() -> None:
    # Frames every 20 ms, each taking 30: the inference thread never rests, so it must not stay real-time.
    probe = PolicyProbe(work_s=0.030)
    seconds = BUSY_WINDOW_S * BUSY_WINDOWS + 1.0
    pipeline = Pipeline(source=ScriptedSource(count=int(seconds * 50), fps=50), processor=probe,
                        sinks=[NullSink()], config=PipelineConfig())
    pipeline.run()
    assert probe.raised[0] and not probe.raised[-1]
    assert pipeline.raised_threads == FRAME_THREADS - {"swapcam-inference"}


@pytest.mark.parametrize(("given", "expected"), [([], "realtime"), (["--frame-priority", "normal"], "normal")])
def test_run_frame_priority_reaches_the_pipeline_config(given: list[str], expected: str) -> None:
    from realtime.cli import build_parser
    from realtime.commands import options

    assert options.pipeline_config(build_parser().parse_args(["run", *given])).frame_priority == expected


def test_frame_priority_out_of_range_is_a_usage_error() -> None:
    with pytest.raises(UsageError) as caught:
        PipelineConfig(frame_priority="highest")
    assert caught.value.code == "E01"
