"""A machine-readable sequence-number stamp drawn in a frame's top-left corner.

32 cells (8 columns × 4 rows) of ``CELL`` px, black or white: 24 bits of
sequence number and an 8-bit check. Cells are big enough to survive H.264 at
streaming bitrates and scaling by a virtual camera; the check rejects frames
whose corner was not stamped (or was overwritten).
"""

from __future__ import annotations

import numpy as np

CELL = 12
COLS, ROWS = 8, 4
BITS = COLS * ROWS
SEQ_BITS = 24
STAMP_WIDTH, STAMP_HEIGHT = COLS * CELL, ROWS * CELL
_DARK, _LIGHT = 16, 235


def _check(seq: int) -> int:
    b0, b1, b2 = seq & 0xFF, (seq >> 8) & 0xFF, (seq >> 16) & 0xFF
    return ((b0 * 7) ^ (b1 * 13) ^ (b2 * 29) ^ 0xA5) & 0xFF


def _bits(seq: int) -> np.ndarray:
    word = (seq & 0xFFFFFF) | (_check(seq & 0xFFFFFF) << SEQ_BITS)
    return ((word >> np.arange(BITS)) & 1).astype(bool)


def draw_stamp(image: np.ndarray, seq: int) -> None:
    """Draw ``seq`` (mod 2**24) into the top-left corner of a BGR image, in place.

    Images smaller than the stamp (96×48 px) are left unstamped.
    """
    if image.shape[0] < STAMP_HEIGHT or image.shape[1] < STAMP_WIDTH:
        return
    cells = np.where(_bits(seq), _LIGHT, _DARK).astype(np.uint8).reshape(ROWS, COLS)
    block = np.repeat(np.repeat(cells, CELL, axis=0), CELL, axis=1)
    image[:STAMP_HEIGHT, :STAMP_WIDTH, :] = block[:, :, None]


def read_stamp(image: np.ndarray) -> int | None:
    """Decode the stamp; None when the corner holds no valid stamp."""
    if image.shape[0] < STAMP_HEIGHT or image.shape[1] < STAMP_WIDTH:
        return None
    corner = image[:STAMP_HEIGHT, :STAMP_WIDTH]
    gray = corner.mean(axis=2) if corner.ndim == 3 else corner
    # Sample the middle half of each cell: edges blur under compression and scaling.
    q = CELL // 4
    cells = gray.reshape(ROWS, CELL, COLS, CELL)[:, q : CELL - q, :, q : CELL - q].mean(axis=(1, 3))
    bits = (cells.reshape(-1) > 128).astype(np.int64)
    word = int((bits << np.arange(BITS)).sum())
    seq, check = word & 0xFFFFFF, word >> SEQ_BITS
    return seq if check == _check(seq) else None
