"""docker/compose.yaml and the shipped Dockerfiles: what every profile must set, and what they must never hold."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
DOCKER = ROOT / "docker"
PROFILES = ("webcam", "obs", "gpu", "panel", "serve", "doctor")


@pytest.fixture(scope="module")
def services() -> dict[str, Any]:
    return yaml.safe_load((DOCKER / "compose.yaml").read_text())["services"]  # type: ignore[no-any-return]


def test_every_profile_sets_shm_threads_and_volumes(services: dict[str, Any]) -> None:
    assert {p for s in services.values() for p in s["profiles"]} == set(PROFILES)
    for name, service in services.items():
        assert service["shm_size"] in ("1gb", "2gb"), name
        assert {"OMP_NUM_THREADS", "MKL_NUM_THREADS"} <= set(service["environment"]), name
        assert service["environment"]["OMP_NUM_THREADS"] == service["cpus"], name  # threads follow the quota
        assert {"models:/models", "engines:/engines"} <= set(service["volumes"]), name


def test_devices_gpus_and_ports(services: dict[str, Any]) -> None:
    assert {"/dev/video0:/dev/video0", "/dev/video10:/dev/video10"} <= set(services["webcam"]["devices"])
    assert "virtualcam:/dev/video10" in services["webcam"]["command"]
    assert any(arg.startswith("udp://host.docker.internal:") for arg in services["obs"]["command"])
    for name in ("gpu", "serve"):
        [device] = services[name]["deploy"]["resources"]["reservations"]["devices"]
        assert device == {"driver": "nvidia", "count": "all", "capabilities": ["gpu"]}
        assert services[name]["image"] == "swapcam:gpu"
    ports = [port for service in services.values() for port in service.get("ports", [])]
    assert ports and all(port.startswith("127.0.0.1:") for port in ports)  # never beyond the host
    assert "--panel" in services["panel"]["command"]


@pytest.mark.skipif(shutil.which("docker-compose") is None, reason="docker-compose is not installed")
def test_compose_file_validates() -> None:
    profiles = [arg for profile in PROFILES for arg in ("--profile", profile)]
    done = subprocess.run(["docker-compose", "-f", str(DOCKER / "compose.yaml"), *profiles, "config", "--quiet"],
                          capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr


@pytest.mark.parametrize("name", ["Dockerfile", "Dockerfile.gpu"])
def test_shipped_dockerfiles(name: str) -> None:
    text = (DOCKER / name).read_text()
    assert text.count("ARG BASE=") == 1
    assert "USER swapcam" in text and "PIP_NO_CACHE_DIR=1" in text and "LABEL org.opencontainers" in text
    assert "SWAPCAM_MODELS=/models" in text and "SWAPCAM_ENGINES=/engines" in text
    # test-only matters stay in tests/docker: the host's CA bundle, the host network, compilers
    for banned in ("host-ca", "--network", "build-essential", "gcc", "trusted-host"):
        assert banned not in text, banned
    assert "python:3.11-slim-bookworm" in text if name == "Dockerfile" else "nvidia/cuda:" in text


def test_build_context_is_only_what_the_images_install() -> None:
    ignore = (ROOT / ".dockerignore").read_text().splitlines()
    assert "*" in ignore  # everything is left out unless named
    copied = {line[1:] for line in ignore if line.startswith("!")}
    for name in ("Dockerfile", "Dockerfile.gpu"):
        for line in (DOCKER / name).read_text().splitlines():
            if line.startswith("COPY ") and "--from=" not in line:
                sources = line.split()[1:-1]
                # a folder is copied with only the files named under it (models/: never fetched binaries)
                assert all(source in copied or any(c.startswith(f"{source}/") for c in copied)
                           for source in sources), line
