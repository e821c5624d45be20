#!/usr/bin/env python3
"""Per-face cost of the neural swap path, stage by stage (align, swap, blend, enhance).

    python tools/bench_neural.py                   # stand-in models: everything but the networks
    python tools/bench_neural.py --models DIR      # the real models (swapcam models fetch --neural)

A real photo from the samples is padded to --size, the face is analysed once
(keypoints + 468 landmarks), then the same face is swapped --frames times on
the NumPy/OpenCV path and, when torch is installed, on the torch path (CPU
tensors here, the GPU where there is one). Without the real models the
networks are replaced by stand-ins that cost next to nothing (an identity
inswapper, a pooling ArcFace, an identity GFPGAN), so the numbers are the
overhead the real models come on top of.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

from realtime.config import parse_size
from realtime.engines.ort import OrtEngine
from realtime.enhancers.gfpgan import Gfpgan, GfpganEnhancer, GfpganOptions
from realtime.faces.analyzer import FaceAnalyzer
from realtime.faces.types import Face
from realtime.frame import Frame
from realtime.images import load_image
from realtime.models import models_dir, sample_path
from realtime.swappers.inswapper import (
    ArcFace,
    DevicePath,
    Inswapper,
    InswapperOptions,
    InswapperSwapper,
    neural_models_present,
)


def identity_models(folder: Path) -> tuple[Path, Path, Path]:
    """Stand-ins with the real tensor names and shapes: inswapper, ArcFace, GFPGAN."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    def save(graph: onnx.GraphProto, name: str) -> Path:
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
        model.ir_version = 8
        onnx.save(model, str(folder / name))
        return folder / name

    emap = numpy_helper.from_array(np.eye(512, dtype=np.float32), "emap")
    swapper = save(helper.make_graph(
        [helper.make_node("Identity", ["target"], ["output"])], "inswapper",
        [helper.make_tensor_value_info("target", TensorProto.FLOAT, [1, 3, 128, 128]),
         helper.make_tensor_value_info("source", TensorProto.FLOAT, [1, 512])],
        [helper.make_tensor_value_info("output", TensorProto.FLOAT, [1, 3, 128, 128])], initializer=[emap]),
        "inswapper.onnx")
    rng = np.random.default_rng(0)
    arcface = save(helper.make_graph(
        [helper.make_node("AveragePool", ["input.1"], ["p"], kernel_shape=[14, 14], strides=[14, 14]),
         helper.make_node("Reshape", ["p", "shape"], ["f"]), helper.make_node("MatMul", ["f", "W"], ["683"])],
        "arcface", [helper.make_tensor_value_info("input.1", TensorProto.FLOAT, [1, 3, 112, 112])],
        [helper.make_tensor_value_info("683", TensorProto.FLOAT, [1, 512])],
        initializer=[numpy_helper.from_array(np.array([1, 192], np.int64), "shape"),
                     numpy_helper.from_array(rng.normal(size=(192, 512)).astype(np.float32), "W")]),
        "arcface.onnx")
    gfpgan = save(helper.make_graph(
        [helper.make_node("Identity", ["input"], ["output"])], "gfpgan",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, 3, 512, 512])],
        [helper.make_tensor_value_info("output", TensorProto.FLOAT, [1, 3, 512, 512])]), "gfpgan.onnx")
    return swapper, arcface, gfpgan


def test_frame(size: tuple[int, int], root: Path, eye_px: float, analyzer: FaceAnalyzer) -> np.ndarray:
    """The sample photo gauss.png scaled so the eyes are ``eye_px`` apart, centred on grey, cut to ``size``."""
    photo = load_image(sample_path("gauss.png", root=root))
    width, height = size
    kps = analyzer.analyze_still(photo)[0].keypoints
    scale = eye_px / float(np.linalg.norm(kps[1] - kps[0]))
    photo = cv2.resize(photo, (round(photo.shape[1] * scale), round(photo.shape[0] * scale)))
    canvas = np.full((max(height, photo.shape[0]), max(width, photo.shape[1]), 3), 128, np.uint8)
    y, x = (canvas.shape[0] - photo.shape[0]) // 2, (canvas.shape[1] - photo.shape[1]) // 2
    canvas[y:y + photo.shape[0], x:x + photo.shape[1]] = photo
    y, x = (canvas.shape[0] - height) // 2, (canvas.shape[1] - width) // 2
    return np.ascontiguousarray(canvas[y:y + height, x:x + width])


