"""A webcam through OpenCV: index ("0") or device path ("/dev/video0")."""

from __future__ import annotations

import logging
import os
import sys
import threading
from typing import Any

import cv2
import numpy as np

from realtime.clock import now_s
from realtime.errors import InputError
from realtime.release import close_when_idle
from realtime.sources.base import SignalLost, Source

log = logging.getLogger(__name__)


def fourcc_text(code: float) -> str:
    """OpenCV's numeric FOURCC property → 'MJPG' ('' when the driver reports none)."""
    value = int(code)
    text = "".join(chr((value >> (8 * i)) & 0xFF) for i in range(4))
    return text if text.isprintable() and text.strip("\x00") else ""


def capture_apis(platform: str | None = None) -> tuple[tuple[str, int], ...]:
    """The OpenCV capture APIs to open a webcam with on ``platform`` (default: this OS), best first.

    Linux: V4L2 directly (GStreamer/FFmpeg add buffering). Windows: DirectShow, which opens at once and takes
    the FOURCC, size and fps without renegotiating; Media Foundation renegotiates on each of them for
    seconds (opencv#17687, #26495), so it is only the fallback, with its hardware transforms off (the fix
    OpenCV documents for its slow start). macOS: AVFoundation.
    """
    platform = platform or sys.platform
    if platform.startswith("linux"):
        return (("V4L2", cv2.CAP_V4L2),)
    if platform == "win32":
        return (("DSHOW", cv2.CAP_DSHOW), ("MSMF", cv2.CAP_MSMF))
    if platform == "darwin":
        return (("AVFOUNDATION", cv2.CAP_AVFOUNDATION),)
    return (("ANY", cv2.CAP_ANY),)


def open_remedy(platform: str | None = None) -> str:
    """What to check when a camera does not open, for ``platform`` (default: this OS)."""
    platform = platform or sys.platform
    common = "check `swapcam devices`, close other apps using the camera, or pick another --camera"
    if platform == "darwin":
        return (f"allow your terminal app in System Settings > Privacy & Security > Camera (then restart it); "
                f"{common}")
    if platform == "win32":
        return f"turn on Settings > Privacy & security > Camera > Let desktop apps access your camera; {common}"
    return common


def _open_capture(location: str) -> tuple[cv2.VideoCapture, str]:
    """Open by index or path with this OS's capture API (see :func:`capture_apis`); returns it and the API's name."""
    target: int | str = int(location) if location.strip().isdigit() else location
    apis = capture_apis()
    for name, api in apis:
        if api == cv2.CAP_MSMF:
            # Read by OpenCV when MSMF first opens a device; a value the user set wins.
            os.environ.setdefault("OPENCV_VIDEOIO_MSMF_ENABLE_HW_TRANSFORMS", "0")
        capture = cv2.VideoCapture(target, api)
        if capture.isOpened() or (name, api) == apis[-1]:
            return capture, name
        capture.release()
    raise AssertionError("capture_apis() is never empty")


def grab_newest(capture: Any, *, interval_s: float, max_skip: int = 4) -> bool:
    """Grab until the frame is fresh; for backends that ignore CAP_PROP_BUFFERSIZE (DSHOW, MSMF, AVFoundation).

    A grab that returns in under a quarter of the frame interval handed over a frame that was already
    waiting in the driver's queue, i.e. a stale one: grab again, up to ``max_skip`` times. Returns
    whether the last grab succeeded; ``capture.retrieve()`` then decodes it.
    """
    for _ in range(max_skip + 1):
        started = now_s()
        if not capture.grab():
            return False
        if now_s() - started >= interval_s / 4:
            return True
    return True


