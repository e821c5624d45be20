"""Triton Python-backend model: runs ``model.onnx`` of its version folder on ONNX Runtime.

``swapcam serve`` copies this file as ``<model>/1/model.py``. It runs inside
Triton's Python stub, so it imports nothing from swapcam and never starts
multiprocessing (the stub's embedded interpreter and the standard library can
be different 3.11 patch releases, and multiprocessing's resource tracker then
fails). Tensors cross into and out of the stub by DLPack, not by its numpy
conversions: the stub was built against numpy 1, and with numpy 2 its
``pb_utils.Tensor(name, array)`` answered with empty data. The repository
`swapcam serve` writes has no dynamic batching (one request per call runs
at a time per instance); a list of several requests still runs one by one.
"""

from __future__ import annotations

import json
import os
import sys
from typing import Any

import numpy as np
import onnxruntime as ort
import triton_python_backend_utils as pb_utils

_CAPSULE_NOISE = "PyCapsule_GetPointer called with incorrect name"


def _quiet_capsule_noise() -> None:
    """Drop the one harmless message the stub prints per output tensor handed over by DLPack.

    The stub consumes numpy 2's capsule and frees the tensor itself (the stub's memory stays flat over
    thousands of calls), but numpy's capsule destructor then fails to read the renamed capsule and prints that
    ValueError on every output of every call, which would fill the server log.
    """
    excepthook, unraisablehook = sys.excepthook, sys.unraisablehook

    def on_exception(kind: Any, value: Any, trace: Any) -> None:
        if not (isinstance(value, ValueError) and _CAPSULE_NOISE in str(value)):
            excepthook(kind, value, trace)

    def on_unraisable(info: Any) -> None:
        if not (isinstance(info.exc_value, ValueError) and _CAPSULE_NOISE in str(info.exc_value)):
            unraisablehook(info)

    sys.excepthook, sys.unraisablehook = on_exception, on_unraisable


class TritonPythonModel:
    """One ONNX Runtime session per model instance."""

    def initialize(self, args: dict[str, Any]) -> None:
        """Open the session on CPU with the threads the config asks for."""
        _quiet_capsule_noise()
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
                feeds = {name: np.from_dlpack(pb_utils.get_input_tensor_by_name(request, name))
                         for name in self.input_names}
                results = self.session.run(self.output_names, feeds)
                tensors = [pb_utils.Tensor.from_dlpack(name, np.ascontiguousarray(value).__dlpack__())
                           for name, value in zip(self.output_names, results, strict=True)]
                responses.append(pb_utils.InferenceResponse(output_tensors=tensors))
            except Exception as exc:  # the stub must answer every request
                responses.append(pb_utils.InferenceResponse(output_tensors=[], error=pb_utils.TritonError(str(exc))))
        return responses


def _providers() -> list[str]:
    """CUDA first when this ONNX Runtime has it, else CPU."""
    available = ort.get_available_providers()
    return [p for p in ("CUDAExecutionProvider", "CPUExecutionProvider") if p in available]
