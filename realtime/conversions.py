"""Conversions applied to files taken from the pinned packages: TFLite → ONNX, SCRFD's fixed input size made
symbolic, the sample photos' ground truth (a Python file) → JSON.

Each converter is registered with a version in :data:`CONVERTERS`; the version is recorded with the file
written, so a changed converter makes its output be made again.
"""

from __future__ import annotations

import ast
import contextlib
import json
import logging
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any


def relax_input_size(model_bytes: bytes, _tmp: Path) -> bytes:
    """Make SCRFD run at any input size that is a multiple of 32.

    The shipped graph is fixed at 640×640: its input H/W are constants, its
    two FPN upsampling Resize nodes have constant output sizes (40×40, 80×80)
    and stale intermediate shapes are annotated. Resizes get scale 2 instead,
    H/W and the anchor axis of the outputs become symbolic, annotations go.
    """
    import numpy as np
    import onnx
    from onnx import numpy_helper

    model = onnx.load_from_string(model_bytes)
    graph = model.graph
    used_sizes = set()
    for node in graph.node:
        if node.op_type == "Resize" and len(node.input) == 4:
            used_sizes.add(node.input[3])
            scales = f"{node.output[0]}_scales"
            graph.initializer.append(numpy_helper.from_array(np.array([1, 1, 2, 2], np.float32), scales))
            node.input[:] = [node.input[0], node.input[1], scales]
    still_used = {name for node in graph.node for name in node.input}
    keep = [init for init in graph.initializer if init.name not in used_sizes or init.name in still_used]
    del graph.initializer[:]
    graph.initializer.extend(keep)
    dims = graph.input[0].type.tensor_type.shape.dim
    dims[2].dim_param, dims[3].dim_param = "height", "width"
    for output in graph.output:
        output.type.tensor_type.shape.dim[1].dim_param = "anchors"
    del graph.value_info[:]
    onnx.checker.check_model(model)
    return bytes(model.SerializeToString())


class _DropWarnings(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return record.levelno >= logging.ERROR


@contextlib.contextmanager
def _quiet(logger_name: str) -> Iterator[None]:
    """Hide a library's warnings (tflite2onnx warns about every float16 tensor, harmlessly)."""
    logger = logging.getLogger(logger_name)
    drop = _DropWarnings()
    logger.addFilter(drop)
    try:
        yield
    finally:
        logger.removeFilter(drop)


def tflite_to_onnx(tflite_bytes: bytes, tmp: Path) -> bytes:
    """Convert a TFLite model to ONNX with tflite2onnx (NCHW input)."""
    import tflite2onnx

    source, target = tmp / "model.tflite", tmp / "model.onnx"
    source.write_bytes(tflite_bytes)
    with _quiet("tflite2onnx"):
        tflite2onnx.convert(str(source), str(target))
    return target.read_bytes()


def scrfd_truth_to_json(source: bytes, _tmp: Path) -> bytes:
    """Turn the scrfd sdist's ``tests/truth_faces.py`` into JSON, reading its values with ``ast``.

    Output: {"faces": {image: [{"box": [x1, y1, x2, y2], "score": p,
    "keypoints": [[x, y] × 5]}]}}, keypoints ordered left eye, right eye,
    nose, left mouth corner, right mouth corner.
    """
    tree = ast.parse(source.decode("utf-8"))
    table = next(node.value for node in ast.walk(tree)
                 if isinstance(node, ast.AnnAssign | ast.Assign) and node.value is not None
                 and isinstance(node.value, ast.Dict))
    raw = _literal(table)
    faces = {image: [_truth_face(face) for face in items] for image, items in raw.items()}
    return json.dumps({"faces": faces}, indent=2).encode()


def _literal(node: ast.AST) -> Any:
    """Evaluate constants, lists, dicts and ``Name(key=value…)`` calls (as dicts) without importing."""
    if isinstance(node, ast.Constant):
        return node.value
    if isinstance(node, ast.List | ast.Tuple):
        return [_literal(item) for item in node.elts]
    if isinstance(node, ast.Dict):
        return {_literal(k): _literal(v) for k, v in zip(node.keys, node.values, strict=True) if k is not None}
    if isinstance(node, ast.Call):
        return {kw.arg: _literal(kw.value) for kw in node.keywords if kw.arg is not None}
    raise ValueError(f"unexpected syntax in the truth file: {ast.dump(node)[:80]}")


def _truth_face(face: dict[str, Any]) -> dict[str, Any]:
    def point(p: dict[str, float]) -> list[float]:
        return [float(p["x"]), float(p["y"])]

    bbox, kps = face["bbox"], face["keypoints"]
    order = ("left_eye", "right_eye", "nose", "left_mouth", "right_mouth")
    return {
        "box": point(bbox["upper_left"]) + point(bbox["lower_right"]),
        "score": float(face["probability"]),
        "keypoints": [point(kps[key]) for key in order],
    }


# name → (version, function); the version is recorded so a changed conversion is re-run.
CONVERTERS: dict[str, tuple[int, Callable[[bytes, Path], bytes]]] = {
    "onnx-any-size": (1, relax_input_size),
    "tflite2onnx": (1, tflite_to_onnx),
    "scrfd-truth": (1, scrfd_truth_to_json),
}


def converter_id(name: str) -> str:
    version = CONVERTERS[name][0] if name in CONVERTERS else 0
    return f"{name}/{version}"
