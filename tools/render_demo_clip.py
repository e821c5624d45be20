"""Render a target clip from the sample photos, with camera motion (pan, zoom, tilt).

The clip is the demo's input and the benchmarks' and tests' reproducible
"webcam": Newton's portrait moving for the first 65 %, then a cut to a face
in the 1927 Solvay conference photo (a new person: the tracker must find it).
Deterministic: the same arguments give the same frames.

    python tools/render_demo_clip.py --output out/demo_target.mp4 [--size 1280x720] [--fps 30]
        [--duration 20] [--audio]

Importable: ``render_frames(...)`` yields BGR frames, ``write_clip(...)`` encodes them.
"""

from __future__ import annotations

import argparse
import math
import sys
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from realtime.config import parse_size
from realtime.errors import SwapcamError
from realtime.images import load_image
from realtime.models import sample_path

SAMPLE_RATE = 48_000


@dataclass(frozen=True)
class Shot:
    """One photo filmed by the virtual camera: where its face is and how the camera moves."""

    photo: str  # sample name
    aim: tuple[float, float]  # the photo point the camera centres on (near the face), in photo pixels
    face_height: float  # face height in the photo's pixels
    zoom: tuple[float, float]  # face height on screen, as a fraction of the frame height (min, max)
    pan: float  # how far the view wanders from the face, as a fraction of the frame height
    tilt_deg: float  # peak roll of the camera


# Face positions are facts of the pinned sample photos (sha256 in realtime/manifest.json).
SHOTS = (
    # Newton's face (centre 386, 160) sits high in a small painting: aim lower so the view stays inside it.
    Shot("newton.png", aim=(386.0, 205.0), face_height=143.0, zoom=(0.42, 0.60), pan=0.06, tilt_deg=10.0),
    # A face in the front row of the 1927 Solvay conference photo (greyscale).
    Shot("solvay_conference_1927.jpg", aim=(1237.0, 1217.0), face_height=125.0, zoom=(0.30, 0.45), pan=0.10,
         tilt_deg=8.0),
)
CUT_AT = 0.65  # fraction of the clip at which the second shot starts


def camera(shot: Shot, t: float) -> tuple[float, float, float, float]:
    """(dx, dy, face height fraction, roll in degrees) of the camera at ``t`` seconds.

    Sums of slow sines with unrelated periods: smooth, never repeating within a clip.
    """
    lo, hi = shot.zoom
    zoom = lo + (hi - lo) * 0.5 * (1 - math.cos(2 * math.pi * t / 7.3))
    dx = shot.pan * (math.sin(2 * math.pi * t / 5.1) + 0.3 * math.sin(2 * math.pi * t / 1.9))
    dy = 0.6 * shot.pan * math.sin(2 * math.pi * t / 6.7 + 1.0)
    roll = shot.tilt_deg * math.sin(2 * math.pi * t / 4.3 + 0.5)
    return dx, dy, zoom, roll


def frame_matrix(shot: Shot, t: float, width: int, height: int) -> np.ndarray:
    """The 2×3 affine map from photo pixels to frame pixels at time ``t``."""
    dx, dy, zoom, roll = camera(shot, t)
    scale = zoom * height / shot.face_height
    cx, cy = shot.aim
    matrix = cv2.getRotationMatrix2D((cx, cy), roll, scale)
    matrix[0, 2] += width / 2 - cx + dx * height
    matrix[1, 2] += height / 2 - cy + dy * height
    return matrix


def render_frames(*, width: int = 1280, height: int = 720, fps: float = 30.0,
                  duration: float = 20.0) -> Iterator[np.ndarray]:
    """The clip's frames (H×W×3 uint8 BGR), ``round(duration × fps)`` of them."""
    photos = {shot.photo: load_image(sample_path(shot.photo), max_side=4096) for shot in SHOTS}
    count = max(1, round(duration * fps))
    cut = round(CUT_AT * count)
    for index in range(count):
        shot = SHOTS[0] if index < cut else SHOTS[1]
        t = index / fps
        yield cv2.warpAffine(photos[shot.photo], frame_matrix(shot, t, width, height), (width, height),
                             flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)


def write_clip(path: Path, frames: Iterable[np.ndarray], *, fps: float, audio: bool = False) -> int:
    """Encode ``frames`` to H.264 (yuv420p) in ``path``; with ``audio``, add an AAC tone track.

    Returns the number of frames written.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    rate = Fraction(fps).limit_denominator(1001)
    count = 0
    with av.open(str(path), mode="w") as container:
        video = container.add_stream("libx264", rate=rate, options={"preset": "veryfast", "crf": "20"})
        video.pix_fmt = "yuv420p"
        sound = container.add_stream("aac", rate=SAMPLE_RATE) if audio else None
        for image in frames:
            if count == 0:
                video.height, video.width = image.shape[:2]
            frame = av.VideoFrame.from_ndarray(image, format="bgr24")
            frame.pts = count
            frame.time_base = 1 / rate
            container.mux(video.encode(frame))
            count += 1
        container.mux(video.encode(None))
        if sound is not None:
            _write_tone(container, sound, seconds=count / fps)
    return count


def _write_tone(container: av.container.OutputContainer, stream: av.audio.stream.AudioStream, *,
                seconds: float) -> None:
    """A quiet 440 Hz tone, in 1024-sample frames, lasting ``seconds``."""
    total = round(seconds * SAMPLE_RATE)
    block = 1024
    for start in range(0, total, block):
        n = min(block, total - start)
        t = (np.arange(start, start + n) / SAMPLE_RATE).astype(np.float32)
        samples = (0.2 * np.sin(2 * np.pi * 440.0 * t)).astype(np.float32)[None, :]
        frame = av.AudioFrame.from_ndarray(samples, format="fltp", layout="mono")
        frame.sample_rate = SAMPLE_RATE
        frame.pts = start
        container.mux(stream.encode(frame))
    container.mux(stream.encode(None))


def main(argv: list[str] | None = None) -> int:
    """Command line: render the clip to --output."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--output", type=Path, default=Path("out/demo_target.mp4"))
    parser.add_argument("--size", default="1280x720", help="WxH (default 1280x720)")
    parser.add_argument("--fps", type=float, default=30.0)
    parser.add_argument("--duration", type=float, default=20.0, help="seconds (default 20)")
    parser.add_argument("--audio", action="store_true", help="add a quiet tone as an audio track")
    args = parser.parse_args(argv)
    try:
        width, height = parse_size(args.size)
        frames = render_frames(width=width, height=height, fps=args.fps, duration=args.duration)
        count = write_clip(args.output, frames, fps=args.fps, audio=args.audio)
    except SwapcamError as exc:
        print(f"error: {exc.message()}", file=sys.stderr)
        return exc.exit_status
    print(f"wrote {args.output}: {count} frames, {width}x{height} @ {args.fps:g} fps")
    return 0


if __name__ == "__main__":
    sys.exit(main())
