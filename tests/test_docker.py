"""The real CPU image, built and run by a private dockerd (see tests/docker_harness.py); the GPU image up to
the step that needs NVIDIA's packages.

Root only (the tests start dockerd); skipped with the reason elsewhere. The first run on a machine takes a
few minutes (debootstrap, pip inside the build); later runs reuse build/docker/.
"""

from __future__ import annotations

import contextlib
import io
import json
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import av
import cv2
import numpy as np
import pytest
from docker_harness import (
    BASE_IMAGE,
    CPU_IMAGE,
    GPU_STAGE_IMAGE,
    ROOT,
    Docker,
    Unavailable,
    build_cpu_image,
    ensure_base,
    image_size_mb,
    private_daemon,
)
from runtime_media import free_tcp_ports

from realtime.models import sample_path
from realtime.stamp import read_stamp

pytestmark = [pytest.mark.docker, pytest.mark.timeout(1500)]
RUN_TIMEOUT_S = 180


@pytest.fixture(scope="module")
def docker() -> Iterator[Docker]:
    """The private daemon for this module; stopped (and its mounts removed) afterwards."""
    with contextlib.ExitStack() as stack:
        try:
            daemon = stack.enter_context(private_daemon())
        except Unavailable as exc:
            pytest.skip(str(exc))
        yield daemon


@pytest.fixture(scope="module")
def cpu_image(docker: Docker) -> str:
    """docker/Dockerfile built on the debootstrapped test base."""
    try:
        seconds = build_cpu_image(docker)
    except Unavailable as exc:
        pytest.skip(str(exc))
    print(f"\nCPU image built in {seconds:.0f} s, {image_size_mb(docker, CPU_IMAGE):.0f} MB")
    return CPU_IMAGE


def report(done: subprocess.CompletedProcess[bytes]) -> dict[str, str]:
    """``swapcam doctor`` output as {check name: line} (the last check of a name wins)."""
    lines = done.stdout.decode().strip().splitlines()[:-1]
    return {line[6:29].strip(): line for line in lines}


def test_doctor_in_the_cpu_image_has_no_fail(docker: Docker, cpu_image: str) -> None:
    done = docker.run("run", "--rm", "--network", "none", cpu_image, "doctor", timeout=RUN_TIMEOUT_S, check=False)
    output = done.stdout.decode()
    assert done.returncode == 0 and "FAIL" not in output, output + done.stderr.decode()
    checks = report(done)
    assert checks["container"].startswith("PASS") and "inside a container (docker)" in checks["container"]
    assert checks["model scrfd"].startswith("PASS") and checks["model face_mesh"].startswith("PASS")
    # docker run's defaults: 64 MiB of shm and no video device, each with its fix.
    assert checks["/dev/shm"].startswith("WARN") and "docker run `--shm-size=1g`" in checks["/dev/shm"]
    assert checks["video devices"].startswith("WARN") and "--device /dev/video0" in checks["video devices"]
    # The image's user may not take the real-time class unless the container is given an rtprio limit.
    assert checks["frame priority"].startswith("WARN") and "--ulimit rtprio=2" in checks["frame priority"]
    user = docker.run("image", "inspect", "--format", "{{.Config.User}}", cpu_image, timeout=30).stdout
    assert user.decode().strip() == "swapcam"


def test_an_rtprio_limit_lets_the_images_user_raise_the_frame_threads(docker: Docker, cpu_image: str) -> None:
    done = docker.run("run", "--rm", "--network", "none", "--ulimit", "rtprio=2", cpu_image, "doctor",
                      timeout=RUN_TIMEOUT_S, check=False)
    if done.returncode != 0 and b"error setting rlimit" in done.stderr:
        pytest.skip("this host's Docker may not raise the rtprio limit (rootless, or no CAP_SYS_RESOURCE)")
    assert done.returncode == 0, done.stdout.decode() + done.stderr.decode()
    frame_priority = report(done)["frame priority"]
    assert frame_priority.startswith("PASS") and "SCHED_RR" in frame_priority, done.stdout.decode()


