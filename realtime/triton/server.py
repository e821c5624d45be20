"""Running a real Triton Inference Server on this machine: the ``tritonserver`` binary nvidia-pytriton bundles.

That build has only the Python backend, so the repository it serves is the
``python`` flavour (see :mod:`realtime.triton.repository`): each model runs on
ONNX Runtime inside Triton's Python stub. The stub links ``libpython3.X.so``;
the one of the interpreter running swapcam goes first on the library path, so
the stub's interpreter and the standard library it imports are the same patch
release, and it finds numpy and onnxruntime through this environment's
site-packages.
"""

from __future__ import annotations

import logging
import os
import shutil
import signal
import site
import subprocess
import sys
import sysconfig
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from realtime.clock import now_s
from realtime.errors import BackendError, UsageError

log = logging.getLogger(__name__)

READY_TIMEOUT_S = 120.0
STOP_TIMEOUT_S = 15.0


@dataclass(frozen=True)
class ServerConfig:
    """Where the server listens and what it serves."""

    repository: Path
    host: str = "127.0.0.1"
    http_port: int = 8000
    grpc_port: int = 8001
    metrics_port: int = 8002

    @property
    def ready_url(self) -> str:
        """The readiness endpoint (answers 200 once every model is loaded)."""
        host = "127.0.0.1" if self.host in ("0.0.0.0", "::", "") else self.host
        host = f"[{host}]" if ":" in host else host
        return f"http://{host}:{self.http_port}/v2/health/ready"


@dataclass(frozen=True)
class Distribution:
    """The bundled server: binary, its libraries, the Python backend and the stub for this Python."""

    binary: Path
    libs: Path
    python_backend: Path
    stub: Path


def find_distribution() -> Distribution:
    """The tritonserver nvidia-pytriton ships; E23 when it is not installed or has no stub for this Python."""
    import importlib.util

    # Found, not imported: only its files are used, and it is installed without its dependencies.
    spec = importlib.util.find_spec("pytriton")
    if spec is None or spec.origin is None:
        raise BackendError("E23", "nvidia-pytriton (its tritonserver binary) is not installed: "
                           "pip install --no-deps nvidia-pytriton==0.7.0 (Linux x86-64)")
    package = Path(spec.origin).parent
    root = package / "tritonserver"
    version = f"{sys.version_info.major}.{sys.version_info.minor}"
    dist = Distribution(binary=root / "bin" / "tritonserver", libs=package.parent / "nvidia_pytriton.libs",
                        python_backend=root / "backends" / "python",
                        stub=root / "python_backend_stubs" / version / "triton_python_backend_stub")
    for path in (dist.binary, dist.python_backend, dist.stub):
        if not path.exists():
            raise BackendError("E23", f"{path} is missing from nvidia-pytriton (Python {version})")
    if shared_libpython() is None:
        raise BackendError("E23", f"Triton's Python stub needs libpython{version}.so, and this Python is a static "
                           f"build: use a shared one (Debian: apt-get install libpython{version})")
    return dist


def shared_libpython() -> str | None:
    """The shared libpython of this Python version (this interpreter's own first), or None."""
    import ctypes.util

    version = f"{sys.version_info.major}.{sys.version_info.minor}"
    libdir = Path(sysconfig.get_config_var("LIBDIR") or "")
    own = libdir / f"libpython{version}.so.1.0"
    return str(own) if own.is_file() else ctypes.util.find_library(f"python{version}")


def backends_dir(dist: Distribution, workdir: Path) -> Path:
    """A backend directory with the Python backend and the stub for this Python version."""
    target = workdir / "backends" / "python"
    target.mkdir(parents=True, exist_ok=True)
    for item in dist.python_backend.iterdir():
        if item.is_file():
            shutil.copy2(item, target / item.name)
    shutil.copy2(dist.stub, target / "triton_python_backend_stub")
    return target.parent


