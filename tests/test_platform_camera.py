"""Camera API, buffering, permissions remedy and device names per OS, with sys.platform and OpenCV faked."""

from __future__ import annotations

import os
import platform
import sys
import time
import types
from typing import Any

import cv2
import numpy as np
import pytest

from realtime.commands import devices
from realtime.errors import InputError
from realtime.sources import camera
from realtime.sources.camera import CameraSource, capture_apis, grab_newest

STALE, FRESH = 0, 255


class FakeCapture:
    """A driver queue: ``queued`` stale frames come at once, then each fresh frame takes ``delay_s``."""

    def __init__(self, target: object, api: int, *, opens: bool = True, buffersize_ok: bool = True,
                 delay_s: float = 0.02) -> None:
        self.target, self.api, self.opens = target, api, opens
        self.buffersize_ok, self.delay_s = buffersize_ok, delay_s
        self.queued = 0
        self.last = FRESH

    def isOpened(self) -> bool:
        return self.opens

    def set(self, prop: int, _value: float) -> bool:
        return self.buffersize_ok if prop == cv2.CAP_PROP_BUFFERSIZE else True

    def get(self, prop: int) -> float:
        return 30.0 if prop == cv2.CAP_PROP_FPS else 0.0

    def grab(self) -> bool:
        if self.queued:
            self.queued -= 1
            self.last = STALE
        else:
            time.sleep(self.delay_s)
            self.last = FRESH
        return True

    def retrieve(self) -> tuple[bool, np.ndarray]:
        return True, np.full((48, 64, 3), self.last, np.uint8)

    def read(self) -> tuple[bool, np.ndarray]:
        self.grab()
        return self.retrieve()

    def release(self) -> None:
        pass


def _fake_opencv(monkeypatch: pytest.MonkeyPatch, *, opens_with: set[int] | None = None,
                 buffersize_ok: bool = True) -> list[FakeCapture]:
    """Replace cv2.VideoCapture; ``opens_with``: the APIs that open (None: all). Returns every capture made."""
    opened: list[FakeCapture] = []

    def video_capture(target: object, api: int = cv2.CAP_ANY) -> FakeCapture:
        opens = opens_with is None or api in opens_with
        opened.append(FakeCapture(target, api, opens=opens, buffersize_ok=buffersize_ok))
        return opened[-1]

    monkeypatch.setattr(camera.cv2, "VideoCapture", video_capture)
    return opened


@pytest.mark.parametrize(("os_name", "expected"), [
    ("linux", [cv2.CAP_V4L2]),
    ("win32", [cv2.CAP_DSHOW, cv2.CAP_MSMF]),
    ("darwin", [cv2.CAP_AVFOUNDATION]),
])
def test_each_os_gets_its_capture_api(os_name: str, expected: list[int]) -> None:
    assert [api for _name, api in capture_apis(os_name)] == expected


def test_windows_opens_with_directshow_first(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "platform", "win32")
    opened = _fake_opencv(monkeypatch)
    source = CameraSource("0", width=64, height=48, fps=30)
    assert [c.api for c in opened] == [cv2.CAP_DSHOW] and opened[0].target == 0
    assert source.api == "DSHOW"


def test_windows_falls_back_to_msmf_without_hardware_transforms(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "platform", "win32")
    monkeypatch.delenv("OPENCV_VIDEOIO_MSMF_ENABLE_HW_TRANSFORMS", raising=False)
    opened = _fake_opencv(monkeypatch, opens_with={cv2.CAP_MSMF})
    source = CameraSource("1", width=64, height=48, fps=30)
    assert [c.api for c in opened] == [cv2.CAP_DSHOW, cv2.CAP_MSMF] and source.api == "MSMF"
    assert os.environ["OPENCV_VIDEOIO_MSMF_ENABLE_HW_TRANSFORMS"] == "0"


def test_macos_opens_with_avfoundation(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "platform", "darwin")
    opened = _fake_opencv(monkeypatch)
    CameraSource("0", width=64, height=48, fps=30)
    assert [c.api for c in opened] == [cv2.CAP_AVFOUNDATION]


def test_macos_camera_failure_names_the_privacy_permission(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "platform", "darwin")
    _fake_opencv(monkeypatch, opens_with=set())
    with pytest.raises(InputError) as caught:
        CameraSource("0", width=64, height=48, fps=30)
    assert caught.value.code == "E11" and "Privacy & Security > Camera" in caught.value.remedy


def test_queued_frames_are_skipped_where_the_buffer_size_is_ignored(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "platform", "win32")
    opened = _fake_opencv(monkeypatch, buffersize_ok=False)
    source = CameraSource("0", width=64, height=48, fps=30)
    source.read()  # the frame taken while opening
    opened[-1].queued = 3  # the driver kept three old frames while the pipeline was busy
    assert int(source.read()[0, 0, 0]) == FRESH


def test_a_honoured_buffer_size_reads_straight(monkeypatch: pytest.MonkeyPatch) -> None:
    opened = _fake_opencv(monkeypatch, buffersize_ok=True)
    source = CameraSource("0", width=64, height=48, fps=30)
    source.read()
    opened[-1].queued = 1
    assert int(source.read()[0, 0, 0]) == STALE  # one read, no draining: V4L2 keeps just one frame anyway


def test_grab_newest_gives_up_after_max_skip() -> None:
    capture = FakeCapture(0, 0, delay_s=0.02)
    capture.queued = 10
    assert grab_newest(capture, interval_s=1 / 30, max_skip=4)
    assert capture.queued == 5 and capture.last == STALE


def test_devices_lists_camera_names_off_linux(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(platform, "system", lambda: "Windows")
    monkeypatch.setattr(sys, "platform", "win32")
    asked: list[int] = []

    def enumerate_cameras(api: int) -> list[Any]:
        asked.append(api)
        return [types.SimpleNamespace(index=0, name="HD Webcam"),
                types.SimpleNamespace(index=1, name="OBS Virtual Camera")]

    monkeypatch.setitem(sys.modules, "cv2_enumerate_cameras",
                        types.SimpleNamespace(enumerate_cameras=enumerate_cameras))
    monkeypatch.setattr(devices, "virtualcam_backends", lambda: ["  obs: not available (test)"])
    lines = devices.report()
    assert asked == [cv2.CAP_DSHOW]
    assert "  0  HD Webcam (DSHOW)" in lines and "  1  OBS Virtual Camera (DSHOW)" in lines


def test_devices_probes_indices_when_names_are_unavailable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(platform, "system", lambda: "Darwin")
    monkeypatch.setattr(sys, "platform", "darwin")
    monkeypatch.setitem(sys.modules, "cv2_enumerate_cameras", None)  # import fails
    opened = _fake_opencv(monkeypatch, opens_with={cv2.CAP_AVFOUNDATION})
    monkeypatch.setattr(devices, "virtualcam_backends", lambda: [])
    lines = devices.report()
    assert {c.api for c in opened} == {cv2.CAP_AVFOUNDATION}
    assert any(line.startswith("  0  ") for line in lines)
