"""Sequence stamps as a witness of what reached the output, independent of the Frame object.

:class:`StampedSource` draws its own counter into every frame it reads and
records when it read it; :class:`StampProbe` is a null sink that decodes the
stamp of every frame written to it and records when. Comparing the two finds
repeats, reordering and frames that never arrived, whatever the counters say.
"""

from __future__ import annotations

from array import array
from collections.abc import Collection, Iterator, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from realtime.clock import now_ns
from realtime.frame import Frame
from realtime.sinks.base import Sink
from realtime.sources.base import Source
from realtime.stamp import CELL, COLS, ROWS, STAMP_HEIGHT, STAMP_WIDTH, draw_stamp, read_stamp

# Pipeline stages that are not processor sub-stages.
PIPELINE_STAGES = ("infer", "output")


class CaptureTimes(Mapping[int, int]):
    """stamp → monotonic ns, for stamps 0, 1, 2... in order: 8 bytes a frame (a dict takes ~100), so an
    hour-long soak stays flat. Stamps of frames too small to carry one are absent."""

    def __init__(self) -> None:
        self._ns = array("q")
        self._count = 0

    def record(self, seq: int, t_ns: int | None) -> None:
        """Record stamp ``seq`` (the next one) at ``t_ns``; None leaves it absent."""
        if seq != len(self._ns):
            raise ValueError(f"stamps are recorded in order: expected {len(self._ns)}, got {seq}")
        self._ns.append(-1 if t_ns is None else t_ns)
        self._count += t_ns is not None

    def __getitem__(self, seq: int) -> int:
        if not isinstance(seq, int) or not 0 <= seq < len(self._ns) or self._ns[seq] < 0:
            raise KeyError(seq)
        return self._ns[seq]

    def __iter__(self) -> Iterator[int]:
        return (seq for seq, t_ns in enumerate(self._ns) if t_ns >= 0)

    def __len__(self) -> int:
        return self._count


class StageSplits:
    """Per-stage milliseconds of many frames as compact arrays, stages in the order first seen."""

    def __init__(self) -> None:
        self.frames = 0
        self.ms: dict[str, array[float]] = {}

    def add(self, split: dict[str, float]) -> None:
        """One frame's split (see :func:`stage_split`)."""
        self.frames += 1
        for name, value in split.items():
            self.ms.setdefault(name, array("d")).append(value)

    def extend(self, other: StageSplits) -> None:
        """Add every frame of ``other``."""
        self.frames += other.frames
        for name, values in other.ms.items():
            self.ms.setdefault(name, array("d")).extend(values)

    def __len__(self) -> int:
        return self.frames


class StampedSource(Source):
    """Wraps a source: stamps each frame with its own counter and records when it was read.

    Every source kind (synthetic, file, camera) is stamped the same way, so a
    synthetic frame's own stamp is overwritten with the same number.
    ``captured_ns`` maps stamp → monotonic ns when the stamped frame was handed on.
    """

    def __init__(self, inner: Source) -> None:
        self.inner = inner
        self.name, self.width, self.height = inner.name, inner.width, inner.height
        self.fps, self.live = inner.fps, inner.live
        self.captured_ns = CaptureTimes()
        self._next = 0

    def read(self) -> np.ndarray:
        """The inner source's next frame, stamped with the next sequence number."""
        image = self.inner.read()
        if not image.flags.writeable:
            image = image.copy()
        seq = self._next
        self._next += 1
        if image.shape[0] >= STAMP_HEIGHT and image.shape[1] >= STAMP_WIDTH:
            draw_stamp(image, seq)
            # Timed after drawing (~0.1 ms), as the pipeline's own capture time is: stamping is the
            # benchmark's cost, not the pipeline's, and both latencies then start at the same point.
            self.captured_ns.record(seq, now_ns())
        else:
            self.captured_ns.record(seq, None)
        return image

    def reconnect(self) -> None:
        """Reopen the inner source after it lost its signal (if it can)."""
        reconnect = getattr(self.inner, "reconnect", None)
        if reconnect is not None:
            reconnect()

    def close(self) -> None:
        """Close the inner source."""
        self.inner.close()


class StampProbe(Sink):
    """A null sink that records, for every frame written to it, its stamp and when it arrived.

    To cost the output thread almost nothing (~2 µs, where decoding takes
    ~0.3 ms) it keeps only the middle pixel of each stamp cell and decodes them
    after the run: inside the pipeline frames are uncompressed, so the middle
    pixel is exact. ``splits`` holds each frame's stage split at its first emission.
    Everything is kept in flat arrays (~170 bytes a frame), so long soaks stay flat.
    """

    name = "stamp-probe"

    def __init__(self) -> None:
        self._cells = bytearray()  # _CELL_BYTES per write; zeros (an invalid stamp) for a frame too small
        self._times = array("q")
        self.splits = StageSplits()

    def write(self, frame: Frame) -> None:
        """Record the frame's stamp cells and, the first time it is written, its stage split."""
        now = now_ns()
        cells = frame.image[_MID:STAMP_HEIGHT:CELL, _MID:STAMP_WIDTH:CELL]
        self._cells += cells.tobytes() if cells.shape == _CELL_SHAPE else bytes(_CELL_BYTES)
        self._times.append(now)
        if frame.t_output == 0:  # the pipeline sets t_output after a frame's first emission
            self.splits.add(stage_split(frame, now))

    @property
    def seen(self) -> list[tuple[int | None, int]]:
        """(decoded stamp or None, monotonic ns) for every write, re-sends included."""
        cells = np.frombuffer(bytes(self._cells), np.uint8).reshape(-1, *_CELL_SHAPE)
        return [(_decode_cells(one), t_ns) for one, t_ns in zip(cells, self._times, strict=True)]

    def close(self) -> None:
        """Nothing to release."""


