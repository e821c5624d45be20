"""Triton Python-backend model: runs ``model.onnx`` of its version folder on ONNX Runtime.

``swapcam serve`` copies this file as ``<model>/1/model.py``. It runs inside
Triton's Python stub, so it imports nothing from swapcam and never starts
multiprocessing (the stub's embedded interpreter and the standard library can
be different 3.11 patch releases, and multiprocessing's resource tracker then
fails). Requests grouped by the dynamic batcher arrive together and run one
after another: the graphs have a fixed batch of 1.
"""

from __future__ import annotations

import json
import os
from typing import Any

import numpy as np
import onnxruntime as ort
import triton_python_backend_utils as pb_utils


class TritonPythonModel:
    """One ONNX Runtime session per model instance."""

    def initialize(self, args: dict[str, Any]) -> None:
        """Open the session on CPU with the threads the config asks for."""
        config = json.loads(args["model_config"])
        threads = int(config.get("parameters", {}).get("threads", {}).get("string_value", "1"))
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.log_severity_level = 3
        path = os.path.join(args["model_repository"], args["model_version"], "model.onnx")
        self.session = ort.InferenceSession(path, sess_options=options, providers=_providers())
        self.input_names = [i.name for i in self.session.get_inputs()]
        self.output_names = [o.name for o in self.session.get_outputs()]

    def execute(self, requests: list[Any]) -> list[Any]:
        """One response per request; a failing request gets an error response, the others still run."""
        responses = []
        for request in requests:
            try:
                feeds = {name: pb_utils.get_input_tensor_by_name(request, name).as_numpy()
                         for name in self.input_names}
                results = self.session.run(self.output_names, feeds)
                tensors = [pb_utils.Tensor(name, np.ascontiguousarray(value))
                           for name, value in zip(self.output_names, results, strict=True)]
                responses.append(pb_utils.InferenceResponse(output_tensors=tensors))
            except Exception as exc:  # the stub must answer every request
                responses.append(pb_utils.InferenceResponse(output_tensors=[], error=pb_utils.TritonError(str(exc))))
        return responses


def _providers() -> list[str]:
    """CUDA first when this ONNX Runtime has it, else CPU."""
    available = ort.get_available_providers()
    return [p for p in ("CUDAExecutionProvider", "CPUExecutionProvider") if p in available]
