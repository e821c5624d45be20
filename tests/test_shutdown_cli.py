"""`swapcam run` in a subprocess: a recording on a full filesystem, SIGTERM, and a second Ctrl-C."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from runtime_media import read_video, write_stamped_video

SWAPCAM = str(Path(sys.executable).with_name("swapcam"))


@pytest.fixture
def full_disk(tmp_path: Path) -> Iterator[Path]:
    """A 32 KiB tmpfs: the test's recording (about 1.4 KiB a frame) fills it within a second of video."""
    if os.geteuid() != 0 or not shutil.which("mount"):
        pytest.skip("mounting a small tmpfs needs root (and mount): the full-filesystem test is not run")
    where = tmp_path / "full"
    where.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=32k", "tmpfs", str(where)],
                             capture_output=True, text=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.strip()}")
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], check=False)


def test_a_recording_on_a_full_filesystem_is_removed_and_the_other_output_gets_every_frame(
        tmp_path: Path, full_disk: Path) -> None:
    clip = write_stamped_video(tmp_path / "in.mp4", frames=90, width=640, height=480)
    kept, stats = tmp_path / "kept.mkv", tmp_path / "stats.json"
    result = subprocess.run(
        [SWAPCAM, "run", "--input", str(clip), "--offline", "--output", f"file:{full_disk / 'rec.mp4'}",
         "--output", f"file:{kept}", "--stats-json", str(stats)],
        capture_output=True, text=True, timeout=120)
    assert result.returncode != 0, result.stderr
    output = result.stdout + result.stderr
    assert 1 <= output.count("E14") <= 3, output
    assert "Traceback" not in output
    stamps, _ = read_video(kept)
    assert stamps == list(range(90))  # the second output delivered every frame
    failed = json.loads(stats.read_text())["failed_outputs"]
    assert [(f["name"], f["code"]) for f in failed] == [(f"file:{full_disk / 'rec.mp4'}", "E14")]
    assert f"output failed and removed: file:{full_disk / 'rec.mp4'}" in result.stdout


def start_run(*args: str) -> subprocess.Popen[str]:
    """Start `swapcam run`; return once its first status line is out (the pipeline runs)."""
    process = subprocess.Popen([SWAPCAM, "run", "--synthetic", "--size", "320x240", *args],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert process.stderr is not None
    deadline = time.perf_counter() + 30
    while time.perf_counter() < deadline:
        line = process.stderr.readline()
        if "fps | out" in line or not line:
            break
    return process


def test_sigterm_stops_within_2_s_with_the_recording_finalised(tmp_path: Path) -> None:
    recording, stats = tmp_path / "rec.mp4", tmp_path / "stats.json"
    process = start_run("--output", f"file:{recording}", "--stats-json", str(stats))
    time.sleep(0.5)
    sent = time.perf_counter()
    process.send_signal(signal.SIGTERM)
    process.communicate(timeout=10)
    assert time.perf_counter() - sent < 2.0
    assert process.returncode == 0
    stamps, _ = read_video(recording)
    assert len(stamps) == json.loads(stats.read_text())["frames"]["output"] > 0


def test_ctrl_c_stops_within_2_s_while_the_processor_is_stuck_in_a_frame(tmp_path: Path) -> None:
    """The run does not wait for the inference thread to come out of its 5 s frame."""
    process = start_run("--processor", "sleep:5000", "--output", f"file:{tmp_path / 'rec.mp4'}")
    sent = time.perf_counter()
    process.send_signal(signal.SIGINT)
    try:
        process.communicate(timeout=10)
    finally:
        process.kill()
    assert time.perf_counter() - sent < 2.0
    assert process.returncode == 0


def test_a_second_ctrl_c_ends_the_process_within_1_s_with_130(tmp_path: Path) -> None:
    """The processor hangs in a frame (5 s), so the first Ctrl-C's stop waits its ~0.8 s for the threads;
    the second one, during that wait, quits at once."""
    process = start_run("--processor", "sleep:5000", "--output", f"file:{tmp_path / 'rec.mp4'}")
    time.sleep(0.3)
    process.send_signal(signal.SIGINT)
    time.sleep(0.2)
    sent = time.perf_counter()
    process.send_signal(signal.SIGINT)
    try:
        process.communicate(timeout=10)
    finally:
        process.kill()
    assert time.perf_counter() - sent < 1.0
    assert process.returncode == 130


def test_swapping_a_video_onto_a_full_filesystem_is_E14_and_leaves_no_output(tmp_path: Path,
                                                                              full_disk: Path) -> None:
    """The removed output ends the render, and swap_video says so instead of muxing a cut-off file."""
    from realtime.errors import OutputError
    from realtime.processors import Passthrough
    from realtime.videoswap import swap_video

    clip = write_stamped_video(tmp_path / "in.mp4", frames=90, width=640, height=480)
    with pytest.raises(OutputError) as caught:
        swap_video(Passthrough(), clip, full_disk / "out.mp4")
    assert caught.value.code == "E14"
    assert not (full_disk / "out.mp4").exists()
