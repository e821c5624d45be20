"""How the system sees swapcam's threads: the frame threads go ahead of ordinary threads where the
system allows it, helper threads yield to them, and every thread carries its name at the OS level (so
a profiler or a scheduler trace can tell them apart).

The capture, inference and output threads carry every frame. On a machine whose cores are busy (two
cores, a browser showing the panel), a thread that wakes up can take a core from the inference
thread, and that frame is late. The scheduler's trace showed the inference thread waiting behind the
browser's threads for up to one scheduler tick while the other core sat idle; neither nice values,
pinning nor EEVDF slices changed it (docs/notes/panel.md). The real-time class does: an ordinary
thread never preempts it. So a live run's frame threads ask for it (Linux: SCHED_RR at a low priority,
below audio servers; it needs root, CAP_SYS_NICE or an rtprio limit, and where it is refused they keep
their priority), Windows gives them its highest priority within the process's class and macOS the
user-interactive QoS class. A frame thread that keeps a core busy (frames take longer than they come)
steps back down (:class:`BusyWatch`), so a slow model never starves the desktop.

The panel's server and its preview encoding, and the once-a-second face check, do work that no frame
waits for: they lower themselves (no privilege needed on any of the three systems).
"""

from __future__ import annotations

import ctypes
import functools
import logging
import os
import sys
import threading
from collections.abc import Callable
from typing import Any, TypeVar

log = logging.getLogger(__name__)

HELPER_NICE_STEP = 10  # Linux: nice +10 weighs ~10x less than the frame threads when they compete
WINDOWS_BELOW_NORMAL = -1  # THREAD_PRIORITY_BELOW_NORMAL
MACOS_QOS_UTILITY = 0x11  # QOS_CLASS_UTILITY: below the default class the frame threads run in
MAX_NICE = 19
# SCHED_RR priority of the frame threads: the lowest real-time band (1-99), so that audio servers
# (PipeWire's data thread ~20-88, JACK 70+) and the kernel's threaded interrupts keep precedence.
FRAME_RT_PRIORITY = 2
WINDOWS_NORMAL = 0  # THREAD_PRIORITY_NORMAL
WINDOWS_HIGHEST = 2  # THREAD_PRIORITY_HIGHEST: no privilege needed within the process's class
MACOS_QOS_USER_INTERACTIVE = 0x21
MACOS_QOS_DEFAULT = 0x15
# A raised thread busy more than BUSY_LIMIT of BUSY_WINDOWS windows of BUSY_WINDOW_S in a row steps back down
# (BusyWatch). Two windows: one slow frame (a model's first run, a warm-up) is not a thread that never rests.
BUSY_LIMIT = 0.9
BUSY_WINDOW_S = 2.0
BUSY_WINDOWS = 2
PR_SET_NAME = 15  # prctl: name the calling thread
T = TypeVar("T")


def lower_current_thread() -> bool:
    """Give the calling thread a lower priority than the frame threads; True when the system took it.

    Idempotent: a thread already lowered stays where it is. Best effort: where the system refuses,
    the thread keeps its priority and the reason is logged at debug level.
    """
    name_current_thread()
    return _set_current_thread("lower", lower_linux_thread, WINDOWS_BELOW_NORMAL, MACOS_QOS_UTILITY)


def raise_current_thread() -> bool:
    """Put the calling frame thread ahead of ordinary threads where the system allows it; True when it took.

    Linux: SCHED_RR at FRAME_RT_PRIORITY (root, CAP_SYS_NICE or ``ulimit -r`` >= 2); threads it starts
    later begin as ordinary threads. Windows: THREAD_PRIORITY_HIGHEST. macOS: user-interactive QoS.
    Best effort: where the system refuses, the thread keeps its priority and the reason is logged at
    debug level. Undo with :func:`restore_current_thread`.
    """
    name_current_thread()
    return _set_current_thread("raise", raise_linux_thread, WINDOWS_HIGHEST, MACOS_QOS_USER_INTERACTIVE)


def restore_current_thread() -> bool:
    """Give a thread that :func:`raise_current_thread` raised its ordinary priority back; True when it took."""
    return _set_current_thread("restore", restore_linux_thread, WINDOWS_NORMAL, MACOS_QOS_DEFAULT)


def _set_current_thread(action: str, linux: Callable[[int], None], windows_priority: int, macos_qos: int) -> bool:
    """The calling thread's priority, each system its own way; False (logged at debug) where it refuses."""
    try:
        if sys.platform.startswith("linux"):
            linux(threading.get_native_id())
            return True
        if sys.platform == "win32":
            kernel32 = _kernel32()
            return bool(kernel32.SetThreadPriority(kernel32.GetCurrentThread(), windows_priority))
        if sys.platform == "darwin":
            return int(_libsystem().pthread_set_qos_class_self_np(macos_qos, 0)) == 0
    except (OSError, AttributeError, ValueError) as exc:
        log.debug("could not %s the priority of thread %s: %r", action, threading.current_thread().name, exc)
    return False


def frame_threads_can_be_raised() -> bool:
    """Whether :func:`raise_current_thread` takes here (tried on a throwaway thread, then undone)."""
    box: list[bool] = []

    def probe() -> None:
        box.append(raise_current_thread())
        restore_current_thread()

    thread = threading.Thread(target=probe, name="swapcam-probe")
    thread.start()
    thread.join(5)
    return bool(box and box[0])


