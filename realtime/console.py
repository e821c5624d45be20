"""The terminal on every OS: output that never fails on encoding, and whether ANSI escapes work."""

from __future__ import annotations

import signal
import sys
from typing import Any, TextIO

# SetConsoleMode flag that makes a Windows 10+ console interpret ANSI escape sequences.
ENABLE_VIRTUAL_TERMINAL_PROCESSING = 0x0004


def never_fail_on_encoding(*streams: TextIO) -> None:
    """Let ``streams`` replace characters their encoding lacks instead of raising.

    Redirected output on Windows uses the ANSI code page (cp1252, cp932, ...),
    which has no "→" or "—": a finished run would otherwise end in an
    encoding error, and so would printing that error.
    """
    for stream in streams:
        reconfigure = getattr(stream, "reconfigure", None)
        if reconfigure is None or getattr(stream, "errors", "strict") != "strict":
            continue  # stderr already backslash-escapes what it cannot encode
        try:
            reconfigure(errors="replace")
        except (ValueError, OSError):  # a closed or detached stream: nothing to protect
            continue


def ansi_supported(stream: Any) -> bool:
    """True when ``stream`` is a terminal that interprets ANSI escapes.

    POSIX terminals do. A Windows console does once virtual-terminal processing
    is switched on, which this tries (Windows 10 1511+); when that fails the
    caller should redraw with plain padding instead.
    """
    if not bool(getattr(stream, "isatty", lambda: False)()):
        return False
    if sys.platform != "win32":
        return True
    try:
        return _enable_windows_vt(stream.fileno())
    except (ImportError, AttributeError, OSError, ValueError):
        return False


def _enable_windows_vt(fd: int) -> bool:
    import ctypes
    import msvcrt

    kernel32 = ctypes.WinDLL("kernel32", use_last_error=True)  # type: ignore[attr-defined]
    handle = msvcrt.get_osfhandle(fd)  # type: ignore[attr-defined]
    mode = ctypes.c_uint32()
    if not kernel32.GetConsoleMode(handle, ctypes.byref(mode)):
        return False
    if mode.value & ENABLE_VIRTUAL_TERMINAL_PROCESSING:
        return True
    return bool(kernel32.SetConsoleMode(handle, mode.value | ENABLE_VIRTUAL_TERMINAL_PROCESSING))


def break_interrupts() -> None:
    """Make Ctrl-Break (SIGBREAK, Windows only) raise KeyboardInterrupt like Ctrl-C.

    Its default handler ends the process at once, with no chance to finalise
    a recording or print what a benchmark measured so far.
    """
    sigbreak = getattr(signal, "SIGBREAK", None)
    if sigbreak is not None:
        signal.signal(sigbreak, signal.default_int_handler)
