"""Why a thread waited for a core: the kernel's scheduler trace around one thread (Linux, root).

A frame gets late while another program runs beside swapcam; the question is whether the inference
thread worked longer or waited for a core, and if it waited, behind whom and with the other cores
busy or idle. This records the scheduler's switch, wake-up and migration events for --seconds
through tracefs, then follows the thread named --thread (swapcam names its threads at the OS level:
``swapcam-inferen`` is the inference thread, the kernel keeping 15 characters):

- each time it was runnable but not running (preempted, or woken and not yet on a core);
- for the waits over --over ms: their count and total, what took its core, what ran on every core
  meanwhile, and for how much of that time another core sat idle.

    sudo python tools/sched_waits.py --seconds 6        # while `swapcam run ... --panel` runs
    python tools/sched_waits.py --from trace.txt        # a trace saved before (the tracefs text)
"""

from __future__ import annotations

import argparse
import bisect
import itertools
import re
import sys
import time
from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

TRACEFS = Path("/sys/kernel/tracing")
EVENTS = ("sched_switch", "sched_wakeup", "sched_migrate_task")
IDLE = 0  # the pid of each core's idle task

SWITCH = re.compile(r"\[(\d+)\].*?\s(\d+\.\d+): sched_switch: prev_comm=(.*?) prev_pid=(\d+) prev_prio=\d+ "
                    r"prev_state=(\S+) ==> next_comm=(.*?) next_pid=(\d+)")
WAKEUP = re.compile(r"\s(\d+\.\d+): sched_wakeup: comm=(.*?) pid=(\d+) prio=\d+ target_cpu=(\d+)")
MIGRATE = re.compile(r"\s(\d+\.\d+): sched_migrate_task: comm=(.*?) pid=(\d+) prio=\d+ orig_cpu=\d+ "
                     r"dest_cpu=(\d+)")


@dataclass
class Wait:
    """One stretch in which the thread was runnable but not running."""

    start: float
    cpu: int  # the core whose queue it waited on (the last one, after any migration)
    cause: str  # "preempted by COMM" or "woken"
    end: float = 0.0

    @property
    def ms(self) -> float:
        return (self.end - self.start) * 1e3


@dataclass
class Trace:
    """The waits of the followed thread, and what ran on each core when."""

    waits: list[Wait] = field(default_factory=list)
    runs: dict[int, list[tuple[float, int]]] = field(default_factory=lambda: defaultdict(list))  # cpu: (from, pid)
    names: dict[int, str] = field(default_factory=dict)
    first: float = float("inf")  # the trace's first and last switch
    last: float = 0.0

    def on_core(self, cpu: int, start: float, end: float) -> dict[int, float]:
        """Seconds each pid ran on ``cpu`` between ``start`` and ``end``."""
        spent: dict[int, float] = defaultdict(float)
        runs = self.runs[cpu]
        first = max(0, bisect.bisect_right(runs, (start, float("inf"))) - 1)  # the run under way at start
        for index in range(first, len(runs)):
            since, pid = runs[index]
            if since >= end:
                break
            until = runs[index + 1][0] if index + 1 < len(runs) else end
            overlap = min(until, end) - max(since, start)
            if overlap > 0:
                spent[pid] += overlap
        return spent


def parse(lines: Iterable[str], thread: str) -> Trace:
    """Follow every task named ``thread`` through the trace text (tracefs' ``trace`` file)."""
    trace, waiting, followed = Trace(), {}, set()
    for line in lines:
        if match := SWITCH.search(line):
            cpu, at, prev, state, nxt = int(match[1]), float(match[2]), int(match[4]), match[5], int(match[7])
            trace.names[prev], trace.names[nxt] = match[3], match[6]
            trace.runs[cpu].append((at, nxt))
            trace.first, trace.last = min(trace.first, at), max(trace.last, at)
            if match[3] == thread:
                followed.add(prev)
            if prev in followed and state.startswith("R"):
                waiting[prev] = Wait(at, cpu, f"preempted by {match[6]}")
            if nxt in waiting:
                wait = waiting.pop(nxt)
                wait.end = at
                trace.waits.append(wait)
        elif (match := WAKEUP.search(line)) and (match[2] == thread or int(match[3]) in followed):
            followed.add(int(match[3]))
            waiting[int(match[3])] = Wait(float(match[1]), int(match[4]), "woken")
        elif (match := MIGRATE.search(line)) and int(match[3]) in waiting:
            waiting[int(match[3])].cpu = int(match[4])
    return trace


