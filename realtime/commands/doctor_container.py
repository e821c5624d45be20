"""``swapcam doctor`` inside a container: shm, video devices, GPU and driver, threads against the CPU quota.

Each finding that needs fixing names the exact compose line and ``docker run``
option that fix it. The facts come from :mod:`realtime.container`, which reads
a filesystem root that tests replace with a fake tree.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from realtime.commands.checks import SHM_MIN_MIB, Check, driver_supports
from realtime.container import (
    ROOT,
    THREAD_VARIABLES,
    VideoDevice,
    cgroup_cpu_limit,
    container_kind,
    nvidia_device_nodes,
    nvidia_driver_version,
    shm_mib,
    usable_cpus,
    video_devices,
)

# Minimum Linux driver per CUDA toolkit release (NVIDIA's CUDA release notes, "CUDA Toolkit and
# Corresponding Driver Versions"); a major release also runs on its first driver under minor-version
# compatibility, without newer features.
CUDA_MIN_DRIVER = {
    "11.8": "520.61.05", "12.0": "525.60.13", "12.1": "530.30.02", "12.2": "535.54.03", "12.3": "545.23.06",
    "12.4": "550.54.14", "12.5": "555.42.02", "12.6": "560.28.03", "12.8": "570.26", "12.9": "575.51.03",
    "13.0": "580.65.06",
}
GPU_COMPOSE = ("deploy: {resources: {reservations: {devices: [{driver: nvidia, count: all, "
               "capabilities: [gpu]}]}}}")


def fix(compose: str, docker_run: str) -> str:
    """The two ways to fix a finding, as one suffix."""
    return f" — fix: compose `{compose}`; docker run `{docker_run}`"


def _version(text: str) -> tuple[int, ...]:
    return tuple(int(part) for part in text.split(".") if part.isdigit())


def min_driver(cuda: str) -> tuple[str | None, str | None]:
    """(driver for this CUDA release, driver for its major release under minor-version compatibility)."""
    major_minor = ".".join(cuda.split(".")[:2])
    same_major = sorted((v for v in CUDA_MIN_DRIVER if v.split(".")[0] == cuda.split(".")[0]), key=_version)
    full = CUDA_MIN_DRIVER.get(major_minor)
    if full is None:
        older = [v for v in same_major if _version(v) <= _version(major_minor)]
        full = CUDA_MIN_DRIVER[older[-1]] if older else None
    return full, (CUDA_MIN_DRIVER[same_major[0]] if same_major else None)


# ------------------------------------------------------------------ verdicts (pure)


def container_check(kind: str, cpu_limit: float | None, cpus: int) -> Check:
    """Which container runtime, and the CPUs it gives."""
    quota = f"cgroup CPU quota {cpu_limit:g}" if cpu_limit is not None else "no cgroup CPU quota"
    return Check("pass", "container", f"inside a container ({kind}); {quota}; {cpus} usable CPU(s)")


def container_shm_check(size_mib: int | None) -> Check:
    """/dev/shm in a container: Docker gives 64 MiB unless told otherwise."""
    if size_mib is None:
        return Check("warn", "/dev/shm", "cannot be read" + fix("shm_size: 1gb", "--shm-size=1g"))
    if size_mib < SHM_MIN_MIB:
        return Check("warn", "/dev/shm", f"{size_mib} MiB (inside a container) — under {SHM_MIN_MIB} MiB, what "
                     "torch's shared memory and a camera's frame buffers need" + fix("shm_size: 1gb", "--shm-size=1g"))
    return Check("pass", "/dev/shm", f"{size_mib} MiB (inside a container)")


def video_check(devices: list[VideoDevice], groups: set[int]) -> Check:
    """Whether /dev/video* was passed in, and whether this user may open it."""
    if not devices:
        return Check("warn", "video devices", "no /dev/video* in the container: no webcam and no v4l2loopback "
                     "virtual camera (udp and file outputs still work)"
                     + fix('devices: ["/dev/video0:/dev/video0", "/dev/video10:/dev/video10"]',
                           "--device /dev/video0 --device /dev/video10"))
    names = ", ".join(d.path.name for d in devices)
    locked = [d for d in devices if not d.usable]
    if locked:
        gid = locked[0].gid
        hint = "" if gid in groups else f" (owned by group {gid}, which this user is not in)"
        return Check("warn", "video devices", f"{names} passed in, but {', '.join(d.path.name for d in locked)} "
                     f"cannot be opened{hint}" + fix(f'group_add: ["{gid}"]', f"--group-add {gid}"))
    return Check("pass", "video devices", f"{names} passed in and usable")


def gpu_container_checks(*, cuda: str | None, visible: str | None, nodes: list[Path], driver: str | None,
                         libcuda: str | None) -> list[Check]:
    """GPU, driver and CUDA in a container made from an NVIDIA CUDA image (``cuda``) or given GPUs."""
    if cuda is None and not nodes:
        return []  # a CPU image without GPUs: nothing to check
    image = f"image built for CUDA {cuda}" if cuda else "no CUDA in the image"
    if not nodes:
        return [Check("fail", "container gpu", f"{image}, but no NVIDIA device was passed in "
                      f"(NVIDIA_VISIBLE_DEVICES={visible or 'unset'}); the NVIDIA Container Toolkit must be installed "
                      "on the host" + fix(GPU_COMPOSE, "--gpus all"))]
    if libcuda is None:
        return [Check("fail", "container gpu", f"{', '.join(n.name for n in nodes)} present but the driver "
                      "library (libcuda) is not mounted in"
                      + fix("environment: {NVIDIA_DRIVER_CAPABILITIES: 'compute,utility,video'}",
                            "-e NVIDIA_DRIVER_CAPABILITIES=compute,utility,video"))]
    checks = [Check("pass", "container gpu", f"{', '.join(n.name for n in nodes)}; driver "
                    f"{driver or 'version unknown'} (CUDA {libcuda}); {image}")]
    if cuda:
        checks.append(driver_check(cuda=cuda, driver=driver, driver_cuda=libcuda))
    return checks


def driver_check(*, cuda: str, driver: str | None, driver_cuda: str) -> Check:
    """The host driver against the image's CUDA: new enough, minor-version compatible, or too old."""
    full, family = min_driver(cuda)
    verdict = driver_supports(driver_cuda, cuda)
    if driver is not None and full is not None and family is not None:
        if _version(driver) >= _version(full):
            verdict = "pass"
        elif _version(driver) >= _version(family):
            verdict = "warn"
        else:
            verdict = "fail"
    need = f"CUDA {cuda} needs driver ≥ {full}" if full else f"CUDA {cuda}"
    if verdict == "pass":
        return Check("pass", "container driver", f"host driver {driver or driver_cuda} is new enough ({need})")
    update = (" — fix: update the host's NVIDIA driver (drivers come from the host, not the image), or build on an "
              "older CUDA base: docker build --build-arg BASE=nvidia/cuda:<older>-cudnn-runtime-ubuntu22.04 "
              "-f docker/Dockerfile.gpu .")
    if verdict == "warn":
        return Check("warn", "container driver", f"host driver {driver or driver_cuda} is older than {need}; it runs "
                     f"under minor-version compatibility (≥ {family}), without newer CUDA features" + update)
    return Check("fail", "container driver", f"host driver {driver or driver_cuda} is too old: {need}"
                 + (f" (≥ {family} with minor-version compatibility)" if family else "") + update)


