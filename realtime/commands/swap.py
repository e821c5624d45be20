"""``swapcam swap``: the face swap on one photo or on every frame of a video file."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from realtime.commands.processing import add_face_options, build_face_swap
from realtime.errors import OutputError, UsageError
from realtime.images import load_image

log = logging.getLogger("swapcam")

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff", ".heic", ".heif", ".avif"}
TARGET_MAX_SIDE = 8192  # a target photo is swapped at its own resolution (within reason)

EPILOG = """\
examples:
  swapcam swap --face me.jpg --target photo.jpg --output swapped.jpg
  swapcam swap --face me.jpg --target clip.mp4 --output swapped.mp4     (every frame, audio kept)
  swapcam swap --face me.jpg --target group.jpg --output out.png --max-faces 5
"""


def add_parser(sub: Any) -> None:
    """Register ``swap``."""
    parser = sub.add_parser(
        "swap", help="swap the face in a photo or a video file",
        description="Put the face from --face onto the faces in --target (a photo, or a video: every "
                    "frame, with a progress bar, keeping the audio track) and write --output.",
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--target", type=Path, required=True, metavar="PHOTO|VIDEO",
                        help="the photo or video file whose faces are replaced")
    parser.add_argument("--output", type=Path, required=True, metavar="PATH",
                        help="where to write the result (.jpg/.png/... for a photo, .mp4/.mkv/.mov for a video)")
    add_face_options(parser)
    parser.set_defaults(handler=handle)


def is_image_path(path: Path) -> bool:
    """True for a photo file name (the rest is treated as video)."""
    return path.suffix.lower() in IMAGE_SUFFIXES


def handle(args: argparse.Namespace) -> int:
    """Swap a photo or a video; returns 0 on success."""
    if not args.face:
        raise UsageError("E01", "swap needs --face PHOTO", remedy="add --face PHOTO (the face to put in)")
    if not args.target.is_file():
        raise UsageError("E01", f"--target {args.target}: no such file", remedy="check the path of --target")
    if is_image_path(args.target):
        return _swap_photo(args)
    return _swap_video(args)


def _swap_photo(args: argparse.Namespace) -> int:
    if not is_image_path(args.output):
        raise UsageError("E01", f"--output {args.output}: a photo target needs a photo output",
                         remedy="use an output ending in .jpg, .png, .webp, .bmp, .tiff, .heic or .avif")
    target = load_image(args.target, max_side=TARGET_MAX_SIDE)
    processor = build_face_swap(args)
    try:
        result, count = processor.swap_still(target)
    finally:
        processor.close()
    if count == 0:
        log.warning("no face found in the target %s: it is written unchanged", args.target)
    save_image(result, args.output)
    log.info("wrote %s (%d face(s) swapped)", args.output, count)
    return 0


def _swap_video(args: argparse.Namespace) -> int:
    from realtime.videoswap import VIDEO_SUFFIXES, ProgressBar, count_frames, swap_video, video_fps

    if args.output.suffix.lower() not in VIDEO_SUFFIXES:
        raise UsageError("E01", f"--output {args.output}: a video target needs a video output",
                         remedy="use an output ending in .mp4, .mov or .mkv")
    fps = video_fps(args.target)
    processor = build_face_swap(args, fps=fps)
    bar = ProgressBar(count_frames(args.target))
    stats = swap_video(processor, args.target, args.output, progress=bar.update)
    bar.finish(stats.output)
    swapped = getattr(processor, "frames_swapped", None)
    if swapped == 0:
        log.warning("no face found in any frame of %s: the video is unchanged", args.target)
    log.info("wrote %s (%d frames%s)", args.output, stats.output,
             "" if swapped is None else f", faces swapped in {swapped}")
    return 0


def save_image(image: np.ndarray, path: Path) -> None:
    """Write a BGR image; the format follows the file name (E14 when it cannot be written)."""
    suffix = path.suffix.lower()
    if suffix in (".heic", ".heif", ".avif"):
        import pillow_heif

        pillow_heif.register_heif_opener()
    picture = Image.fromarray(np.ascontiguousarray(image[:, :, ::-1]))
    options: dict[str, Any] = {"quality": 95} if suffix in (".jpg", ".jpeg", ".webp", ".heic", ".avif") else {}
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        picture.save(path, **options)
    except (OSError, ValueError, KeyError) as exc:
        raise OutputError("E14", f"{path}: {exc}") from exc