def test_doctor_reads_the_containers_cpu_quota(docker: Docker, cpu_image: str) -> None:
    done = docker.run("run", "--rm", "--network", "none", "--shm-size", "1g", "--cpus", "1",
                      "-e", "OMP_NUM_THREADS=4", cpu_image, "doctor", timeout=RUN_TIMEOUT_S, check=False)
    checks = report(done)
    assert "cgroup CPU quota 1;" in checks["container"] and "1 usable CPU(s)" in checks["container"]
    assert checks["/dev/shm"].startswith("PASS")
    assert checks["threads"].startswith("WARN") and "docker run `-e OMP_NUM_THREADS=1`" in checks["threads"]
    # Without OMP_NUM_THREADS, swapcam's own defaults follow the quota (the CLI sets them before any check runs).
    done = docker.run("run", "--rm", "--network", "none", "--cpus", "1", cpu_image, "doctor", timeout=RUN_TIMEOUT_S,
                      check=False)
    threads = report(done)["threads"]
    assert threads.startswith("PASS") and "OMP_NUM_THREADS=1, MKL_NUM_THREADS=1, OPENBLAS_NUM_THREADS=1" in threads


def writable_folder(tmp_path: Path, *photos: str) -> Path:
    """A folder the image's non-root user may write, holding the sample photos."""
    folder = tmp_path / "data"
    folder.mkdir()
    folder.chmod(0o777)
    for name in photos:
        shutil.copyfile(sample_path(name), folder / name)
    return folder


def test_photo_swap_in_the_container_equals_the_host(docker: Docker, cpu_image: str, models_root: Path,
                                                      tmp_path: Path) -> None:
    folder = writable_folder(tmp_path, "gauss.png", "newton.png")
    docker.run("run", "--rm", "--network", "none", "-v", f"{folder}:/data", cpu_image, "swap", "--face",
               "/data/gauss.png", "--target", "/data/newton.png", "--output", "/data/in_container.png",
               timeout=RUN_TIMEOUT_S)
    host = subprocess.run([str(Path(sys.executable).with_name("swapcam")), "swap", "--face", str(folder / "gauss.png"),
                           "--target", str(folder / "newton.png"), "--output", str(folder / "on_host.png")],
                          capture_output=True, timeout=RUN_TIMEOUT_S, check=False)
    assert host.returncode == 0, host.stderr.decode()
    inside = cv2.imread(str(folder / "in_container.png"))
    outside = cv2.imread(str(folder / "on_host.png"))
    original = cv2.imread(str(folder / "newton.png"))
    assert inside is not None and outside is not None and inside.shape == outside.shape
    assert np.abs(inside.astype(int) - original.astype(int)).max() > 50  # a face was really swapped
    assert np.abs(inside.astype(int) - outside.astype(int)).max() <= 1


