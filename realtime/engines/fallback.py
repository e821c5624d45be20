"""Falling back to a lesser backend when the GPU runs out of memory or a provider fails mid-run.

:class:`FallbackEngine` wraps the engine selection opened and runs it until a
call fails with a resource error (:func:`is_resource_error`: GPU out of
memory, an allocation failure, a CUDA/cuDNN/TensorRT failure). Then, in order:

1. ``relief`` (optional, set by the caller): the caller lowers its load, e.g.
   the face analyzer shrinks the detector input. If it could, the call raises
   :class:`ResourcePressure` and the caller retries with the lighter input;
   the engine stays where it is.
2. Otherwise the same model is reopened on the next backend of the chain
   (TensorRT → ONNX Runtime CUDA → ONNX Runtime CPU), one E20 warning says
   what it fell back to, and the call is retried there.
3. With no backend left the call raises E20; the pipeline passes that frame
   through and goes on.

The failed engine is dropped, so its GPU memory can be freed.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from realtime.engines.base import Engine, TensorSpec
from realtime.engines.ort import CPU_PROVIDER, CUDA_PROVIDER, OrtEngine
from realtime.errors import BackendError, warning_text

log = logging.getLogger(__name__)

# ONNX Runtime's exception classes that a failing device or allocator raises (InvalidArgument and the like
# are bugs or bad inputs, never resource pressure).
_ORT_FAILURES = {"RuntimeException", "Fail", "EPFail", "EngineError", "DeviceReset"}
_RESOURCE_WORDS = ("out of memory", "failed to allocate", "allocation", "allocate memory", "cuda", "cudnn",
                   "cublas", "cufft", "curand", "tensorrt", "device memory", "memory limit")


def is_resource_error(exc: BaseException) -> bool:
    """True for an out-of-memory or inference-provider failure, which a lesser backend may survive."""
    if isinstance(exc, MemoryError):
        return True
    kind = type(exc)
    if kind.__name__ == "OutOfMemoryError":  # torch.OutOfMemoryError (alias torch.cuda.OutOfMemoryError)
        return True
    if isinstance(exc, BackendError):
        return exc.code == "E20"  # TensorRT execution failures (engines/trt.py)
    text = str(exc).lower()
    if kind.__module__.startswith("onnxruntime"):
        return kind.__name__ in _ORT_FAILURES and any(word in text for word in _RESOURCE_WORDS)
    if isinstance(exc, RuntimeError):  # torch and TensorRT raise plain RuntimeErrors for CUDA failures
        return any(word in text for word in ("out of memory", "cuda error", "cudnn_status", "cublas_status"))
    return False


class ResourcePressure(BackendError):
    """A resource error the caller has relieved (e.g. with a smaller input): retry the call."""

    def __init__(self, detail: str) -> None:
        super().__init__("E20", detail)


@dataclass(frozen=True)
class Fallback:
    """A lesser backend for the same model, opened only when needed."""

    label: str  # e.g. "onnxruntime CPUExecutionProvider"
    open: Callable[[], Engine]


def describe(engine: Engine) -> str:
    """'onnxruntime CPUExecutionProvider', 'tensorrt TensorRT'..."""
    return f"{engine.backend} {engine.provider}"


def ort_fallback(model: Path | bytes | Callable[[], Path | bytes], *, providers: Sequence[str],
                 threads: int = 1) -> Fallback:
    """ONNX Runtime on ``providers`` (best first) as a fallback; ``model`` may be a function making it."""
    def open_ort() -> Engine:
        return OrtEngine(model() if callable(model) else model, providers=list(providers), intra_threads=threads)

    return Fallback(label=f"onnxruntime {providers[0]}", open=open_ort)


def with_cpu_fallback(engine: Engine, model: Callable[[], Path | bytes], *, name: str, threads: int = 1) -> Engine:
    """``engine`` wrapped to fall back to ONNX Runtime CPU, unless it runs on CPU already.

    ``model`` makes the model (a path or bytes) only when the fallback happens: a model converted in
    memory (e.g. the inswapper upcast to float32) is not kept twice for a fallback that may never come.
    """
    if engine.backend != "tensorrt" and engine.provider == CPU_PROVIDER:
        return engine

    def open_cpu() -> Engine:
        return OrtEngine(model(), providers=[CPU_PROVIDER], intra_threads=threads)

    return FallbackEngine(engine, fallbacks=[Fallback(label=f"onnxruntime {CPU_PROVIDER}", open=open_cpu)], name=name)


def fallback_chain(model: Path | Callable[[], Path | bytes], *, backend: str, provider: str,
                   ort_providers: Sequence[str], threads: int = 1) -> list[Fallback]:
    """The backends to try, in order, after the one running (``backend``/``provider``) fails.

    ``model`` is the model as ONNX Runtime runs it (a path, or a function making it: an upcast float16 graph).

    TensorRT → ONNX Runtime CUDA (when this onnxruntime has it) → CPU; an accelerated ONNX Runtime
    provider → CPU; CPU → nothing.
    """
    chain = []
    if backend == "tensorrt" and CUDA_PROVIDER in ort_providers:
        chain.append(ort_fallback(model, providers=(CUDA_PROVIDER, CPU_PROVIDER), threads=threads))
    if backend == "tensorrt" or provider != CPU_PROVIDER:
        chain.append(ort_fallback(model, providers=(CPU_PROVIDER,), threads=threads))
    return chain


class FallbackEngine:
    """An engine that reopens its model on the next backend when a run fails for lack of resources.

    Behaves as the engine it currently runs (attributes such as ``device_type``
    are read from it). ``relief``: see the module note. ``run_torch`` returns
    its outputs on the device of its inputs even after falling back to CPU.
    """

    def __init__(self, engine: Engine, *, fallbacks: Sequence[Fallback], name: str,
                 relief: Callable[[BaseException], bool] | None = None) -> None:
        self._engine = engine
        self._fallbacks = list(fallbacks)
        self.name = name
        self.relief = relief
        self.backend, self.provider = engine.backend, engine.provider  # of the engine running now
        self.fell_back: list[str] = []  # the backends fallen back to, in order

    @property
    def current(self) -> Engine:
        """The engine running now."""
        return self._engine

    @property
    def inputs(self) -> list[TensorSpec]:
        """The model's input tensors."""
        return self._engine.inputs

    @property
    def outputs(self) -> list[TensorSpec]:
        """The model's output tensors."""
        return self._engine.outputs

    def __getattr__(self, name: str) -> Any:
        # Only reached for attributes not defined here (device_type, profile, session...).
        if name.startswith("__") or name == "_engine":
            raise AttributeError(name)
        return getattr(self._engine, name)

    def run(self, feeds: dict[str, Any]) -> dict[str, np.ndarray]:
        """Run on the current backend; on a resource error relieve, fall back and retry (see the module note)."""
        while True:
            try:
                return self._engine.run(feeds)
            except Exception as exc:
                self._handle(exc)

    def run_torch(self, feeds: dict[str, Any]) -> dict[str, Any]:
        """Like :meth:`run` on torch tensors; outputs on the inputs' device."""
        while True:
            try:
                return _run_torch(self._engine, feeds)
            except Exception as exc:
                self._handle(exc)

    def _handle(self, exc: Exception) -> None:
        """Return to retry on the next backend; raise otherwise."""
        if not is_resource_error(exc) or isinstance(exc, ResourcePressure):
            raise exc
        if self.relief is not None and self.relief(exc):
            raise ResourcePressure(f"{self.name}: {_short(exc)}") from exc
        failed = describe(self._engine)
        while self._fallbacks:
            fallback = self._fallbacks.pop(0)
            try:
                engine = fallback.open()
            except Exception as open_exc:  # the lesser backend may be short of memory too: try the next
                log.debug("%s: cannot open %s: %s", self.name, fallback.label, open_exc)
                continue
            self._engine = engine  # the failed engine is dropped here, freeing its memory
            self.backend, self.provider = engine.backend, engine.provider
            self.fell_back.append(describe(engine))
            log.warning("%s", warning_text("E20", f"{self.name} on {failed}: {_short(exc)} — falling back to "
                                                  f"{describe(engine)}, the stream goes on"))
            return
        raise BackendError("E20", f"{self.name} on {failed}: {_short(exc)}; no backend left to fall back to") from exc


