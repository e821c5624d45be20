"""Open the source a SourceConfig describes."""

from __future__ import annotations

from realtime.config import SourceConfig
from realtime.sources.base import Source


def open_source(config: SourceConfig) -> Source:
    """Open a camera, file, URL, image or synthetic source (raises coded errors)."""
    if config.kind == "synthetic":
        from realtime.sources.synthetic import SyntheticSource

        return SyntheticSource(width=config.width, height=config.height, fps=config.fps)
    if config.kind == "image":
        from realtime.sources.image import ImageSource

        return ImageSource(config.location, width=config.width, height=config.height, fps=config.fps)
    if config.kind == "camera":
        from realtime.sources.camera import CameraSource

        return CameraSource(config.location, width=config.width, height=config.height, fps=config.fps)
    from realtime.sources.video import VideoSource

    return VideoSource(
        config.location,
        loop=config.loop,
        realtime=config.realtime if config.kind == "file" else True,
        network=config.kind == "url",
    )
