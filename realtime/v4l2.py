"""Linux video devices (/dev/video*): names, and which are v4l2loopback virtual cameras."""

from __future__ import annotations

import fcntl
import os
import re
import struct
from dataclasses import dataclass
from pathlib import Path

SYSFS = Path("/sys/class/video4linux")
DEV = Path("/dev")

# struct v4l2_capability: driver[16] card[32] bus_info[32] version capabilities device_caps reserved[3]
_CAPABILITY = struct.Struct("16s32s32sIII12x")
VIDIOC_QUERYCAP = (2 << 30) | (_CAPABILITY.size << 16) | (ord("V") << 8) | 0  # _IOR('V', 0, ...)
CAP_VIDEO_CAPTURE = 0x00000001
CAP_VIDEO_CAPTURE_MPLANE = 0x00001000
CAP_DEVICE_CAPS = 0x80000000
LOOPBACK_DRIVER = "v4l2 loopback"


@dataclass(frozen=True)
class VideoDevice:
    """One /dev/videoN node."""

    path: str
    name: str
    loopback: bool  # a v4l2loopback device: a virtual camera swapcam can write to
    capture: bool | None  # delivers video (None when the driver could not be asked)


def _index(entry: Path) -> int:
    match = re.search(r"(\d+)$", entry.name)
    return int(match.group(1)) if match else -1


def query_capabilities(path: Path) -> tuple[str, int] | None:
    """(driver name, device capabilities) via VIDIOC_QUERYCAP, or None if the node cannot be asked."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    except OSError:
        return None
    try:
        raw = fcntl.ioctl(fd, VIDIOC_QUERYCAP, bytes(_CAPABILITY.size))
    except OSError:
        return None
    finally:
        os.close(fd)
    driver, _card, _bus, _version, caps, device_caps = _CAPABILITY.unpack(raw)
    effective = device_caps if caps & CAP_DEVICE_CAPS else caps
    return driver.split(b"\0", 1)[0].decode(errors="replace"), effective


def list_video_devices(*, sysfs: Path = SYSFS, dev: Path = DEV) -> list[VideoDevice]:
    """Every /dev/videoN, in index order, with its name from sysfs."""
    if not sysfs.is_dir():
        return []
    devices = []
    for entry in sorted(sysfs.glob("video*"), key=_index):
        name_file = entry / "name"
        name = name_file.read_text(errors="replace").strip() if name_file.is_file() else entry.name
        # v4l2loopback registers its nodes under /sys/devices/virtual; real cameras hang off a bus.
        loopback = "/virtual/" in str(entry.resolve())
        capture = None
        caps = query_capabilities(dev / entry.name)
        if caps is not None:
            driver, flags = caps
            loopback = loopback or driver == LOOPBACK_DRIVER
            capture = bool(flags & (CAP_VIDEO_CAPTURE | CAP_VIDEO_CAPTURE_MPLANE))
        devices.append(VideoDevice(path=str(dev / entry.name), name=name, loopback=loopback, capture=capture))
    return devices


def loopback_devices(*, sysfs: Path = SYSFS, dev: Path = DEV) -> list[VideoDevice]:
    """The v4l2loopback virtual cameras."""
    return [d for d in list_video_devices(sysfs=sysfs, dev=dev) if d.loopback]
