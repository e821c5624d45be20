"""TensorRT backend, written for the TensorRT 10 and 11 Python APIs.

Named I/O tensors only (``num_io_tensors``, ``get_tensor_name``, ``get_tensor_mode``,
``get_tensor_shape``, ``get_tensor_dtype``, ``set_input_shape``,
``set_tensor_address``, ``execute_async_v3``): the binding-index API is gone in
both. Buffers are torch CUDA tensors, so frames that are already on the GPU go
straight in (:meth:`TrtEngine.run_torch`). Everything runs on one CUDA stream
owned by the engine, ordered against the caller's current torch stream with
events, never with a host synchronisation.
"""

from __future__ import annotations

import contextlib
import functools
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from realtime.engines.base import TensorSpec
from realtime.errors import BackendError, ModelError

log = logging.getLogger(__name__)

Profile = tuple[tuple[int, ...], tuple[int, ...], tuple[int, ...]]  # min, opt, max
_PROFILE_REMEDY = ("rebuild the engine with a wider profile (trt_profile in realtime/manifest.json), "
                   "or use --backend onnxruntime")


def check_input_shape(name: str, shape: Sequence[int], declared: Sequence[int | str | None],
                      profile: Profile | None) -> None:
    """Raise when ``shape`` cannot be fed to an input declared as ``declared`` with ``profile``."""
    shape = tuple(shape)
    if len(shape) != len(declared):
        raise ValueError(f"input {name!r} needs {len(declared)} dimensions, got shape {shape}")
    for axis, (size, fixed) in enumerate(zip(shape, declared, strict=True)):
        if isinstance(fixed, int) and size != fixed:
            raise ValueError(f"input {name!r} axis {axis} must be {fixed}, got shape {shape}")
    if profile is None:
        return
    low, _, high = profile
    if any(size < lo or size > hi for size, lo, hi in zip(shape, low, high, strict=True)):
        raise ModelError("E08", f"input {name!r} shape {shape} is outside the engine's profile "
                         f"{tuple(low)}..{tuple(high)}", remedy=_PROFILE_REMEDY)


def dims_to_shape(dims: Sequence[int]) -> tuple[int | None, ...]:
    """TensorRT dimensions with -1 for a dynamic axis → a TensorSpec shape with None."""
    return tuple(None if d < 0 else int(d) for d in dims)


@functools.cache
def trt_logger(trt: Any) -> Any:
    """The process's one TensorRT logger: TensorRT keeps the first logger it is given and ignores the rest."""
    return trt.Logger(trt.Logger.WARNING)


def _import_gpu_stack(*, cuda: bool = True) -> tuple[Any, Any]:
    try:
        import tensorrt as trt
    except Exception as exc:  # missing, or present but its CUDA libraries are not
        raise BackendError("E09", f"tensorrt cannot be imported ({exc})") from exc
    try:
        import torch
    except ImportError as exc:
        raise BackendError("E09", "torch is not installed (pip install .[gpu])") from exc
    if cuda and not torch.cuda.is_available():
        raise BackendError("E09", f"torch {torch.__version__} sees no CUDA device")
    return trt, torch


def _torch_dtypes(trt: Any, torch: Any) -> dict[Any, Any]:
    pairs = (("FLOAT", "float32"), ("HALF", "float16"), ("BF16", "bfloat16"), ("INT32", "int32"),
             ("INT64", "int64"), ("INT8", "int8"), ("UINT8", "uint8"), ("BOOL", "bool"))
    return {getattr(trt.DataType, t): getattr(torch, p) for t, p in pairs if hasattr(trt.DataType, t)}


def _numpy_dtype(trt: Any, trt_dtype: Any) -> np.dtype:
    try:
        return np.dtype(trt.nptype(trt_dtype))
    except (TypeError, KeyError):  # bfloat16 and other types numpy has no dtype for
        return np.dtype(np.float32)


