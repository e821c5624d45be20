"""A webcam through OpenCV: index ("0") or device path ("/dev/video0")."""

from __future__ import annotations

import logging
import sys
import threading

import cv2
import numpy as np

from realtime.errors import InputError
from realtime.sources.base import SignalLost, Source

log = logging.getLogger(__name__)


def fourcc_text(code: float) -> str:
    """OpenCV's numeric FOURCC property → 'MJPG' ('' when the driver reports none)."""
    value = int(code)
    text = "".join(chr((value >> (8 * i)) & 0xFF) for i in range(4))
    return text if text.isprintable() and text.strip("\x00") else ""


def _open_capture(location: str) -> cv2.VideoCapture:
    """Open by index or path; on Linux V4L2 directly (GStreamer/FFmpeg add buffering)."""
    target: int | str = int(location) if location.strip().isdigit() else location
    if sys.platform.startswith("linux"):
        return cv2.VideoCapture(target, cv2.CAP_V4L2)
    return cv2.VideoCapture(target)


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
        self._open()

    def _open(self) -> None:
        capture = _open_capture(self.location)
        if not capture.isOpened():
            capture.release()
            raise InputError("E11", f"{self.location!r} did not open")
        width, height, fps = self.requested
        # FOURCC first: some drivers only offer large sizes or high fps in MJPG.
        capture.set(cv2.CAP_PROP_FOURCC, cv2.VideoWriter.fourcc(*"MJPG"))
        capture.set(cv2.CAP_PROP_FRAME_WIDTH, width)
        capture.set(cv2.CAP_PROP_FRAME_HEIGHT, height)
        capture.set(cv2.CAP_PROP_FPS, fps)
        capture.set(cv2.CAP_PROP_BUFFERSIZE, 1)
        ok, image = capture.read()
        if not ok or image is None:
            capture.release()
            raise InputError("E11", f"{self.location!r} opened but delivered no frame")
        self._capture, self._first = capture, _to_bgr(image)
        self.height, self.width = self._first.shape[:2]
        granted_fps = capture.get(cv2.CAP_PROP_FPS)
        self.fps = float(granted_fps) if granted_fps and granted_fps > 0 else fps
        self.fourcc = fourcc_text(capture.get(cv2.CAP_PROP_FOURCC))
        log.info("camera %s: asked %dx%d @ %g fps MJPG, granted %dx%d @ %g fps %s",
                 self.location, width, height, fps, self.width, self.height, self.fps, self.fourcc or "?")

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
        if not self._lock.acquire(blocking=False):
            self._close_after_read = True
            if not self._lock.acquire(blocking=False):  # again: the read may have ended before the flag was up
                return
        try:
            self._release()
        finally:
            self._lock.release()

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
