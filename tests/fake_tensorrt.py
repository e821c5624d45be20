"""A stand-in ``tensorrt`` module for the contract tests: the TensorRT 10 and 11 Python APIs, run on the CPU.

It has the objects and calls swapcam uses (Logger, Builder, INetworkDefinition through OnnxParser,
IBuilderConfig with optimisation profiles and timing caches, ``build_serialized_network``, Runtime,
ICudaEngine, IExecutionContext with named I/O tensors and ``execute_async_v3``) with their documented
signatures, and it enforces the rules the real library enforces, failing the same way (a ``None``
plan, a ``False`` return, an error on the logger):

- every input with a dynamic axis needs an optimisation profile, or the build fails;
- ``set_input_shape`` refuses a shape outside the profile (or one that differs from a fixed input);
- ``execute_async_v3`` fails unless every I/O tensor has an address and every dynamic input a shape;
- tensors are read and written at their addresses in the engine's dtypes: a buffer of another dtype
  gives wrong numbers, which the tests catch by comparing with ONNX Runtime;
- TensorRT 11 has no precision builder flags (``BuilderFlag.FP16`` is absent): networks are strongly typed;
- the first logger given to TensorRT is the one it keeps; another one is ignored (counted here).

The "engine" is the parsed ONNX graph plus its profiles; running it runs the graph with ONNX Runtime
on the CPU, so the numbers are the model's own. Memory addresses are host addresses (torch CPU tensors).
:func:`make` returns a fresh module for a version, injected as ``sys.modules["tensorrt"]`` by the tests.
"""

from __future__ import annotations

import ctypes
import importlib.machinery
import json
import types
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

import numpy as np

_MAGIC = b"FAKETRT1"


class DataType(Enum):
    FLOAT = 0
    HALF = 1
    INT8 = 2
    INT32 = 3
    BOOL = 4
    UINT8 = 5
    INT64 = 8
    BF16 = 7


_NUMPY = {DataType.FLOAT: np.float32, DataType.HALF: np.float16, DataType.INT8: np.int8,
          DataType.INT32: np.int32, DataType.BOOL: np.bool_, DataType.UINT8: np.uint8, DataType.INT64: np.int64}
_FROM_ONNX = {1: DataType.FLOAT, 10: DataType.HALF, 3: DataType.INT8, 6: DataType.INT32, 9: DataType.BOOL,
              2: DataType.UINT8, 7: DataType.INT64}


def nptype(dtype: DataType) -> Any:
    """trt.nptype: the numpy type of a TensorRT DataType (TypeError for BF16, as in TensorRT)."""
    if dtype not in _NUMPY:
        raise TypeError(f"no numpy type for {dtype}")
    return _NUMPY[dtype]


class TensorIOMode(Enum):
    NONE = 0
    INPUT = 1
    OUTPUT = 2


class MemoryPoolType(Enum):
    WORKSPACE = 0


class HardwareCompatibilityLevel(Enum):
    NONE = 0
    AMPERE_PLUS = 1
    SAME_COMPUTE_CAPABILITY = 2


class Severity(Enum):
    INTERNAL_ERROR = 0
    ERROR = 1
    WARNING = 2
    INFO = 3
    VERBOSE = 4


@dataclass
class State:
    """What the fake saw: the logger TensorRT kept, ignored loggers, errors it logged, the device it built on."""

    logger: Any = None
    ignored_loggers: int = 0
    errors: list[str] = field(default_factory=list)
    current_device: int = 0  # stands for the CUDA runtime's current device (tests set it through build.cuda_device)
    fail_executions: int = 0  # the next N execute_async_v3 calls fail, as on a GPU out of memory
    builds: int = 0


