"""Terminal hotkeys for ``swapcam run``: space toggles the swap, 1–9 pick a gallery face, r starts/stops
recording, q quits. Only when stdin is a terminal; the terminal is restored when they stop."""

from __future__ import annotations

import logging
import os
import select
import sys
import threading
from collections.abc import Callable, Mapping
from typing import IO, Any

from realtime.errors import SwapcamError

log = logging.getLogger(__name__)

POLL_S = 0.1


def stdin_is_terminal(stream: IO[str] | None = None) -> bool:
    """True when hotkeys can work: stdin is a TTY on a POSIX terminal."""
    stream = stream or sys.stdin
    try:
        return os.name == "posix" and stream.isatty()
    except (AttributeError, ValueError):
        return False


class Hotkeys:
    """Reads single keys on a named thread and calls the action bound to each."""

    def __init__(self, actions: Mapping[str, Callable[[], Any]], *, fd: int | None = None,
                 on_error: Callable[[str], None] | None = None) -> None:
        self.actions = dict(actions)
        self.fd = sys.stdin.fileno() if fd is None else fd
        self.on_error = on_error or (lambda line: log.warning("%s", line))
        self._stop = threading.Event()
        self._saved: Any = None
        self._thread = threading.Thread(target=self._loop, name="swapcam-hotkeys", daemon=True)

    def start(self) -> None:
        """Put the terminal in cbreak mode (keys arrive at once, no echo) and start reading."""
        import termios
        import tty

        self._saved = termios.tcgetattr(self.fd)
        tty.setcbreak(self.fd)
        self._thread.start()

    def stop(self) -> None:
        """Stop reading and restore the terminal."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(1.0)
        if self._saved is not None:
            import termios

            termios.tcsetattr(self.fd, termios.TCSADRAIN, self._saved)
            self._saved = None

    def _loop(self) -> None:
        while not self._stop.is_set():
            ready, _, _ = select.select([self.fd], [], [], POLL_S)
            if not ready:
                continue
            data = os.read(self.fd, 32)
            if not data:
                return
            for key in data.decode(errors="ignore"):
                self.press(key)

    def press(self, key: str) -> None:
        """Run the action bound to ``key`` (a coded error is reported, never raised)."""
        action = self.actions.get(key.lower() if key.isalpha() else key)
        if action is None:
            return
        try:
            action()
        except SwapcamError as exc:
            self.on_error(exc.message())
