"""BackgroundSink: a recording encoded on its own thread — order kept, drops counted, errors surfaced."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import numpy as np
import pytest
from runtime_media import read_video

from realtime.frame import Frame
from realtime.sinks.background import BackgroundSink, queue_frames
from realtime.sinks.factory import open_sink, parse_sink
from realtime.stamp import draw_stamp


class SlowSink:
    """Records the sequence numbers it is given; each write waits for ``gate`` and then ``delay_s``."""

    name = "slow"

    def __init__(self, *, delay_s: float = 0.0, fail_on: int | None = None) -> None:
        self.written: list[int] = []
        self.threads: set[str] = set()
        self.delay_s = delay_s
        self.fail_on = fail_on
        self.gate = threading.Event()
        self.gate.set()
        self.busy = threading.Event()
        self.closed = False

    def write(self, frame: Frame) -> None:
        self.threads.add(threading.current_thread().name)
        self.busy.set()
        self.gate.wait(10)
        time.sleep(self.delay_s)
        if frame.seq == self.fail_on:
            raise OSError(28, "No space left on device")
        self.written.append(frame.seq)

    def close(self) -> None:
        self.closed = True


def frame(seq: int) -> Frame:
    return Frame(image=np.zeros((4, 4, 3), np.uint8), seq=seq, t_capture=time.perf_counter_ns())


def test_offline_writes_every_frame_in_order_on_its_own_thread() -> None:
    inner = SlowSink(delay_s=0.002)
    sink = BackgroundSink(inner, capacity=2, blocking=True)
    for seq in range(30):
        sink.write(frame(seq))
    sink.close()
    assert inner.written == list(range(30))
    assert sink.dropped == 0
    assert inner.closed
    assert inner.threads == {"swapcam-sink-slow"}


def test_live_write_never_waits_for_the_encoder_and_counts_what_it_drops() -> None:
    inner = SlowSink()
    inner.gate.clear()  # the encoder is stuck on frame 0
    sink = BackgroundSink(inner, capacity=2, blocking=False)
    sink.write(frame(0))
    assert inner.busy.wait(5)
    for seq in range(1, 10):
        sink.write(frame(seq))  # returns at once: were it waiting for the encoder, this test would hang
    assert sink.dropped == 7
    inner.gate.set()
    sink.close()
    assert inner.written == [0, 8, 9]  # the newest frames survive, as in the pipeline's rings


def test_close_writes_out_the_queue_before_closing_the_sink() -> None:
    inner = SlowSink(delay_s=0.01)
    sink = BackgroundSink(inner, capacity=8, blocking=False)
    for seq in range(5):
        sink.write(frame(seq))
    sink.close()
    assert inner.written == [0, 1, 2, 3, 4]
    assert inner.closed
    sink.close()  # idempotent


def test_an_error_on_the_writer_thread_is_raised_by_every_later_write_and_by_close() -> None:
    """Raised once and then forgotten, a full disk looked like a sink that had recovered, and the
    pipeline never removed it."""
    inner = SlowSink(fail_on=1)
    sink = BackgroundSink(inner, capacity=4, blocking=True)
    sink.write(frame(0))
    sink.write(frame(1))
    deadline = time.perf_counter() + 5
    with pytest.raises(OSError, match="No space left"):
        while time.perf_counter() < deadline:
            sink.write(frame(2))
            time.sleep(0.01)
    for seq in range(3, 6):
        with pytest.raises(OSError, match="No space left"):
            sink.write(frame(seq))
    with pytest.raises(OSError, match="No space left"):
        sink.close()
    assert inner.written == [0] and inner.closed  # the writer stopped at the failure and closed the sink


def test_close_is_bounded_when_the_encoder_is_stuck() -> None:
    """The writer is stuck inside the wrapped sink: close returns within its timeout without closing the
    sink under it; the writer closes it once its write returns, dropping the rest of the queue."""
    inner = SlowSink()
    inner.gate.clear()
    sink = BackgroundSink(inner, capacity=4, blocking=False)
    sink.write(frame(0))
    assert inner.busy.wait(5)
    sink.write(frame(1))
    start = time.perf_counter()
    sink.close(timeout=0.3)
    assert time.perf_counter() - start < 1.0
    assert not inner.closed  # still inside write: not closed under it
    inner.gate.set()
    deadline = time.perf_counter() + 5
    while not inner.closed and time.perf_counter() < deadline:
        time.sleep(0.01)
    assert inner.closed and inner.written == [0]


def test_an_error_still_pending_at_close_is_raised_there() -> None:
    inner = SlowSink(fail_on=0)
    sink = BackgroundSink(inner, capacity=2, blocking=True)
    sink.write(frame(0))
    with pytest.raises(OSError):
        sink.close()
    assert inner.closed


def test_repeats_take_no_room_in_a_recording_queue() -> None:
    inner = SlowSink()
    inner.gate.clear()
    sink = BackgroundSink(inner, capacity=2, blocking=False, skip_repeats=True)
    sink.write(frame(0))
    assert inner.busy.wait(5)
    for seq in (1, 1, 1, 2, 2):  # the pipeline re-sends a frame while no new one comes
        sink.write(frame(seq))
    assert sink.dropped == 0
    inner.gate.set()
    sink.close()
    assert inner.written == [0, 1, 2]


@pytest.mark.parametrize(("width", "height", "fps", "expected"), [
    (1280, 720, 30, 15),   # half a second
    (3840, 2160, 60, 10),  # 4K: the memory cap (256 MB) wins
    (64, 64, 1, 2),        # never fewer than two
])
def test_queue_length(width: int, height: int, fps: float, expected: int) -> None:
    assert queue_frames(width=width, height=height, fps=fps) == expected


def test_file_output_is_a_background_recording(tmp_path: Path) -> None:
    path = tmp_path / "rec.mp4"
    sink = open_sink(parse_sink(f"file:{path}"), width=160, height=120, fps=30)
    assert isinstance(sink, BackgroundSink)
    t0 = time.perf_counter_ns()
    for seq in range(12):
        image = np.zeros((120, 160, 3), np.uint8)
        draw_stamp(image, seq)
        sink.write(Frame(image=image, seq=seq, t_capture=t0 + seq * 33_333_333))
    sink.close()
    stamps, _ = read_video(path)
    assert stamps == list(range(12))
