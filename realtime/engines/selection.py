"""Choosing the backend for one model (extended by the engines work: TensorRT, providers)."""

from __future__ import annotations

import logging
from pathlib import Path

from realtime.engines.base import Engine
from realtime.engines.ort import OrtEngine

log = logging.getLogger(__name__)


def open_engine(model: Path, *, backend: str = "auto", device: str = "auto", threads: int = 1) -> Engine:
    """Open ``model`` on the best backend allowed by ``backend``/``device``."""
    return OrtEngine(model, providers=["CPUExecutionProvider"], intra_threads=threads)