def _short(exc: BaseException, limit: int = 160) -> str:
    """An exception on one line of readable length, around its first word about memory or the device
    (ONNX Runtime puts a source path and a C++ signature before the words that matter)."""
    text = " ".join(str(exc).split())
    if len(text) > limit:
        lower = text.lower()
        hits = [i for i in (lower.find(word) for word in _RESOURCE_WORDS) if i >= 0]
        start = max(0, min(hits, default=0) - 40)
        text = ("..." if start else "") + text[start:start + limit] + ("..." if start + limit < len(text) else "")
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _device_type(engine: Engine) -> str:
    device = getattr(engine, "device", None)
    if device is not None and hasattr(device, "type"):
        return str(device.type)
    return str(getattr(engine, "device_type", "cpu"))


def _run_torch(engine: Engine, feeds: dict[str, Any]) -> dict[str, Any]:
    """``engine.run_torch``, or a host round trip when the engine runs on CPU and the inputs are elsewhere
    (after a fallback the caller's tensors stay on its GPU, only the model moved)."""
    import torch

    devices = {value.device for value in feeds.values() if isinstance(value, torch.Tensor)}
    home = devices.pop() if len(devices) == 1 else torch.device("cpu")
    run_torch = getattr(engine, "run_torch", None)
    if run_torch is not None and (_device_type(engine) != "cpu" or home.type == "cpu"):
        return run_torch(feeds)  # type: ignore[no-any-return]
    host = {name: value.detach().cpu().numpy() if isinstance(value, torch.Tensor) else value
            for name, value in feeds.items()}
    return {name: torch.from_numpy(np.ascontiguousarray(value)).to(home)
            for name, value in engine.run(host).items()}
