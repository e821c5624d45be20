"""The loopback reader and the hop analysis, on a real H.264 file where no virtual camera exists."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import pytest

from realtime.bench.loopback import HopSamples, LoopbackReader, resolve_device
from realtime.errors import OutputError
from realtime.frame import Frame
from realtime.sinks.factory import open_sink, parse_sink
from realtime.sources.synthetic import SyntheticSource


def test_reader_decodes_stamps_read_back_through_h264(tmp_path: Path) -> None:
    path = tmp_path / "loop.mp4"
    source = SyntheticSource(width=320, height=240, fps=30, paced=False)
    # Written far faster than real time: an offline recording, which waits for its encoder instead of dropping.
    sink = open_sink(parse_sink(f"file:{path}"), width=320, height=240, fps=30, live=False)
    for seq in range(20):
        sink.write(Frame(image=source.read(), seq=seq, t_capture=time.perf_counter_ns()))
    sink.close()
    reader = LoopbackReader(str(path))
    reader.start()
    deadline = time.perf_counter() + 5
    while len(reader.seen) < 20 and time.perf_counter() < deadline:
        time.sleep(0.02)
    reader.stop()
    assert [seq for seq, _ in reader.seen] == list(range(20))


def test_reader_refuses_what_cannot_be_opened(tmp_path: Path) -> None:
    with pytest.raises(OutputError) as caught:
        LoopbackReader(str(tmp_path / "missing.mp4"))
    assert caught.value.code == "E10"


def test_no_virtual_camera_is_e10_with_the_setup_for_this_os() -> None:
    if sys.platform.startswith("linux"):
        from realtime.v4l2 import loopback_devices

        if loopback_devices():
            pytest.skip("this machine has a virtual camera")
    with pytest.raises(OutputError) as caught:
        resolve_device("auto")
    expected = "modprobe v4l2loopback" if sys.platform.startswith("linux") else "OBS"
    assert caught.value.code == "E10" and expected in caught.value.remedy


def test_hop_samples_match_stamps_read_back_to_the_output_and_capture_times() -> None:
    ms = 1_000_000
    captured = {0: 0, 1: 33 * ms, 2: 66 * ms}
    written = {0: 10 * ms, 1: 43 * ms, 2: 76 * ms}
    hops = HopSamples()
    hops.add([(0, 25 * ms), (0, 40 * ms), (1, 60 * ms), (None, 70 * ms)], written, captured)
    result = hops.as_dict()
    assert (result["unique"], result["repeats"], result["undecodable"], result["missed"]) == (2, 1, 1, 1)
    assert hops.hop_ms == [15.0, 17.0] and hops.total_ms == [25.0, 27.0]
    assert result["hop_ms"]["p50"] == pytest.approx(16.0)
