"""Choosing the backend for one model, and saying why.

:func:`choose` is a pure function over an :class:`~realtime.engines.probe.Availability`
record: TensorRT with a matching engine → ONNX Runtime with the best provider
(CUDA, DirectML, CoreML) → torch on CUDA (ONNX converted with onnx2torch) →
ONNX Runtime CPU. :func:`open_engine` probes the
machine, chooses, logs the choice with the reasons the better options were
skipped, opens the engine and checks that ONNX Runtime really loaded the
provider it was asked for (E19 instead of silently running at CPU speed). An
accelerated engine comes wrapped in a :class:`~realtime.engines.fallback.FallbackEngine`
that moves to a lesser backend when the GPU runs out of memory mid-run (E20).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from realtime.engines.base import Engine
from realtime.engines.fallback import FallbackEngine, fallback_chain
from realtime.engines.ort import CPU_PROVIDER, CUDA_PROVIDER, OrtEngine
from realtime.engines.probe import Availability, probe_availability
from realtime.engines.sidecar import EngineSidecar, mismatches, read_sidecar
from realtime.errors import BackendError, ModelError, UsageError, warning_text
from realtime.hashing import file_sha256

log = logging.getLogger(__name__)

BACKENDS = ("auto", "tensorrt", "onnxruntime", "torch", "triton")
DEVICES = ("auto", "cuda", "cpu", "coreml")
COREML_PROVIDER = "CoreMLExecutionProvider"
# Better first; each entry names the platform where it can exist at all (None: any). CoreML is not here:
# it is opt-in (--device coreml) until measured, since a dynamic-shape model such as SCRFD may be split
# between CoreML and the CPU and run slower than on the CPU alone.
_ACCELERATED_PROVIDERS = ((CUDA_PROVIDER, None), ("DmlExecutionProvider", "win32"))
_BUILD_HINT = "run tools/build_engines.py"
# PyPI's torch for Windows is built for the CPU only; the CUDA builds come from PyTorch's own index.
TORCH_CUDA_WINDOWS = ("pip install torch torchvision --index-url https://download.pytorch.org/whl/cu128 "
                      "(PyPI's torch for Windows has no CUDA)")


@dataclass(frozen=True)
class Choice:
    """What was taken for one model, and why the better options were not."""

    model: str
    backend: str  # "tensorrt", "onnxruntime" or "torch"
    providers: tuple[str, ...] = ()  # ONNX Runtime providers, best first
    engine_path: Path | None = None
    sidecar: EngineSidecar | None = None
    skipped: tuple[str, ...] = ()
    warnings: tuple[str, ...] = ()
    torch_device: str | None = None  # "cuda" or "cpu" for the torch backend

    @property
    def provider(self) -> str:
        """The provider that will run the model."""
        if self.backend == "torch":
            return f"torch {self.torch_device}"
        return "TensorRT" if self.backend == "tensorrt" else self.providers[0]

    def summary(self) -> str:
        """One log line: model, what was taken, what was skipped and why."""
        taken = f"tensorrt {self.engine_path.name}" if self.engine_path else (
            self.provider if self.backend == "torch" else f"onnxruntime {self.provider}")
        why = f" (skipped: {'; '.join(self.skipped)})" if self.skipped else ""
        return f"{self.model}: {taken}{why}"


def triton_backend(url: str) -> str:
    """The backend value that sends a model's calls to the Triton server at ``url`` (see open_model)."""
    return f"triton={url}"


def check_options(backend: str, device: str) -> None:
    """E01 for an unknown --backend/--device or a combination that cannot work."""
    if backend == "triton" or backend.startswith("triton="):
        raise UsageError("E01", f"--backend {backend} for a local model",
                         remedy="open the model with open_model(), which sends it to the server")
    if backend not in BACKENDS:
        raise UsageError("E01", f"--backend {backend}", remedy=f"use one of: {', '.join(BACKENDS)}")
    if device not in DEVICES:
        raise UsageError("E01", f"--device {device}", remedy=f"use one of: {', '.join(DEVICES)}")
    if backend == "tensorrt" and device in ("cpu", "coreml"):
        raise UsageError("E01", f"--backend tensorrt with --device {device}",
                         remedy="TensorRT runs only on a CUDA GPU: use --device cuda or --backend onnxruntime")
    if backend == "torch" and device == "coreml":
        raise UsageError("E01", "--backend torch with --device coreml",
                         remedy="CoreML is an ONNX Runtime provider: use --backend onnxruntime --device coreml")


