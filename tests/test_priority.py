"""Frame threads go ahead of ordinary threads where the system allows it (and step back down when told);
helper threads (panel, face check) are lowered below them; every thread carries its name at the OS level."""

from __future__ import annotations

import ctypes
import os
import resource
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest
from platform_helpers import NEEDS_REALTIME, in_new_thread

from realtime.faces.background_check import BackgroundCheck
from realtime.priority import (
    FRAME_RT_PRIORITY,
    HELPER_NICE_STEP,
    MAX_NICE,
    BusyWatch,
    as_helper,
    frame_threads_can_be_raised,
    is_lowered,
    is_raised,
    lower_current_thread,
    name_current_thread,
    raise_current_thread,
    restore_current_thread,
)

LINUX_ONLY = pytest.mark.skipif(not sys.platform.startswith("linux"),
                                reason="checks the Linux nice value and policy (Windows/macOS: the call is tested)")


def test_a_thread_can_lower_itself_on_every_supported_system() -> None:
    assert in_new_thread(lower_current_thread) is True


@LINUX_ONLY
def test_lowering_sets_batch_and_a_higher_nice_once_and_leaves_other_threads_alone() -> None:
    def lower_twice() -> tuple[int, int, int, bool]:
        tid = threading.get_native_id()
        before = os.getpriority(os.PRIO_PROCESS, tid)
        lower_current_thread()
        once = os.getpriority(os.PRIO_PROCESS, tid)
        lower_current_thread()
        return before, once, os.getpriority(os.PRIO_PROCESS, tid), is_lowered(tid)

    before, once, twice, lowered = in_new_thread(lower_twice)
    assert lowered
    assert once == min(MAX_NICE, before + HELPER_NICE_STEP)
    assert twice == once  # idempotent: a helper is lowered once
    main = threading.main_thread().native_id
    assert not is_lowered(main) and os.getpriority(os.PRIO_PROCESS, main) == before


@LINUX_ONLY
def test_as_helper_runs_the_function_lowered() -> None:
    assert in_new_thread(lambda: as_helper(lambda: is_lowered(threading.get_native_id())))


@LINUX_ONLY
def test_the_background_face_check_runs_lowered() -> None:
    seen: list[bool] = []

    def detect(_image: np.ndarray) -> list:  # type: ignore[type-arg]
        seen.append(is_lowered(threading.get_native_id()))
        return []

    check = BackgroundCheck(detect)
    try:
        assert check.submit(np.zeros((8, 8, 3), np.uint8))
        assert check.wait_idle(10)
    finally:
        check.close()
    assert seen == [True]
    assert not is_lowered(threading.get_native_id())


@LINUX_ONLY
def test_a_lowered_helper_also_carries_its_name_at_the_os_level() -> None:
    def comm() -> str:
        lower_current_thread()
        with open(f"/proc/self/task/{threading.get_native_id()}/comm") as file:
            return file.read().strip()

    box: list[str] = []
    thread = threading.Thread(target=lambda: box.append(comm()), name="swapcam-face-check")
    thread.start()
    thread.join(10)
    assert box == ["swapcam-face-ch"]


def test_naming_a_thread_works_on_every_supported_system() -> None:
    in_new_thread(name_current_thread)  # best effort: never raises


@NEEDS_REALTIME
def test_a_raised_thread_runs_round_robin_real_time_and_restores_to_ordinary() -> None:
    def raise_then_restore() -> tuple[int, int, bool, int]:
        tid = threading.get_native_id()
        raise_current_thread()
        policy, priority = os.sched_getscheduler(tid), os.sched_getparam(tid).sched_priority
        restored = restore_current_thread()
        return policy, priority, restored, os.sched_getscheduler(tid)

    policy, priority, restored, after = in_new_thread(raise_then_restore)
    assert policy == os.SCHED_RR | os.SCHED_RESET_ON_FORK and priority == FRAME_RT_PRIORITY
    assert restored and after & ~os.SCHED_RESET_ON_FORK == os.SCHED_OTHER
    assert not is_raised(threading.get_native_id())  # the caller's thread is left alone


@NEEDS_REALTIME
def test_threads_a_raised_thread_starts_begin_as_ordinary_threads() -> None:
    def start_a_worker() -> tuple[bool, bool]:
        raise_current_thread()
        worker = in_new_thread(lambda: is_raised(threading.get_native_id()))
        return is_raised(threading.get_native_id()), worker

    assert in_new_thread(start_a_worker) == (True, False)