class TrtEngine:
    """A deserialized TensorRT engine with its execution context, stream and I/O buffers.

    Input shapes may change between runs within the engine's optimization
    profile; output buffers are reallocated only when their shape changes.
    With ``cuda_graph=True`` a model whose inputs are all fixed-shape is
    captured once into a CUDA graph and replayed (fewer launch overheads).
    Outputs of :meth:`run_torch` are the engine's own buffers: they stay valid
    until the next run — clone one to keep it longer. :meth:`close` frees the
    engine, its context, graph and buffers. ``device="cpu"`` exists for the
    contract tests, whose stand-in ``tensorrt`` runs on the host.
    """

    backend = "tensorrt"
    provider = "TensorRT"

    def __init__(self, engine_path: Path, *, device_id: int = 0, version_compatible: bool = False,
                 cuda_graph: bool = False, device: str = "cuda") -> None:
        trt, torch = _import_gpu_stack(cuda=device == "cuda")
        self._trt, self._torch = trt, torch
        self.path = engine_path
        self.device = torch.device("cuda", device_id) if device == "cuda" else torch.device(device)
        with self._on_device():
            self._runtime = trt.Runtime(trt_logger(trt))
            if version_compatible:
                # A version-compatible plan carries its own lean runtime, which is host code.
                self._runtime.engine_host_code_allowed = True
            self._engine = self._runtime.deserialize_cuda_engine(engine_path.read_bytes())
            if self._engine is None:
                raise ModelError("E08", f"{engine_path.name}: TensorRT could not deserialize it "
                                 "(see the TensorRT message above)")
            self._context = self._engine.create_execution_context()
            self._stream: Any = torch.cuda.Stream(device=self.device) if self.device.type == "cuda" else None
        self._describe_io()
        self._bound_shapes: dict[str, tuple[int, ...]] = {}
        self._outputs_buf: dict[str, Any] = {}
        self._held_inputs: dict[str, Any] = {}
        self._graph: Any = None
        self.cuda_graph = cuda_graph and not self._profiles and self._stream is not None
        if cuda_graph and not self.cuda_graph:
            log.info("%s: CUDA graph off — the engine has dynamic input shapes", engine_path.name)

    def _on_device(self) -> Any:
        return self._torch.cuda.device(self.device) if self.device.type == "cuda" else contextlib.nullcontext()

    def close(self) -> None:
        """Free the graph, buffers, context, engine and runtime (their device memory with them)."""
        self._graph = None
        self._outputs_buf, self._held_inputs, self._bound_shapes = {}, {}, {}
        self._context = self._engine = self._runtime = None
        self._stream = None

    def _describe_io(self) -> None:
        trt, engine = self._trt, self._engine
        dtypes = _torch_dtypes(trt, self._torch)
        names = [engine.get_tensor_name(i) for i in range(engine.num_io_tensors)]
        self._inputs: list[TensorSpec] = []
        self._outputs: list[TensorSpec] = []
        self._torch_dtype: dict[str, Any] = {}
        self._profiles: dict[str, Profile] = {}
        for name in names:
            trt_dtype = engine.get_tensor_dtype(name)
            spec = TensorSpec(name=name, shape=dims_to_shape(engine.get_tensor_shape(name)),
                              dtype=_numpy_dtype(trt, trt_dtype))
            self._torch_dtype[name] = dtypes[trt_dtype]
            if engine.get_tensor_mode(name) == trt.TensorIOMode.INPUT:
                self._inputs.append(spec)
                if any(size is None for size in spec.shape):
                    low, opt, high = engine.get_tensor_profile_shape(name, 0)
                    self._profiles[name] = (tuple(low), tuple(opt), tuple(high))
            else:
                self._outputs.append(spec)

    @property
    def inputs(self) -> list[TensorSpec]:
        """The engine's input tensors (None for a dynamic axis)."""
        return self._inputs

    @property
    def outputs(self) -> list[TensorSpec]:
        """The engine's output tensors (None for an axis that follows the inputs)."""
        return self._outputs

    def profile(self, name: str) -> Profile | None:
        """(min, opt, max) shapes of a dynamic input, or None for a fixed one."""
        return self._profiles.get(name)

    def run(self, feeds: dict[str, Any]) -> dict[str, np.ndarray]:
        """Run on numpy arrays (or torch tensors); returns numpy copies of the outputs."""
        outputs = self.run_torch(feeds)
        return {name: tensor.cpu().numpy() for name, tensor in outputs.items()}

    def run_torch(self, feeds: dict[str, Any]) -> dict[str, Any]:
        """Run on torch tensors (or numpy arrays); outputs are torch CUDA tensors (see the class note)."""
        torch = self._torch
        if self._context is None:
            raise BackendError("E20", f"{self.path.name}: the engine is closed")
        with self._on_device():
            caller: Any = torch.cuda.current_stream(self.device) if self._stream is not None else None
            tensors = {spec.name: self._to_device(spec, feeds[spec.name]) for spec in self._inputs}
            if self._stream is not None:
                self._stream.wait_stream(caller)
            if self.cuda_graph:
                self._run_graph(tensors)
            else:
                self._bind_inputs(tensors)
                self._bind_outputs()
                self._enqueue()
            if self._stream is not None:
                caller.wait_stream(self._stream)
        return {spec.name: self._outputs_buf[spec.name] for spec in self._outputs}

    def _to_device(self, spec: TensorSpec, value: Any) -> Any:
        torch = self._torch
        tensor = value if isinstance(value, torch.Tensor) else torch.from_numpy(np.ascontiguousarray(value))
        if tensor.dtype != self._torch_dtype[spec.name]:
            raise TypeError(f"input {spec.name!r} must be {self._torch_dtype[spec.name]}, got {tensor.dtype}")
        tensor = tensor.to(self.device, non_blocking=True).contiguous()
        if self._stream is not None:
            tensor.record_stream(self._stream)  # the caller's allocator must not reuse it before we are done
        return tensor

    def _set_address(self, name: str, tensor: Any) -> None:
        if not self._context.set_tensor_address(name, tensor.data_ptr()):
            raise BackendError("E20", f"{self.path.name}: TensorRT refused the buffer of tensor {name!r} "
                               f"(address {tensor.data_ptr():#x}, {tensor.dtype}, shape {tuple(tensor.shape)})",
                               remedy="see the TensorRT message above; use --backend onnxruntime meanwhile")

    def _bind_inputs(self, tensors: dict[str, Any]) -> None:
        for spec in self._inputs:
            tensor = tensors[spec.name]
            shape = tuple(tensor.shape)
            if self._bound_shapes.get(spec.name) != shape:
                check_input_shape(spec.name, shape, spec.shape, self._profiles.get(spec.name))
                if not self._context.set_input_shape(spec.name, shape):
                    raise ModelError("E08", f"TensorRT refused shape {shape} for input {spec.name!r}",
                                     remedy=_PROFILE_REMEDY)
                self._bound_shapes[spec.name] = shape
            self._set_address(spec.name, tensor)
            self._held_inputs[spec.name] = tensor

    def _bind_outputs(self) -> None:
        """(Re)allocate an output only when its shape changed."""
        for spec in self._outputs:
            shape = tuple(self._context.get_tensor_shape(spec.name))
            if any(size < 0 for size in shape):
                raise BackendError("E20", f"output {spec.name!r} has a data-dependent shape {shape}, "
                                   "which this runtime does not support", remedy="use --backend onnxruntime")
            current = self._outputs_buf.get(spec.name)
            if current is None or tuple(current.shape) != shape:
                current = self._torch.empty(shape, dtype=self._torch_dtype[spec.name], device=self.device)
                self._outputs_buf[spec.name] = current
                self._set_address(spec.name, current)

    def _enqueue(self) -> None:
        handle = self._stream.cuda_stream if self._stream is not None else 0
        if not self._context.execute_async_v3(handle):
            raise BackendError("E20", f"{self.path.name}: TensorRT execute_async_v3 failed "
                               "(see the TensorRT message above)")

    def _run_graph(self, tensors: dict[str, Any]) -> None:
        """Fixed shapes: copy into static input buffers, then replay the captured graph."""
        torch = self._torch
        if self._graph is None:
            static = {name: torch.empty_like(tensor) for name, tensor in tensors.items()}
            with torch.cuda.stream(self._stream):
                for name, tensor in tensors.items():
                    static[name].copy_(tensor, non_blocking=True)
            self._bind_inputs(static)
            self._bind_outputs()
            self._enqueue()  # the first plain run lets TensorRT finish its lazy setup before capture
            self._capture()
            return
        for spec in self._inputs:  # copy_ would broadcast a wrong shape silently
            check_input_shape(spec.name, tuple(tensors[spec.name].shape), spec.shape, None)
        with torch.cuda.stream(self._stream):
            for name, tensor in tensors.items():
                self._held_inputs[name].copy_(tensor, non_blocking=True)
            self._graph.replay()

    def _capture(self) -> None:
        torch = self._torch
        self._stream.synchronize()
        graph = torch.cuda.CUDAGraph()
        try:
            with torch.cuda.graph(graph, stream=self._stream, capture_error_mode="thread_local"):
                self._enqueue()
        except (RuntimeError, BackendError) as exc:
            # A failed execute_async_v3 (BackendError) or a failed capture_end can leave the stream capturing,
            # and then every later launch on it fails: end the capture here, whatever it holds.
            with torch.cuda.stream(self._stream):
                if torch.cuda.is_current_stream_capturing():
                    with contextlib.suppress(RuntimeError):
                        graph.capture_end()
            log.warning("%s: CUDA graph capture failed (%s); running without it", self.path.name, exc)
            self.cuda_graph = False
            return
        self._graph = graph
