"""What every swapper provides."""

from __future__ import annotations

from typing import Protocol

import numpy as np

from realtime.faces.types import Face
from realtime.frame import Frame


class Swapper(Protocol):
    """Puts the source face onto target faces.

    ``prepare`` runs once per source photo (with its analysed face); ``swap``
    runs per target face and edits ``image`` in place, touching only a
    face-sized region. ``frame`` (may be None outside the pipeline) lets it
    time its sub-stages with ``frame.stage(...)``.
    """

    name: str

    def prepare(self, source_image: np.ndarray, source_face: Face) -> None: ...

    def swap(self, image: np.ndarray, face: Face, frame: Frame | None = None) -> None: ...
