"""tools/sched_waits.py: following one thread through a scheduler trace (a small hand-written one)."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tools"))
import sched_waits


def switch(cpu: int, at: float, prev: tuple[str, int], state: str, nxt: tuple[str, int]) -> str:
    return (f"  {prev[0]}-{prev[1]}  [{cpu:03d}] d..2. {at:.6f}: sched_switch: prev_comm={prev[0]} prev_pid={prev[1]} "
            f"prev_prio=120 prev_state={state} ==> next_comm={nxt[0]} next_pid={nxt[1]} next_prio=120")


def wakeup(cpu: int, at: float, task: tuple[str, int], target: int) -> str:
    return (f"  x-1  [{cpu:03d}] d..3. {at:.6f}: sched_wakeup: comm={task[0]} pid={task[1]} prio=120 "
            f"target_cpu={target:03d}")


IDLE = ("swapper/1", 0)
INFER = ("swapcam-inferen", 10)
RASTER = ("ThreadPoolForeg", 20)
CAPTURE = ("swapcam-capture", 11)

TRACE = [
    switch(0, 1.000, CAPTURE, "S", INFER),           # the inference thread runs on core 0
    switch(1, 1.000, CAPTURE, "S", IDLE),            # core 1 idles
    switch(0, 1.010, INFER, "R+", RASTER),           # preempted by the browser's raster thread...
    switch(1, 1.011, IDLE, "R", CAPTURE),            # core 1 busy 1 ms, then idle again
    switch(1, 1.012, CAPTURE, "S", IDLE),
    switch(0, 1.014, RASTER, "S", INFER),            # ...back after 4 ms, core 1 idle for 3 of them
    switch(0, 1.030, INFER, "S", IDLE),              # done with the frame, sleeps
    wakeup(1, 1.040, INFER, 0),                      # woken: on a core 0.5 ms later
    switch(0, 1.0405, IDLE, "R", INFER),
]


def test_a_wait_behind_a_preempting_thread_is_found_with_the_idle_core_beside_it() -> None:
    trace = sched_waits.parse(TRACE, "swapcam-inferen")
    assert [(round(w.ms, 1), w.cause, w.cpu) for w in trace.waits] == [
        (4.0, "preempted by ThreadPoolForeg", 0), (0.5, "woken", 0)]
    assert abs(sched_waits.idle_elsewhere(trace, trace.waits[0]) - 0.003) < 1e-9


def test_the_report_names_the_cause_and_what_ran_meanwhile() -> None:
    text = sched_waits.report(sched_waits.parse(TRACE, "swapcam-inferen"), over_ms=1.0)
    assert "2 waits for a core, 4.5 ms" in text and "1 over 1 ms, 4.0 ms" in text
    assert "another core sat idle during 3.0 ms of them (75 %)" in text
    assert "preempted by ThreadPoolForeg 1x" in text
    assert "ThreadPoolForeg 4.0" in text and "(idle) 3.0" in text and "swapcam-capture 1.0" in text


def test_a_thread_that_never_waited_gives_a_one_line_report() -> None:
    trace = sched_waits.parse(TRACE[:2], "swapcam-inferen")
    assert sched_waits.report(trace, over_ms=1.0).count("\n") == 0
