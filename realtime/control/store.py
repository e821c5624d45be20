"""Where the panel keeps things between runs: the gallery and recordings (data folder), the last live
settings and a chosen panel token (config folder). platformdirs picks the folders per OS;
``SWAPCAM_DATA_DIR`` / ``SWAPCAM_CONFIG_DIR`` override them."""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

SETTINGS_FILE = "live.json"


@dataclass(frozen=True)
class Folders:
    """The config and data folders of one user."""

    config: Path
    data: Path

    @classmethod
    def default(cls) -> Folders:
        """The user's folders (platformdirs), or the ones the environment names."""
        import platformdirs

        config = os.environ.get("SWAPCAM_CONFIG_DIR") or platformdirs.user_config_dir("swapcam", appauthor=False)
        data = os.environ.get("SWAPCAM_DATA_DIR") or platformdirs.user_data_dir("swapcam", appauthor=False)
        return cls(config=Path(config), data=Path(data))

    @property
    def gallery(self) -> Path:
        """The face gallery's photos and index."""
        return self.data / "faces"

    @property
    def recordings(self) -> Path:
        """Where recordings started from the panel or the r hotkey go."""
        return self.data / "recordings"

    @property
    def settings(self) -> Path:
        """The saved live settings."""
        return self.config / SETTINGS_FILE


def load_saved(path: Path) -> dict[str, Any]:
    """The saved settings ({} when there are none or the file is unreadable, which is logged)."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as exc:
        log.warning("saved settings %s ignored: %s", path, exc)
        return {}
    return data if isinstance(data, dict) else {}


def save(path: Path, data: dict[str, Any]) -> None:
    """Write the settings atomically; a failure is logged, never raised (the run goes on)."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(json.dumps(data, indent=2, sort_keys=True), encoding="utf-8")
        if os.name == "posix":
            tmp.chmod(0o600)  # it may hold the panel token
        tmp.replace(path)
    except OSError as exc:
        log.warning("could not save settings to %s: %s", path, exc)
