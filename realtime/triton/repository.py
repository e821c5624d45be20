"""Writing a Triton model repository from the fetched, checked models of the manifest.

One folder per model: ``config.pbtxt`` and ``1/model.onnx`` (backend
``onnxruntime``), ``1/model.plan`` (``tensorrt_plan``, where an engine built by
tools/build_engines.py for this very file exists) or ``1/model.onnx`` plus
``1/model.py`` (backend ``python``: what ``swapcam serve`` runs, since the
tritonserver that nvidia-pytriton bundles has only the Python backend). Input
and output names, dims and dtypes are read from the ONNX graph; the config
records the sha256 of the manifest file (parameter ``sha256``) so a client can
tell that the server serves the very model it expects.
"""

from __future__ import annotations

import logging
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from realtime.errors import ModelError, UsageError
from realtime.hashing import file_sha256

log = logging.getLogger(__name__)

FLAVOURS = ("onnxruntime", "python")
KINDS = ("auto", "gpu", "cpu")
MAX_BATCH = 8
# Long enough for a second stream's request to join a batch, short against a 33 ms frame.
QUEUE_DELAY_US = 500
PYTHON_MODEL = Path(__file__).with_name("python_model.py")

_ONNX_TO_TRITON = {1: "TYPE_FP32", 10: "TYPE_FP16", 11: "TYPE_FP64", 7: "TYPE_INT64", 6: "TYPE_INT32",
                   3: "TYPE_INT8", 2: "TYPE_UINT8", 9: "TYPE_BOOL", 16: "TYPE_BF16"}


@dataclass(frozen=True)
class TensorIO:
    """One graph input or output as Triton describes it: name, dims (-1 = dynamic), Triton dtype."""

    name: str
    dims: tuple[int, ...]
    data_type: str  # e.g. "TYPE_FP32"


@dataclass(frozen=True)
class ModelIO:
    """A model's inputs and outputs as the ONNX graph declares them."""

    inputs: tuple[TensorIO, ...]
    outputs: tuple[TensorIO, ...]

    def batchable(self) -> bool:
        """True when every tensor has a dynamic leading dimension (Triton's backends then stack requests into
        one batch)."""
        return all(t.dims and t.dims[0] == -1 for t in (*self.inputs, *self.outputs))


@dataclass(frozen=True)
class RepositoryOptions:
    """How ``write_repository`` lays the models out."""

    flavour: str = "onnxruntime"  # or "python" (what `swapcam serve` runs)
    instances: int = 1
    kind: str = "auto"  # instance group kind: auto, gpu, cpu
    batching: bool = True
    threads: int = 1  # ONNX Runtime threads per instance (python flavour)


def onnx_io(model: Any) -> ModelIO:
    """Inputs (initializers excluded) and outputs of an ``onnx.ModelProto``."""
    initializers = {init.name for init in model.graph.initializer}

    def tensor(value: Any) -> TensorIO:
        kind = value.type.tensor_type
        dims = tuple(d.dim_value if d.HasField("dim_value") else -1 for d in kind.shape.dim)
        data_type = _ONNX_TO_TRITON.get(kind.elem_type)
        if data_type is None:
            raise ModelError("E07", f"{value.name}: ONNX element type {kind.elem_type} has no Triton equivalent")
        return TensorIO(name=value.name, dims=dims, data_type=data_type)

    return ModelIO(inputs=tuple(tensor(v) for v in model.graph.input if v.name not in initializers),
                   outputs=tuple(tensor(v) for v in model.graph.output))


def model_config(name: str, io: ModelIO, *, sha256: str, options: RepositoryOptions,
                 platform: str = "onnxruntime") -> Any:
    """The ``ModelConfig`` protobuf message of one model.

    ``platform``: "onnxruntime" or "tensorrt_plan" (the python flavour overrides both). With batching, the
    leading dimension becomes Triton's batch dimension (max_batch_size > 0, dynamic batching on). A TensorRT
    engine is left unbatched: its optimisation profile, not the ONNX, decides which batch sizes it takes. The
    python flavour is never batched: its model runs grouped requests one after another, so the batcher's queue
    delay would only add to each call (0.74 ms mean, measured), and several instances run calls in parallel.
    """
    from tritonclient.grpc import model_config_pb2 as pb

    python = options.flavour == "python"
    batch = options.batching and platform != "tensorrt_plan" and not python and io.batchable()
    config = pb.ModelConfig(name=name, max_batch_size=MAX_BATCH if batch else 0)
    if python:
        config.backend = "python"
    elif platform == "tensorrt_plan":
        config.platform = "tensorrt_plan"
    else:
        config.backend = "onnxruntime"
    for tensors, field in ((io.inputs, config.input), (io.outputs, config.output)):
        for t in tensors:
            field.add(name=t.name, data_type=pb.DataType.Value(t.data_type), dims=list(t.dims[1:] if batch else t.dims))
    if batch:
        config.dynamic_batching.max_queue_delay_microseconds = QUEUE_DELAY_US
    group = config.instance_group.add(count=options.instances)
    group.kind = {"gpu": pb.ModelInstanceGroup.KIND_GPU, "cpu": pb.ModelInstanceGroup.KIND_CPU,
                  "auto": pb.ModelInstanceGroup.KIND_AUTO}[options.kind]
    config.parameters["sha256"].string_value = sha256
    if python:
        config.parameters["threads"].string_value = str(options.threads)
    return config


