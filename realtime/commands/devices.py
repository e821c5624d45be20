"""``swapcam devices``: the cameras and virtual cameras this machine has."""

from __future__ import annotations

import argparse
import logging
import platform
from typing import Any

log = logging.getLogger(__name__)

PROBE_INDICES = range(6)


def add_parser(sub: Any) -> None:
    """Register ``devices``."""
    parser = sub.add_parser("devices", help="list cameras and virtual cameras",
                            description="List the webcams (--camera) and virtual cameras (--output virtualcam).")
    parser.set_defaults(handler=handle)


def linux_report() -> list[str]:
    """Cameras and v4l2loopback devices from /dev/video* and sysfs."""
    from realtime.v4l2 import list_video_devices

    devices = list_video_devices()
    cameras = [d for d in devices if not d.loopback and d.capture is not False]
    loopbacks = [d for d in devices if d.loopback]
    lines = ["cameras (use --camera PATH or its number):"]
    lines += [f"  {d.path}  {d.name}" for d in cameras] or ["  none found"]
    lines.append("virtual cameras (v4l2loopback; use --output virtualcam:PATH):")
    lines += [f"  {d.path}  {d.name}" for d in loopbacks] or [
        "  none — sudo modprobe v4l2loopback devices=1 video_nr=10 exclusive_caps=1 card_label=swapcam"
    ]
    hidden = len(devices) - len(cameras) - len(loopbacks)
    if hidden:
        lines.append(f"({hidden} other video node(s) without a capture stream, e.g. camera metadata, not shown)")
    return lines


def named_cameras() -> list[str] | None:
    """Cameras with their names, numbered as ``--camera N`` opens them (Windows, macOS), via
    cv2-enumerate-cameras; None when it is not installed or cannot enumerate here."""
    from realtime.sources.camera import capture_apis

    try:
        from cv2_enumerate_cameras import enumerate_cameras
    except ImportError:
        return None
    api_name, api = capture_apis()[0]
    try:
        cameras = enumerate_cameras(api)
    except Exception as exc:  # a third-party probe of OS APIs: any failure means "no names", not a crash
        log.debug("cv2-enumerate-cameras failed: %r", exc)
        return None
    return [f"  {camera.index}  {camera.name} ({api_name})" for camera in cameras]


def probed_cameras() -> list[str]:
    """Camera indices OpenCV can open (Windows, macOS): a quick open/close of each, with this OS's API."""
    import cv2

    from realtime.sources.camera import capture_apis

    _name, api = capture_apis()[0]
    found = []
    for index in PROBE_INDICES:
        capture = cv2.VideoCapture(index, api)
        if capture.isOpened():
            width = int(capture.get(cv2.CAP_PROP_FRAME_WIDTH))
            height = int(capture.get(cv2.CAP_PROP_FRAME_HEIGHT))
            found.append(f"  {index}  ({width}x{height} by default)")
        capture.release()
    return found


def virtualcam_backends() -> list[str]:
    """pyvirtualcam's backends for this OS (on Windows/macOS whether one opens)."""
    try:
        import pyvirtualcam
    except ImportError:
        return ["  pyvirtualcam is not installed — pip install pyvirtualcam"]
    lines = []
    for name in pyvirtualcam.camera.BACKENDS:
        try:
            with pyvirtualcam.Camera(64, 64, 30, backend=name) as camera:
                lines.append(f"  {name}: available ({camera.device}) — use --output virtualcam:backend={name}")
        except Exception as exc:  # each backend reports its own reason; show it and go on
            lines.append(f"  {name}: not available ({str(exc).splitlines()[0]})")
    return lines or ["  none for this OS"]


def report() -> list[str]:
    """All lines ``swapcam devices`` prints."""
    if platform.system() == "Linux":
        return linux_report()
    lines = ["cameras (use --camera N):"]
    cameras = named_cameras()
    if cameras is None:
        cameras = probed_cameras()
    lines += cameras or ["  none found (check the OS camera permissions for this terminal)"]
    lines.append("virtual camera backends:")
    lines += virtualcam_backends()
    return lines


def handle(args: argparse.Namespace) -> int:
    """Print the device list."""
    print("\n".join(report()))
    return 0
