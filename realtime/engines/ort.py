"""ONNX Runtime backend: explicit providers and threads, IO binding on CUDA, a torch path."""

from __future__ import annotations

import logging
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from realtime.engines.base import TensorSpec
from realtime.errors import BackendError

log = logging.getLogger(__name__)

CPU_PROVIDER = "CPUExecutionProvider"
CUDA_PROVIDER = "CUDAExecutionProvider"

_ORT_DTYPES: dict[str, np.dtype] = {
    "tensor(float)": np.dtype(np.float32),
    "tensor(float16)": np.dtype(np.float16),
    "tensor(double)": np.dtype(np.float64),
    "tensor(int64)": np.dtype(np.int64),
    "tensor(int32)": np.dtype(np.int32),
    "tensor(int8)": np.dtype(np.int8),
    "tensor(uint8)": np.dtype(np.uint8),
    "tensor(bool)": np.dtype(np.bool_),
}


def _spec(arg: Any) -> TensorSpec:
    shape = tuple(d if isinstance(d, int) else None for d in arg.shape)
    dtype = _ORT_DTYPES.get(arg.type, np.dtype(np.float32))
    return TensorSpec(name=arg.name, shape=shape, dtype=dtype)


def _provider_entries(providers: list[str], device_id: int) -> list[Any]:
    """Providers as ONNX Runtime takes them; the CUDA one pinned to ``device_id``."""
    return [(name, {"device_id": str(device_id)}) if name == CUDA_PROVIDER else name for name in providers]


def preload_cuda_libraries(ort: Any, providers: Sequence[str]) -> bool:
    """Load CUDA and cuDNN before the first CUDA session, where this onnxruntime can (1.21+).

    ``onnxruntime.preload_dlls()`` finds them in torch's CUDA build or in the nvidia-* wheels that
    ``onnxruntime-gpu[cuda,cudnn]`` installs. Without it, on Windows, those wheels' DLLs are not on the
    search path and the CUDA provider silently falls back to the CPU (E19). Returns whether it ran.
    """
    preload = getattr(ort, "preload_dlls", None)
    if CUDA_PROVIDER not in providers or preload is None:
        return False
    try:
        preload()
    except Exception as exc:  # a missing library shows up as E19 when the session loads; say why here
        log.debug("onnxruntime.preload_dlls() failed: %r", exc)
        return False
    return True