def choose(*, model_name: str, model_sha256: str | None, available: Availability, backend: str = "auto",
           device: str = "auto", engine: Path | None = None) -> Choice:
    """Pick the backend for one model from what ``available`` says; raise when a request cannot be met."""
    check_options(backend, device)
    warnings = []
    if len(available.ort_distributions) > 1:
        warnings.append(warning_text("E18", ", ".join(available.ort_distributions)))
    skipped: list[str] = []
    if backend == "torch":
        return _torch_choice(model_name, available, device, skipped, warnings)
    if engine is not None or (backend != "onnxruntime" and device in ("auto", "cuda")):
        found = _tensorrt_choice(model_name, model_sha256, available, engine=engine,
                                 required=backend == "tensorrt" or engine is not None, skipped=skipped)
        if found is not None:
            path, sidecar = found
            return Choice(model=model_name, backend="tensorrt", engine_path=path, sidecar=sidecar,
                          skipped=tuple(skipped), warnings=tuple(warnings))
    elif backend == "auto":
        skipped.append(f"tensorrt: --device {device}")
    providers = _ort_choice(available, device, skipped)
    if backend == "auto" and device != "cpu" and providers == (CPU_PROVIDER,):
        if available.torch_cuda and available.torch_error is None:
            return Choice(model=model_name, backend="torch", torch_device="cuda", skipped=tuple(skipped),
                          warnings=tuple(warnings))
        skipped.append(f"torch cuda: {available.torch_error or f'torch {available.torch_version} sees no CUDA device'}")
    return Choice(model=model_name, backend="onnxruntime", providers=providers, skipped=tuple(skipped),
                  warnings=tuple(warnings))


def _torch_choice(model_name: str, available: Availability, device: str, skipped: list[str],
                  warnings: list[str]) -> Choice:
    """--backend torch: CUDA when asked for (E09 when missing) or when ``auto`` finds it, else the CPU."""
    if available.torch_error is not None:
        raise BackendError("E09", f"--backend torch: {available.torch_error}")
    if device == "cuda" and not available.torch_cuda:
        raise BackendError("E09", f"--backend torch --device cuda: torch {available.torch_version} sees no CUDA device")
    if device == "auto" and not available.torch_cuda:
        skipped.append(f"torch cuda: torch {available.torch_version} sees no CUDA device")
    where = "cuda" if device != "cpu" and available.torch_cuda else "cpu"
    return Choice(model=model_name, backend="torch", torch_device=where, skipped=tuple(skipped),
                  warnings=tuple(warnings))


def _tensorrt_unusable(available: Availability) -> str | None:
    """Why TensorRT cannot run here at all, or None."""
    if available.tensorrt_version is None:
        return f"tensorrt: {available.tensorrt_error or 'not installed'}"
    if available.gpu is None:
        return f"tensorrt: no CUDA GPU ({available.gpu_error or 'none found'})"
    if not available.torch_cuda:
        hint = f" — {TORCH_CUDA_WINDOWS}" if available.platform == "win32" else ""
        return f"tensorrt: torch with CUDA is not installed (the TensorRT runtime keeps its buffers in torch){hint}"
    return None


