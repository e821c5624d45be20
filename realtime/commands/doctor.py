"""``swapcam doctor``: is this machine ready, and if not, what to do.

One line per check: PASS, WARN (works, but slower or with something to fix)
or FAIL (something swapcam needs is broken). Exit status 0 when nothing
failed, 1 when any check failed.
"""

from __future__ import annotations

import argparse
import ctypes
import importlib.util
import json
import os
import platform
import sys
import warnings
from dataclasses import asdict
from pathlib import Path
from typing import Any

from realtime.commands.checks import SHM_MIN_MIB, STATUSES, Check, driver_supports
from realtime.commands.models import add_models_option
from realtime.container import container_kind, usable_cpus
from realtime.engines.ort import CPU_PROVIDER, preload_cuda_libraries
from realtime.engines.probe import (
    CUDA_PROVIDER,
    Availability,
    cuda_driver_version,
    default_engines_dir,
    probe_availability,
)
from realtime.engines.selection import COREML_PROVIDER, TORCH_CUDA_WINDOWS, auto_provider
from realtime.engines.sidecar import mismatches
from realtime.errors import SwapcamError
from realtime.priority import FRAME_RT_PRIORITY, frame_threads_can_be_raised

EXIT_OK = 0
EXIT_FAILED = 1


def add_parser(sub: Any) -> None:
    """Register ``doctor``."""
    parser = sub.add_parser(
        "doctor", help="check Python, ONNX Runtime, CUDA, GPU, TensorRT, models, engines, virtual cameras",
        description="Check what swapcam needs on this machine. Each line is PASS, WARN or FAIL; "
                    "exit status 0 when nothing failed, 1 when any check failed.")
    parser.add_argument("--json", action="store_true", help="print the checks as JSON")
    add_models_option(parser)
    parser.set_defaults(handler=handle)


def handle(args: argparse.Namespace) -> int:
    """Run every check, print the report, return 0 (all pass/warn) or 1 (any fail)."""
    checks = run_checks(models_root=args.models)
    if args.json:
        print(json.dumps([asdict(c) for c in checks], indent=2))
    else:
        for check in checks:
            print(check.line())
        counts = {s: sum(c.status == s for c in checks) for s in STATUSES}
        print(f"{counts['pass']} pass, {counts['warn']} warn, {counts['fail']} fail")
    return exit_status(checks)


def exit_status(checks: list[Check]) -> int:
    """1 if any check failed, else 0."""
    return EXIT_FAILED if any(c.status == "fail" for c in checks) else EXIT_OK


def run_checks(*, models_root: Path | None = None) -> list[Check]:
    """Every check, in report order; ``models_root``: the ``--models`` folder (None: the default one)."""
    available = probe_availability(probe_gpu=True)
    checks = [check_python()]
    for group in (check_onnxruntime(available), check_cuda(available), check_gpu(available),
                  check_tensorrt(available), check_torch(available), check_models(models_root),
                  check_engines(available, models_root), check_virtual_camera(), *environment_checks()):
        checks.extend(group)
    return checks


def environment_checks() -> list[list[Check]]:
    """Inside a container: its own checks (shm, devices, GPU, threads, each with its fix); else shm and threads."""
    from realtime.commands.doctor_container import run_container_checks

    inside = run_container_checks(libcuda=cuda_driver_version())
    return [inside, check_frame_priority()] if inside else [check_shm(), check_threads(), check_frame_priority()]


# ------------------------------------------------------------------ Python, ONNX Runtime


def check_python() -> Check:
    """Python version and OS."""
    version = platform.python_version()
    return Check("pass", "python", f"{platform.python_implementation()} {version} on "
                 f"{platform.platform(terse=True)} {platform.machine()}")


def check_onnxruntime(available: Availability) -> list[Check]:
    """Which onnxruntime package(s) are installed, their providers, and whether CUDA really loads."""
    dists = available.ort_distributions
    if not dists or not available.ort_providers:
        why = available.ort_error or "not installed"
        return [Check("fail", "onnxruntime", f"{why} — pip install .[cpu] (or .[gpu] on an NVIDIA machine)")]
    if len(dists) > 1:
        return [Check("fail", "onnxruntime", SwapcamError("E18", ", ".join(dists)).message())]
    checks = [Check("pass", "onnxruntime", f"{dists[0]}; providers: {', '.join(available.ort_providers)}")]
    if CUDA_PROVIDER in available.ort_providers:
        error = cuda_provider_error()
        checks.append(Check("fail", "ort cuda", SwapcamError("E19", error).message()) if error
                      else Check("pass", "ort cuda", "CUDAExecutionProvider loads and runs a test model"))
    elif available.gpu is not None:
        checks.append(Check("warn", "ort cuda", "this onnxruntime has no CUDA provider although there is a GPU — "
                            "pip uninstall onnxruntime && pip install .[gpu]"))
    return checks


