"""What the tests need to run the CLI the same way on Linux, macOS and Windows."""

from __future__ import annotations

import signal
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import pytest

from realtime.priority import frame_threads_can_be_raised


def console_script(name: str = "swapcam", *, platform: str = sys.platform, python: str = sys.executable) -> str:
    """The installed console script next to this interpreter (``swapcam.exe`` on Windows)."""
    suffix = ".exe" if platform == "win32" else ""
    return str(Path(python).with_name(name + suffix))


SWAPCAM = console_script()


def popen_kwargs(*, platform: str = sys.platform) -> dict[str, Any]:
    """Popen arguments that let :func:`interrupt` reach the child (its own process group on Windows)."""
    if platform == "win32":
        return {"creationflags": getattr(subprocess, "CREATE_NEW_PROCESS_GROUP", 0x200)}
    return {}


def interrupt(process: subprocess.Popen[Any], *, platform: str = sys.platform) -> None:
    """What Ctrl-C is on this OS: SIGINT on POSIX; on Windows CTRL_BREAK_EVENT (→ SIGBREAK), since a
    SIGINT from send_signal is TerminateProcess there and the child gets no chance to finalise."""
    if platform == "win32":
        process.send_signal(getattr(signal, "CTRL_BREAK_EVENT", 1))
    else:
        process.send_signal(signal.SIGINT)


def terminate_gracefully(process: subprocess.Popen[Any], *, platform: str = sys.platform) -> None:
    """SIGTERM on POSIX; Windows has no catchable SIGTERM, so CTRL_BREAK_EVENT there."""
    if platform == "win32":
        interrupt(process, platform=platform)
    else:
        process.send_signal(signal.SIGTERM)


def unwritable_path(tmp_path: Path, name: str) -> Path:
    """A path no OS can create: its parent is a regular file (no /proc needed)."""
    blocker = tmp_path / "not_a_folder"
    blocker.write_bytes(b"")
    return blocker / name


def in_new_thread(func):  # type: ignore[no-untyped-def]
    """``func()``'s result, called on a fresh thread."""
    box: list[object] = []
    thread = threading.Thread(target=lambda: box.append(func()))
    thread.start()
    thread.join(10)
    return box[0]


NEEDS_REALTIME = pytest.mark.skipif(
    not (sys.platform.startswith("linux") and frame_threads_can_be_raised()),
    reason="reads the Linux real-time class, which this user may not use (needs root, CAP_SYS_NICE or ulimit -r >= 2)")
