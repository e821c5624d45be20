"""The stamp witness: a stamping source wrapper, a decoding probe sink, and the check that compares them."""

from __future__ import annotations

import time

import numpy as np
import pytest

from realtime.bench.stamps import (
    StampCheck,
    StampedSource,
    StampProbe,
    check_stamps,
    disagreements,
    stage_split,
    stamp_latencies,
)
from realtime.frame import Frame
from realtime.sources.synthetic import SyntheticSource


class GreySource:
    """A real (if dull) source whose frames are read-only, like some decoders return."""

    name, width, height, fps, live = "grey", 320, 240, 30.0, True

    def read(self) -> np.ndarray:
        image = np.full((self.height, self.width, 3), 90, np.uint8)
        image.flags.writeable = False
        return image

    def close(self) -> None:
        pass


def test_check_finds_a_repeat_and_a_gap() -> None:
    check = check_stamps([0, 1, 2, 2, 4, 5], captured=range(6))
    assert check == StampCheck(writes=6, decoded=6, undecodable=0, unique=5, repeats=1, reordered=0, gaps=1)


def test_check_finds_reordering_without_inventing_gaps() -> None:
    check = check_stamps([0, 2, 1, 3], captured=range(4))
    assert (check.reordered, check.gaps, check.repeats) == (1, 0, 0)


def test_check_counts_unreadable_and_foreign_stamps() -> None:
    check = check_stamps([0, None, 1, 99], captured={0, 1, 2})
    assert (check.undecodable, check.foreign, check.gaps, check.unique) == (1, 1, 1, 3)


def test_check_without_capture_record_uses_the_range_seen() -> None:
    assert check_stamps([3, 4, 6]).gaps == 1
    assert check_stamps([]).gaps == 0


def test_checks_add_up_over_rounds() -> None:
    total = check_stamps([0, 0, 2], captured=range(3)) + check_stamps([0, 1], captured=range(3))
    assert (total.repeats, total.gaps, total.unique, total.writes) == (1, 2, 4, 5)


def test_probe_decodes_repeat_and_gap_from_real_frames() -> None:
    """Frames stamped at the source, written to the probe as a pipeline would, with one re-sent and one lost."""
    source = StampedSource(SyntheticSource(width=320, height=240, fps=30, paced=False))
    frames = [Frame(image=source.read(), seq=i, t_capture=time.perf_counter_ns()) for i in range(6)]
    probe = StampProbe()
    for index in (0, 1, 2, 2, 4, 5):  # frame 2 re-sent, frame 3 dropped
        frame = frames[index]
        probe.write(frame)
        frame.t_output = frame.t_output or time.perf_counter_ns()
    seen = probe.seen
    assert [seq for seq, _ in seen] == [0, 1, 2, 2, 4, 5]
    check = check_stamps([seq for seq, _ in seen], source.captured_ns.keys())
    assert (check.repeats, check.gaps, check.unique) == (1, 1, 5)
    latencies = stamp_latencies(seen, source.captured_ns)
    assert len(latencies) == 5 and all(ms >= 0 for _, ms in latencies)
    assert len(probe.splits) == 5  # the re-send is not a new frame


def test_stamps_do_not_trust_the_frame_object() -> None:
    """A frame whose seq field lies still decodes to the stamp its pixels carry."""
    source = StampedSource(SyntheticSource(width=320, height=240, fps=30, paced=False))
    images = [source.read() for _ in range(3)]
    probe = StampProbe()
    probe.write(Frame(image=images[2], seq=0, t_capture=time.perf_counter_ns()))
    assert probe.seen[0][0] == 2


def test_wrapper_stamps_any_source_even_read_only_frames() -> None:
    source = StampedSource(GreySource())
    probe = StampProbe()
    for _ in range(3):
        probe.write(Frame(image=source.read(), seq=0, t_capture=time.perf_counter_ns()))
    assert [seq for seq, _ in probe.seen] == [0, 1, 2]
    assert sorted(source.captured_ns) == [0, 1, 2]
    assert (source.name, source.width, source.height, source.live) == ("grey", 320, 240, True)


def test_frames_smaller_than_a_stamp_stay_unstamped() -> None:
    source = StampedSource(SyntheticSource(width=32, height=32, fps=30, paced=False))
    probe = StampProbe()
    probe.write(Frame(image=source.read(), seq=0, t_capture=time.perf_counter_ns()))
    assert source.captured_ns == {}
    assert probe.seen[0][0] is None


def test_stage_split_adds_up_to_the_latency() -> None:
    frame = Frame(image=np.zeros((48, 96, 3), np.uint8), seq=0, t_capture=1_000_000)
    frame.stages = {"infer": (3_000_000, 23_000_000), "detect": (4_000_000, 9_000_000),
                    "output": (24_000_000, 25_000_000)}
    split = stage_split(frame, now_ns=25_000_000)
    assert split == pytest.approx({"queue_in": 2.0, "infer": 20.0, "queue_out": 2.0, "detect": 5.0})
    assert split["queue_in"] + split["infer"] + split["queue_out"] == pytest.approx(24.0)


def test_disagreements_name_each_mismatch() -> None:
    agree = check_stamps([0, 1, 1, 3], captured=range(4))
    assert disagreements(agree, dropped=1, resent=1, output=3) == []
    found = disagreements(agree, dropped=0, resent=0, output=4)
    assert len(found) == 3
    assert "never output" in found[0] and "repeated" in found[1] and "distinct" in found[2]