def idle_elsewhere(trace: Trace, wait: Wait) -> float:
    """Seconds of ``wait`` during which at least one other core ran its idle task."""
    others = [cpu for cpu in trace.runs if cpu != wait.cpu]
    edges = sorted({wait.start, wait.end} | {since for cpu in others for since, _ in trace.runs[cpu]
                                             if wait.start < since < wait.end})
    idle = 0.0
    for start, end in itertools.pairwise(edges):
        if any(trace.on_core(cpu, start, end).get(IDLE, 0.0) > 0 for cpu in others):
            idle += end - start
    return idle


def report(trace: Trace, over_ms: float) -> str:
    """The summary printed for a trace."""
    seconds = max(0.0, trace.last - trace.first)
    long = [w for w in trace.waits if w.ms > over_ms]
    lines = [f"{len(trace.waits)} waits for a core, {sum(w.ms for w in trace.waits):.1f} ms in {seconds:.1f} s; "
             f"{len(long)} over {over_ms:g} ms, {sum(w.ms for w in long):.1f} ms"]
    if not long:
        return "\n".join(lines)
    lengths = sorted(w.ms for w in long)
    lines.append(f"those waits: median {lengths[len(lengths) // 2]:.1f} ms, longest {lengths[-1]:.1f} ms")
    idle = sum(idle_elsewhere(trace, w) for w in long) * 1e3
    lines.append(f"another core sat idle during {idle:.1f} ms of them ({100 * idle / sum(lengths):.0f} %)")
    causes = Counter(w.cause for w in long)
    lines.append("cause: " + ", ".join(f"{cause} {n}x" for cause, n in causes.most_common(8)))
    spent: dict[str, float] = defaultdict(float)
    for wait in long:
        for cpu in trace.runs:
            for pid, secs in trace.on_core(cpu, wait.start, wait.end).items():
                spent["(idle)" if pid == IDLE else trace.names.get(pid, str(pid))] += secs
    busiest = sorted(spent.items(), key=lambda item: -item[1])[:10]
    lines.append("meanwhile on the cores (ms): " + ", ".join(f"{name} {secs * 1e3:.1f}" for name, secs in busiest))
    return "\n".join(lines)


def record(seconds: float) -> list[str]:
    """The scheduler events of the next ``seconds`` (root; mounts nothing, needs tracefs mounted)."""
    (TRACEFS / "trace").write_text("")
    (TRACEFS / "buffer_size_kb").write_text("16384")
    try:
        for event in EVENTS:
            (TRACEFS / "events" / "sched" / event / "enable").write_text("1")
        time.sleep(seconds)
    finally:
        for event in EVENTS:
            (TRACEFS / "events" / "sched" / event / "enable").write_text("0")
    return (TRACEFS / "trace").read_text().splitlines()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=6.0)
    parser.add_argument("--thread", default="swapcam-inferen", help="the OS name of the thread to follow")
    parser.add_argument("--over", type=float, default=1.0, metavar="MS", help="waits longer than this are examined")
    parser.add_argument("--from", dest="source", type=Path, help="read a saved trace instead of recording one")
    parser.add_argument("--save", type=Path, help="also write the recorded trace here")
    args = parser.parse_args()
    if args.source is not None:
        lines = args.source.read_text().splitlines()
    else:
        if not (TRACEFS / "events" / "sched").is_dir():
            print(f"{TRACEFS} is not mounted or not readable: run as root "
                  f"(mount -t tracefs nodev {TRACEFS})", file=sys.stderr)
            return 2
        lines = record(args.seconds)
        if args.save is not None:
            args.save.write_text("\n".join(lines) + "\n")
    trace = parse(lines, args.thread)
    if not any(name == args.thread for name in trace.names.values()):
        print(f"no thread named {args.thread!r} ran during the trace (is swapcam running?)", file=sys.stderr)
        return 1
    print(report(trace, args.over))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
