"""The inswapper file itself: its ``emap`` matrix and the check of a model's inputs."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from realtime.engines.base import Engine, TensorSpec
from realtime.engines.onnx_graph import read_onnx
from realtime.errors import ModelError
from realtime.swappers.inswapper.preprocess import EMBEDDING


def emap_of(model: Any, name: str) -> np.ndarray:
    """The 512×512 ``emap`` matrix: the last initializer of the inswapper graph, as float32 (E07 if absent)."""
    from onnx import numpy_helper

    initializers = model.graph.initializer
    if not initializers:
        raise ModelError("E07", f"{name} has no initializers: not an inswapper model")
    emap = numpy_helper.to_array(initializers[-1])
    if emap.shape != (EMBEDDING, EMBEDDING):
        raise ModelError("E07", f"{name}: last initializer is {emap.shape}, not the 512×512 emap of inswapper_128")
    return np.ascontiguousarray(emap, dtype=np.float32)


def load_emap(path: Path) -> np.ndarray:
    """The emap of the inswapper file at ``path`` (see :func:`emap_of`)."""
    return emap_of(read_onnx(path), path.name)



def model_input(engine: Engine, name: str, shape: tuple[int, ...], model: str) -> TensorSpec:
    """The input called ``name`` (or the only one), checked against ``shape`` (dynamic axes pass)."""
    specs = [s for s in engine.inputs if s.name == name] or (engine.inputs if len(engine.inputs) == 1 else [])
    if not specs:
        raise ModelError("E07", f"{model}: no input named {name!r} (has {[s.name for s in engine.inputs]})")
    spec = specs[0]
    fixed = [(d, want) for d, want in zip(spec.shape, shape, strict=False) if isinstance(d, int)]
    if len(spec.shape) != len(shape) or any(d != want for d, want in fixed):
        raise ModelError("E07", f"{model}: input {spec.name} is {spec.shape}, expected {shape}")
    return spec