PROBE = """
import threading
from realtime.priority import is_raised, raise_current_thread, restore_current_thread
def probe():
    tid = threading.get_native_id()
    print(raise_current_thread(), is_raised(tid), restore_current_thread(), is_raised(tid))
thread = threading.Thread(target=probe)
thread.start()
thread.join()
"""
CAP_SETPCAP, CAP_SYS_NICE, CAP_SYS_RESOURCE, PR_CAPBSET_DROP = 8, 23, 24, 24


def probe_without_cap_sys_nice(rtprio: int) -> str:
    """PROBE's output from a child without CAP_SYS_NICE (dropped from its bounding set before exec) and
    ``ulimit -r`` = ``rtprio``: what a user account gets."""
    def drop() -> None:
        resource.setrlimit(resource.RLIMIT_RTPRIO, (rtprio, rtprio))
        if ctypes.CDLL(None, use_errno=True).prctl(PR_CAPBSET_DROP, CAP_SYS_NICE, 0, 0, 0) != 0:
            raise OSError(ctypes.get_errno(), "PR_CAPBSET_DROP")

    done = subprocess.run([sys.executable, "-c", PROBE], preexec_fn=drop, capture_output=True, text=True,
                          cwd=Path(__file__).parents[1], timeout=60, check=True)
    return done.stdout.strip()


def has_capability(bit: int) -> bool:
    """Linux: whether this process holds capability ``bit`` in its effective set."""
    with open("/proc/self/status") as status:
        effective = int(status.read().split("CapEff:")[1].split()[0], 16)
    return bool(effective >> bit & 1)


ROOT_ONLY = pytest.mark.skipif(
    not sys.platform.startswith("linux") or os.geteuid() != 0 or not has_capability(CAP_SETPCAP),
    reason="drops CAP_SYS_NICE from a child process (Linux, root with CAP_SETPCAP)")


@LINUX_ONLY
def test_the_probe_agrees_with_the_kernel() -> None:
    def kernel_grants() -> bool:
        try:
            os.sched_setscheduler(0, os.SCHED_RR, os.sched_param(FRAME_RT_PRIORITY))
        except PermissionError:
            return False
        os.sched_setscheduler(0, os.SCHED_OTHER, os.sched_param(0))
        return True

    assert frame_threads_can_be_raised() == in_new_thread(kernel_grants)


@ROOT_ONLY
def test_without_permission_a_frame_thread_keeps_its_priority_and_nothing_raises() -> None:
    assert probe_without_cap_sys_nice(0) == "False False True False"


def may_set_rtprio_limit(limit: int) -> bool:
    """Whether this process may set ``ulimit -r`` to ``limit`` (within its hard limit, or CAP_SYS_RESOURCE)."""
    hard = resource.getrlimit(resource.RLIMIT_RTPRIO)[1]
    return hard == resource.RLIM_INFINITY or hard >= limit or has_capability(CAP_SYS_RESOURCE)


@ROOT_ONLY
@pytest.mark.skipif(sys.platform.startswith("linux") and not may_set_rtprio_limit(FRAME_RT_PRIORITY),
                    reason="this root may not raise ulimit -r (no CAP_SYS_RESOURCE)")
def test_a_user_with_an_rtprio_limit_gets_the_real_time_class_and_can_step_back_down() -> None:
    assert probe_without_cap_sys_nice(FRAME_RT_PRIORITY) == "True True True False"


def test_busy_watch_speaks_after_whole_windows_in_a_row_over_the_limit() -> None:
    watch = BusyWatch(window_s=1.0, limit=0.9, windows=2)
    assert not watch.add(0.0, 0.95)  # busy, but the window is not over yet
    assert not watch.add(0.95, 1.9)  # one window over the limit (1.9 s busy of 1.9 s): not yet
    assert watch.add(1.9, 3.0)  # the second in a row


def test_busy_watch_forgives_one_slow_frame() -> None:
    watch = BusyWatch(window_s=1.0, limit=0.9, windows=2)
    assert not watch.add(0.0, 3.0)  # a 3 s warm-up: one window over the limit
    frames = [(3.0 + t / 30, 3.0 + t / 30 + 0.020) for t in range(150)]  # then 20 ms of work every 33 ms
    assert not any(watch.add(start, end) for start, end in frames)


def test_busy_watch_stays_quiet_for_a_thread_that_sleeps_between_frames() -> None:
    watch = BusyWatch(window_s=1.0, limit=0.9, windows=1)
    frames = [(t / 30, t / 30 + 0.020) for t in range(90)]  # 20 ms of work every 33 ms
    assert not any(watch.add(start, end) for start, end in frames)


def test_raising_and_restoring_never_raise_on_any_supported_system() -> None:
    def both() -> tuple[bool, bool]:
        return raise_current_thread(), restore_current_thread()

    raised, restored = in_new_thread(both)
    assert isinstance(raised, bool) and restored is True