def measure(swap: object, frame_image: np.ndarray, face: Face, frames: int, stages: tuple[str, ...]
            ) -> dict[str, list[float]]:
    """Stage times (ms) over ``frames`` calls of ``swap(image, face, frame)`` after 5 warm-up calls."""
    times: dict[str, list[float]] = {name: [] for name in (*stages, "total")}
    for index in range(frames + 5):
        frame = Frame(image=frame_image.copy(), seq=index, t_capture=0)
        start = time.perf_counter()
        swap(frame.image, face, frame)  # type: ignore[operator]
        total = (time.perf_counter() - start) * 1000
        if index >= 5:
            for name in stages:
                ms = frame.stage_ms(name)
                if ms is not None:
                    times[name].append(ms)
            times["total"].append(total)
    return times


def row(label: str, times: dict[str, list[float]]) -> str:
    cells = []
    for values in times.values():
        if values:
            p95 = float(np.percentile(values, 95))
            cells.append(f"{statistics.median(values):6.2f} / {p95:6.2f}")
        else:
            cells.append(f"{'-':>15}")
    return f"{label:<28}" + "  ".join(cells)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", type=Path, help="folder with the real neural models (default: stand-ins)")
    parser.add_argument("--size", default="1280x720")
    parser.add_argument("--frames", type=int, default=100)
    parser.add_argument("--eye-px", type=float, default=90.0, help="eye distance of the face (default 90 px)")
    args = parser.parse_args()
    size = parse_size(args.size)
    root = models_dir()
    analyzer = FaceAnalyzer.open(root=root, device="cpu")
    image = test_frame(size, root, args.eye_px, analyzer)
    face = analyzer.analyze_still(image)[0]
    eye_px = float(np.linalg.norm(face.keypoints[1] - face.keypoints[0]))
    real = args.models is not None and neural_models_present(args.models)
    with tempfile.TemporaryDirectory() as tmp:
        if real:
            numpy_swapper = InswapperSwapper.open(root=args.models, device="cpu")
            enhancer = GfpganEnhancer.open(root=args.models, device="cpu", options=GfpganOptions(blend=0.8))
        else:
            swapper_path, arcface_path, gfpgan_path = identity_models(Path(tmp))
            cpu = ["CPUExecutionProvider"]
            numpy_swapper = InswapperSwapper(
                swapper=Inswapper.from_file(swapper_path, engine=OrtEngine(swapper_path, providers=cpu)),
                arcface=ArcFace(engine=OrtEngine(arcface_path, providers=cpu)))
            enhancer = GfpganEnhancer(model=Gfpgan(engine=OrtEngine(gfpgan_path, providers=cpu)))
        start = time.perf_counter()
        numpy_swapper.prepare(image, face)
        prepare_ms = (time.perf_counter() - start) * 1000
        print(f"frame {size[0]}x{size[1]}, face eye distance {eye_px:.0f} px, "
              f"{'real models' if real else 'stand-in models (network cost excluded)'}, {args.frames} frames")
        print(f"prepare (ArcFace embedding of one photo): {prepare_ms:.1f} ms")
        stages = ("align", "swap", "blend")
        print(f"{'ms per face, p50 / p95':<28}" + "  ".join(f"{s:>15}" for s in (*stages, "total")))
        print(row("inswapper numpy/OpenCV", measure(numpy_swapper.swap, image, face, args.frames, stages)))
        try:
            import torch

            torch.set_num_threads(1)  # like the pipeline: one inference thread
        except ImportError:
            print("inswapper torch path: torch not installed")
        else:
            numpy_swapper.device_path = DevicePath(device=torch.device("cpu"), options=InswapperOptions())
            print(row("inswapper torch (CPU)", measure(numpy_swapper.swap, image, face, args.frames, stages)))
        gf = measure(enhancer.enhance, image, face, args.frames, ("enhance",))
        print(row("gfpgan enhance", {"align": [], "swap": [], "blend": [], "total": gf["enhance"]}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
