"""Stand-in ONNX models with the real neural models' input/output names, shapes and dtypes.

The real files (inswapper_128, w600k_r50 ArcFace, GFPGAN v1.4) are not on the
development machines. These small graphs have the same interface and do
simple, known arithmetic, so a test can tell exactly what the code fed them.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

OPSET = 17


def _save(graph: onnx.GraphProto, path: Path) -> Path:
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return path


def arcface_matrix(seed: int = 7) -> np.ndarray:
    """The 192×512 matrix of the ArcFace stand-in: identity on the first 192 outputs, random after."""
    rng = np.random.default_rng(seed)
    return np.hstack([np.eye(192), rng.normal(0, 0.2, (192, 320))]).astype(np.float32)


def arcface(path: Path) -> Path:
    """w600k_r50 stand-in: input ``input.1`` N×3×112×112 float32 → output ``683`` 1×512 float32.

    output = avgpool14(input) (3×8×8 = 192 values, C-major) @ :func:`arcface_matrix`, so its
    first 192 values are exactly the 8×8 block means of each input channel.
    """
    nodes = [
        helper.make_node("AveragePool", ["input.1"], ["pooled"], kernel_shape=[14, 14], strides=[14, 14]),
        helper.make_node("Reshape", ["pooled", "flat_shape"], ["flat"]),
        helper.make_node("MatMul", ["flat", "W"], ["683"]),
    ]
    graph = helper.make_graph(
        nodes, "arcface_standin",
        [helper.make_tensor_value_info("input.1", TensorProto.FLOAT, ["None", 3, 112, 112])],
        [helper.make_tensor_value_info("683", TensorProto.FLOAT, [1, 512])],
        initializer=[numpy_helper.from_array(np.array([1, 192], np.int64), "flat_shape"),
                     numpy_helper.from_array(arcface_matrix(), "W")],
    )
    return _save(graph, path)


def emap_matrix(seed: int = 11, scale: float = 3.0) -> np.ndarray:
    """A non-symmetric 512×512 emap whose products have norm ≈ ``scale`` (so a missing normalisation shows)."""
    return (np.random.default_rng(seed).normal(0, 1, (512, 512)) * scale / np.sqrt(512)).astype(np.float32)


def inswapper(path: Path, *, gain: np.ndarray | float = 1.0, offset: np.ndarray | float = 0.0,
              probe: np.ndarray | None = None, probe_gain: float = 0.0, emap: np.ndarray | None = None,
              weights: str = "float32", io: str = "float32") -> Path:
    """inswapper_128 stand-in: ``target`` 1×3×128×128 + ``source`` 1×512 → ``output`` 1×3×128×128.

    output = target · gain + offset + (source · probe) · probe_gain, where gain and
    offset are scalars, per-channel (3,) or full 3×128×128 arrays. The graph's last
    initializer is the 512×512 ``emap`` (a different 512×512 decoy comes first,
    as the real graph has other large initializers before it). ``weights``/``io``:
    "float32" or "float16" for the stored weights and for the declared inputs/outputs.
    """
    wdt = np.float16 if weights == "float16" else np.float32
    io_type = TensorProto.FLOAT16 if io == "float16" else TensorProto.FLOAT
    w_type = TensorProto.FLOAT16 if weights == "float16" else TensorProto.FLOAT

    def full(value: np.ndarray | float) -> np.ndarray:
        arr = np.asarray(value, np.float64)
        if arr.shape == (3,):
            arr = arr[:, None, None]
        return np.broadcast_to(arr, (3, 128, 128))[None].astype(wdt)

    probe_vec = np.zeros(512) if probe is None else np.asarray(probe, np.float64).reshape(512)
    emap = emap_matrix() if emap is None else emap
    inits = [
        numpy_helper.from_array(emap_matrix(seed=99).astype(wdt), "decoy"),
        numpy_helper.from_array(full(gain), "gain"),
        numpy_helper.from_array(full(offset), "offset"),
        numpy_helper.from_array(probe_vec.reshape(512, 1).astype(wdt), "probe"),
        numpy_helper.from_array(np.array([probe_gain], wdt), "probe_gain"),
        numpy_helper.from_array(emap.astype(wdt), "emap"),  # last, as in the real graph
    ]
    nodes, target, source = [], "target", "source"
    if io_type != w_type:
        nodes += [helper.make_node("Cast", ["target"], ["target_w"], to=w_type),
                  helper.make_node("Cast", ["source"], ["source_w"], to=w_type)]
        target, source = "target_w", "source_w"
    out = "output" if io_type == w_type else "output_w"
    nodes += [
        helper.make_node("Mul", [target, "gain"], ["scaled"]),
        helper.make_node("Add", ["scaled", "offset"], ["shifted"]),
        helper.make_node("MatMul", [source, "probe"], ["dot"]),  # 1×1
        helper.make_node("Mul", ["dot", "probe_gain"], ["dot_gain"]),
        helper.make_node("Add", ["shifted", "dot_gain"], [out]),
    ]
    if io_type != w_type:
        nodes.append(helper.make_node("Cast", ["output_w"], ["output"], to=io_type))
    graph = helper.make_graph(
        nodes, "inswapper_standin",
        [helper.make_tensor_value_info("target", io_type, [1, 3, 128, 128]),
         helper.make_tensor_value_info("source", io_type, [1, 512])],
        [helper.make_tensor_value_info("output", io_type, [1, 3, 128, 128])],
        initializer=inits,
    )
    return _save(graph, path)


def gfpgan(path: Path, *, gain: np.ndarray | float = 1.0, offset: np.ndarray | float = 0.0) -> Path:
    """GFPGANv1.4 stand-in: ``input`` 1×3×512×512 float32 in [-1, 1] → ``output`` 1×3×512×512.

    output = input · gain + offset (scalars, per-channel (3,) or full 3×512×512 arrays).
    """
    def full(value: np.ndarray | float) -> np.ndarray:
        arr = np.asarray(value, np.float64)
        if arr.shape == (3,):
            arr = arr[:, None, None]
        return np.broadcast_to(arr, (3, 512, 512))[None].astype(np.float32)

    graph = helper.make_graph(
        [helper.make_node("Mul", ["input", "gain"], ["scaled"]),
         helper.make_node("Add", ["scaled", "offset"], ["output"])],
        "gfpgan_standin",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, 3, 512, 512])],
        [helper.make_tensor_value_info("output", TensorProto.FLOAT, [1, 3, 512, 512])],
        initializer=[numpy_helper.from_array(full(gain), "gain"), numpy_helper.from_array(full(offset), "offset")],
    )
    return _save(graph, path)