def _tensorrt_choice(model_name: str, model_sha256: str | None, available: Availability, *,
                     engine: Path | None, required: bool, skipped: list[str]
                     ) -> tuple[Path, EngineSidecar] | None:
    """A fitting engine, or None with reasons appended to ``skipped`` (raises when ``required``)."""
    unusable = _tensorrt_unusable(available)
    if unusable is not None:
        if required:
            raise BackendError("E09", unusable)
        skipped.append(unusable)
        return None
    if engine is not None:
        sidecar = read_sidecar(engine)
        reasons = mismatches(sidecar, model_sha256=model_sha256, gpu=available.gpu,
                             tensorrt_version=available.tensorrt_version)
        if reasons:
            raise ModelError("E08", f"{engine.name}: {'; '.join(reasons)}")
        return engine, sidecar
    fits, misfits = [], []
    for path, sidecar in available.engines:
        if sidecar.model_sha256 != model_sha256 and sidecar.model_name != model_name:
            continue
        reasons = mismatches(sidecar, model_sha256=model_sha256, gpu=available.gpu,
                             tensorrt_version=available.tensorrt_version)
        if model_sha256 is None:
            reasons.append("the model's checksum is unknown")
        if reasons:
            misfits.append(f"{path.name} does not fit: {', '.join(reasons)}")
        else:
            fits.append((path, sidecar))
    if fits:
        return min(fits, key=_engine_preference)
    if misfits:
        detail = "; ".join(misfits[:3]) + f" — {_BUILD_HINT}"
    else:
        detail = f"no engine for this model built for this GPU — {_BUILD_HINT}"
    if required:
        raise ModelError("E08", f"{model_name}: {detail}")
    skipped.append(f"tensorrt: {detail}")
    return None


def _engine_preference(item: tuple[Path, EngineSidecar]) -> tuple[bool, bool, bool, float]:
    """Exact builds before compatible ones, FP16 before FP32, newest first."""
    _, sidecar = item
    built = sidecar.built_at or ""
    return (sidecar.hardware_compatibility != "none", sidecar.version_compatible,
            sidecar.precision != "fp16", -_sortable(built))


def _sortable(timestamp: str) -> float:
    try:
        return datetime.fromisoformat(timestamp).timestamp()
    except ValueError:
        return 0.0


def _ort_choice(available: Availability, device: str, skipped: list[str]) -> tuple[str, ...]:
    """ONNX Runtime providers for ``device``, best first, CPU last."""
    if not available.ort_providers:
        raise BackendError("E23", f"onnxruntime ({available.ort_error or 'not installed'}): "
                           "pip install .[cpu] (or .[gpu] on an NVIDIA machine)")
    if device == "cpu":
        return (CPU_PROVIDER,)
    if device == "coreml":
        if COREML_PROVIDER not in available.ort_providers:
            raise BackendError("E23", f"--device coreml: {COREML_PROVIDER} is not in this onnxruntime build "
                               "(the macOS onnxruntime wheel has it)")
        return (COREML_PROVIDER, CPU_PROVIDER)
    if device == "cuda":
        if CUDA_PROVIDER not in available.ort_providers:
            build = ", ".join(available.ort_distributions) or "onnxruntime"
            raise BackendError("E09", f"{CUDA_PROVIDER} is not available in {build}")
        return (CUDA_PROVIDER, CPU_PROVIDER)
    for provider, only_on in _ACCELERATED_PROVIDERS:
        if provider in available.ort_providers:
            return (provider, CPU_PROVIDER)
        if only_on is None or only_on == available.platform:
            skipped.append(f"{provider}: not available in this onnxruntime build")
    if COREML_PROVIDER in available.ort_providers:
        skipped.append(f"{COREML_PROVIDER}: not taken by auto until measured faster here — try --device coreml")
    return (CPU_PROVIDER,)


def auto_provider(available: Availability) -> str:
    """The ONNX Runtime provider ``--device auto`` runs models on here (TensorRT aside)."""
    if not available.ort_providers:
        return CPU_PROVIDER
    return _ort_choice(available, "auto", [])[0]


def _needs_checksum(available: Availability, engine: Path | None) -> bool:
    return engine is not None or (_tensorrt_unusable(available) is None and bool(available.engines))


