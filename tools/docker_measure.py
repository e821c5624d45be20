"""Measure the CPU image against the host: cold start and a short live run, alternating rounds.

    SWAPCAM_MODELS=... python tools/docker_measure.py [--rounds 5]

Needs root, dockerd and the image built by ``pytest tests/test_docker.py`` (tests/docker_harness.py starts
the same private daemon on build/docker/). Cold start = from starting ``docker run`` (or the host's
``swapcam``) to the first udp datagram of the first output frame on the host's 127.0.0.1. The live run is
a 640×480 photo repeated at 30 fps with the mesh swap, 240 frames; it reports fps out and latency p50/p95.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

import docker_harness  # noqa: E402

from realtime.clock import now_s  # noqa: E402
from realtime.models import models_dir  # noqa: E402

LIVE = ["run", "--synthetic", "--size", "320x240", "--fps", "30", "--frames", "30", "--face", "/data/gauss.png",
        "--output", "udp://127.0.0.1:PORT"]
STEADY = ["run", "--image", "/data/newton.png", "--face", "/data/gauss.png", "--size", "640x480", "--fps", "30",
          "--frames", "240", "--stats-json", "/data/stats.json"]


def first_datagram_s(argv: list[str], env: dict[str, str]) -> float | None:
    """Seconds from starting ``argv`` (PORT replaced) to the first datagram it sends to 127.0.0.1."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as receiver:
        receiver.bind(("127.0.0.1", 0))
        receiver.settimeout(0.05)
        argv = [a.replace("PORT", str(receiver.getsockname()[1])) for a in argv]
        start = now_s()
        process = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        first = None
        while first is None and now_s() - start < 120:
            try:
                receiver.recv(65536)
                first = now_s() - start
            except TimeoutError:
                if process.poll() is not None:
                    break
        process.wait(timeout=120)
    return first


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    rounds = parser.parse_args().rounds
    samples = models_dir() / "samples"
    with tempfile.TemporaryDirectory() as folder, docker_harness.private_daemon() as docker:
        data = Path(folder)
        data.chmod(0o777)
        for name in ("gauss.png", "newton.png"):
            shutil.copyfile(samples / name, data / name)
        in_container = ["docker", "run", "--rm", "--network", "host", "-v", f"{data}:/data",
                        docker_harness.CPU_IMAGE]
        on_host = [str(Path(sys.executable).with_name("swapcam"))]
        envs = {"container": docker.env(), "host": dict(os.environ)}

        def command(where: str, args: list[str]) -> list[str]:
            if where == "container":
                return in_container + args
            return on_host + [a.replace("/data", str(data)) for a in args]

        cold: dict[str, list[float | None]] = {"container": [], "host": []}
        steady: dict[str, list[tuple[float, float, float]]] = {"container": [], "host": []}
        for _ in range(rounds):
            for where in ("container", "host"):
                cold[where].append(first_datagram_s(command(where, LIVE), envs[where]))
        for _ in range(2):
            for where in ("container", "host"):
                subprocess.run(command(where, STEADY), env=envs[where], capture_output=True, timeout=120, check=True)
                stats = json.loads((data / "stats.json").read_text())
                steady[where].append((stats["fps"]["out"], stats["latency_ms"]["p50"], stats["latency_ms"]["p95"]))
        size = docker_harness.image_size_mb(docker, docker_harness.CPU_IMAGE)
    print(f"image {docker_harness.CPU_IMAGE}: {size:.0f} MB")
    for where in ("container", "host"):
        times = [t for t in cold[where] if t is not None]
        print(f"{where}: cold start {[round(t, 2) for t in times]} s, median {statistics.median(times):.2f} s; "
              f"live (fps, p50 ms, p95 ms) {[tuple(round(v, 1) for v in run) for run in steady[where]]}")
    print(f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")


if __name__ == "__main__":
    main()
