"""Offline face swap of a whole video file: every frame, then the original audio muxed back in.

The frames go through the same pipeline as a live run, with the file source
in "every frame" mode (blocking rings, nothing dropped). The video is written
to a temporary file next to the output; if the input has an audio track, its
packets are copied (or, when the container cannot hold that codec, re-encoded
to AAC) into the final file alongside the new video.
"""

from __future__ import annotations

import heapq
import logging
import os
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TextIO

import av

from realtime.clock import now_s
from realtime.config import PipelineConfig
from realtime.errors import InputError, OutputError, UsageError
from realtime.processors import Processor
from realtime.session import open_pipeline, spec_opener
from realtime.sinks.factory import SinkSpec
from realtime.sinks.file import CONTAINERS
from realtime.stats import Stats

log = logging.getLogger(__name__)

VIDEO_SUFFIXES = CONTAINERS  # the file sink's containers: .mp4, .m4v, .mov, .mkv
# Audio codecs the MP4/MOV muxer takes as they are; anything else is re-encoded to AAC there.
MP4_AUDIO = {"aac", "mp3", "ac3", "eac3", "alac", "opus", "flac"}
PROGRESS_INTERVAL_S = 0.25


class ProgressBar:
    """``[#####.....]  120/600 frames  20%  45.1 fps  ETA 11 s`` on stderr.

    Rewritten in place on a terminal; elsewhere (logs, CI) a line every 10%.
    """

    WIDTH = 30

    def __init__(self, total: int | None, *, stream: TextIO | None = None) -> None:
        self.total = total if total and total > 0 else None
        self.stream = stream or sys.stderr
        self.tty = bool(getattr(self.stream, "isatty", lambda: False)())
        self.started = now_s()
        self._last_decile = -1

    def line(self, done: int) -> str:
        """The progress text for ``done`` frames."""
        elapsed = max(now_s() - self.started, 1e-6)
        rate = done / elapsed
        if self.total is None:
            return f"swapping: {done} frames  {rate:.1f} fps"
        fraction = min(1.0, done / self.total)
        filled = round(fraction * self.WIDTH)
        eta = (self.total - done) / rate if rate > 0 else float("nan")
        eta_text = f"ETA {eta:.0f} s" if eta == eta else "ETA ?"
        return (f"[{'#' * filled}{'.' * (self.WIDTH - filled)}] {done:>6}/{self.total} frames "
                f"{fraction:4.0%}  {rate:5.1f} fps  {eta_text}")

    def update(self, done: int) -> None:
        """Show progress after ``done`` frames."""
        if self.tty:
            self.stream.write("\r\x1b[2K" + self.line(done))
        else:
            decile = -1 if self.total is None else int(10 * done / self.total)
            if decile == self._last_decile:
                return
            self._last_decile = decile
            self.stream.write(self.line(done) + "\n")
        self.stream.flush()

    def finish(self, done: int) -> None:
        """The final state, on its own line."""
        if self.tty:
            self.stream.write("\r\x1b[2K" + self.line(done) + "\n")
        else:
            self.stream.write(self.line(done) + "\n")
        self.stream.flush()


def video_fps(path: Path) -> float:
    """The frame rate of the first video stream (E12 when the file has none or cannot be read)."""
    from realtime.sources.video import stream_fps

    try:
        with av.open(str(path)) as container:
            fps = stream_fps(container.streams.video[0]) if container.streams.video else None
    except (av.FFmpegError, OSError, UnicodeDecodeError) as exc:
        raise InputError("E12", f"{path}: {getattr(exc, 'strerror', None) or exc}") from exc
    if fps is None:
        raise InputError("E12", f"{path}: no video stream")
    return fps


def count_frames(path: Path) -> int | None:
    """Frames in the first video stream, from the container's header or duration × rate."""
    try:
        with av.open(str(path)) as container:
            stream = container.streams.video[0]
            if stream.frames:
                return int(stream.frames)
            if stream.duration and stream.time_base and stream.average_rate:
                return round(float(stream.duration * stream.time_base) * float(stream.average_rate))
    except (av.FFmpegError, OSError, IndexError):
        return None
    return None


