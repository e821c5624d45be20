"""The one interface every inference backend implements."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

import numpy as np


@dataclass(frozen=True)
class TensorSpec:
    """Name, shape (None or a string for a dynamic axis) and numpy dtype of one tensor."""

    name: str
    shape: tuple[int | str | None, ...]
    dtype: np.dtype


@runtime_checkable
class Engine(Protocol):
    """A loaded model: describe its tensors and run it on a dict of arrays."""

    backend: str  # "onnxruntime", "tensorrt" or "torch"
    provider: str  # e.g. "CPUExecutionProvider", "CUDAExecutionProvider", "TensorRT", "torch cuda"

    @property
    def inputs(self) -> list[TensorSpec]: ...

    @property
    def outputs(self) -> list[TensorSpec]: ...

    def run(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]: ...


@runtime_checkable
class TorchEngine(Engine, Protocol):
    """An engine that also takes and returns torch tensors, so GPU frames stay on the device."""

    def run_torch(self, feeds: dict[str, Any]) -> dict[str, Any]: ...
