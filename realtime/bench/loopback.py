"""``--loopback DEVICE``: read the virtual camera back as a capture device and time the hop."""

from __future__ import annotations

import logging
import sys
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field

import cv2

from realtime.clock import now_ns
from realtime.errors import OutputError
from realtime.stamp import read_stamp
from realtime.stats import summarize_ms

log = logging.getLogger(__name__)

JOIN_S = 2.0


LINUX_REMEDY = ("sudo apt install v4l2loopback-dkms && sudo modprobe v4l2loopback devices=1 video_nr=10 "
                "exclusive_caps=1 card_label=swapcam, then use --loopback /dev/video10")


def device_path(device: str) -> str:
    """'2' → '/dev/video2' on Linux; anything else unchanged."""
    if sys.platform.startswith("linux") and device.isdigit():
        return f"/dev/video{device}"
    return device


def resolve_device(device: str) -> str:
    """The virtual camera to write to and read back ('auto': the first v4l2loopback device).

    Raises E10 with the setup remedy when there is none, so the hop is reported
    as skipped with the reason instead of failing the benchmark.
    """
    from realtime.sinks.virtualcam import setup_remedy

    if not sys.platform.startswith("linux"):
        if device == "auto" or not device.isdigit():
            raise OutputError("E10", f"--loopback {device}: give the virtual camera's capture index, e.g. 1",
                              remedy=setup_remedy())
        return device
    from realtime.v4l2 import loopback_devices

    found = [d.path for d in loopback_devices()]
    if not found:
        raise OutputError("E10", "no v4l2loopback device, so the virtual-camera hop cannot be measured",
                          remedy=LINUX_REMEDY)
    if device == "auto":
        return found[0]
    path = device_path(device)
    if path not in found:
        raise OutputError("E10", f"{path} is not a v4l2loopback device (found: {', '.join(found)})",
                          remedy=f"use --loopback {found[0]}")
    return path


class LoopbackReader:
    """Reads a capture device in a named thread, recording (stamp or None, monotonic ns) per frame."""

    def __init__(self, device: str) -> None:
        self.device = device
        if device.isdigit():
            self._capture = cv2.VideoCapture(int(device))
        elif device.startswith("/dev/"):
            self._capture = cv2.VideoCapture(device, cv2.CAP_V4L2)
        else:  # anything OpenCV opens (a recorded file reads back the same way)
            self._capture = cv2.VideoCapture(device)
        if not self._capture.isOpened():
            raise OutputError("E10", f"{device} cannot be opened for reading back")
        # Keep the driver's queue short so the hop measured is the hop a video-call app sees.
        self._capture.set(cv2.CAP_PROP_BUFFERSIZE, 1)
        self.seen: list[tuple[int | None, int]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="swapcam-loopback", daemon=True)

    def start(self) -> None:
        """Start reading."""
        self._thread.start()

    def stop(self) -> None:
        """Stop reading and release the device."""
        self._stop.set()
        self._thread.join(JOIN_S)
        if self._thread.is_alive():
            log.warning("loopback reader did not stop within %.1f s", JOIN_S)
        else:
            self._capture.release()

    def _loop(self) -> None:
        while not self._stop.is_set():
            ok, image = self._capture.read()
            now = now_ns()
            if not ok or image is None:
                self._stop.wait(0.01)
                continue
            self.seen.append((read_stamp(image), now))


@dataclass
class HopSamples:
    """What the read-back saw, summed over rounds."""

    frames_read: int = 0
    undecodable: int = 0
    unique: int = 0
    repeats: int = 0
    missed: int = 0
    hop_ms: list[float] = field(default_factory=list)
    total_ms: list[float] = field(default_factory=list)

    def add(
        self,
        read_back: list[tuple[int | None, int]],
        written_ns: dict[int, int],
        captured_ns: Mapping[int, int],
    ) -> None:
        """Add one round: ``written_ns`` maps stamp → when the output wrote it, ``captured_ns`` → capture."""
        first: dict[int, int] = {}
        for seq, t_ns in read_back:
            if seq is None:
                self.undecodable += 1
            elif seq in first:
                self.repeats += 1
            else:
                first[seq] = t_ns
        self.frames_read += len(read_back)
        self.unique += len(first)
        self.missed += len(set(written_ns) - set(first))
        self.hop_ms += [(t - written_ns[s]) / 1e6 for s, t in first.items() if s in written_ns]
        self.total_ms += [(t - captured_ns[s]) / 1e6 for s, t in first.items() if s in captured_ns]

    def as_dict(self) -> dict[str, object]:
        """Counts and latency summaries for the JSON report."""
        return {
            "frames_read": self.frames_read, "undecodable": self.undecodable, "unique": self.unique,
            "repeats": self.repeats, "missed": self.missed,
            "hop_ms": summarize_ms(self.hop_ms), "total_ms": summarize_ms(self.total_ms),
        }
