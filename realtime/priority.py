"""How the system sees swapcam's threads: helper threads yield to the frame threads, and every
thread carries its name at the OS level (so a profiler or a scheduler trace can tell them apart).

The capture, inference and output threads carry every frame. The panel's server and its preview
encoding, and the once-a-second face check, do work that no frame waits for. On a machine whose
cores are busy (two cores, a browser showing the panel), a helper that wakes up can take a core from
the inference thread, and that frame is late. The helpers are a small share of what competes there
(the browser is most of it): the inference thread's run-queue wait while a browser watched was 0.71
vs 1.09 ms a frame with the helpers lowered vs not in one run, 0.91 vs 0.96 in another
(tools/bench_panel.py --helpers low,normal; docs/notes/panel.md). Lowering a thread needs no
privilege on any of the three systems; raising one would, so the frame threads keep the priority
they were started with.
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
PR_SET_NAME = 15  # prctl: name the calling thread
T = TypeVar("T")


def lower_current_thread() -> bool:
    """Give the calling thread a lower priority than the frame threads; True when the system took it.

    Idempotent: a thread already lowered stays where it is. Best effort: where the system refuses,
    the thread keeps its priority and the reason is logged at debug level.
    """
    name_current_thread()
    try:
        if sys.platform.startswith("linux"):
            return _lower_linux()
        if sys.platform == "win32":
            return _lower_windows()
        if sys.platform == "darwin":
            return _lower_macos()
    except (OSError, AttributeError, ValueError) as exc:
        log.debug("could not lower the priority of thread %s: %r", threading.current_thread().name, exc)
    return False


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
    return os.sched_getscheduler(native_id) == os.SCHED_BATCH


def lower_linux_thread(native_id: int) -> None:
    """Linux: lower the thread ``native_id`` (nice +HELPER_NICE_STEP, SCHED_BATCH), unless it already is."""
    if is_lowered(native_id):
        return
    # On Linux both the nice value and the policy belong to the thread, not the process.
    nice = os.getpriority(os.PRIO_PROCESS, native_id)
    os.setpriority(os.PRIO_PROCESS, native_id, min(MAX_NICE, nice + HELPER_NICE_STEP))
    # SCHED_BATCH: when it wakes up it does not preempt a running thread.
    os.sched_setscheduler(native_id, os.SCHED_BATCH, os.sched_param(0))


def _lower_linux() -> bool:
    lower_linux_thread(threading.get_native_id())
    return True


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


def _lower_windows() -> bool:
    kernel32 = _kernel32()
    return bool(kernel32.SetThreadPriority(kernel32.GetCurrentThread(), WINDOWS_BELOW_NORMAL))


@functools.cache
def _libsystem() -> Any:
    """libSystem with pthread_set_qos_class_self_np and pthread_setname_np typed (loaded once)."""
    system = ctypes.CDLL("/usr/lib/libSystem.B.dylib")
    system.pthread_set_qos_class_self_np.argtypes = (ctypes.c_uint, ctypes.c_int)
    system.pthread_setname_np.argtypes = (ctypes.c_char_p,)
    return system


def _lower_macos() -> bool:
    return int(_libsystem().pthread_set_qos_class_self_np(MACOS_QOS_UTILITY, 0)) == 0
