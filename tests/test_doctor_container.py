"""The doctor's container checks and the cgroup-following thread defaults, on fake cgroup, /proc and /dev trees."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from realtime.commands.doctor_container import (
    container_shm_check,
    driver_check,
    gpu_container_checks,
    min_driver,
    run_container_checks,
    threads_container_check,
    video_check,
)
from realtime.container import (
    THREAD_VARIABLES,
    VideoDevice,
    apply_thread_defaults,
    cgroup_cpu_limit,
    container_kind,
    nvidia_device_nodes,
    nvidia_driver_version,
    usable_cpus,
    video_devices,
)

DRIVER_550 = "NVRM version: NVIDIA UNIX x86_64 Kernel Module  550.54.14  Thu Feb 22 01:44:30 UTC 2024\n"
DRIVER_OPEN_560 = "NVRM version: NVIDIA UNIX Open Kernel Module for x86_64  560.35.03  Release Build\n"


def tree(root: Path, files: dict[str, str]) -> Path:
    """Write ``files`` ({relative path: text}) under ``root``."""
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root


def docker_tree(root: Path, extra: dict[str, str]) -> Path:
    """A container's view: /.dockerenv, a cgroup v2 namespace, /dev/shm; ``extra`` adds or replaces files."""
    files = {".dockerenv": "", "proc/self/cgroup": "0::/\n", "proc/1/cgroup": "0::/\n",
             "sys/fs/cgroup/cpu.max": "max 100000\n", "dev/shm/.keep": ""}
    return tree(root, {**files, **extra})


# ------------------------------------------------------------------ cgroup quota and thread defaults


def test_cgroup_v2_quota(tmp_path: Path) -> None:
    root = tree(tmp_path, {"proc/self/cgroup": "0::/\n", "sys/fs/cgroup/cpu.max": "150000 100000\n"})
    assert cgroup_cpu_limit(root) == 1.5
    assert usable_cpus(root, affinity=64) == 2  # rounded up: 1.5 CPUs keep two threads busy
    assert usable_cpus(root, affinity=1) == 1  # the cpuset is the tighter limit


def test_cgroup_v2_without_quota(tmp_path: Path) -> None:
    root = tree(tmp_path, {"proc/self/cgroup": "0::/\n", "sys/fs/cgroup/cpu.max": "max 100000\n"})
    assert cgroup_cpu_limit(root) is None
    assert usable_cpus(root, affinity=12) == 12


def test_cgroup_v2_own_folder_on_a_host(tmp_path: Path) -> None:
    """On a host (no cgroup namespace) the process's own folder, named in /proc/self/cgroup, holds the quota."""
    root = tree(tmp_path, {"proc/self/cgroup": "0::/system.slice/swapcam.service\n",
                           "sys/fs/cgroup/cpu.max": "max 100000\n",
                           "sys/fs/cgroup/system.slice/swapcam.service/cpu.max": "300000 100000\n"})
    assert cgroup_cpu_limit(root) == 3.0


def test_cgroup_v1_quota_in_a_container(tmp_path: Path) -> None:
    """cgroup v1 Docker: /proc/self/cgroup names the host's path, the container sees its cgroup at the mount."""
    root = tree(tmp_path, {"proc/self/cgroup": "4:cpu,cpuacct:/docker/0123abcd\n",
                           "sys/fs/cgroup/cpu,cpuacct/cpu.cfs_quota_us": "200000\n",
                           "sys/fs/cgroup/cpu,cpuacct/cpu.cfs_period_us": "100000\n"})
    assert cgroup_cpu_limit(root) == 2.0
    assert usable_cpus(root, affinity=32) == 2


def test_cgroup_v1_unlimited(tmp_path: Path) -> None:
    root = tree(tmp_path, {"proc/self/cgroup": "1:cpu:/\n", "sys/fs/cgroup/cpu/cpu.cfs_quota_us": "-1\n",
                           "sys/fs/cgroup/cpu/cpu.cfs_period_us": "100000\n"})
    assert cgroup_cpu_limit(root) is None


def test_no_cgroup_files(tmp_path: Path) -> None:
    assert cgroup_cpu_limit(tmp_path) is None
    assert usable_cpus(tmp_path, affinity=4) == 4


