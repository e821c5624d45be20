"""Terminal hotkeys of `swapcam run`, driven through a pseudo-terminal; off without a TTY."""

from __future__ import annotations

import os
import re
import select
import subprocess
import sys
import time
from pathlib import Path

import pytest

from realtime.models import sample_path

pytestmark = pytest.mark.skipif(os.name != "posix", reason="pseudo-terminals are POSIX only")

SWAPCAM = str(Path(sys.executable).with_name("swapcam"))


class Terminal:
    """A process on a pseudo-terminal: type keys, wait for text."""

    def __init__(self, argv: list[str], env: dict[str, str]) -> None:
        import pty

        self.master, slave = pty.openpty()
        self.process = subprocess.Popen(argv, stdin=slave, stdout=slave, stderr=slave, env=env, close_fds=True)
        os.close(slave)
        self.text = ""

    def wait_for(self, needle: str, timeout: float = 30.0) -> str:
        """Read until ``needle`` appears after what was already read; return the new text."""
        start, deadline = len(self.text), time.perf_counter() + timeout
        while needle not in self.text[start:]:
            left = deadline - time.perf_counter()
            if left <= 0:
                raise AssertionError(f"{needle!r} not seen within {timeout} s; got: {self.text[start:][-600:]!r}")
            ready, _, _ = select.select([self.master], [], [], min(left, 0.2))
            if ready:
                try:
                    self.text += os.read(self.master, 65536).decode(errors="replace")
                except OSError:  # the process ended and the terminal closed
                    if needle not in self.text[start:]:
                        raise AssertionError(f"{needle!r} not seen; got: {self.text[start:][-600:]!r}") from None
        return self.text[start:]

    def type(self, keys: str) -> None:
        """Send keys as if typed."""
        os.write(self.master, keys.encode())

    def close(self) -> None:
        """Kill the process if it still runs, close the terminal."""
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)
        os.close(self.master)


@pytest.fixture()
def env(tmp_path: Path, models_root: Path) -> dict[str, str]:
    return {**os.environ, "SWAPCAM_MODELS": str(models_root), "SWAPCAM_DATA_DIR": str(tmp_path / "data"),
            "SWAPCAM_CONFIG_DIR": str(tmp_path / "config"), "TERM": "xterm"}


def test_hotkeys_toggle_swap_pick_faces_record_and_quit(env: dict[str, str], models_root: Path,
                                                         tmp_path: Path) -> None:
    gauss, newton = (str(sample_path(n, root=models_root)) for n in ("gauss.png", "solvay_conference_1927.jpg"))
    argv = [SWAPCAM, "run", "--image", str(sample_path("newton.png", root=models_root)), "--size", "320x240",
            "--face", gauss, "--face", newton, "--swapper", "mesh", "--duration", "60"]
    terminal = Terminal(argv, env)
    try:
        terminal.wait_for("face gauss.png | swap on")
        terminal.type(" ")
        terminal.wait_for("swap OFF")
        terminal.type(" ")
        terminal.wait_for("swap on")
        terminal.type("2")
        terminal.wait_for("face solvay_conference_1927.jpg")
        terminal.type("1")
        terminal.wait_for("face gauss.png")
        terminal.type("9")  # no 9th face: a coded warning, the run goes on
        terminal.wait_for("E24")
        terminal.type("r")
        terminal.wait_for("| REC")
        time.sleep(1.0)
        terminal.type("r")
        terminal.wait_for("swap on\r")  # a status line without REC
        terminal.type("q")
        terminal.wait_for("frames:", timeout=15)
        assert terminal.process.wait(15) == 0
    finally:
        terminal.close()
    recordings = list((tmp_path / "data" / "recordings").glob("*.mp4"))
    assert len(recordings) == 1 and recordings[0].stat().st_size > 0


def test_without_a_tty_the_keys_do_nothing(env: dict[str, str], models_root: Path) -> None:
    argv = [SWAPCAM, "run", "--image", str(sample_path("newton.png", root=models_root)), "--size", "160x120",
            "--face", str(sample_path("gauss.png", root=models_root)), "--swapper", "mesh", "--duration", "2"]
    started = time.perf_counter()
    done = subprocess.run(argv, input=b"q q q", capture_output=True, env=env, timeout=60)
    assert done.returncode == 0
    assert time.perf_counter() - started >= 2.0  # q did not quit: it ran its whole duration
    assert b"swap on" not in done.stderr  # no live control without a terminal


def test_run_panel_prints_its_url_and_warns_off_loopback(env: dict[str, str]) -> None:
    argv = [SWAPCAM, "run", "--synthetic", "--size", "160x120", "--panel", "--panel-port", "0",
            "--panel-host", "127.0.0.2", "--duration", "2"]
    done = subprocess.run(argv, capture_output=True, env=env, timeout=60, stdin=subprocess.DEVNULL)
    assert done.returncode == 0, done.stderr[-2000:]
    lines = [line for line in done.stdout.decode().splitlines() if line.startswith("panel: ")]
    assert len(lines) == 1
    assert re.fullmatch(r"panel: http://127\.0\.0\.2:\d+/\?token=[\w-]{20,}", lines[0])
    assert b"panel: listening on 127.0.0.2" in done.stderr
