"""The torch backend: the ONNX models converted with onnx2torch, run on CUDA or the CPU.

The torch wheels bring their own CUDA libraries, so this runs on machines
where ``onnxruntime-gpu`` does not match the installed CUDA/cuDNN, and on a
machine with torch but neither TensorRT nor ``onnxruntime-gpu``. On CUDA it
runs in float32 or float16 (weights and activations; inputs and outputs stay
float32 at the interface), and a model with fixed input shapes can be captured
once into a CUDA graph and replayed. Only ONNX files are converted: no pickled
weights are ever loaded.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from realtime.engines.base import TensorSpec
from realtime.errors import BackendError, ModelError

log = logging.getLogger(__name__)

PRECISIONS = ("fp32", "fp16")
_ONNX_DTYPES: dict[int, np.dtype] = {1: np.dtype(np.float32), 10: np.dtype(np.float16), 11: np.dtype(np.float64),
                6: np.dtype(np.int32), 7: np.dtype(np.int64), 2: np.dtype(np.uint8), 9: np.dtype(np.bool_)}


def torch_status() -> tuple[str | None, bool, str | None]:
    """(torch version or None, whether torch sees a CUDA device, why the backend cannot run or None)."""
    try:
        import torch
    except ImportError:
        return None, False, "torch is not installed"
    cuda = bool(torch.cuda.is_available())
    try:
        import_converter()
    except ImportError as exc:
        why = f"onnx2torch cannot be imported ({exc}): pip install --no-deps onnx2torch==1.5.15"
        return str(torch.__version__), cuda, why
    return str(torch.__version__), cuda, None


def import_converter() -> Callable[[Any], Any]:
    """onnx2torch's ``convert``.

    onnx2torch imports torchvision at import time, only for its NMS and RoiAlign converters, which no
    swapcam model uses. Where torchvision is missing or cannot load (a CPU-only torch next to torchvision's
    CUDA wheel, or a GPU machine without it), onnx2torch is imported with a placeholder torchvision whose
    ops raise, so those two ops fail at conversion with a clear message; the placeholder is removed from
    ``sys.modules`` right after, so nothing else ever sees it.
    """
    import sys

    if "onnx2torch" in sys.modules:
        from onnx2torch import convert

        return convert  # type: ignore[no-any-return]
    try:
        import torchvision  # noqa: F401
    except Exception:  # ImportError, or torchvision's RuntimeError when its C++ ops do not match torch
        for name in [n for n in sys.modules if n == "torchvision" or n.startswith("torchvision.")]:
            del sys.modules[name]
        return _import_without_torchvision()
    from onnx2torch import convert

    return convert  # type: ignore[no-any-return]


def _import_without_torchvision() -> Callable[[Any], Any]:
    import sys
    import types

    def unusable(*_args: Any, **_kwargs: Any) -> Any:
        raise NotImplementedError("this model needs torchvision (NMS/RoiAlign), which cannot be loaded here")

    placeholder = types.ModuleType("torchvision")
    ops = types.ModuleType("torchvision.ops")
    ops.nms = ops.batched_nms = ops.roi_align = unusable  # type: ignore[attr-defined]
    placeholder.ops = ops  # type: ignore[attr-defined]
    sys.modules["torchvision"], sys.modules["torchvision.ops"] = placeholder, ops
    try:
        from onnx2torch import convert
    finally:
        del sys.modules["torchvision"], sys.modules["torchvision.ops"]
    return convert  # type: ignore[no-any-return]


def _specs(values: Any, skip: set[str]) -> list[TensorSpec]:
    specs = []
    for value in values:
        if value.name in skip:
            continue
        dims = value.type.tensor_type.shape.dim
        shape = tuple(d.dim_value if d.HasField("dim_value") and d.dim_value > 0 else None for d in dims)
        dtype = _ONNX_DTYPES.get(value.type.tensor_type.elem_type, np.dtype(np.float32))
        specs.append(TensorSpec(name=value.name, shape=shape, dtype=dtype))
    return specs


class TorchEngine:
    """An ONNX model converted to a torch module, on ``device`` ("cuda", "cuda:1" or "cpu").

    ``precision`` "fp16" (CUDA only) runs the converted module in half precision;
    float inputs are cast on the way in and outputs back to float32. ``cuda_graph``
    (CUDA only) captures the first run of a model whose inputs all have fixed
    shapes and replays it afterwards. Outputs of :meth:`run_torch` are fresh
    tensors, except under graph replay, where they are the graph's own buffers:
    valid until the next run (clone one to keep it).
    """

    backend = "torch"

    def __init__(self, model: Path | bytes, *, device: str = "cuda", precision: str = "fp32",
                 cuda_graph: bool = False, threads: int = 1) -> None:
        import onnx

        if precision not in PRECISIONS:
            raise BackendError("E01", f"precision {precision}", remedy="use fp32 or fp16")
        try:
            import torch

            convert = import_converter()
        except ImportError as exc:
            raise BackendError("E23", f"the torch backend needs torch and onnx2torch ({exc})",
                               remedy="pip install torch onnx2torch==1.5.15 (see docs/notes/gpu.md)") from exc
        self._torch = torch
        self.device = torch.device(device)
        if self.device.type == "cuda" and not torch.cuda.is_available():
            raise BackendError("E09", f"torch {torch.__version__} sees no CUDA device")
        if self.device.type != "cuda" and (precision == "fp16" or cuda_graph):
            raise BackendError("E01", "fp16 and CUDA graphs need --device cuda",
                               remedy="use --device cuda, or leave --precision/--cuda-graph out")
        proto = onnx.load_model_from_string(model) if isinstance(model, bytes) else onnx.load(str(model))
        initializers = {init.name for init in proto.graph.initializer}
        self._inputs = _specs(proto.graph.input, initializers)
        self._outputs = _specs(proto.graph.output, set())
        if self.device.type == "cpu":
            torch.set_num_threads(max(1, threads))
        try:
            module = convert(proto)
        except Exception as exc:  # onnx2torch raises NotImplementedError and others for unknown ops
            raise ModelError("E20", f"onnx2torch cannot convert this model ({type(exc).__name__}: {exc})",
                             remedy="use --backend onnxruntime") from exc
        self.precision = precision
        self._dtype = torch.float16 if precision == "fp16" else torch.float32
        self._module = module.eval().to(self.device, dtype=self._dtype) if precision == "fp16" \
            else module.eval().to(self.device)
        self.provider = f"torch {self.device.type}{' fp16' if precision == 'fp16' else ''}"
        self.device_type = self.device.type
        self.device_id = self.device.index or 0
        fixed = all(all(isinstance(d, int) for d in spec.shape) for spec in self._inputs)
        self.cuda_graph = cuda_graph and fixed
        if cuda_graph and not fixed:
            log.info("CUDA graph off: the model has dynamic input shapes")
        self._graph: Any = None
        self._static_in: dict[str, Any] = {}
        self._static_out: list[Any] = []

    @property
    def inputs(self) -> list[TensorSpec]:
        """The model's input tensors (None for a dynamic axis)."""
        return self._inputs

    @property
    def outputs(self) -> list[TensorSpec]:
        """The model's output tensors."""
        return self._outputs

    def run(self, feeds: dict[str, Any]) -> dict[str, np.ndarray]:
        """Run on numpy arrays (or torch tensors); returns numpy float32 (or integer) outputs."""
        outputs = self.run_torch(feeds)
        return {name: tensor.detach().cpu().numpy() for name, tensor in outputs.items()}

    def run_torch(self, feeds: dict[str, Any]) -> dict[str, Any]:
        """Run on torch tensors (or numpy arrays); outputs are tensors on this engine's device."""
        torch = self._torch
        with torch.inference_mode():
            args = [self._to_device(spec, feeds[spec.name]) for spec in self._inputs]
            results = self._replay(args) if self.cuda_graph else self._forward(args)
        return {spec.name: self._out(value) for spec, value in zip(self._outputs, results, strict=True)}

    def _to_device(self, spec: TensorSpec, value: Any) -> Any:
        torch = self._torch
        tensor = value if isinstance(value, torch.Tensor) else torch.from_numpy(np.ascontiguousarray(value))
        if tensor.dtype != torch.from_numpy(np.zeros(0, spec.dtype)).dtype:
            raise TypeError(f"input {spec.name!r} must be {spec.dtype}, got {tensor.dtype}")
        tensor = tensor.to(self.device, non_blocking=True)
        return tensor.to(self._dtype) if tensor.is_floating_point() else tensor

    def _forward(self, args: list[Any]) -> list[Any]:
        result = self._module(*args)
        return list(result) if isinstance(result, (tuple, list)) else [result]

    def _out(self, value: Any) -> Any:
        return value.float() if value.dtype == self._torch.float16 else value

    def _replay(self, args: list[Any]) -> list[Any]:
        """Fixed shapes: copy into the static inputs and replay the graph captured on the first call."""
        if self._graph is None:
            return self._capture(args)
        for spec, arg in zip(self._inputs, args, strict=True):
            if tuple(arg.shape) != tuple(spec.shape):  # copy_ would broadcast a wrong shape silently
                raise ValueError(f"input {spec.name!r} must have shape {spec.shape}, got {tuple(arg.shape)}")
            self._static_in[spec.name].copy_(arg, non_blocking=True)
        self._graph.replay()
        return [out for out in self._static_out]

    def _capture(self, args: list[Any]) -> list[Any]:
        torch = self._torch
        self._static_in = {spec.name: arg.clone() for spec, arg in zip(self._inputs, args, strict=True)}
        static = [self._static_in[spec.name] for spec in self._inputs]
        side = torch.cuda.Stream(device=self.device)
        side.wait_stream(torch.cuda.current_stream(self.device))
        with torch.cuda.stream(side):  # warm-up runs off the capture, as torch's CUDA-graph notes ask
            for _ in range(2):
                self._forward(static)
        torch.cuda.current_stream(self.device).wait_stream(side)
        graph = torch.cuda.CUDAGraph()
        try:
            with torch.cuda.graph(graph):
                self._static_out = self._forward(static)
        except RuntimeError as exc:
            log.warning("CUDA graph capture failed (%s); running without it", exc)
            self.cuda_graph = False
            return self._forward(args)
        self._graph = graph
        graph.replay()
        return list(self._static_out)

    def close(self) -> None:
        """Drop the module, the graph and their device memory."""
        self._graph = None
        self._static_in, self._static_out = {}, []
        self._module = None


def torch_opener(model: Path | bytes | Callable[[], Path | bytes], *, device: str, precision: str = "fp32",
                 cuda_graph: bool = False, threads: int = 1) -> Callable[[], TorchEngine]:
    """A function opening ``model`` (or what a function makes) on the torch backend, for fallbacks."""
    def open_torch() -> TorchEngine:
        return TorchEngine(model() if callable(model) else model, device=device, precision=precision,
                           cuda_graph=cuda_graph, threads=threads)

    return open_torch
