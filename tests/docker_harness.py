"""A private Docker daemon for the container tests, and the images they run.

The tests start their own ``dockerd`` (root only): its data lives under
``build/docker/`` so that the debootstrapped base and the image layers are
reused by the next run, its sockets live in a temporary folder, and it has no
bridge and touches no iptables: containers use the host's network, which is
also how the udp test reaches the host's 127.0.0.1. The base image is Debian
bookworm made with ``debootstrap`` and ``docker import`` (Docker Hub cannot be
reached from the build machines); a test-only image derived from it adds the
host's CA bundle so that pip can reach PyPI from inside a build. The shipped
Dockerfiles never see either.

Every docker command has a timeout; anything missing (not root, no dockerd,
no debootstrap, a daemon that will not start) becomes a skip reason.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import signal
import ssl
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CACHE = ROOT / "build" / "docker"
ROOTFS_IMAGE = "swapcam-test-rootfs:bookworm"
BASE_IMAGE = "swapcam-test-base:bookworm"
CPU_IMAGE = "swapcam-test:cpu"
GPU_STAGE_IMAGE = "swapcam-test:gpu-app"
MIRROR = os.environ.get("SWAPCAM_DEBIAN_MIRROR", "http://deb.debian.org/debian")
DEBOOTSTRAP_TIMEOUT_S = 900
BUILD_TIMEOUT_S = 900
START_TIMEOUT_S = 60


class Unavailable(Exception):
    """Docker cannot be set up on this machine; the message is the skip reason."""


def missing_requirement() -> str | None:
    """Why the docker tests cannot run here, or None."""
    if not hasattr(os, "geteuid") or os.geteuid() != 0:
        return "the docker tests start their own dockerd and need root"
    for tool in ("dockerd", "docker", "debootstrap"):
        if shutil.which(tool) is None:
            return f"{tool} is not installed (`make docker-deps`, part of `make test`, installs it as root)"
    return None


@dataclass
class Docker:
    """A running private daemon: ``run()`` calls the docker client against it."""

    socket: Path

    def run(self, *args: str, timeout: float, check: bool = True,
            input_bytes: bytes | None = None) -> subprocess.CompletedProcess[bytes]:
        """``docker ARGS`` with a timeout; raises with the output when ``check`` and it fails."""
        done = subprocess.run(["docker", *args], env=self.env(), capture_output=True, timeout=timeout,
                              input=input_bytes, check=False)
        if check and done.returncode != 0:
            raise RuntimeError(f"docker {' '.join(args[:3])} … failed ({done.returncode}):\n"
                               f"{done.stdout.decode(errors='replace')[-3000:]}\n"
                               f"{done.stderr.decode(errors='replace')[-3000:]}")
        return done

    def env(self) -> dict[str, str]:
        """The environment for a docker client talking to this daemon (classic builder: no buildx needed)."""
        return {**os.environ, "DOCKER_HOST": f"unix://{self.socket}", "DOCKER_BUILDKIT": "0"}

    def has_image(self, name: str) -> bool:
        """Whether the daemon holds ``name``."""
        return self.run("image", "inspect", name, timeout=30, check=False).returncode == 0

    def build(self, *args: str) -> None:
        """``docker build --network host ARGS``: pip in the build reaches PyPI through the host's network."""
        self.run("build", "--network", "host", "--quiet", *args, timeout=BUILD_TIMEOUT_S)


@contextlib.contextmanager
def private_daemon() -> Iterator[Docker]:
    """Start dockerd on a private socket, yield a client for it, then stop it (SIGTERM, then SIGKILL)."""
    reason = missing_requirement()
    if reason:
        raise Unavailable(reason)
    CACHE.mkdir(parents=True, exist_ok=True)
    with open(CACHE / ".lock", "w") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            raise Unavailable(f"another test session uses {CACHE}") from exc
        # The exec root holds unix sockets, whose paths must stay short: a temporary folder, not the repository.
        with tempfile.TemporaryDirectory(prefix="swapcam-dockerd-") as run_dir:
            yield from _daemon(Path(run_dir))


def _daemon(run_dir: Path) -> Iterator[Docker]:
    socket = run_dir / "docker.sock"
    log = (run_dir / "dockerd.log").open("wb")
    command = ["dockerd", "--data-root", str(CACHE / "data-root"), "--exec-root", str(run_dir / "exec"),
               "--pidfile", str(run_dir / "dockerd.pid"), "--host", f"unix://{socket}",
               "--bridge=none", "--iptables=false", "--ip6tables=false", "--storage-driver=overlay2"]
    process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    docker = Docker(socket)
    try:
        _wait_until_up(docker, process, run_dir / "dockerd.log")
        yield docker
    finally:
        _stop(docker, process)
        log.close()
        _unmount_under(run_dir)


