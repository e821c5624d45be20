"""The terminal on every OS: encodings that lack "→", consoles without ANSI, SIGBREAK, the test helpers."""

from __future__ import annotations

import io
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from platform_helpers import SWAPCAM, console_script, interrupt, popen_kwargs, unwritable_path

from realtime.commands import run
from realtime.commands.options import StatusPrinter
from realtime.console import break_interrupts
from realtime.stats import Stats


class FakeTerminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def _run_cli(encoding: str, *args: str) -> subprocess.CompletedProcess[bytes]:
    env = {**os.environ, "PYTHONIOENCODING": encoding}
    return subprocess.run([SWAPCAM, *args], capture_output=True, env=env, timeout=60, check=False)


@pytest.mark.parametrize("encoding", ["cp1252", "cp932"])
def test_a_good_run_succeeds_when_output_cannot_encode_arrows(encoding: str) -> None:
    result = _run_cli(encoding, "run", "--synthetic", "--size", "64x48", "--frames", "5")
    stderr = result.stderr.decode(encoding, "replace")
    assert result.returncode == 0, stderr
    assert "latency ms (capture" in result.stdout.decode(encoding)
    assert "Logging error" not in stderr and "UnicodeEncodeError" not in stderr


@pytest.mark.parametrize("encoding", ["cp1252", "cp932"])
def test_devices_listing_succeeds_when_output_cannot_encode_dashes(encoding: str) -> None:
    # Without a virtual camera the Linux listing says "none — sudo modprobe ...": cp932 has no "—".
    result = _run_cli(encoding, "devices")
    stderr = result.stderr.decode(encoding, "replace")
    assert result.returncode == 0, stderr
    assert "cameras" in result.stdout.decode(encoding)
    assert "UnicodeEncodeError" not in stderr


@pytest.mark.parametrize("encoding", ["cp1252", "cp932"])
def test_an_error_line_prints_when_output_cannot_encode_dashes(encoding: str) -> None:
    result = _run_cli(encoding, "run", "--synthetic", "--output", "bogus")
    stderr = result.stderr.decode(encoding, "replace")
    assert result.returncode == 2, stderr
    assert stderr.startswith("error: E02 unknown source or sink"), stderr
    assert "UnicodeEncodeError" not in stderr


def test_status_line_uses_ansi_on_a_posix_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "platform", "linux")
    stream = FakeTerminal()
    printer = StatusPrinter(stream)
    printer(Stats())
    assert stream.getvalue().startswith("\r\x1b[2K")


def test_status_line_pads_instead_of_escapes_where_vt_mode_is_unavailable(monkeypatch: pytest.MonkeyPatch) -> None:
    # On this Linux machine "win32" makes the VT switch-on fail (no msvcrt/kernel32), as on an old console.
    monkeypatch.setattr(sys, "platform", "win32")
    stream = FakeTerminal()
    printer = StatusPrinter(stream)
    stats = Stats()
    printer(stats)
    printer(stats)
    printer.finish()
    text = stream.getvalue()
    assert "\x1b" not in text
    first, second = text.split("\r")[1:3]
    assert len(second) >= len(first) and second.strip()


@pytest.mark.skipif(not hasattr(signal, "SIGUSR1"), reason="needs SIGUSR1 as a stand-in for SIGBREAK")
def test_sigbreak_is_a_stop_signal_where_it_exists(monkeypatch: pytest.MonkeyPatch) -> None:
    # Stand SIGUSR1 in for Windows' SIGBREAK and really deliver it.
    monkeypatch.setattr(signal, "SIGBREAK", signal.SIGUSR1, raising=False)
    assert signal.SIGUSR1 in run.stop_signals()

    class FakePipeline:
        def __init__(self) -> None:
            self.stopped = threading.Event()

        def request_stop(self) -> None:
            self.stopped.set()

    pipeline = FakePipeline()
    with run.stop_on_signals(pipeline):  # type: ignore[arg-type]
        os.kill(os.getpid(), signal.SIGUSR1)
        assert pipeline.stopped.wait(2)


@pytest.mark.skipif(not hasattr(signal, "SIGUSR1"), reason="needs SIGUSR1 as a stand-in for SIGBREAK")
def test_ctrl_break_raises_keyboard_interrupt_outside_a_run(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(signal, "SIGBREAK", signal.SIGUSR1, raising=False)
    previous = signal.getsignal(signal.SIGUSR1)
    try:
        break_interrupts()
        with pytest.raises(KeyboardInterrupt):
            os.kill(os.getpid(), signal.SIGUSR1)
            time.sleep(0.5)  # the handler runs between bytecodes; give it the chance
    finally:
        signal.signal(signal.SIGUSR1, previous)


def test_without_sigbreak_only_sigint_and_sigterm(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delattr(signal, "SIGBREAK", raising=False)
    assert run.stop_signals() == (signal.SIGINT, signal.SIGTERM)


def test_test_helpers_fit_windows(tmp_path: Path) -> None:
    assert console_script(platform="win32", python=r"C:\venv\Scripts\python.exe").endswith("swapcam.exe")
    assert not console_script(platform="linux", python="/venv/bin/python").endswith(".exe")
    assert popen_kwargs(platform="win32")["creationflags"] == 0x200
    sent: list[int] = []

    class FakeProcess:
        def send_signal(self, sig: int) -> None:
            sent.append(sig)

    interrupt(FakeProcess(), platform="win32")  # type: ignore[arg-type]
    interrupt(FakeProcess(), platform="linux")  # type: ignore[arg-type]
    assert sent == [getattr(signal, "CTRL_BREAK_EVENT", 1), signal.SIGINT]
    target = unwritable_path(tmp_path, "out.mp4")
    with pytest.raises(OSError):
        target.write_bytes(b"x")
