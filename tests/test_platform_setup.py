"""Setup on every OS: dependency markers, extras, a task runner without make, model fetching without pip."""

from __future__ import annotations

import hashlib
import importlib.util
import json
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from packaging.markers import Marker
from packaging.requirements import Requirement

from realtime import fetching

ROOT = Path(__file__).resolve().parents[1]
# tools/ is not a package: load tools/task.py by path (registered, as its dataclass needs).
_TASK_SPEC = importlib.util.spec_from_file_location("swapcam_tools_task", ROOT / "tools" / "task.py")
assert _TASK_SPEC is not None and _TASK_SPEC.loader is not None
task = sys.modules.setdefault("swapcam_tools_task", importlib.util.module_from_spec(_TASK_SPEC))
_TASK_SPEC.loader.exec_module(task)

tomllib = pytest.importorskip("tomllib")
PROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
ENVIRONMENTS = {
    "linux": {"sys_platform": "linux", "platform_system": "Linux"},
    "win32": {"sys_platform": "win32", "platform_system": "Windows"},
    "darwin": {"sys_platform": "darwin", "platform_system": "Darwin"},
}


def _installed(requirements: list[str], os_name: str, extra: str = "") -> dict[str, Requirement]:
    found = {}
    for text in requirements:
        requirement = Requirement(text)
        env = {**ENVIRONMENTS[os_name], "extra": extra}
        if requirement.marker is None or Marker(str(requirement.marker)).evaluate(env):
            found[requirement.name] = requirement
    return found


@pytest.mark.parametrize(("os_name", "opencv"), [
    ("linux", "opencv-python-headless"), ("win32", "opencv-python"), ("darwin", "opencv-python"),
])
def test_exactly_one_opencv_build_per_os(os_name: str, opencv: str) -> None:
    builds = {n for n in _installed(PROJECT["dependencies"], os_name) if n.startswith("opencv-python")}
    assert builds == {opencv}


def test_gpu_extra_brings_cuda_and_cudnn_wheels() -> None:
    extras = PROJECT["optional-dependencies"]
    ort_gpu = _installed(extras["gpu"], "win32")["onnxruntime-gpu"]
    assert {"cuda", "cudnn"} <= ort_gpu.extras


def test_directml_extra_is_one_onnxruntime_for_windows() -> None:
    extras = PROJECT["optional-dependencies"]
    assert set(_installed(extras["directml"], "win32")) == {"onnxruntime-directml"}
    assert not _installed(extras["directml"], "linux")


def test_macos_and_windows_get_the_trust_store_and_camera_names() -> None:
    for os_name in ("win32", "darwin"):
        assert {"truststore", "cv2-enumerate-cameras"} <= set(_installed(PROJECT["dependencies"], os_name))


@pytest.mark.parametrize("target", ["setup", "models", "demo", "test", "lint"])
def test_task_runner_on_windows_uses_the_venv_scripts_folder(target: str) -> None:
    steps = task.plan(target, platform="win32", python=r"C:\Python311\python.exe")
    programs = [step.argv[0] for step in steps]
    assert all(p == r"C:\Python311\python.exe" or p.endswith(".exe") for p in programs), programs
    assert all("Scripts" in p for p in programs if p != r"C:\Python311\python.exe")
    assert not any(p == "make" or "activate" in p for p in programs)


def test_task_runner_runs_the_same_checks_as_make_test() -> None:
    makefile = (ROOT / "Makefile").read_text(encoding="utf-8")
    commands = [" ".join(step.argv[1:]) for step in task.plan("test", platform="linux")]
    for expected in ("-m pytest -q", "check realtime tools tests", "models fetch --samples"):
        assert expected in makefile and any(expected in c for c in commands), expected


def test_task_runner_dry_run_from_the_command_line() -> None:
    done = subprocess.run([sys.executable, str(ROOT / "tools" / "task.py"), "--dry-run", "test"],
                          capture_output=True, text=True, timeout=30, check=False)
    assert done.returncode == 0, done.stderr
    assert "pytest" in done.stdout and "mypy" in done.stdout


ARCHIVE = b"not really a wheel, but pinned"
ARCHIVE_SHA = hashlib.sha256(ARCHIVE).hexdigest()


class _FakePyPI(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        port = self.server.server_address[1]
        if self.path == "/pypi/fakepkg/1.0/json":
            body = json.dumps({"urls": [{"filename": "fakepkg-1.0-py3-none-any.whl",
                                         "url": f"http://127.0.0.1:{port}/files/fakepkg-1.0-py3-none-any.whl"}]})
            data = body.encode()
        elif self.path == "/files/fakepkg-1.0-py3-none-any.whl":
            data = ARCHIVE
        else:
            self.send_error(404)
            return
        self.send_response(200)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *_args: Any) -> None:
        pass


@pytest.fixture
def fake_pypi() -> Iterator[str]:
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _FakePyPI)
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.02}, name="fake-pypi",
                              daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}/pypi"
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(5)


def test_models_fetch_works_in_an_environment_without_pip(
    fake_pypi: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *args: None if name == "pip" else real_find_spec(name, *args))
    monkeypatch.setattr(fetching, "PYPI_JSON", fake_pypi)
    spec = {"dist": "wheel", "archive": "fakepkg-1.0-py3-none-any.whl", "sha256": ARCHIVE_SHA}
    archive = fetching._download("fakepkg==1.0", spec, tmp_path, lambda _message: None)
    assert archive.read_bytes() == ARCHIVE
