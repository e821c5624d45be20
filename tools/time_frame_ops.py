#!/usr/bin/env python3
"""Time the torch frame ops (realtime.gpu_ops) against the OpenCV/NumPy path on one 720p frame.

    python tools/time_frame_ops.py            # CPU, one thread each
    python tools/time_frame_ops.py --device cuda

A few seconds; prints milliseconds per call (mean of --repeat calls after one warm-up).
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from typing import Any

import cv2
import numpy as np
import torch

from realtime import gpu_ops


def per_call_ms(fn: Callable[[], Any], repeat: int, sync: Callable[[], None]) -> float:
    fn()
    sync()
    started = time.perf_counter()
    for _ in range(repeat):
        fn()
    sync()
    return (time.perf_counter() - started) / repeat * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--repeat", type=int, default=20)
    args = parser.parse_args()
    torch.set_num_threads(1)
    cv2.setNumThreads(1)
    device = torch.device(args.device)
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    rng = np.random.default_rng(0)
    frame = rng.integers(0, 256, (720, 1280, 3), dtype=np.uint8)
    crop = rng.integers(0, 256, (128, 128, 3), dtype=np.uint8)
    angle, scale = 0.2, 0.45
    matrix = np.array([[scale * np.cos(angle), -scale * np.sin(angle), -200.0],
                       [scale * np.sin(angle), scale * np.cos(angle), -90.0]])
    mask = gpu_ops.feather_mask_numpy((128, 128), 10)
    inverse = cv2.invertAffineTransform(matrix)

    def cv2_crop() -> np.ndarray:
        warped = cv2.warpAffine(frame, matrix, (128, 128))
        return (warped[:, :, ::-1].astype(np.float32) / 255).transpose(2, 0, 1)

    def numpy_paste() -> np.ndarray:
        back = cv2.warpAffine(crop.astype(np.float32), inverse, (1280, 720))
        alpha = cv2.warpAffine(mask, inverse, (1280, 720))[..., None]
        return np.clip(np.rint(alpha * back + (1 - alpha) * frame), 0, 255).astype(np.uint8)

    t_frame, t_crop = gpu_ops.upload(frame, device), gpu_ops.upload(crop, device)
    t_mask = torch.from_numpy(mask).to(device)
    rows = [
        ("crop 128×128 from 720p, cv2.warpAffine + normalise", per_call_ms(cv2_crop, args.repeat, sync)),
        (f"crop 128×128 from 720p, gpu_ops.crop_align on {device}",
         per_call_ms(lambda: gpu_ops.crop_align(t_frame, matrix, (128, 128)), args.repeat, sync)),
        ("paste-back into 720p, cv2 + NumPy blend (whole frame)", per_call_ms(numpy_paste, args.repeat, sync)),
        (f"paste-back into 720p, gpu_ops.paste_back on {device} (crop region)",
         per_call_ms(lambda: gpu_ops.paste_back(t_frame, t_crop, matrix, t_mask), args.repeat, sync)),
    ]
    for label, ms in rows:
        print(f"{ms:8.2f} ms  {label}")


if __name__ == "__main__":
    main()