def select_and_open(model: Path, *, backend: str = "auto", device: str = "auto", threads: int = 1,
                    engines_dir: Path | None = None, engine: Path | None = None,
                    available: Availability | None = None, model_name: str | None = None,
                    cuda_graph: bool = False, ort_model: Callable[[], Path | bytes] | None = None,
                    precision: str = "fp32") -> tuple[Engine, Choice]:
    """Choose a backend for ``model``, log why, open it; returns the engine and the choice.

    ``ort_model`` makes the model as ONNX Runtime (and torch) should run it (e.g. a float16 graph upcast to
    float32), for the first engine and for the fallbacks; TensorRT always takes ``model`` as it is.
    ``precision`` (fp32/fp16) and ``cuda_graph`` apply to the torch backend on CUDA; ``cuda_graph`` to
    TensorRT too.
    """
    check_options(backend, device)
    if not model.is_file():
        raise ModelError("E06", str(model))
    name = model_name or model.name.removesuffix(".onnx")
    available = available or probe_availability(engines_dir)
    sha = file_sha256(model) if _needs_checksum(available, engine) else None
    choice = choose(model_name=name, model_sha256=sha, available=available, backend=backend,
                    device=device, engine=engine)
    for warning in choice.warnings:
        log.warning("%s", warning)
    log.info("%s", choice.summary())
    opened: Engine
    if choice.backend == "tensorrt":
        from realtime.engines.trt import TrtEngine

        assert choice.engine_path is not None and choice.sidecar is not None
        opened = TrtEngine(choice.engine_path, version_compatible=choice.sidecar.version_compatible,
                           cuda_graph=cuda_graph)
    elif choice.backend == "torch":
        from realtime.engines.torch_engine import TorchEngine

        on_cuda = choice.torch_device == "cuda"
        if not on_cuda and (precision != "fp32" or cuda_graph):
            log.info("%s: fp16 and CUDA graphs apply on CUDA only — running fp32 on the CPU", name)
        opened = TorchEngine(ort_model() if ort_model else model, device=choice.torch_device or "cpu",
                             precision=precision if on_cuda else "fp32", cuda_graph=cuda_graph and on_cuda,
                             threads=threads)
    else:
        opened = OrtEngine(ort_model() if ort_model else model, providers=list(choice.providers),
                           intra_threads=threads)
        _check_loaded(opened, name, device=device)
    # Out of GPU memory mid-run: reopen on a lesser backend instead of failing every frame (E20).
    chain = [] if opened.backend == "torch" and choice.torch_device == "cpu" else fallback_chain(
        ort_model or model, backend=opened.backend, provider=opened.provider,
        ort_providers=available.ort_providers, threads=threads)
    if chain:
        opened = FallbackEngine(opened, fallbacks=chain, name=name)
    return opened, choice


def _check_loaded(engine: OrtEngine, name: str, *, device: str) -> None:
    """E19 when ONNX Runtime quietly dropped an accelerated provider; raised if it was asked for."""
    lost = [p for p in engine.lost_providers() if p != CPU_PROVIDER]
    if not lost:
        return
    detail = f"{name}: {', '.join(lost)} failed to load, running on {engine.provider}"
    if device == "cuda":
        raise BackendError("E19", detail)
    log.warning("%s", warning_text("E19", detail))


def open_engine(model: Path, *, backend: str = "auto", device: str = "auto", threads: int = 1,
                engines_dir: Path | None = None, engine: Path | None = None,
                available: Availability | None = None, model_name: str | None = None,
                cuda_graph: bool = False, ort_model: Callable[[], Path | bytes] | None = None,
                precision: str = "fp32") -> Engine:
    """Open ``model`` on the best backend allowed by ``backend``/``device`` (see :func:`choose`).

    ``engine`` names a TensorRT engine file explicitly (E08 when it does not
    fit); ``available`` lets a caller probe the machine once for many models.
    """
    opened, _ = select_and_open(model, backend=backend, device=device, threads=threads,
                                engines_dir=engines_dir, engine=engine, available=available,
                                model_name=model_name, cuda_graph=cuda_graph, ort_model=ort_model,
                                precision=precision)
    return opened
