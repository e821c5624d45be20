"""Fault injection for soak and chaos runs: failing source reads and processor exceptions."""

from __future__ import annotations

import random
from dataclasses import dataclass

import numpy as np

from realtime.clock import now_ns
from realtime.errors import UsageError
from realtime.frame import Frame
from realtime.processors import Processor
from realtime.sources.base import SignalLost, Source


@dataclass(frozen=True)
class ChaosConfig:
    """Probabilities per frame of a failed source read and of a processor exception."""

    source_fail_rate: float = 0.0
    processor_fail_rate: float = 0.0
    seed: int = 0

    def __post_init__(self) -> None:
        for rate in (self.source_fail_rate, self.processor_fail_rate):
            if not 0.0 <= rate <= 1.0:
                raise UsageError("E01", f"chaos rate {rate}", remedy="use rates between 0 and 1, e.g. source=0.02")

    @property
    def active(self) -> bool:
        """True when any fault is injected."""
        return self.source_fail_rate > 0 or self.processor_fail_rate > 0


def parse_chaos(text: str) -> ChaosConfig:
    """'source=0.02,processor=0.05[,seed=1]' → ChaosConfig."""
    values: dict[str, float] = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        key, _, value = part.partition("=")
        if key not in ("source", "processor", "seed"):
            raise UsageError("E01", f"--chaos {text!r}", remedy="use e.g. --chaos source=0.02,processor=0.05")
        try:
            values[key] = float(value)
        except ValueError as exc:
            raise UsageError("E01", f"--chaos {text!r}", remedy="use e.g. --chaos source=0.02,processor=0.05") from exc
    return ChaosConfig(source_fail_rate=values.get("source", 0.0),
                       processor_fail_rate=values.get("processor", 0.0), seed=int(values.get("seed", 0)))


class ChaosSource(Source):
    """Wraps a source; each read fails with SignalLost at the given rate.

    ``fault`` names the stats error counter the failures land in; ``last_injected_ns``
    is when the latest one was injected (0: none yet).
    """

    fault = "source"

    def __init__(self, source: Source, *, rate: float, seed: int = 0) -> None:
        self.inner = source
        self.rate = rate
        self.injected = 0
        self.last_injected_ns = 0
        self._rng = random.Random(seed)
        self.name, self.width, self.height = f"chaos({source.name})", source.width, source.height
        self.fps, self.live = source.fps, source.live

    def read(self) -> np.ndarray:
        """The inner source's frame, or an injected SignalLost."""
        if self._rng.random() < self.rate:
            self.injected += 1
            self.last_injected_ns = now_ns()
            raise SignalLost("injected read failure (--chaos)")
        return self.inner.read()

    def reconnect(self) -> None:
        """Nothing to reopen: the inner source is fine."""

    def close(self) -> None:
        """Close the inner source."""
        self.inner.close()


class InjectedFault(RuntimeError):
    """The exception ChaosProcessor raises."""


class ChaosProcessor:
    """Wraps a processor; each frame raises InjectedFault at the given rate (see ChaosSource for the
    ``fault`` and ``last_injected_ns`` attributes)."""

    fault = "processor"

    def __init__(self, processor: Processor, *, rate: float, seed: int = 0) -> None:
        self.inner = processor
        self.rate = rate
        self.injected = 0
        self.last_injected_ns = 0
        self.name = f"chaos({processor.name})"
        self._rng = random.Random(seed + 1)

    def process(self, frame: Frame) -> np.ndarray:
        """The inner processor's result, or an injected exception."""
        if self._rng.random() < self.rate:
            self.injected += 1
            self.last_injected_ns = now_ns()
            raise InjectedFault(f"injected processor failure on frame {frame.seq} (--chaos)")
        return self.inner.process(frame)

    def close(self) -> None:
        """Close the inner processor."""
        self.inner.close()