def test_live_run_streams_udp_to_the_host(docker: Docker, cpu_image: str, models_root: Path,
                                          tmp_path: Path) -> None:
    """A live run in the container sends MPEG-TS to the host's 127.0.0.1; the stamps come back in order.

    Also the cold start: from ``docker run`` to the first datagram of the first output frame."""
    folder = writable_folder(tmp_path, "gauss.png")
    receiver = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    receiver.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8 << 20)
    receiver.bind(("127.0.0.1", 0))
    receiver.settimeout(0.1)
    port = receiver.getsockname()[1]
    command = ["docker", "run", "--rm", "--network", "host", "-v", f"{folder}:/data:ro", cpu_image, "run",
               "--synthetic", "--size", "320x240", "--fps", "30", "--frames", "60", "--face", "/data/gauss.png",
               "--output", f"udp://127.0.0.1:{port}"]
    data, first = bytearray(), None
    start = time.perf_counter()
    process = subprocess.Popen(command, env=docker.env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        while time.perf_counter() - start < RUN_TIMEOUT_S:
            try:
                data.extend(receiver.recv(65536))
                first = first or time.perf_counter()
            except TimeoutError:
                if process.poll() is not None:
                    break
        assert process.wait(timeout=30) == 0, process.stderr.read().decode() if process.stderr else ""
    finally:
        if process.poll() is None:
            process.kill()
        receiver.close()
    assert first is not None, "no datagram reached the host"
    print(f"\ncold start to the first output frame: {first - start:.2f} s")
    with av.open(io.BytesIO(bytes(data)), mode="r", format="mpegts") as container:
        stamps = [read_stamp(f.to_ndarray(format="bgr24")) for f in container.decode(video=0)]
    assert len(stamps) >= 30 and None not in stamps
    assert stamps == sorted(stamps) and stamps[-1] - stamps[0] >= 30  # in order, repeats allowed (re-sends)


def panel_request(url: str, token: str | None, *, method: str = "GET", body: bytes | None = None) -> tuple[int, bytes]:
    """One request to the panel: (status, body); HTTP errors are answers, not exceptions."""
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    request = urllib.request.Request(url, data=body, method=method, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=5) as answer:
            return answer.status, answer.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def test_panel_in_the_container(docker: Docker, cpu_image: str, tmp_path: Path) -> None:
    """The compose ``panel`` service's command: the panel listens on all the container's interfaces with the
    given token and is steered from the host. (The test daemon has no bridge, so the container shares the
    host's network instead of a published port; the page and the API are the image's own package data.)"""
    folder = writable_folder(tmp_path, "gauss.png")
    port, token = free_tcp_ports(1)[0], "docker-panel-test-token"
    command = ["docker", "run", "--rm", "--network", "host", "-v", f"{folder}:/data:ro", cpu_image, "run",
               "--synthetic", "--size", "320x240", "--fps", "15", "--duration", "60", "--face", "/data/gauss.png",
               "--output", "null", "--panel", "--panel-host", "0.0.0.0", "--panel-port", str(port),
               "--panel-token", token, "--no-hotkeys"]
    process = subprocess.Popen(command, env=docker.env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    api = f"http://127.0.0.1:{port}/api"
    try:
        deadline, status = time.perf_counter() + RUN_TIMEOUT_S, None
        while time.perf_counter() < deadline and process.poll() is None:
            with contextlib.suppress(OSError):
                code, body = panel_request(f"{api}/status", token)
                if code == 200 and json.loads(body)["frames"]["output"] > 0:
                    status = json.loads(body)
                    break
            time.sleep(0.5)
        assert status is not None, "the panel never answered with frames flowing"
        assert panel_request(f"{api}/status", None)[0] == 401
        assert panel_request(f"{api}/status", "wrong")[0] == 401
        code, body = panel_request(f"{api}/settings", token, method="PATCH", body=b'{"swap": false}')
        assert code == 200 and json.loads(body)["swap"] is False
        code, page = panel_request(f"http://127.0.0.1:{port}/", token)
        assert code == 200 and b"<html" in page.lower()
    finally:
        process.terminate()
        output, _ = process.communicate(timeout=60)
    assert b"0.0.0.0" in output and b"warning" in output.lower()  # the LAN warning line


def test_gpu_image_builds_up_to_the_nvidia_packages(docker: Docker) -> None:
    """Dockerfile.gpu's ``app`` stage (everything but onnxruntime-gpu, TensorRT, torch and the CUDA base) on
    the Debian test base; its doctor, told it is a CUDA image, fails on the missing GPU with the fix."""
    try:
        ensure_base(docker)
    except Unavailable as exc:
        pytest.skip(str(exc))
    docker.build("-f", str(ROOT / "docker" / "Dockerfile.gpu"), "--target", "app", "--build-arg",
                 f"BASE={BASE_IMAGE}", "-t", GPU_STAGE_IMAGE, str(ROOT))
    # The final stage's entrypoint and environment, by hand (the app stage has neither).
    entrypoint = ["--entrypoint", "/opt/swapcam/gpu-entrypoint.sh", "-e", "PATH=/opt/swapcam/venv/bin:/usr/bin:/bin",
                  "-e", "SWAPCAM_MODELS=/models", "-e", "SWAPCAM_ENGINES=/tmp/engines"]
    done = docker.run("run", "--rm", "--network", "none", "-e", "CUDA_VERSION=12.6.3", "-e",
                      "NVIDIA_VISIBLE_DEVICES=all", *entrypoint, GPU_STAGE_IMAGE, "doctor", timeout=RUN_TIMEOUT_S,
                      check=False)
    checks = report(done)
    assert done.returncode == 1
    assert checks["container gpu"].startswith("FAIL") and "docker run `--gpus all`" in checks["container gpu"]
    assert checks["onnxruntime"].startswith("FAIL")  # the gpu-packages stage brings onnxruntime-gpu
    assert checks["model scrfd"].startswith("PASS")
    # First start of a command that runs the models: the engine build is tried, fails without TensorRT, and
    # the command still runs.
    done = docker.run("run", "--rm", "--network", "none", *entrypoint, GPU_STAGE_IMAGE, "swap", "--help",
                      timeout=RUN_TIMEOUT_S, check=False)
    assert done.returncode == 0 and done.stdout.decode().startswith("usage: swapcam swap")
    assert "TensorRT engines not built" in done.stderr.decode()
