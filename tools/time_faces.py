"""Time the face stages on this machine: detector at several input sizes, mesh per face, tracking.

    .venv/bin/python tools/time_faces.py [--threads 1] [--repeat 15]

Prints medians in milliseconds (wall and CPU time) (ONNX Runtime CPU unless the engines pick another backend).
A short run, for the notes; the full-pipeline figures come from ``swapcam bench``.
"""

from __future__ import annotations

import argparse
import functools
import statistics
import time
from collections.abc import Callable

import cv2
import numpy as np

from realtime.faces.analyzer import FaceAnalyzer
from realtime.faces.detector import input_shape
from realtime.faces.landmarks import crop_from_landmarks
from realtime.fetching import fetch
from realtime.images import load_image
from realtime.models import models_dir, sample_path


def median_ms(call: Callable[[], object], repeat: int) -> str:
    """Median wall time and median CPU time of ``call`` over ``repeat`` runs after a warm-up run.

    CPU time (of the whole process; with one inference thread that is the work itself) is what the
    stage costs; wall time also counts waiting for a core when other programs share the machine.
    """
    call()
    wall, cpu = [], []
    for _ in range(repeat):
        start, start_cpu = time.perf_counter(), time.process_time()
        call()
        wall.append((time.perf_counter() - start) * 1e3)
        cpu.append((time.process_time() - start_cpu) * 1e3)
    return f"{statistics.median(wall):6.1f} ms wall, {statistics.median(cpu):6.1f} ms CPU"


def main() -> None:
    """Print the timings."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeat", type=int, default=15)
    args = parser.parse_args()
    fetch(models_dir(), progress=lambda message: None)
    analyzer = FaceAnalyzer.open(threads=args.threads, backend="onnxruntime", device="cpu")
    photo = load_image(sample_path("gauss.png"))
    # A 1280×720 webcam-like frame: the portrait's face centred on a grey background.
    frame = np.full((720, 1280, 3), 110, np.uint8)
    face = cv2.resize(photo[150:870, :], None, fx=0.6, fy=0.6, interpolation=cv2.INTER_AREA)
    y, x = (720 - face.shape[0]) // 2, (1280 - face.shape[1]) // 2
    frame[y:y + face.shape[0], x:x + face.shape[1]] = face

    print(f"threads={args.threads} repeat={args.repeat} provider={analyzer.mesh.engine.provider}")
    for size in (160, 320, 480, 640):
        h, w = input_shape(frame.shape[:2], size)
        ms = median_ms(functools.partial(analyzer.detector.detect, frame, size=size), args.repeat)
        print(f"detect 1280x720 frame at {size} (input {w}x{h}): {ms}")
    for size in (320, 480, 640):
        square = cv2.resize(frame, (size, size))
        ms = median_ms(functools.partial(analyzer.detector.detect, square, size=size), args.repeat)
        print(f"detect square input {size}x{size}: {ms}")
    (found,) = analyzer.analyze_still(frame)
    assert found.landmarks is not None
    crop = crop_from_landmarks(found.landmarks)
    print(f"mesh per face (crop + inference + mapping): "
          f"{median_ms(lambda: analyzer.mesh.landmarks(frame, crop), args.repeat)}")
    analyzer.reset()
    analyzer.track(frame)
    print(f"track() per frame, 1 face, steady state: {median_ms(lambda: analyzer.track(frame), args.repeat)}")
    print(f"analyze_still (detect at 640 + 2 mesh passes): "
          f"{median_ms(lambda: analyzer.analyze_still(frame), max(3, args.repeat // 3))}")


if __name__ == "__main__":
    main()
