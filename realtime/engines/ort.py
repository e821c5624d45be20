"""ONNX Runtime backend."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from realtime.engines.base import TensorSpec
from realtime.errors import BackendError

_ORT_DTYPES = {
    "tensor(float)": np.dtype(np.float32),
    "tensor(float16)": np.dtype(np.float16),
    "tensor(int64)": np.dtype(np.int64),
    "tensor(int32)": np.dtype(np.int32),
    "tensor(uint8)": np.dtype(np.uint8),
}


def _spec(arg: object) -> TensorSpec:
    shape = tuple(d if isinstance(d, int) else None for d in arg.shape)  # type: ignore[attr-defined]
    dtype = _ORT_DTYPES.get(arg.type, np.dtype(np.float32))  # type: ignore[attr-defined]
    return TensorSpec(name=arg.name, shape=shape, dtype=dtype)  # type: ignore[attr-defined]


class OrtEngine:
    """An ONNX model on an ONNX Runtime InferenceSession with explicit providers and threads."""

    backend = "onnxruntime"

    def __init__(self, model: Path | bytes, *, providers: list[str], intra_threads: int = 1) -> None:
        try:
            import onnxruntime as ort
        except ImportError as exc:
            raise BackendError("E23", "onnxruntime is not installed (pip install .[cpu])") from exc
        options = ort.SessionOptions()
        options.intra_op_num_threads = intra_threads
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.log_severity_level = 3
        source = str(model) if isinstance(model, Path) else model
        self.session = ort.InferenceSession(source, sess_options=options, providers=providers)
        self.provider = self.session.get_providers()[0]
        self._inputs = [_spec(a) for a in self.session.get_inputs()]
        self._outputs = [_spec(a) for a in self.session.get_outputs()]
        self._output_names = [o.name for o in self._outputs]

    @property
    def inputs(self) -> list[TensorSpec]:
        """The model's input tensors."""
        return self._inputs

    @property
    def outputs(self) -> list[TensorSpec]:
        """The model's output tensors."""
        return self._outputs

    def run(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Run the model; returns every output by name."""
        results = self.session.run(self._output_names, feeds)
        return dict(zip(self._output_names, results, strict=True))
