"""Test media for the runtime tests: stamped videos written with PyAV, and reading them back."""

from __future__ import annotations

import socket
from fractions import Fraction
from pathlib import Path

import av

from realtime.sources.synthetic import SyntheticSource
from realtime.stamp import read_stamp


def write_stamped_video(path: Path, *, frames: int, width: int = 320, height: int = 240, fps: int = 30,
                        gop: int | None = None) -> Path:
    """An H.264 file whose frame i carries stamp i, timestamps at exactly 1/fps."""
    source = SyntheticSource(width=width, height=height, fps=fps, paced=False)
    with av.open(str(path), mode="w") as container:
        stream = container.add_stream("libx264", rate=Fraction(fps))
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.codec_context.options = {"preset": "ultrafast", "crf": "18"}
        if gop:
            stream.codec_context.gop_size = gop
        for _ in range(frames):
            container.mux(stream.encode(av.VideoFrame.from_ndarray(source.read(), format="bgr24")))
        container.mux(stream.encode(None))
    return path


def read_video(path: Path, *, until_damage: bool = False) -> tuple[list[int | None], list[float]]:
    """(stamps, presentation times in s) of every frame of a video file.

    ``until_damage``: stop quietly at the first undecodable packet (a file cut off by a kill).
    """
    stamps: list[int | None] = []
    times: list[float] = []
    with av.open(str(path)) as container:
        try:
            for frame in container.decode(video=0):
                stamps.append(read_stamp(frame.to_ndarray(format="bgr24")))
                times.append(float(frame.time or 0.0))
        except av.FFmpegError:
            if not until_damage:
                raise
    return stamps, times


def free_tcp_ports(count: int) -> list[int]:
    """``count`` distinct TCP ports on 127.0.0.1 that nothing uses right now."""
    sockets = [socket.socket() for _ in range(count)]
    try:
        for sock in sockets:
            sock.bind(("127.0.0.1", 0))
        return [int(sock.getsockname()[1]) for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


def free_udp_port() -> int:
    """A UDP port on 127.0.0.1 that nothing uses right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])