def config_text(config: Any) -> str:
    """The config as ``config.pbtxt`` text."""
    from google.protobuf import text_format

    return str(text_format.MessageToString(config))


def parse_config(text: str) -> Any:
    """A ``config.pbtxt`` text back into a ``ModelConfig`` (raises on a malformed file)."""
    from google.protobuf import text_format
    from tritonclient.grpc import model_config_pb2 as pb

    return text_format.Parse(text, pb.ModelConfig())


@dataclass(frozen=True)
class SourceModel:
    """A model to put into the repository: its manifest name, checked file and sha256 of that file."""

    name: str
    path: Path
    sha256: str
    engine: Path | None = None  # a TensorRT engine built for exactly this file


def check_options(options: RepositoryOptions) -> None:
    """E01 for values the repository cannot take."""
    if options.flavour not in FLAVOURS:
        raise UsageError("E01", f"repository flavour {options.flavour!r}", remedy=f"use {', '.join(FLAVOURS)}")
    if options.kind not in KINDS:
        raise UsageError("E01", f"--kind {options.kind}", remedy=f"use one of: {', '.join(KINDS)}")
    if not 1 <= options.instances <= 16:
        raise UsageError("E01", f"--instances {options.instances}", remedy="use 1 to 16 instances per model")


def write_model(root: Path, model: SourceModel, options: RepositoryOptions, *,
                onnx_bytes: bytes | None = None) -> Path:
    """Write one model's folder under ``root``; returns it. ``onnx_bytes`` replaces the file's content
    (a float32 copy of a float16 graph, for ONNX Runtime in the python flavour)."""
    import onnx

    from realtime.engines.onnx_graph import read_onnx

    io = onnx_io(onnx.load_from_string(onnx_bytes) if onnx_bytes is not None else read_onnx(model.path))
    folder = root / model.name
    version = folder / "1"
    version.mkdir(parents=True, exist_ok=True)
    platform = "onnxruntime"
    if model.engine is not None and options.flavour == "onnxruntime":
        platform = "tensorrt_plan"
        _copy_checked(model.engine, version / "model.plan", file_sha256(model.engine))
    elif onnx_bytes is not None:
        (version / "model.onnx").write_bytes(onnx_bytes)
    else:
        _copy_checked(model.path, version / "model.onnx", model.sha256)
    if options.flavour == "python":
        shutil.copyfile(PYTHON_MODEL, version / "model.py")
    config = model_config(model.name, io, sha256=model.sha256, options=options, platform=platform)
    (folder / "config.pbtxt").write_text(config_text(config), encoding="utf-8")
    log.info("%s: %s, max_batch_size %d, %d instance(s)", model.name,
             "python (ONNX Runtime)" if options.flavour == "python" else platform, config.max_batch_size,
             options.instances)
    return folder


def _copy_checked(source: Path, target: Path, sha256: str) -> None:
    """Copy ``source`` and check the copy against ``sha256`` (E07 when it differs)."""
    shutil.copyfile(source, target)
    actual = file_sha256(target)
    if actual != sha256:
        target.unlink()
        raise ModelError("E07", f"{target}: copy of {source.name} has sha256 {actual[:12]}… ≠ {sha256[:12]}…")


def manifest_models(root: Path | None = None, *, names: tuple[str, ...] = (),
                    engines_dir: Path | None = None) -> list[SourceModel]:
    """The fetched manifest models that pass their sha256 check (all present ones, or exactly ``names``).

    A model named in ``names`` that is missing or corrupt raises (E06/E07); without ``names``, absent neural
    models are skipped. The TensorRT engine of a model is the newest built for its exact sha256.
    """
    from realtime import models
    from realtime.engines.sidecar import scan_engines

    manifest = models.load_manifest()
    wanted = names or (*manifest.get("models", {}), *manifest.get("neural", {}))
    engines = scan_engines(engines_dir)[0] if engines_dir is not None else []
    found = []
    for name in wanted:
        try:
            path = models.model_path(name, root=root)
        except ModelError as exc:
            if names or exc.code != "E06":
                raise
            log.info("%s: not fetched, left out", name)
            continue
        except ValueError as exc:
            raise UsageError("E01", str(exc), remedy="name models of `swapcam models list`") from exc
        sha = models.cached_sha256(path)
        matching = sorted((s.built_at, p) for p, s in engines if s.model_sha256 == sha)
        found.append(SourceModel(name=name, path=path, sha256=sha, engine=matching[-1][1] if matching else None))
    return found


def write_repository(target: Path, sources: list[SourceModel], options: RepositoryOptions, *,
                     upcast: bool = False) -> list[Path]:
    """Write the repository for ``sources`` into ``target`` (created; existing model folders replaced).

    ``upcast``: float16 graphs are written as float32 copies (ONNX Runtime runs the float16 inswapper badly:
    microsoft/onnxruntime#19437); the recorded sha256 stays that of the manifest file.
    """
    from realtime.engines.onnx_graph import has_float16_weights, read_onnx, upcast_to_float32

    check_options(options)
    if not sources:
        raise ModelError("E06", "no fetched model to serve")
    target.mkdir(parents=True, exist_ok=True)
    folders = []
    for model in sources:
        shutil.rmtree(target / model.name, ignore_errors=True)
        data = None
        if upcast and model.engine is None:
            graph = read_onnx(model.path)
            data = upcast_to_float32(graph) if has_float16_weights(graph) else None
        folders.append(write_model(target, model, options, onnx_bytes=data))
    return folders