def make(version: str = "10.4.0") -> types.ModuleType:
    """A fresh ``tensorrt`` module of ``version`` ("10.x" or "11.x")."""
    major = int(version.split(".")[0])
    state = State()
    trt = types.ModuleType("tensorrt")
    trt.__spec__ = importlib.machinery.ModuleSpec("tensorrt", None)  # importlib.util.find_spec finds it
    trt.__version__ = version  # type: ignore[attr-defined]
    trt.state = state  # type: ignore[attr-defined]
    trt.DataType = DataType  # type: ignore[attr-defined]
    trt.nptype = nptype  # type: ignore[attr-defined]
    trt.TensorIOMode = TensorIOMode  # type: ignore[attr-defined]
    trt.MemoryPoolType = MemoryPoolType  # type: ignore[attr-defined]
    trt.HardwareCompatibilityLevel = HardwareCompatibilityLevel  # type: ignore[attr-defined]
    flags = ["VERSION_COMPATIBLE", "EXCLUDE_LEAN_RUNTIME", "REFIT", "STRIP_PLAN"]
    if major < 11:
        flags += ["FP16", "BF16", "INT8", "FP8", "TF32"]  # TensorRT 11 removed the precision flags
    trt.BuilderFlag = Enum("BuilderFlag", flags)  # type: ignore[attr-defined]

    def log_error(message: str) -> None:
        state.errors.append(message)

    def keep(logger: Any) -> None:
        if state.logger is None:
            state.logger = logger
        elif logger is not state.logger:
            state.ignored_loggers += 1  # TensorRT: "the logger passed into createInferBuilder differs ..."

    class Logger:
        INTERNAL_ERROR, ERROR, WARNING, INFO, VERBOSE = (Severity.INTERNAL_ERROR, Severity.ERROR, Severity.WARNING,
                                                         Severity.INFO, Severity.VERBOSE)

        def __init__(self, min_severity: Severity = Severity.WARNING) -> None:
            self.min_severity = min_severity

    class IProgressMonitor:
        def __init__(self) -> None:
            pass

    class ITensor:
        def __init__(self, name: str, shape: tuple[int, ...], dtype: DataType) -> None:
            self.name, self.shape, self.dtype = name, shape, dtype

    class INetworkDefinition:
        def __init__(self) -> None:
            self.onnx: bytes | None = None
            self._inputs: list[ITensor] = []
            self._outputs: list[ITensor] = []

        @property
        def num_inputs(self) -> int:
            return len(self._inputs)

        @property
        def num_outputs(self) -> int:
            return len(self._outputs)

        def get_input(self, index: int) -> ITensor:
            return self._inputs[index]

        def get_output(self, index: int) -> ITensor:
            return self._outputs[index]

    class IOptimizationProfile:
        def __init__(self) -> None:
            self.shapes: dict[str, tuple[tuple[int, ...], tuple[int, ...], tuple[int, ...]]] = {}

        def set_shape(self, input: str, min: Any, opt: Any, max: Any) -> None:
            low, mid, high = (tuple(int(d) for d in s) for s in (min, opt, max))
            if not all(a <= b <= c for a, b, c in zip(low, mid, high, strict=True)):
                raise ValueError(f"profile for {input}: need min <= opt <= max")
            self.shapes[input] = (low, mid, high)

    class ITimingCache:
        def __init__(self, data: bytes) -> None:
            self.data = data or b"timing"

        def serialize(self) -> bytes:
            return self.data

    class IBuilderConfig:
        def __init__(self) -> None:
            self.flags: set[Any] = set()
            self.profiles: list[IOptimizationProfile] = []
            self.pool_limits: dict[Any, int] = {}
            self.progress_monitor: Any = None
            self.hardware_compatibility_level = HardwareCompatibilityLevel.NONE
            self._cache: ITimingCache | None = None

        def set_flag(self, flag: Any) -> None:
            self.flags.add(flag)

        def set_memory_pool_limit(self, pool: MemoryPoolType, size: int) -> None:
            self.pool_limits[pool] = size

        def add_optimization_profile(self, profile: IOptimizationProfile) -> int:
            self.profiles.append(profile)
            return len(self.profiles) - 1

        def create_timing_cache(self, data: bytes) -> ITimingCache:
            return ITimingCache(bytes(data))

        def set_timing_cache(self, cache: ITimingCache, ignore_mismatch: bool) -> bool:
            self._cache = cache
            return True

        def get_timing_cache(self) -> ITimingCache | None:
            return self._cache

    class Builder:
        def __init__(self, logger: Logger) -> None:
            keep(logger)
            self.device = state.current_device

        def create_network(self, flags: int = 0) -> INetworkDefinition:
            return INetworkDefinition()

        def create_builder_config(self) -> IBuilderConfig:
            return IBuilderConfig()

        def create_optimization_profile(self) -> IOptimizationProfile:
            return IOptimizationProfile()

        def build_serialized_network(self, network: INetworkDefinition, config: IBuilderConfig) -> bytes | None:
            state.builds += 1
            profile = config.profiles[0].shapes if config.profiles else {}
            for tensor in network._inputs:
                if -1 in tensor.shape and tensor.name not in profile:
                    log_error(f"Network has dynamic or shape inputs, but no optimization profile has been "
                              f"defined (input {tensor.name!r})")
                    return None
                if tensor.name in profile:
                    low, _, high = profile[tensor.name]
                    fixed_ok = all(d < 0 or (lo == d == hi) for d, lo, hi in zip(tensor.shape, low, high, strict=True))
                    if len(low) != len(tensor.shape) or not fixed_ok:
                        log_error(f"profile for {tensor.name!r} does not fit its shape {tensor.shape}")
                        return None
            header = {"version": version, "device": self.device,
                      "profile": {k: [list(s) for s in v] for k, v in profile.items()},
                      "inputs": [[t.name, list(t.shape), t.dtype.name] for t in network._inputs],
                      "outputs": [[t.name, list(t.shape), t.dtype.name] for t in network._outputs]}
            head = json.dumps(header).encode()
            assert network.onnx is not None
            return _MAGIC + len(head).to_bytes(8, "little") + head + network.onnx

    class OnnxParser:
        def __init__(self, network: INetworkDefinition, logger: Logger) -> None:
            keep(logger)
            self.network = network
            self._errors: list[str] = []

        @property
        def num_errors(self) -> int:
            return len(self._errors)

        def get_error(self, index: int) -> str:
            return self._errors[index]

        def parse(self, model: bytes, path: str | None = None) -> bool:
            import onnx

            try:
                proto = onnx.load_model_from_string(bytes(model))
            except Exception as exc:
                self._errors.append(f"cannot parse: {exc}")
                return False
            initializers = {init.name for init in proto.graph.initializer}

            def tensor(value: Any) -> ITensor:
                kind = value.type.tensor_type
                dims = tuple(d.dim_value if d.HasField("dim_value") and d.dim_value > 0 else -1
                             for d in kind.shape.dim)
                return ITensor(value.name, dims, _FROM_ONNX[kind.elem_type])

            self.network._inputs = [tensor(v) for v in proto.graph.input if v.name not in initializers]
            self.network._outputs = [tensor(v) for v in proto.graph.output]
            self.network.onnx = bytes(model)
            return True

    class ICudaEngine:
        def __init__(self, header: dict[str, Any], onnx_bytes: bytes) -> None:
            import onnxruntime

            self.header = header
            options = onnxruntime.SessionOptions()
            options.intra_op_num_threads = 1
            self.session = onnxruntime.InferenceSession(onnx_bytes, sess_options=options,
                                                        providers=["CPUExecutionProvider"])
            self._io = [(n, tuple(s), DataType[d], TensorIOMode.INPUT) for n, s, d in header["inputs"]]
            self._io += [(n, tuple(s), DataType[d], TensorIOMode.OUTPUT) for n, s, d in header["outputs"]]
            self.profile = {k: tuple(tuple(s) for s in v) for k, v in header["profile"].items()}

        @property
        def num_io_tensors(self) -> int:
            return len(self._io)

        @property
        def num_optimization_profiles(self) -> int:
            return 1 if self.profile else 0

        def _find(self, name: str) -> tuple[str, tuple[int, ...], DataType, TensorIOMode]:
            for entry in self._io:
                if entry[0] == name:
                    return entry
            raise KeyError(name)

        def get_tensor_name(self, index: int) -> str:
            return self._io[index][0]

        def get_tensor_mode(self, name: str) -> TensorIOMode:
            return self._find(name)[3] if any(e[0] == name for e in self._io) else TensorIOMode.NONE

        def get_tensor_shape(self, name: str) -> tuple[int, ...]:
            return self._find(name)[1]

        def get_tensor_dtype(self, name: str) -> DataType:
            return self._find(name)[2]

        def get_tensor_profile_shape(self, name: str, profile_index: int) -> list[tuple[int, ...]]:
            if name not in self.profile or profile_index != 0:
                raise RuntimeError(f"no profile {profile_index} for {name!r}")
            return list(self.profile[name])

        def create_execution_context(self) -> IExecutionContext:
            return IExecutionContext(self)

    class IExecutionContext:
        def __init__(self, engine: ICudaEngine) -> None:
            self.engine = engine
            self._shapes: dict[str, tuple[int, ...]] = {}
            self._addresses: dict[str, int] = {}
            self._out_shapes: dict[tuple[Any, ...], dict[str, tuple[int, ...]]] = {}

        def set_input_shape(self, name: str, shape: Any) -> bool:
            _, declared, _, mode = self.engine._find(name)
            shape = tuple(int(d) for d in shape)
            if mode != TensorIOMode.INPUT or len(shape) != len(declared):
                log_error(f"set_input_shape: {name!r} is not an input of rank {len(shape)}")
                return False
            if any(d >= 0 and d != s for d, s in zip(declared, shape, strict=True)):
                log_error(f"set_input_shape: {shape} does not match the fixed shape {declared} of {name!r}")
                return False
            if name in self.engine.profile:
                low, _, high = self.engine.profile[name]
                if any(s < lo or s > hi for s, lo, hi in zip(shape, low, high, strict=True)):
                    log_error(f"set_input_shape: {shape} is outside the profile {low}..{high} of {name!r}")
                    return False
            self._shapes[name] = shape
            return True

        def _input_shapes(self) -> dict[str, tuple[int, ...]] | None:
            shapes = {}
            for name, declared, _, mode in self.engine._io:
                if mode != TensorIOMode.INPUT:
                    continue
                if -1 in declared and name not in self._shapes:
                    return None
                shapes[name] = self._shapes.get(name, declared)
            return shapes

        def get_tensor_shape(self, name: str) -> tuple[int, ...]:
            _, declared, _, mode = self.engine._find(name)
            if mode == TensorIOMode.INPUT:
                return self._shapes.get(name, declared)
            shapes = self._input_shapes()
            if shapes is None:
                return declared  # still -1 where it depends on an input shape not set yet
            return self._output_shapes(shapes)[name]

        def _output_shapes(self, shapes: dict[str, tuple[int, ...]]) -> dict[str, tuple[int, ...]]:
            key = tuple(sorted(shapes.items()))
            if key not in self._out_shapes:
                feeds = {name: np.zeros(shape, nptype(self.engine._find(name)[2])) for name, shape in shapes.items()}
                names = [o.name for o in self.engine.session.get_outputs()]
                results = self.engine.session.run(names, feeds)
                self._out_shapes[key] = {n: tuple(r.shape) for n, r in zip(names, results, strict=True)}
            return self._out_shapes[key]

        def set_tensor_address(self, name: str, memory: int) -> bool:
            try:
                _, _, dtype, _ = self.engine._find(name)
            except KeyError:
                log_error(f"set_tensor_address: no tensor {name!r}")
                return False
            if not memory or memory % np.dtype(nptype(dtype)).itemsize:
                log_error(f"set_tensor_address: address {memory:#x} of {name!r} is null or misaligned for {dtype}")
                return False
            self._addresses[name] = int(memory)
            return True

        def get_tensor_address(self, name: str) -> int:
            return self._addresses.get(name, 0)

        def execute_async_v3(self, stream_handle: int) -> bool:
            if state.fail_executions:
                state.fail_executions -= 1
                log_error("execute_async_v3: out of memory (injected)")
                return False
            shapes = self._input_shapes()
            if shapes is None:
                log_error("execute_async_v3: a dynamic input has no shape (set_input_shape)")
                return False
            missing = [name for name, *_ in self.engine._io if name not in self._addresses]
            if missing:
                log_error(f"execute_async_v3: no address for {missing}")
                return False
            feeds = {}
            for name, shape in shapes.items():
                dtype = np.dtype(nptype(self.engine._find(name)[2]))
                feeds[name] = _view(self._addresses[name], shape, dtype).copy()
            names = [o.name for o in self.engine.session.get_outputs()]
            for name, result in zip(names, self.engine.session.run(names, feeds), strict=True):
                dtype = np.dtype(nptype(self.engine._find(name)[2]))
                _view(self._addresses[name], result.shape, dtype)[...] = result
            return True

    class Runtime:
        def __init__(self, logger: Logger) -> None:
            keep(logger)
            self.engine_host_code_allowed = False

        def deserialize_cuda_engine(self, plan: bytes) -> ICudaEngine | None:
            plan = bytes(plan)
            if not plan.startswith(_MAGIC):
                log_error("deserialize_cuda_engine: not a plan")
                return None
            size = int.from_bytes(plan[8:16], "little")
            header = json.loads(plan[16:16 + size])
            if header["version"] != version:
                log_error(f"deserialize_cuda_engine: plan from TensorRT {header['version']}, this is {version}")
                return None
            return ICudaEngine(header, plan[16 + size:])

    for cls in (Logger, IProgressMonitor, ITensor, INetworkDefinition, IOptimizationProfile, ITimingCache,
                IBuilderConfig, Builder, OnnxParser, ICudaEngine, IExecutionContext, Runtime):
        setattr(trt, cls.__name__, cls)
    return trt


def _view(address: int, shape: tuple[int, ...], dtype: np.dtype) -> np.ndarray:
    """The host memory at ``address`` as an array (what the engine reads and writes)."""
    count = int(np.prod(shape)) if shape else 1
    buffer = (ctypes.c_byte * (count * dtype.itemsize)).from_address(address)
    return np.frombuffer(buffer, dtype=dtype, count=count).reshape(shape)