class CameraSource(Source):
    """Frames from a webcam at the mode the driver grants.

    Requests ``width``×``height`` at ``fps`` in MJPG (USB cameras give full
    frame rates only compressed) with a one-frame driver buffer, so ``read``
    returns the newest frame. ``width``, ``height`` and ``fps`` report what the
    camera actually delivers. A lost camera raises SignalLost; ``reconnect``
    reopens it.
    """

    live = True

    def __init__(self, location: str, *, width: int, height: int, fps: float) -> None:
        self.location = location or "0"
        self.name = f"camera:{self.location}"
        self.requested = (width, height, fps)
        self.width, self.height, self.fps = width, height, fps
        self.fourcc = ""
        self._lock = threading.Lock()
        self._close_after_read = False
        self._capture: cv2.VideoCapture | None = None
        self._first: np.ndarray | None = None
        self.api = ""
        self._drain = False  # the backend ignores CAP_PROP_BUFFERSIZE: skip queued frames by hand
        self._open()

    def _open(self) -> None:
        capture, self.api = _open_capture(self.location)
        if not capture.isOpened():
            capture.release()
            raise InputError("E11", f"{self.location!r} did not open", remedy=open_remedy())
        width, height, fps = self.requested
        # FOURCC first: some drivers only offer large sizes or high fps in MJPG.
        capture.set(cv2.CAP_PROP_FOURCC, cv2.VideoWriter.fourcc(*"MJPG"))
        capture.set(cv2.CAP_PROP_FRAME_WIDTH, width)
        capture.set(cv2.CAP_PROP_FRAME_HEIGHT, height)
        capture.set(cv2.CAP_PROP_FPS, fps)
        self._drain = not capture.set(cv2.CAP_PROP_BUFFERSIZE, 1)
        ok, image = capture.read()
        if not ok or image is None:
            capture.release()
            raise InputError("E11", f"{self.location!r} opened but delivered no frame", remedy=open_remedy())
        self._capture, self._first = capture, _to_bgr(image)
        self.height, self.width = self._first.shape[:2]
        granted_fps = capture.get(cv2.CAP_PROP_FPS)
        self.fps = float(granted_fps) if granted_fps and granted_fps > 0 else fps
        self.fourcc = fourcc_text(capture.get(cv2.CAP_PROP_FOURCC))
        log.info("camera %s (%s): asked %dx%d @ %g fps MJPG, granted %dx%d @ %g fps %s%s",
                 self.location, self.api, width, height, fps, self.width, self.height, self.fps,
                 self.fourcc or "?", "; skipping queued frames (no driver buffer setting)" if self._drain else "")

    def read(self) -> np.ndarray:
        """The next frame (blocks until the camera delivers it)."""
        with self._lock:
            if self._first is not None:
                first, self._first = self._first, None
                return first
            image = self._grab()
            if self._close_after_read:
                self._release()
        if image is None:
            raise SignalLost(f"camera {self.location} stopped delivering frames")
        return image

    def _grab(self) -> np.ndarray | None:
        """One frame from the driver, or None when the read failed."""
        if self._capture is None:
            return None
        if self._drain:
            ok = grab_newest(self._capture, interval_s=1.0 / max(self.fps, 1.0))
            ok, image = self._capture.retrieve() if ok else (False, None)
        else:
            ok, image = self._capture.read()
        if not ok or image is None:
            return None
        return _to_bgr(image)

    def reconnect(self) -> None:
        """Release and reopen the camera (after SignalLost); raises InputError E11 if it is still gone."""
        with self._lock:
            self._release()
            self._open()

    def close(self) -> None:
        """Release the camera now, or, when a read is in progress, as soon as it returns (never waits)."""
        close_when_idle(self._lock, self._release, self._defer_release)

    def _defer_release(self) -> None:
        self._close_after_read = True

    def _release(self) -> None:
        if self._capture is not None:
            self._capture.release()
            self._capture = None


def _to_bgr(image: np.ndarray) -> np.ndarray:
    """Drivers may hand over grey or BGRA frames; the pipeline wants BGR."""
    if image.ndim == 2:
        return cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
    if image.shape[2] == 4:
        return cv2.cvtColor(image, cv2.COLOR_BGRA2BGR)
    return image
