"""Helper threads (panel, face check) are lowered below the frame threads; the frame threads are not."""

from __future__ import annotations

import os
import sys
import threading

import numpy as np
import pytest

from realtime.faces.background_check import BackgroundCheck
from realtime.priority import (
    HELPER_NICE_STEP,
    MAX_NICE,
    as_helper,
    is_lowered,
    lower_current_thread,
    name_current_thread,
)

LINUX_ONLY = pytest.mark.skipif(not sys.platform.startswith("linux"),
                                reason="checks the Linux nice value and policy (Windows/macOS: the call is tested)")


def in_new_thread(func):  # type: ignore[no-untyped-def]
    """``func()``'s result, called on a fresh thread."""
    box: list[object] = []
    thread = threading.Thread(target=lambda: box.append(func()))
    thread.start()
    thread.join(10)
    return box[0]


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
