"""What a container gives this process: its CPU quota, /dev/shm, video devices and NVIDIA GPU.

Every reader takes the filesystem root (``/`` by default) so that tests can
point it at a fake tree of cgroup, /proc and /dev files.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import MutableMapping
from dataclasses import dataclass
from pathlib import Path

ROOT = Path("/")
THREAD_VARIABLES = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")
_DRIVER_RE = re.compile(r"Kernel Module\s+(?:for\s+\S+\s+)?(\d+(?:\.\d+)+)")


@dataclass(frozen=True)
class VideoDevice:
    """A /dev/video* node as this process sees it."""

    path: Path
    gid: int
    usable: bool  # readable and writable by this process


def container_kind(root: Path = ROOT) -> str | None:
    """"docker", "podman", "kubernetes" or "container" when inside one, else None."""
    if (root / ".dockerenv").exists():
        return "docker"
    if (root / "run/.containerenv").exists():
        return "podman"
    try:
        cgroup = (root / "proc/1/cgroup").read_text()
    except OSError:
        return None
    for word, kind in (("kubepods", "kubernetes"), ("docker", "docker"), ("libpod", "podman"),
                       ("containerd", "container")):
        if word in cgroup:
            return kind
    return None


def _own_cgroup_paths(root: Path) -> dict[str, str]:
    """{controller: path} from /proc/self/cgroup ("" is the cgroup v2 unified hierarchy)."""
    paths: dict[str, str] = {}
    try:
        lines = (root / "proc/self/cgroup").read_text().splitlines()
    except OSError:
        return paths
    for line in lines:
        parts = line.split(":", 2)
        if len(parts) == 3:
            for controller in parts[1].split(","):
                paths[controller] = parts[2]
    return paths


def _candidates(mount: Path, own: str | None) -> list[Path]:
    """The process's own cgroup folder (when visible), then the mount's root (a container's namespace)."""
    folders = [mount / own.lstrip("/")] if own and own != "/" else []
    return [*folders, mount]


def cgroup_cpu_limit(root: Path = ROOT) -> float | None:
    """CPUs the cgroup's CFS quota allows (e.g. 1.5), or None when there is no quota.

    cgroup v2: ``cpu.max`` ("max 100000" or "150000 100000"); cgroup v1:
    ``cpu.cfs_quota_us`` (-1 when unlimited) over ``cpu.cfs_period_us``.
    """
    own = _own_cgroup_paths(root)
    cgroup = root / "sys/fs/cgroup"
    for folder in _candidates(cgroup, own.get("")):
        try:
            quota, period = (folder / "cpu.max").read_text().split()[:2]
        except (OSError, ValueError):
            continue
        return None if quota == "max" else int(quota) / int(period)
    for mount in (cgroup / "cpu", cgroup / "cpu,cpuacct", cgroup / "cpuacct,cpu"):
        for folder in _candidates(mount, own.get("cpu")):
            try:
                quota_us = int((folder / "cpu.cfs_quota_us").read_text())
                period_us = int((folder / "cpu.cfs_period_us").read_text())
            except (OSError, ValueError):
                continue
            return None if quota_us <= 0 or period_us <= 0 else quota_us / period_us
    return None


def affinity_cpus() -> int:
    """CPUs in this process's affinity mask (cpuset), else the machine's count."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def usable_cpus(root: Path = ROOT, affinity: int | None = None) -> int:
    """CPUs worth a thread each: the affinity mask, capped by the cgroup quota rounded up (at least 1)."""
    cpus = affinity if affinity is not None else affinity_cpus()
    limit = cgroup_cpu_limit(root)
    if limit is not None:
        cpus = min(cpus, math.ceil(limit))
    return max(1, cpus)


def apply_thread_defaults(environ: MutableMapping[str, str], *, root: Path = ROOT,
                          affinity: int | None = None) -> int | None:
    """Cap the OpenMP/MKL/OpenBLAS thread defaults at the cgroup quota when it is below the machine's CPUs.

    Those libraries size their pools from the host's CPU count, which inside a
    container with ``--cpus=2`` on a 64-core host means 64 threads on 2 CPUs.
    Variables the user set are kept. Returns the cap, or None when nothing is
    limited. OpenCV's own pool is capped too, when OpenCV is installed.
    """
    machine = affinity if affinity is not None else affinity_cpus()
    cap = usable_cpus(root, machine)
    if cap >= machine:
        return None
    for name in THREAD_VARIABLES:
        environ.setdefault(name, str(cap))
    try:
        import cv2
    except ImportError:
        return cap
    cv2.setNumThreads(cap)
    return cap


def shm_mib(root: Path = ROOT) -> int | None:
    """Size of /dev/shm in MiB, or None when it cannot be read."""
    try:
        stats = os.statvfs(root / "dev/shm")
    except OSError:
        return None
    return stats.f_frsize * stats.f_blocks >> 20


def video_devices(root: Path = ROOT) -> list[VideoDevice]:
    """The /dev/video* nodes present, with their group and whether this process may open them."""
    found = []
    for path in sorted((root / "dev").glob("video*"), key=lambda p: (len(p.name), p.name)):
        try:
            gid = path.stat().st_gid
        except OSError:
            continue
        found.append(VideoDevice(path=path, gid=gid, usable=os.access(path, os.R_OK | os.W_OK)))
    return found


def nvidia_device_nodes(root: Path = ROOT) -> list[Path]:
    """/dev/nvidia0, /dev/nvidiactl, … (what ``--gpus`` passes in)."""
    return sorted((root / "dev").glob("nvidia*"))


def nvidia_driver_version(root: Path = ROOT) -> str | None:
    """The host's NVIDIA kernel driver version from /proc/driver/nvidia/version (e.g. "550.54.14")."""
    try:
        text = (root / "proc/driver/nvidia/version").read_text()
    except OSError:
        return None
    match = _DRIVER_RE.search(text)
    return match.group(1) if match else None