def _unmount_under(folder: Path) -> None:
    """dockerd leaves its network namespace file mounted in the exec root: unmount before the folder goes."""
    mounts = [line.split()[1] for line in Path("/proc/self/mounts").read_text().splitlines()]
    for mount in sorted((m for m in mounts if m.startswith(f"{folder}/")), reverse=True):
        subprocess.run(["umount", "-l", mount], check=False, capture_output=True, timeout=30)


def _wait_until_up(docker: Docker, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.perf_counter() + START_TIMEOUT_S
    while time.perf_counter() < deadline:
        if process.poll() is not None:
            tail = log.read_text(errors="replace").strip().splitlines()[-3:]
            raise Unavailable(f"dockerd exited ({process.returncode}): {' | '.join(tail)}")
        if docker.socket.exists() and docker.run("version", timeout=10, check=False).returncode == 0:
            return
        time.sleep(0.5)
    raise Unavailable(f"dockerd did not answer within {START_TIMEOUT_S} s")


def _stop(docker: Docker, process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        with contextlib.suppress(Exception):
            ids = docker.run("ps", "-q", timeout=15, check=False).stdout.split()
            if ids:
                docker.run("kill", *(i.decode() for i in ids), timeout=30, check=False)
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=10)


# ------------------------------------------------------------------ images


def host_ca_bundle() -> Path:
    """The CA bundle the host's pip uses (this network may intercept TLS with its own CA)."""
    for candidate in (os.environ.get("PIP_CERT"), os.environ.get("SSL_CERT_FILE"),
                      ssl.get_default_verify_paths().cafile, "/etc/ssl/certs/ca-certificates.crt"):
        if candidate and Path(candidate).is_file():
            return Path(candidate)
    raise Unavailable("no CA bundle on the host for pip inside the build")


def ensure_rootfs(docker: Docker) -> None:
    """Debian bookworm with python3 and python3-venv, made once with debootstrap and kept as a tarball."""
    if docker.has_image(ROOTFS_IMAGE):
        return
    tarball = CACHE / "bookworm-rootfs.tar"
    if not tarball.exists():
        _debootstrap(tarball)
    with tarball.open("rb") as data:
        docker.run("import", "-", ROOTFS_IMAGE, timeout=300, input_bytes=data.read())


def _debootstrap(tarball: Path) -> None:
    with tempfile.TemporaryDirectory(dir=CACHE, prefix="rootfs-") as work:
        root = Path(work) / "root"
        try:
            subprocess.run(["debootstrap", "--variant=minbase", "--include=python3,python3-venv,ca-certificates",
                            "bookworm", str(root), MIRROR], check=True, capture_output=True,
                           timeout=DEBOOTSTRAP_TIMEOUT_S)
        except (subprocess.CalledProcessError, subprocess.TimeoutExpired) as exc:
            output = getattr(exc, "stderr", b"") or b""
            raise Unavailable(f"debootstrap failed: {exc}; {output.decode(errors='replace')[-500:]}") from exc
        for cache in ("var/cache/apt/archives", "var/lib/apt/lists"):
            for item in (root / cache).glob("*"):
                if item.is_file():
                    item.unlink()
        partial = tarball.with_suffix(".partial")
        subprocess.run(["tar", "-C", str(root), "--numeric-owner", "--exclude=./proc/*", "--exclude=./sys/*",
                        "--exclude=./dev/*", "-cf", str(partial), "."], check=True, timeout=300)
        partial.rename(tarball)


def ensure_base(docker: Docker) -> None:
    """The test-only base: the debootstrapped root plus the host's CA bundle for pip."""
    ensure_rootfs(docker)
    context = CACHE / "base-context"
    context.mkdir(exist_ok=True)
    shutil.copyfile(host_ca_bundle(), context / "host-ca.crt")
    shutil.copyfile(ROOT / "tests" / "docker" / "Dockerfile.testbase", context / "Dockerfile")
    docker.build("--build-arg", f"ROOTFS={ROOTFS_IMAGE}", "-t", BASE_IMAGE, str(context))


def build_cpu_image(docker: Docker) -> float:
    """docker/Dockerfile on the test base; returns the build's seconds (layers are cached between runs)."""
    ensure_base(docker)
    start = time.perf_counter()
    docker.build("-f", str(ROOT / "docker" / "Dockerfile"), "--build-arg", f"BASE={BASE_IMAGE}",
                 "-t", CPU_IMAGE, str(ROOT))
    return time.perf_counter() - start


def image_size_mb(docker: Docker, image: str) -> float:
    """The image's size as ``docker image inspect`` reports it, in MB."""
    size = docker.run("image", "inspect", "--format", "{{.Size}}", image, timeout=30).stdout
    return int(size) / 1e6