_MID = CELL // 2
_CELL_SHAPE = (ROWS, COLS, 3)
_CELL_BYTES = ROWS * COLS * 3  # all zero decodes to None: seq 0's check byte is not 0


def _decode_cells(cells: np.ndarray) -> int | None:
    """Decode the stamp from its cells' middle pixels (a corner smaller than a stamp gives None)."""
    if cells.shape[:2] != (ROWS, COLS):
        return None
    return read_stamp(np.repeat(np.repeat(cells, CELL, axis=0), CELL, axis=1))


def stage_split(frame: Frame, now_ns: int) -> dict[str, float]:
    """Milliseconds a frame spent in each stage up to ``now_ns``.

    ``queue_in``: capture to the start of inference (ring wait);
    ``infer``: the processor; ``queue_out``: end of inference until the
    measurement sink saw it (ring wait, output pacing, earlier sinks); plus any
    sub-stage the processor timed (detect, swap...).
    """
    split: dict[str, float] = {}
    infer = frame.stages.get("infer")
    if infer is not None:
        split["queue_in"] = (infer[0] - frame.t_capture) / 1e6
        split["infer"] = (infer[1] - infer[0]) / 1e6
        split["queue_out"] = (now_ns - infer[1]) / 1e6
    for name, (start, end) in frame.stages.items():
        if name not in PIPELINE_STAGES:
            split[name] = (end - start) / 1e6
    return split


@dataclass(frozen=True)
class StampCheck:
    """What the decoded stamps say about one run.

    ``repeats``: writes of a stamp already seen (re-sends); ``reordered``: new
    stamps older than one already seen; ``gaps``: captured stamps never seen at
    the output; ``foreign``: decoded stamps that were never captured.
    """

    writes: int = 0
    decoded: int = 0
    undecodable: int = 0
    unique: int = 0
    repeats: int = 0
    reordered: int = 0
    gaps: int = 0
    foreign: int = 0

    def __add__(self, other: StampCheck) -> StampCheck:
        return StampCheck(**{name: getattr(self, name) + getattr(other, name) for name in _CHECK_FIELDS})

    def as_dict(self) -> dict[str, int]:
        """Plain values for the JSON report."""
        return {name: getattr(self, name) for name in _CHECK_FIELDS}


_CHECK_FIELDS = tuple(StampCheck.__dataclass_fields__)


def check_stamps(seen: Sequence[int | None], captured: Collection[int] | None = None) -> StampCheck:
    """Count repeats, reordering and gaps in the stamps decoded at the output, in write order.

    ``captured``: every stamp the source produced; without it gaps are the
    numbers missing between the smallest and largest stamp seen.
    """
    seen_set: set[int] = set()
    repeats = reordered = undecodable = 0
    newest = -1
    for seq in seen:
        if seq is None:
            undecodable += 1
        elif seq in seen_set:
            repeats += 1
        else:
            if seq < newest:
                reordered += 1
            newest = max(newest, seq)
            seen_set.add(seq)
    if captured is None:
        expected = set(range(min(seen_set), max(seen_set) + 1)) if seen_set else set()
    else:
        expected = set(captured)
    return StampCheck(
        writes=len(seen), decoded=len(seen) - undecodable, undecodable=undecodable, unique=len(seen_set),
        repeats=repeats, reordered=reordered, gaps=len(expected - seen_set), foreign=len(seen_set - expected),
    )


def stamp_latencies(
    seen: Sequence[tuple[int | None, int]], captured_ns: Mapping[int, int]
) -> list[tuple[int, float]]:
    """(output ns, capture-to-output ms) for the first arrival of each captured stamp."""
    first: set[int] = set()
    result: list[tuple[int, float]] = []
    for seq, t_ns in seen:
        if seq is None or seq in first or seq not in captured_ns:
            continue
        first.add(seq)
        result.append((t_ns, (t_ns - captured_ns[seq]) / 1e6))
    return result


def disagreements(check: StampCheck, *, dropped: int, resent: int, output: int) -> list[str]:
    """Where the stamps and the pipeline's counters disagree, one sentence each (empty: they agree)."""
    found = []
    if check.gaps != dropped:
        found.append(f"stamps show {check.gaps} captured frames never output; the rings counted {dropped} drops")
    if check.repeats != resent:
        found.append(f"stamps show {check.repeats} repeated frames; the pipeline counted {resent} re-sends")
    if check.unique != output:
        found.append(f"stamps show {check.unique} distinct frames output; the pipeline counted {output}")
    if check.reordered:
        found.append(f"{check.reordered} frames arrived out of order")
    if check.undecodable:
        found.append(f"{check.undecodable} output frames had no readable stamp (the processor drew over it?)")
    if check.foreign:
        found.append(f"{check.foreign} stamps decoded that were never captured")
    return found
