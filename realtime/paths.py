"""Where swapcam keeps what it fetches or builds by default: the user's cache folder.

A wheel install has no repository around it, so nothing is looked up next to
the package; ``$SWAPCAM_MODELS``/``--models`` and ``$SWAPCAM_ENGINES`` move the folders.
"""

from __future__ import annotations

from pathlib import Path

import platformdirs

APP_NAME = "swapcam"


def user_cache() -> Path:
    """swapcam's folder in the user's cache (``~/.cache/swapcam`` on Linux, ``~/Library/Caches/swapcam`` on
    macOS, ``%LOCALAPPDATA%\\swapcam\\Cache`` on Windows)."""
    return platformdirs.user_cache_path(APP_NAME, appauthor=False)
