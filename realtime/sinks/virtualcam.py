"""A virtual webcam (pyvirtualcam) that Zoom, Meet, Teams and OBS can pick.

Target syntax (after ``virtualcam:``), comma-separated, all optional::

    virtualcam                          the first virtual camera found
    virtualcam:/dev/video10             a v4l2loopback device (Linux)
    virtualcam:backend=obs              a backend: v4l2loopback (Linux), obs (Windows/macOS), unitycapture (Windows)
    virtualcam:device=/dev/video10,backend=v4l2loopback
"""

from __future__ import annotations

import logging
import platform
import threading
from dataclasses import dataclass
from typing import Any

import cv2

from realtime.errors import OutputError, UsageError
from realtime.frame import Frame
from realtime.release import close_when_idle
from realtime.sinks.base import Sink

log = logging.getLogger(__name__)

BACKENDS = ("v4l2loopback", "obs", "unitycapture")
TARGET_HELP = "use virtualcam, virtualcam:/dev/video10 or virtualcam:backend=obs"


@dataclass(frozen=True)
class VirtualCamTarget:
    """Which virtual camera to write to (None: let pyvirtualcam pick)."""

    device: str | None = None
    backend: str | None = None


def parse_target(text: str) -> VirtualCamTarget:
    """Parse the part after ``virtualcam:``; raises UsageError E02 on anything else."""
    device = backend = None
    for item in (part.strip() for part in text.split(",")):
        if not item:
            continue
        key, sep, value = item.partition("=")
        if not sep:
            device = item
        elif key.strip().lower() == "device" and value.strip():
            device = value.strip()
        elif key.strip().lower() == "backend" and value.strip().lower() in BACKENDS:
            backend = value.strip().lower()
        else:
            raise UsageError("E02", f"virtualcam:{text}", remedy=f"{TARGET_HELP} (backends: {', '.join(BACKENDS)})")
    return VirtualCamTarget(device=device, backend=backend)


def setup_remedy(system: str | None = None) -> str:
    """How to get a virtual camera on this OS."""
    system = system or platform.system()
    if system == "Linux":
        return ("sudo apt install v4l2loopback-dkms && sudo modprobe v4l2loopback devices=1 video_nr=10 "
                "exclusive_caps=1 card_label=swapcam, then use --output virtualcam:/dev/video10")
    if system == "Windows":
        return "install OBS Studio (28+) and click Start Virtual Camera once, or install Unity Capture"
    if system == "Darwin":
        return "install OBS Studio (30+), click Start Virtual Camera once and allow its system extension"
    return "virtual cameras are supported on Linux (v4l2loopback), Windows and macOS (OBS)"


def _precheck_linux(target: VirtualCamTarget) -> None:
    """Fail with the remedy before pyvirtualcam prints its own noise when no loopback device exists."""
    from realtime.v4l2 import loopback_devices

    found = loopback_devices()
    if not found:
        raise OutputError("E10", "no v4l2loopback device found", remedy=setup_remedy("Linux"))
    if target.device and target.device not in {d.path for d in found}:
        names = ", ".join(d.path for d in found)
        raise OutputError("E10", f"{target.device} is not a v4l2loopback device (found: {names})",
                          remedy=f"use --output virtualcam:{found[0].path}")


class VirtualCamSink(Sink):
    """Sends frames to a virtual camera device, in BGR (no conversion on our side)."""

    failure_code = "E10"

    def __init__(self, target: str = "", *, width: int, height: int, fps: float) -> None:
        self.target = parse_target(target)
        system = platform.system()
        if self.target.backend not in (None, "v4l2loopback") and system == "Linux":
            raise UsageError("E02", f"backend {self.target.backend} is not available on Linux",
                             remedy="use virtualcam or virtualcam:backend=v4l2loopback")
        if system == "Linux" and self.target.backend in (None, "v4l2loopback"):
            _precheck_linux(self.target)
        self._lock = threading.Lock()
        self._closed = False
        self._close_after_send = False
        self._camera = self._open(width, height, fps)
        self.name = f"virtualcam:{self._camera.device}"
        log.info("virtual camera %s (%s backend) %dx%d @ %g fps", self._camera.device,
                 self._camera.backend, self._camera.width, self._camera.height, fps)

    def _open(self, width: int, height: int, fps: float) -> Any:
        try:
            import pyvirtualcam
        except ImportError as exc:
            raise OutputError("E23", "pyvirtualcam is not installed", remedy="pip install pyvirtualcam") from exc
        try:
            return pyvirtualcam.Camera(width, height, fps, fmt=pyvirtualcam.PixelFormat.BGR,
                                       device=self.target.device, backend=self.target.backend)
        except KeyError as exc:  # a backend this OS does not have
            raise OutputError("E10", f"backend {self.target.backend} is not available here",
                              remedy=setup_remedy()) from exc
        except (RuntimeError, OSError, ValueError) as exc:
            detail = str(exc).replace("\n", "; ")
            raise OutputError("E10", detail, remedy=setup_remedy()) from exc

    def write(self, frame: Frame) -> None:
        """Send ``frame``, resized if the device runs at another size."""
        image = frame.image
        size = (self._camera.width, self._camera.height)
        if (image.shape[1], image.shape[0]) != size:
            image = cv2.resize(image, size, interpolation=cv2.INTER_AREA)
        with self._lock:
            if self._closed:
                return
            try:
                self._camera.send(image)
            finally:
                if self._close_after_send:
                    self._release()

    def close(self, timeout: float = 1.0) -> None:
        """Release the device (other apps then see it stop).

        Waits up to ``timeout`` s for a ``write`` in progress; past it, that write releases the device as it
        ends.
        """
        close_when_idle(self._lock, self._release, self._defer_release, timeout)

    def _defer_release(self) -> None:
        self._close_after_send = True

    def _release(self) -> None:
        if not self._closed:
            self._closed = True
            self._camera.close()