def test_thread_defaults_follow_the_quota(tmp_path: Path) -> None:
    root = tree(tmp_path, {"proc/self/cgroup": "0::/\n", "sys/fs/cgroup/cpu.max": "200000 100000\n"})
    environ = {"MKL_NUM_THREADS": "1"}
    assert apply_thread_defaults(environ, root=root, affinity=16) == 2
    assert environ == {"OMP_NUM_THREADS": "2", "MKL_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "2"}


def test_thread_defaults_untouched_without_a_quota(tmp_path: Path) -> None:
    root = tree(tmp_path, {"proc/self/cgroup": "0::/\n", "sys/fs/cgroup/cpu.max": "max 100000\n"})
    environ: dict[str, str] = {}
    assert apply_thread_defaults(environ, root=root, affinity=16) is None
    assert environ == {}
    quota_above_cpus = tree(tmp_path / "b", {"sys/fs/cgroup/cpu.max": "800000 100000\n"})
    assert apply_thread_defaults(environ, root=quota_above_cpus, affinity=4) is None and environ == {}


# ------------------------------------------------------------------ container, devices, driver


def test_container_kind(tmp_path: Path) -> None:
    assert container_kind(tree(tmp_path / "a", {".dockerenv": ""})) == "docker"
    assert container_kind(tree(tmp_path / "b", {"run/.containerenv": ""})) == "podman"
    assert container_kind(tree(tmp_path / "c", {"proc/1/cgroup": "0::/kubepods/besteffort/pod1\n"})) == "kubernetes"
    assert container_kind(tree(tmp_path / "d", {"proc/1/cgroup": "0::/init.scope\n"})) is None
    assert container_kind(tmp_path / "e") is None


def test_video_devices_and_nvidia_nodes(tmp_path: Path) -> None:
    root = tree(tmp_path, {"dev/video10": "", "dev/video0": "", "dev/video2": "", "dev/nvidia0": "",
                           "dev/nvidiactl": "", "proc/driver/nvidia/version": DRIVER_550})
    assert [d.path.name for d in video_devices(root)] == ["video0", "video2", "video10"]
    assert [p.name for p in nvidia_device_nodes(root)] == ["nvidia0", "nvidiactl"]
    assert nvidia_driver_version(root) == "550.54.14"
    assert nvidia_driver_version(tree(tmp_path / "o", {"proc/driver/nvidia/version": DRIVER_OPEN_560})) == "560.35.03"
    assert nvidia_driver_version(tmp_path / "none") is None


def test_video_check_verdicts() -> None:
    missing = video_check([], groups={0})
    assert missing.status == "warn" and "--device /dev/video0" in missing.detail
    assert 'devices: ["/dev/video0:/dev/video0"' in missing.detail
    locked = video_check([VideoDevice(Path("/dev/video0"), gid=44, usable=False)], groups={10001})
    assert locked.status == "warn" and "--group-add 44" in locked.detail and 'group_add: ["44"]' in locked.detail
    assert "group 44, which this user is not in" in locked.detail
    assert video_check([VideoDevice(Path("/dev/video0"), gid=44, usable=True)], groups={44}).status == "pass"


def test_shm_verdict_in_a_container() -> None:
    small = container_shm_check(64)
    assert small.status == "warn" and "`shm_size: 1gb`" in small.detail and "`--shm-size=1g`" in small.detail
    assert container_shm_check(1024).status == "pass"


@pytest.mark.parametrize(("cuda", "expected"), [
    ("12.6.3", ("560.28.03", "525.60.13")), ("12.4", ("550.54.14", "525.60.13")),
    ("12.7", ("560.28.03", "525.60.13")),  # no 12.7 release: the nearest older one's driver
    ("11.8.0", ("520.61.05", "520.61.05")), ("13.0.1", ("580.65.06", "580.65.06")),
])
def test_min_driver(cuda: str, expected: tuple[str, str]) -> None:
    assert min_driver(cuda) == expected


@pytest.mark.parametrize(("driver", "verdict"), [("560.35.03", "pass"), ("535.54.03", "warn"), ("470.256.02", "fail")])
def test_driver_against_the_image_cuda(driver: str, verdict: str) -> None:
    check = driver_check(cuda="12.6.3", driver=driver, driver_cuda="12.2")
    assert check.status == verdict
    if verdict != "pass":
        assert "update the host's NVIDIA driver" in check.detail and "560.28.03" in check.detail


def test_gpu_image_without_gpu_names_the_fix() -> None:
    [check] = gpu_container_checks(cuda="12.6.3", visible="all", nodes=[], driver=None, libcuda=None)
    assert check.status == "fail" and "docker run `--gpus all`" in check.detail
    assert "driver: nvidia, count: all, capabilities: [gpu]" in check.detail
    nodes = [Path("/dev/nvidia0"), Path("/dev/nvidiactl")]
    [check] = gpu_container_checks(cuda="12.6.3", visible="all", nodes=nodes, driver="560.35.03", libcuda=None)
    assert check.status == "fail" and "-e NVIDIA_DRIVER_CAPABILITIES=compute,utility" in check.detail
    assert gpu_container_checks(cuda=None, visible=None, nodes=[], driver=None, libcuda=None) == []


def test_threads_against_the_quota() -> None:
    over = threads_container_check({"OMP_NUM_THREADS": "16", "MKL_NUM_THREADS": "2"}, cpus=2, cpu_limit=2.0)
    assert over.status == "warn" and "OMP_NUM_THREADS=16 exceeds the cgroup quota (2 CPUs)" in over.detail
    assert "docker run `-e OMP_NUM_THREADS=2`" in over.detail and "OMP_NUM_THREADS: '2'" in over.detail
    assert "MKL_NUM_THREADS" not in over.detail.split("exceeds")[0]
    assert threads_container_check({}, cpus=2, cpu_limit=2.0).status == "pass"
    assert threads_container_check({"OMP_NUM_THREADS": "2"}, cpus=2, cpu_limit=None).status == "pass"


# ------------------------------------------------------------------ the whole container report


def test_cpu_container_report(tmp_path: Path) -> None:
    """A CPU image as plain ``docker run`` starts it: no FAIL; every WARN carries both fixes."""
    root = docker_tree(tmp_path, {"sys/fs/cgroup/cpu.max": "200000 100000\n"})
    checks = run_container_checks(root, environ={"OMP_NUM_THREADS": "8"})
    by_name = {c.name: c for c in checks}
    assert set(by_name) == {"container", "/dev/shm", "video devices", "threads"}
    assert not [c for c in checks if c.status == "fail"]
    assert by_name["container"].detail.startswith("inside a container (docker); cgroup CPU quota 2;")
    assert by_name["threads"].status == "warn"  # 8 threads on a 2-CPU quota
    for check in checks:
        if check.status == "warn":
            assert "fix: compose `" in check.detail and "; docker run `" in check.detail, check


def test_gpu_container_report(tmp_path: Path) -> None:
    root = docker_tree(tmp_path, {"dev/nvidia0": "", "dev/nvidiactl": "", "dev/video0": "",
                                 "proc/driver/nvidia/version": DRIVER_550})
    checks = run_container_checks(root, environ={"CUDA_VERSION": "12.6.3", "NVIDIA_VISIBLE_DEVICES": "all"},
                                  libcuda="12.4")
    by_name = {c.name: c for c in checks}
    gpu = by_name["container gpu"]
    assert gpu.status == "pass" and "driver 550.54.14 (CUDA 12.4)" in gpu.detail
    assert by_name["container driver"].status == "warn"  # 550 < 560.28.03 for 12.6, ≥ 525.60.13
    assert by_name["video devices"].status == "pass" or not os.access(root / "dev/video0", os.R_OK | os.W_OK)
    hidden = run_container_checks(root, environ={"CUDA_VERSION": "12.6.3", "NVIDIA_VISIBLE_DEVICES": "void"},
                                  libcuda="12.4")
    assert next(c for c in hidden if c.name == "container gpu").status == "fail"


def test_no_container_checks_outside_a_container(tmp_path: Path) -> None:
    root = tree(tmp_path, {"proc/1/cgroup": "0::/init.scope\n"})
    assert run_container_checks(root, environ={}) == []


def test_thread_variables_cover_openmp_mkl_openblas() -> None:
    assert THREAD_VARIABLES == ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")