def swap_video(processor: Processor, target: Path, output: Path, *,
               progress: Callable[[int], None] | None = None) -> Stats:
    """Run ``processor`` on every frame of ``target``, write ``output`` with the target's audio.

    Raises E12 (unreadable input), E14 (output not writable), E01 (unsupported output type).
    """
    from realtime.sources.video import VideoSource

    if output.suffix.lower() not in VIDEO_SUFFIXES:
        raise UsageError("E01", f"--output {output}: a video target needs a video output",
                         remedy="use an output ending in .mp4, .mov or .mkv")
    if output.resolve() == target.resolve():
        raise UsageError("E01", f"--output {output} would overwrite the target", remedy="choose another output path")
    temporary = output.with_name(f".{output.stem}.video{output.suffix}")
    output.parent.mkdir(parents=True, exist_ok=True)
    config = PipelineConfig(stats_interval_s=PROGRESS_INTERVAL_S, sink_specs=(f"file:{temporary}",))
    # Offline: the encoder runs on its own thread beside inference, and drops nothing.
    pipeline = open_pipeline(source=lambda: VideoSource(str(target), loop=False, realtime=False, network=False),
                             sinks=[spec_opener(SinkSpec("file", str(temporary)))], processor=processor,
                             config=config, owns_processor=False)
    try:
        stats = pipeline.run(on_tick=None if progress is None else (lambda s: progress(s.output)))
        if stats.failed_outputs:
            failed = stats.failed_outputs[0]
            raise OutputError(failed["code"], f"{output}: writing the video failed part-way")
        mux_audio(temporary, target, output)
    finally:
        temporary.unlink(missing_ok=True)
    return stats


def mux_audio(video: Path, original: Path, output: Path) -> None:
    """Write ``output``: the video stream of ``video`` plus the audio streams of ``original``.

    Packets are copied as they are (no re-encoding of the video); audio whose codec the
    output container cannot hold is re-encoded to AAC. Without audio the video is just moved.
    """
    try:
        with av.open(str(original)) as probe:
            has_audio = bool(probe.streams.audio)
    except (av.FFmpegError, OSError) as exc:
        raise InputError("E12", f"{original}: {exc}") from exc
    if not has_audio:
        replace_output(video, output)
        return
    try:
        _remux(video, original, output)
    except (av.FFmpegError, OSError) as exc:
        output.unlink(missing_ok=True)
        raise OutputError("E14", f"{output}: adding the audio track failed: {exc}") from exc


def replace_output(finished: Path, output: Path) -> None:
    """Move ``finished`` over ``output``; E14 when the OS refuses.

    On Windows a file that is open elsewhere (the last render, still playing in a video player) cannot be
    replaced: that is the user's to fix, not a worker failure (E17).
    """
    try:
        os.replace(finished, output)
    except OSError as exc:
        raise OutputError("E14", f"{output}: {exc.strerror or exc}",
                          remedy="close the program that has the file open (a video player), "
                                 "or choose another --output") from exc


def _remux(video: Path, original: Path, output: Path) -> None:
    fmt = VIDEO_SUFFIXES[output.suffix.lower()]
    with av.open(str(video)) as vin, av.open(str(original)) as ain, \
            av.open(str(output), mode="w", format=fmt) as out:
        v_in = vin.streams.video[0]
        v_out = out.add_stream_from_template(v_in)
        copies: dict[int, Any] = {}
        encoders: dict[int, Any] = {}
        for stream in ain.streams.audio:
            if fmt == "matroska" or stream.codec_context.name in MP4_AUDIO:
                copies[stream.index] = out.add_stream_from_template(stream)
            else:
                encoders[stream.index] = out.add_stream("aac", rate=stream.codec_context.sample_rate or 48000)
        audio = list(ain.streams.audio)
        merged = heapq.merge(_timed(vin.demux(v_in), 0), _timed(ain.demux(audio), 1), key=lambda item: item[:2])
        for _time, _order, packet in merged:
            if packet.stream is v_in:
                packet.stream = v_out
                out.mux(packet)
            elif packet.stream.index in copies:
                packet.stream = copies[packet.stream.index]
                out.mux(packet)
            else:
                encoder = encoders[packet.stream.index]
                for frame in packet.decode():
                    frame.pts = None  # let the encoder count samples
                    out.mux(encoder.encode(frame))
        for encoder in encoders.values():
            out.mux(encoder.encode(None))


def _timed(packets: Iterator[Any], order: int) -> Iterator[tuple[float, int, Any]]:
    """(seconds, order, packet) for packets that carry a timestamp (flush packets do not)."""
    for packet in packets:
        stamp = packet.dts if packet.dts is not None else packet.pts
        if stamp is None or packet.size == 0:
            continue
        yield float(stamp * packet.time_base), order, packet