class OrtEngine:
    """An ONNX model on an ONNX Runtime InferenceSession with explicit providers and threads.

    On the CUDA provider every run goes through IO binding: numpy inputs are
    copied up once, torch CUDA tensors are bound by pointer (no copy), and
    outputs are allocated on the device; :meth:`run` copies them down once.
    :meth:`run_torch` binds torch tensors it allocates as the outputs, so they
    are handed over without a copy; only on the first run of a new input shape
    whose output shapes are not known yet does ONNX Runtime allocate them, and
    they come over by DLPack (or, on an ONNX Runtime without it, through the
    host, that once).
    """

    backend = "onnxruntime"

    def __init__(self, model: Path | bytes, *, providers: list[str], intra_threads: int = 1,
                 device_id: int = 0, io_binding: bool | None = None) -> None:
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
        self.requested_providers = tuple(providers)
        preload_cuda_libraries(ort, providers)
        with warnings.catch_warnings():
            # ONNX Runtime warns when a requested provider is missing; lost_providers() reports it (E19).
            warnings.simplefilter("ignore", UserWarning)
            self.session = ort.InferenceSession(source, sess_options=options,
                                                providers=_provider_entries(list(providers), device_id))
        self.provider = self.session.get_providers()[0]
        self.device_type = "cuda" if self.provider == CUDA_PROVIDER else "cpu"
        self.device_id = device_id if self.device_type == "cuda" else 0
        self.io_binding = self.device_type == "cuda" if io_binding is None else io_binding
        self._inputs = [_spec(a) for a in self.session.get_inputs()]
        self._outputs = [_spec(a) for a in self.session.get_outputs()]
        self._output_names = [o.name for o in self._outputs]
        self._output_shapes: dict[tuple[tuple[int, ...], ...], list[tuple[int, ...]]] = {}
        fixed = [spec.shape for spec in self._outputs if all(isinstance(d, int) for d in spec.shape)]
        self._fixed_outputs = [tuple(int(d) for d in shape if d is not None) for shape in fixed] \
            if len(fixed) == len(self._outputs) else None

    @property
    def inputs(self) -> list[TensorSpec]:
        """The model's input tensors."""
        return self._inputs

    @property
    def outputs(self) -> list[TensorSpec]:
        """The model's output tensors."""
        return self._outputs

    def lost_providers(self) -> tuple[str, ...]:
        """Requested providers the session did not load (e.g. CUDA failing over to CPU)."""
        loaded = set(self.session.get_providers())
        return tuple(p for p in self.requested_providers if p not in loaded)

    def run(self, feeds: dict[str, Any]) -> dict[str, np.ndarray]:
        """Run the model on numpy arrays (or torch tensors); returns every output as numpy."""
        if not self.io_binding and all(isinstance(v, np.ndarray) for v in feeds.values()):
            results = self.session.run(self._output_names, feeds)
            return dict(zip(self._output_names, results, strict=True))
        binding, _keep = self._bind(feeds)
        self.session.run_with_iobinding(binding)
        return dict(zip(self._output_names, binding.copy_outputs_to_cpu(), strict=True))

    def run_torch(self, feeds: dict[str, Any]) -> dict[str, Any]:
        """Run on torch tensors; outputs are torch tensors on this engine's device."""
        import torch

        key = tuple(tuple(feeds[spec.name].shape) for spec in self._inputs)
        shapes = self._fixed_outputs or self._output_shapes.get(key)
        device = torch.device(self.device_type, self.device_id)
        if shapes is not None:
            tensors = [torch.empty(shape, dtype=_torch_dtype(spec.dtype), device=device)
                       for shape, spec in zip(shapes, self._outputs, strict=True)]
            binding, _keep = self._bind(feeds, outputs=tensors)
            self.session.run_with_iobinding(binding)
            return dict(zip(self._output_names, tensors, strict=True))
        binding, _keep = self._bind(feeds)
        self.session.run_with_iobinding(binding)
        values = binding.get_outputs()
        if hasattr(values[0], "__dlpack__"):
            tensors = [torch.from_dlpack(value) for value in values]
        else:  # ONNX Runtime before DLPack support on OrtValue: through the host, once per new input shape
            tensors = [torch.from_numpy(value.numpy()).to(device) for value in values]
        self._output_shapes[key] = [tuple(t.shape) for t in tensors]
        return dict(zip(self._output_names, tensors, strict=True))

    def _bind(self, feeds: dict[str, Any], outputs: list[Any] | None = None) -> tuple[Any, list[Any]]:
        """An IO binding for ``feeds`` (and ``outputs``: torch tensors to write the results into, else
        ONNX Runtime allocates them); the list keeps bound tensors alive until the run is done."""
        binding = self.session.io_binding()
        keep: list[Any] = []
        for spec in self._inputs:
            value = feeds[spec.name]
            if isinstance(value, np.ndarray):
                binding.bind_cpu_input(spec.name, np.ascontiguousarray(value))
                continue
            tensor = value.contiguous()
            if tensor.is_cuda:
                # ONNX Runtime runs on its own stream: torch's pending work on the input must finish first.
                import torch

                torch.cuda.current_stream(tensor.device).synchronize()
            keep.append(tensor)
            binding.bind_input(spec.name, tensor.device.type, tensor.device.index or 0,
                               _numpy_dtype(tensor.dtype), tuple(tensor.shape), tensor.data_ptr())
        if outputs is not None:
            for name, tensor in zip(self._output_names, outputs, strict=True):
                binding.bind_output(name, tensor.device.type, tensor.device.index or 0,
                                    _numpy_dtype(tensor.dtype), tuple(tensor.shape), tensor.data_ptr())
            return binding, keep
        for name in self._output_names:
            binding.bind_output(name, self.device_type, self.device_id)
        return binding, keep


def _numpy_dtype(torch_dtype: Any) -> np.dtype:
    """The numpy dtype of a torch dtype (torch.float32 → float32)."""
    import torch

    return np.dtype(torch.empty((), dtype=torch_dtype).numpy().dtype)


def _torch_dtype(dtype: np.dtype) -> Any:
    """The torch dtype of a numpy dtype (float32 → torch.float32)."""
    import torch

    return torch.from_numpy(np.zeros(0, dtype)).dtype