def threads_container_check(environ: Mapping[str, str], cpus: int, cpu_limit: float | None) -> Check:
    """OMP/MKL/OpenBLAS threads against the CPUs the cgroup quota gives (not the host's count)."""
    over = [(name, environ[name]) for name in THREAD_VARIABLES
            if environ.get(name, "").isdigit() and int(environ[name]) > cpus]
    limit = f"the cgroup quota ({cpu_limit:g} CPUs)" if cpu_limit is not None else "the CPUs this container sees"
    if over:
        settings = ", ".join(f"{name}={value}" for name, value in over)
        names = [name for name, _ in over]
        compose = "environment: {" + ", ".join(f"{n}: '{cpus}'" for n in names) + "}"
        return Check("warn", "threads", f"{settings} exceeds {limit}: {cpus} thread(s) at most, or every frame "
                     "waits on oversubscribed cores" + fix(compose, " ".join(f"-e {n}={cpus}" for n in names)))
    unset = [name for name in THREAD_VARIABLES if name not in environ]
    set_part = f"; {', '.join(f'{n}={environ[n]}' for n in THREAD_VARIABLES if n in environ)}" if len(unset) < 3 else ""
    return Check("pass", "threads", f"{cpus} usable CPU(s) from {limit}{set_part}; swapcam caps unset thread "
                 "pools at that")


# ------------------------------------------------------------------ gathering


def run_container_checks(root: Path = ROOT, environ: Mapping[str, str] | None = None,
                         libcuda: str | None = None) -> list[Check]:
    """The container checks (none outside a container): container, shm, video, GPU, threads."""
    env = os.environ if environ is None else environ
    kind = container_kind(root)
    if kind is None:
        return []
    limit = cgroup_cpu_limit(root)
    cpus = usable_cpus(root)
    checks = [container_check(kind, limit, cpus), container_shm_check(shm_mib(root)),
              video_check(video_devices(root), set(os.getgroups()))]
    visible = env.get("NVIDIA_VISIBLE_DEVICES")
    nodes = [] if visible in ("void", "none", "") else nvidia_device_nodes(root)
    checks += gpu_container_checks(cuda=env.get("CUDA_VERSION"), visible=visible, nodes=nodes,
                                   driver=nvidia_driver_version(root), libcuda=libcuda)
    checks.append(threads_container_check(env, cpus, limit))
    return checks