def raise_linux_thread(native_id: int) -> None:
    """Linux: the thread ``native_id`` to SCHED_RR at FRAME_RT_PRIORITY (PermissionError where refused)."""
    # SCHED_RESET_ON_FORK: threads it starts (a library's worker pool) begin as ordinary threads.
    os.sched_setscheduler(native_id, os.SCHED_RR | os.SCHED_RESET_ON_FORK, os.sched_param(FRAME_RT_PRIORITY))


def restore_linux_thread(native_id: int) -> None:
    """Linux: the thread ``native_id`` back to SCHED_OTHER (always permitted: it keeps the reset-on-fork flag,
    which only a privileged thread may clear)."""
    os.sched_setscheduler(native_id, os.SCHED_OTHER | os.SCHED_RESET_ON_FORK, os.sched_param(0))


def is_raised(native_id: int) -> bool:
    """Linux: whether the thread ``native_id`` runs in the real-time class."""
    return os.sched_getscheduler(native_id) & ~os.SCHED_RESET_ON_FORK in (os.SCHED_RR, os.SCHED_FIFO)


class BusyWatch:
    """Whether a raised thread keeps a core busy: busy more than ``limit`` of each of ``windows`` windows of
    ``window_s`` in a row.

    A real-time thread that never sleeps (each frame takes longer than the next one takes to come: a slow
    model on a small CPU) would keep a core from every ordinary thread; the pipeline steps it back down.
    """

    def __init__(self, window_s: float = BUSY_WINDOW_S, limit: float = BUSY_LIMIT, windows: int = BUSY_WINDOWS) -> None:
        self.window_s = window_s
        self.limit = limit
        self.windows = windows
        self._start: float | None = None
        self._busy = 0.0
        self._over = 0  # windows in a row over the limit

    def add(self, start_s: float, end_s: float) -> bool:
        """Count one busy stretch (monotonic seconds); True when a window just closed as the ``windows``-th in a
        row over the limit."""
        if self._start is None:
            self._start = start_s
        self._busy += end_s - start_s
        elapsed = end_s - self._start
        if elapsed < self.window_s:
            return False
        self._over = self._over + 1 if self._busy > self.limit * elapsed else 0
        self._start, self._busy = end_s, 0.0
        return self._over >= self.windows


_named = threading.local()


def name_current_thread() -> None:
    """Give the calling thread its Python name at the OS level too (once per thread, best effort), so
    ``top -H``, ``perf`` and the scheduler's trace show ``swapcam-inferen`` rather than ``python``.
    Linux keeps the first 15 characters."""
    name = threading.current_thread().name
    if getattr(_named, "name", None) == name:
        return
    _named.name = name
    try:
        if sys.platform.startswith("linux"):
            _libc().prctl(PR_SET_NAME, name.encode()[:15], 0, 0, 0)
        elif sys.platform == "darwin":
            _libsystem().pthread_setname_np(name.encode()[:63])
        elif sys.platform == "win32":
            kernel32 = _kernel32()
            kernel32.SetThreadDescription(kernel32.GetCurrentThread(), name)
    except (OSError, AttributeError) as exc:
        log.debug("could not name thread %s: %r", name, exc)


def as_helper(func: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """``func(*args, **kwargs)`` after lowering the calling thread (a thread target, or a pool's task)."""
    lower_current_thread()
    return func(*args, **kwargs)


def is_lowered(native_id: int) -> bool:
    """Linux: whether the thread ``native_id`` runs as a helper (SCHED_BATCH)."""
    return os.sched_getscheduler(native_id) & ~os.SCHED_RESET_ON_FORK == os.SCHED_BATCH


def lower_linux_thread(native_id: int) -> None:
    """Linux: lower the thread ``native_id`` (nice +HELPER_NICE_STEP, SCHED_BATCH), unless it already is."""
    if is_lowered(native_id):
        return
    # On Linux both the nice value and the policy belong to the thread, not the process.
    nice = os.getpriority(os.PRIO_PROCESS, native_id)
    os.setpriority(os.PRIO_PROCESS, native_id, min(MAX_NICE, nice + HELPER_NICE_STEP))
    # SCHED_BATCH: when it wakes up it does not preempt a running thread.
    os.sched_setscheduler(native_id, os.SCHED_BATCH, os.sched_param(0))


@functools.cache
def _libc() -> Any:
    """The C library with prctl typed (loaded once)."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl.argtypes = (ctypes.c_int, ctypes.c_char_p, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong)
    return libc


@functools.cache
def _kernel32() -> Any:
    """kernel32 with its thread calls typed (loaded once: helpers lower themselves for every pool task)."""
    kernel32 = ctypes.WinDLL("kernel32", use_last_error=True)  # type: ignore[attr-defined,unused-ignore]
    kernel32.GetCurrentThread.restype = ctypes.c_void_p
    kernel32.SetThreadPriority.argtypes = (ctypes.c_void_p, ctypes.c_int)
    if hasattr(kernel32, "SetThreadDescription"):  # Windows 10 1607 and later
        kernel32.SetThreadDescription.argtypes = (ctypes.c_void_p, ctypes.c_wchar_p)
    return kernel32


@functools.cache
def _libsystem() -> Any:
    """libSystem with pthread_set_qos_class_self_np and pthread_setname_np typed (loaded once)."""
    system = ctypes.CDLL("/usr/lib/libSystem.B.dylib")
    system.pthread_set_qos_class_self_np.argtypes = (ctypes.c_uint, ctypes.c_int)
    system.pthread_setname_np.argtypes = (ctypes.c_char_p,)
    return system