def server_env(dist: Distribution) -> dict[str, str]:
    """The environment for tritonserver and its Python stub (see the module docstring)."""
    env = dict(os.environ)
    libdir = sysconfig.get_config_var("LIBDIR") or ""
    lib_path = [p for p in (libdir, str(dist.libs), env.get("LD_LIBRARY_PATH", "")) if p]
    env["LD_LIBRARY_PATH"] = os.pathsep.join(lib_path)
    paths = [*site.getsitepackages(), site.getusersitepackages(), env.get("PYTHONPATH", "")]
    env["PYTHONPATH"] = os.pathsep.join(p for p in paths if p)
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    return env


def server_command(dist: Distribution, config: ServerConfig, backends: Path) -> list[str]:
    """The tritonserver command line: the three endpoints bound to ``config.host`` only."""
    return [str(dist.binary), f"--model-repository={config.repository}", f"--backend-directory={backends}",
            f"--http-address={config.host}", f"--http-port={config.http_port}",
            f"--grpc-address={config.host}", f"--grpc-port={config.grpc_port}",
            f"--metrics-address={config.host}", f"--metrics-port={config.metrics_port}",
            "--allow-gpu-metrics=false", "--strict-readiness=true", "--exit-timeout-secs=5",
            "--log-verbose=0"]


def _stop_with_parent() -> None:
    """In the child before exec: Linux sends it SIGINT when swapcam dies, however it dies (no orphan server)."""
    try:
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGINT)  # 1 = PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


class TritonServer:
    """A tritonserver child process; ``start()`` returns once it is ready, ``stop()`` ends it cleanly."""

    def __init__(self, config: ServerConfig, *, workdir: Path, log_path: Path | None = None) -> None:
        if not config.repository.is_dir():
            raise UsageError("E01", f"model repository {config.repository} is not a folder")
        self.config = config
        self.workdir = workdir
        self.log_path = log_path or workdir / "tritonserver.log"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self, *, timeout_s: float = READY_TIMEOUT_S) -> None:
        """Start the server and wait for ``/v2/health/ready``; E30 with the log's tail if it does not come up."""
        dist = find_distribution()
        backends = backends_dir(dist, self.workdir)
        with self.log_path.open("wb") as sink:
            self.process = subprocess.Popen(server_command(dist, self.config, backends), env=server_env(dist),
                                            stdout=sink, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                            start_new_session=True, preexec_fn=_stop_with_parent)
        deadline = now_s() + timeout_s
        while now_s() < deadline:
            if self.process.poll() is not None:
                raise BackendError("E30", f"tritonserver exited with status {self.process.returncode} at start: "
                                   f"{self.log_tail()}")
            if self.ready():
                return
            time.sleep(0.2)
        self.stop()
        raise BackendError("E30", f"tritonserver not ready after {timeout_s:.0f} s: {self.log_tail()}")

    def ready(self) -> bool:
        """True when GET /v2/health/ready answers 200."""
        try:
            with urllib.request.urlopen(self.config.ready_url, timeout=1.0) as answer:
                return bool(answer.status == 200)
        except OSError:
            return False

    def running(self) -> bool:
        """True while the process lives."""
        return self.process is not None and self.process.poll() is None

    def wait(self) -> int:
        """Block until the server exits; its exit status."""
        assert self.process is not None
        return self.process.wait()

    def stop(self) -> None:
        """SIGINT (Triton unloads the models and exits), then SIGKILL if it takes longer than STOP_TIMEOUT_S."""
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGINT)
        try:
            self.process.wait(timeout=STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            log.warning("tritonserver did not stop within %.0f s; killing it", STOP_TIMEOUT_S)
            self.process.kill()
            self.process.wait(timeout=STOP_TIMEOUT_S)

    def log_tail(self, lines: int = 5) -> str:
        """The last lines of the server log, on one line."""
        try:
            text = self.log_path.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return "(no log)"
        tail = [line.strip() for line in text.splitlines() if line.strip()][-lines:]
        return " | ".join(tail) or "(empty log)"
