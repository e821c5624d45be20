"""``open_model``: how the face code opens a model of the manifest, whatever the backend.

The analyzer, the swappers and the enhancers all go through here, so the
checksum check, the backend choice (and the log line saying why), the E19
check of a dropped provider and the out-of-memory fallbacks are the same for
every model. A graph stored with float16 weights is run upcast to float32 on
ONNX Runtime, for the first engine and for every fallback alike (its float16
run of the inswapper is unreliable: microsoft/onnxruntime#19437); TensorRT
takes the file as it is.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

from realtime.engines.base import Engine
from realtime.engines.onnx_graph import has_float16_weights, read_onnx, upcast_to_float32
from realtime.engines.probe import Availability
from realtime.engines.selection import open_engine

log = logging.getLogger(__name__)


def open_model(name: str, *, path: Path | None = None, root: Path | None = None, backend: str = "auto",
               device: str = "auto", threads: int = 1, available: Availability | None = None,
               upcast_fp16: bool = False, cuda_graph: bool = False, precision: str = "fp32") -> Engine:
    """Open the manifest model ``name`` on the best backend ``backend``/``device`` allow.

    The file is ``path`` when given (a file supplied by hand), else the fetched file checked against its
    pinned sha256 (E06 missing, E07 mismatch). ``backend="triton=URL"`` (see
    :func:`~realtime.engines.selection.triton_backend`) runs it on that Triton server, checked against this file.
    ``upcast_fp16``: a file with float16 weights runs in
    float32 on ONNX Runtime (the file is read once more to find out, so only models that may be float16
    ask for it). ``precision`` and ``cuda_graph``: see :func:`~realtime.engines.selection.select_and_open`.
    """
    if path is None:
        from realtime import models

        path = models.model_path(name, root=root)
    if backend.startswith("triton="):
        from realtime.engines.triton import open_triton

        return open_triton(name, path=path, url=backend.removeprefix("triton="))
    ort_model = float32_maker(path) if upcast_fp16 else None
    return open_engine(path, backend=backend, device=device, threads=threads, available=available,
                       model_name=name, cuda_graph=cuda_graph, ort_model=ort_model,
                       precision=precision)


def float32_maker(path: Path) -> Callable[[], bytes] | None:
    """For a graph with float16 weights, a function making its float32 copy (on demand: a fallback that never
    comes costs no memory); None for a float32 graph."""
    if not has_float16_weights(read_onnx(path)):
        return None

    def make() -> bytes:
        log.info("%s: float16 weights upcast to float32 for ONNX Runtime (onnxruntime#19437)", path.name)
        return upcast_to_float32(read_onnx(path))

    return make
