"""Shared fixtures: the real models and sample photos, fetched once per test session."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from realtime.engines.base import Engine
from realtime.fetching import fetch
from realtime.images import load_image
from realtime.models import model_path, models_dir, sample_path


@pytest.fixture(scope="session")
def models_root() -> Path:
    """The models folder with every model and sample fetched and verified (a no-op when present)."""
    root = models_dir()
    fetch(root, samples=True, progress=lambda message: None)
    return root


@pytest.fixture(scope="session")
def model_file(models_root: Path) -> Callable[[str], Path]:
    """``model_file("scrfd")`` → the fetched, checksum-verified model's path."""
    return lambda name: model_path(name, root=models_root)


@pytest.fixture(scope="session")
def sample(models_root: Path) -> Callable[[str], Path]:
    """``sample("gauss.png")`` → the fetched, checksum-verified sample photo's path."""
    return lambda name: sample_path(name, root=models_root)


@pytest.fixture(scope="session")
def sample_image(models_root: Path) -> Callable[[str], np.ndarray]:
    """``sample_image("newton.png")`` → the sample photo as H×W×3 uint8 BGR, at full resolution."""
    cache: dict[str, np.ndarray] = {}

    def load(name: str) -> np.ndarray:
        if name not in cache:
            cache[name] = load_image(sample_path(name, root=models_root), max_side=4096)
        return cache[name].copy()

    return load


@pytest.fixture(scope="session")
def truth(models_root: Path) -> dict[str, Any]:
    """Ground truth shipped with the sample photos: {image: [{box, score, keypoints}]}."""
    data: dict[str, Any] = json.loads(sample_path("truth.json", root=models_root).read_text(encoding="utf-8"))
    return data["faces"]  # type: ignore[no-any-return]


@pytest.fixture(scope="session")
def scrfd_engine(models_root: Path) -> Engine:
    """The SCRFD detector on ONNX Runtime CPU, one thread (shared: engines hold no per-call state)."""
    from realtime.engines.selection import open_engine

    return open_engine(model_path("scrfd", root=models_root), backend="onnxruntime", device="cpu", threads=1)


@pytest.fixture(scope="session")
def mesh_engine(models_root: Path) -> Engine:
    """The face mesh on ONNX Runtime CPU, one thread."""
    from realtime.engines.selection import open_engine

    return open_engine(model_path("face_mesh", root=models_root), backend="onnxruntime", device="cpu",
                       threads=1)
