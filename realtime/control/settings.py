"""The live settings of a running swap: a frozen snapshot per change, validated in one place.

The inference thread reads :attr:`LiveSettings.current` once per frame (one attribute
read, no lock); changes are validated, prepared and then published as a new snapshot.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, fields, replace
from typing import Any, cast

from realtime.errors import UsageError

SWAPPERS = ("mesh", "inswapper")


@dataclass(frozen=True)
class LiveOptions:
    """What a control surface may change while the pipeline runs (the API's setting keys).

    ``face``: gallery id of the live face; ``swap``: False passes frames through untouched;
    ``color_match``: strength of the recolouring to the target's skin, 0 (off) to 1 (full).
    """

    swap: bool = True
    face: str | None = None
    keep_mouth: bool = True
    keep_eyes: bool = False
    max_faces: int = 1
    face_index: int | None = None
    feather: float = 0.04
    color_match: float = 1.0
    swapper: str = "mesh"
    enhancer: bool = False
    enhancer_blend: float = 0.8

    def __post_init__(self) -> None:
        checks: tuple[tuple[bool, str, str], ...] = (
            (1 <= self.max_faces <= 16, f"max_faces {self.max_faces}", "use 1 to 16 faces"),
            (self.face_index is None or self.face_index >= 0, f"face_index {self.face_index}",
             "use null (the largest face) or 0 or more"),
            (0.0 <= self.feather <= 0.5, f"feather {self.feather}", "use a fraction of the face from 0 to 0.5"),
            (0.0 <= self.color_match <= 1.0, f"color_match {self.color_match}", "use a strength from 0 to 1"),
            (self.swapper in SWAPPERS, f"swapper {self.swapper!r}", "use mesh or inswapper"),
            (0.0 <= self.enhancer_blend <= 1.0, f"enhancer_blend {self.enhancer_blend}",
             "use a weight from 0 to 1"),
        )
        for ok, detail, remedy in checks:
            if not ok:
                raise UsageError("E01", detail, remedy=remedy)

    def to_json(self) -> dict[str, Any]:
        """Plain values, as the API returns them."""
        return asdict(self)


_TYPES: dict[str, tuple[type, ...]] = {
    "swap": (bool,), "face": (str, type(None)), "keep_mouth": (bool,), "keep_eyes": (bool,),
    "max_faces": (int,), "face_index": (int, type(None)), "feather": (float, int), "color_match": (float, int),
    "swapper": (str,), "enhancer": (bool,), "enhancer_blend": (float, int),
}
KEYS = tuple(f.name for f in fields(LiveOptions))


def apply_changes(options: LiveOptions, changes: Mapping[str, Any]) -> LiveOptions:
    """``options`` with ``changes`` applied; E01 for an unknown key, a wrong type or a value out of range."""
    if not isinstance(changes, Mapping):
        raise UsageError("E01", "settings must be a JSON object", remedy='send e.g. {"swap": false}')
    unknown = sorted(set(changes) - set(KEYS))
    if unknown:
        raise UsageError("E01", f"unknown setting {unknown[0]!r}", remedy=f"use one of: {', '.join(KEYS)}")
    values: dict[str, Any] = {}
    for key, value in changes.items():
        # bool is an int in Python: a number key given true/false is a mistake, not 1/0.
        wrong_bool = isinstance(value, bool) and bool not in _TYPES[key]
        if wrong_bool or not isinstance(value, _TYPES[key]):
            kinds = "/".join("null" if t is type(None) else t.__name__ for t in _TYPES[key])
            raise UsageError("E01", f"{key} {value!r}", remedy=f"give {key} as {kinds}")
        values[key] = float(cast(float, value)) if float in _TYPES[key] else value
    return replace(options, **values)


def restore(saved: Mapping[str, Any], base: LiveOptions) -> LiveOptions:
    """``base`` with the saved values that are still valid (a stale or broken entry is skipped)."""
    options = base
    for key, value in saved.items():
        try:
            options = apply_changes(options, {key: value})
        except UsageError:
            continue
    return options


@dataclass(frozen=True)
class LiveState:
    """One published snapshot: the options and what the inference thread needs to apply them."""

    options: LiveOptions
    swapper: Any = None  # the swapper prepared with the live face and options; None: nothing to swap with
    version: int = 0  # counts the swappers published (a face switch or an option that needs a new one)


class LiveSettings:
    """The thread-safe holder of the live state.

    Readers take :attr:`current` (no lock). Writers are serialised by a lock; ``change`` runs
    ``prepare`` (the slow part: loading a face, building a swapper) while holding only that
    writers' lock, then publishes the result with one assignment.
    """

    def __init__(self, state: LiveState) -> None:
        self._state = state
        self._write_lock = threading.Lock()
        self._listeners: list[Callable[[LiveState], None]] = []

    @property
    def current(self) -> LiveState:
        """The latest published state."""
        return self._state

    def change(self, changes: Mapping[str, Any],
               prepare: Callable[[LiveState, LiveOptions], LiveState]) -> LiveState:
        """Validate ``changes``, let ``prepare`` build the new state from the old one, publish it.

        If validation or ``prepare`` raises, the current state stays in place.
        """
        with self._write_lock:
            old = self._state
            options = apply_changes(old.options, changes)
            new = prepare(old, options)
            self._state = new
            listeners = list(self._listeners)
        for listener in listeners:
            listener(new)
        return new

    def subscribe(self, listener: Callable[[LiveState], None]) -> None:
        """Call ``listener(state)`` after each published change (e.g. to save the settings)."""
        with self._write_lock:
            self._listeners.append(listener)