def cuda_provider_error() -> str | None:
    """None if ONNX Runtime really runs a session on CUDA, else why not (the missing library if it can tell)."""
    import onnxruntime
    from onnx import TensorProto, helper

    graph = helper.make_graph([helper.make_node("Relu", ["x"], ["y"])], "probe",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    preload_cuda_libraries(onnxruntime, [CUDA_PROVIDER])
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # "provider not in available names": we report it
            session = onnxruntime.InferenceSession(model.SerializeToString(),
                                                   providers=[CUDA_PROVIDER, "CPUExecutionProvider"])
    except Exception as exc:  # a broken provider raises from the native side
        return f"session creation failed: {exc}"
    if CUDA_PROVIDER in session.get_providers():
        return None
    library = Path(onnxruntime.__file__).parent / "capi" / (
        "onnxruntime_providers_cuda.dll" if sys.platform == "win32" else "libonnxruntime_providers_cuda.so")
    try:
        ctypes.CDLL(str(library))
    except OSError as exc:
        return f"sessions fall back to CPU; loading {library.name} fails: {exc}"
    return "sessions fall back to CPU (the provider library loads; check CUDA/cuDNN versions)"


# ------------------------------------------------------------------ CUDA, GPU, TensorRT


def cuda_runtimes() -> dict[str, str]:
    """CUDA versions the installed GPU packages were built for (torch, onnxruntime-gpu)."""
    found = {}
    if importlib.util.find_spec("torch") is not None:
        import torch

        if torch.version.cuda:
            found[f"torch {torch.__version__}"] = str(torch.version.cuda)
    try:
        from onnxruntime.capi import build_and_package_info as ort_build
    except ImportError:
        ort_build = None
    cuda = getattr(ort_build, "cuda_version", None)
    if cuda:
        found["onnxruntime"] = str(cuda)
    return found


def check_cuda(available: Availability) -> list[Check]:
    """Driver CUDA version against the CUDA runtimes the installed packages need."""
    driver = cuda_driver_version()
    if driver is None:
        return [Check("pass" if available.gpu is None else "warn", "cuda",
                      f"no NVIDIA driver (libcuda) found — {without_cuda(available)}")]
    runtimes = cuda_runtimes()
    checks = [Check("pass", "cuda driver", f"supports CUDA {driver}"
                    + (f" (driver {available.gpu.driver_version})" if available.gpu else ""))]
    for package, runtime in runtimes.items():
        status = driver_supports(driver, runtime)
        advice = {"pass": "driver is new enough",
                  "warn": "driver is older than the runtime (minor-version compatibility; update the driver)",
                  "fail": "driver is too old for this runtime — update the NVIDIA driver"}[status]
        checks.append(Check(status, "cuda runtime", f"{package} built for CUDA {runtime}: {advice}"))
    return checks


def without_cuda(available: Availability) -> str:
    """What runs the models when there is no CUDA: DirectML, the CPU, and whether CoreML could."""
    provider = auto_provider(available)
    if provider != CPU_PROVIDER:
        return f"models run on {provider}"
    if COREML_PROVIDER in available.ort_providers:
        return f"models run on the CPU; {COREML_PROVIDER} is available but opt-in (--device coreml)"
    return "CPU only"


def check_gpu(available: Availability) -> list[Check]:
    """GPU name, compute capability and memory."""
    gpu = available.gpu
    if gpu is None:
        return [Check("warn", "gpu", f"no NVIDIA GPU found ({available.gpu_error}) — swapcam runs on the CPU, "
                      "slower; the neural swapper needs a GPU for real time")]
    memory = f", {gpu.memory_mib} MiB" if gpu.memory_mib else ""
    return [Check("pass", "gpu", f"{gpu.name}, compute capability {gpu.compute_capability}{memory}")]


def check_tensorrt(available: Availability) -> list[Check]:
    """TensorRT version (only expected where there is a GPU)."""
    if available.tensorrt_version is not None:
        torch_hint = TORCH_CUDA_WINDOWS if available.platform == "win32" else "pip install .[gpu]"
        torch_note = "" if available.torch_cuda else f" — but torch with CUDA is missing ({torch_hint})"
        return [Check("pass" if available.torch_cuda else "warn", "tensorrt",
                      f"{available.tensorrt_version}{torch_note}")]
    if available.gpu is None:
        return [Check("pass", "tensorrt", f"{available.tensorrt_error} (not needed without an NVIDIA GPU)")]
    return [Check("warn", "tensorrt", f"{available.tensorrt_error} — pip install .[gpu], then "
                  "python tools/build_engines.py for the fastest inference")]


def check_torch(available: Availability) -> list[Check]:
    """The torch backend (onnx2torch), and what ``--backend auto`` takes here, with why it skips the better ones."""
    from realtime.engines.selection import choose

    if available.torch_error is not None:
        torch_check = Check("pass" if available.gpu is None else "warn", "torch backend",
                            f"{available.torch_error} (optional: --backend torch runs the models on torch's own CUDA)")
    else:
        where = "CUDA and CPU" if available.torch_cuda else "CPU only (torch sees no CUDA device)"
        torch_check = Check("pass", "torch backend", f"torch {available.torch_version} with onnx2torch: {where}")
    try:
        choice = choose(model_name="scrfd", model_sha256=None, available=available)
        auto = Check("pass", "backend auto", "order TensorRT → ONNX Runtime CUDA → torch CUDA → ONNX Runtime CPU; "
                     f"here: {choice.summary()}")
    except SwapcamError as exc:
        auto = Check("fail", "backend auto", exc.message())
    return [torch_check, auto]


# ------------------------------------------------------------------ models and engines


def check_models(root: Path | None = None) -> list[Check]:
    """The models folder, and each model of the manifest: present, and its sha256 as pinned."""
    from realtime import models

    try:
        root = models.models_dir(root)
        rows = models.list_status(root)
    except SwapcamError as exc:
        return [Check("fail", "models", exc.message())]
    checks = [Check("pass", "models folder", str(root))]
    for row in rows:
        if row.kind == "sample":
            continue
        label = f"model {row.name}"
        if row.status == "missing":
            optional = row.kind == "neural"
            fix = "swapcam models fetch --neural" if optional else "swapcam models fetch"
            checks.append(Check("pass" if optional else "fail", label,
                                f"not fetched{' (optional)' if optional else ''} — run `{fix}`"))
        elif row.status == "ok":
            checks.append(Check("pass", label, f"{row.path.name} sha256 {models.cached_sha256(row.path)[:16]}… ok"))
        else:
            checks.append(Check("fail", label, SwapcamError("E07", f"{row.path}").message()))
    return checks


def _model_sha(name: str, root: Path | None) -> str | None:
    from realtime import models

    try:
        return models.cached_sha256(models.model_path(name, root=root))
    except (SwapcamError, ValueError):
        return None


def check_engines(available: Availability, models_root: Path | None = None) -> list[Check]:
    """Each TensorRT engine in the engines folder and whether it fits this model file, GPU and TensorRT."""
    folder = default_engines_dir()
    checks = [Check("warn", "engine", problem) for problem in available.engine_problems]
    if not available.engines:
        hint = "python tools/build_engines.py builds them" if available.gpu else "only used on an NVIDIA GPU"
        return [*checks, Check("pass", "engines", f"none in {folder} ({hint})")]
    for path, sidecar in available.engines:
        reasons = mismatches(sidecar, model_sha256=_model_sha(sidecar.model_name, models_root), gpu=available.gpu,
                             tensorrt_version=available.tensorrt_version)
        if reasons:
            checks.append(Check("warn", "engine", f"{path.name} does not fit this machine: {'; '.join(reasons)} "
                                "— rebuild with python tools/build_engines.py"))
        else:
            checks.append(Check("pass", "engine", f"{path.name} fits ({sidecar.precision}, "
                                f"built in {sidecar.build_seconds:.0f} s)"))
    return checks


# ------------------------------------------------------------------ virtual camera, shm, threads


def check_virtual_camera() -> list[Check]:
    """v4l2loopback devices on Linux; pyvirtualcam's backends elsewhere."""
    if importlib.util.find_spec("pyvirtualcam") is None:
        return [Check("warn", "virtual camera", "pyvirtualcam is not installed — pip install pyvirtualcam")]
    if sys.platform.startswith("linux"):
        import pyvirtualcam

        from realtime.v4l2 import loopback_devices

        backends = f"pyvirtualcam {pyvirtualcam.__version__}, backends: {', '.join(pyvirtualcam.camera.BACKENDS)}"
        found = loopback_devices()
        if found:
            names = ", ".join(f"{d.path} ({d.name})" for d in found)
            return [Check("pass", "virtual camera", f"v4l2loopback devices: {names}; {backends}")]
        loaded = Path("/sys/module/v4l2loopback").exists()
        why = "v4l2loopback is loaded but has no device" if loaded else "v4l2loopback is not loaded"
        return [Check("warn", "virtual camera", f"{backends}; " + SwapcamError("E10", why).message())]
    from realtime.commands.devices import virtualcam_backends

    lines = [line.strip() for line in virtualcam_backends()]
    usable = [line for line in lines if ": available" in line]
    if usable:
        return [Check("pass", "virtual camera", "; ".join(usable))]
    return [Check("warn", "virtual camera", SwapcamError("E10", "; ".join(lines)).message())]


def in_container() -> bool:
    """Whether this process runs inside a Docker/Podman/Kubernetes container."""
    return container_kind() is not None


def shm_check(size_mib: int, *, container: bool) -> Check:
    """The verdict on a /dev/shm of ``size_mib``."""
    where = "inside a container" if container else "host"
    if size_mib < SHM_MIN_MIB:
        fix = "start the container with --shm-size=1g" if container else "remount /dev/shm larger"
        return Check("warn", "/dev/shm", f"{size_mib} MiB ({where}) — under {SHM_MIN_MIB} MiB; {fix}")
    return Check("pass", "/dev/shm", f"{size_mib} MiB ({where})")


def check_shm() -> list[Check]:
    """/dev/shm size (containers often get 64 MiB)."""
    if not sys.platform.startswith("linux"):
        return []
    try:
        stats = os.statvfs("/dev/shm")
    except OSError as exc:
        return [Check("warn", "/dev/shm", f"cannot be read ({exc})")]
    return [shm_check(stats.f_frsize * stats.f_blocks >> 20, container=in_container())]


def threads_check(omp: str | None, logical: int) -> Check:
    """The verdict on OMP_NUM_THREADS for ``logical`` CPUs."""
    base = f"{logical} usable CPUs; swapcam sets ONNX Runtime's threads itself (--threads)"
    if omp is None:
        return Check("pass", "threads", f"OMP_NUM_THREADS unset; {base}")
    if not omp.isdigit() or int(omp) < 1:
        return Check("warn", "threads", f"OMP_NUM_THREADS={omp!r} is not a positive number; {base}")
    if int(omp) > logical:
        return Check("warn", "threads", f"OMP_NUM_THREADS={omp} exceeds the {logical} usable CPUs "
                     "(oversubscription slows every frame)")
    return Check("pass", "threads", f"OMP_NUM_THREADS={omp}; {base}")


def check_threads() -> list[Check]:
    """OMP_NUM_THREADS against the CPUs this process may use (affinity and cgroup quota)."""
    return [threads_check(os.environ.get("OMP_NUM_THREADS"), usable_cpus())]


def frame_priority_check(*, raised: bool, platform_name: str, cpus: int, rtprio: int | None,
                         container: bool) -> Check:
    """The verdict on whether a live run's frame threads can go ahead of other programs' threads."""
    if cpus < 2:
        return Check("pass", "frame priority", "one usable CPU: the frame threads stay ordinary (a real-time thread "
                     "would leave the rest of the machine nothing)")
    if raised:
        how = {"linux": f"the real-time class (SCHED_RR {FRAME_RT_PRIORITY})", "win32": "the highest thread priority",
               "darwin": "the user-interactive QoS class"}.get(platform_name, "a raised priority")
        return Check("pass", "frame priority", f"a live run's capture, inference and output threads get {how}")
    if not platform_name.startswith("linux"):
        return Check("warn", "frame priority", "the system refused to raise the frame threads: frames can wait for "
                     "a core while other programs are busy")
    fix = (f"fix: compose `ulimits: {{rtprio: {FRAME_RT_PRIORITY}}}`; docker run `--ulimit rtprio={FRAME_RT_PRIORITY}`"
           if container else
           f"allow it with the line `{os.environ.get('USER', 'YOUR_USER')} - rtprio {FRAME_RT_PRIORITY}` in "
           "/etc/security/limits.d/swapcam.conf, then log in again")
    return Check("warn", "frame priority", f"the real-time class is refused (ulimit -r is {rtprio}; it needs "
                 f"{FRAME_RT_PRIORITY}, CAP_SYS_NICE or root): with a browser or a game on the same cores a frame can "
                 f"wait up to a scheduler tick (about +3 ms of p95 measured on 2 cores) — {fix}")


def check_frame_priority() -> list[Check]:
    """Whether a live run's frame threads get ahead of other programs' threads here (realtime.priority)."""
    rtprio = None
    if sys.platform.startswith("linux"):
        import resource  # POSIX only: not importable on Windows

        rtprio = resource.getrlimit(resource.RLIMIT_RTPRIO)[0]
    return [frame_priority_check(raised=frame_threads_can_be_raised(), platform_name=sys.platform,
                                 cpus=usable_cpus(), rtprio=rtprio, container=in_container())]
