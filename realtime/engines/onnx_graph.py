"""Reading an ONNX graph and making a float32 copy of a float16 one.

Used where ONNX Runtime must not run a float16 graph as it is (the inswapper:
microsoft/onnxruntime#19437): :func:`realtime.engines.opening.open_model`
upcasts such a file, for the first engine and for its fallbacks alike.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from realtime.errors import ModelError


def read_onnx(path: Path) -> Any:
    """The parsed ONNX model (onnx.ModelProto); ModelError E07 when the file is not readable ONNX."""
    import onnx

    try:
        return onnx.load(str(path), load_external_data=False)
    except Exception as exc:  # onnx raises DecodeError, OSError, ValueError… for a broken file
        raise ModelError("E07", f"{path.name} is not a readable ONNX file ({exc})") from exc



def has_float16_weights(model: Any) -> bool:
    """True when the graph stores float16 initializers (an fp16 conversion)."""
    from onnx import TensorProto

    return any(init.data_type == TensorProto.FLOAT16 for init in model.graph.initializer)


def upcast_to_float32(model: Any) -> bytes:
    """The serialized model with every float16 initializer, constant, cast and tensor type made float32.

    The weights keep their float16-rounded values; only the arithmetic moves to
    float32. Used on ONNX Runtime, where the float16 inswapper graph is known to
    produce distorted or black faces since 1.17 (microsoft/onnxruntime#19437) and
    where the CPU provider has no fast float16 kernels anyway. ``model`` is changed in place.
    """
    from onnx import TensorProto, numpy_helper

    f16, f32 = TensorProto.FLOAT16, TensorProto.FLOAT

    def as_float32(tensor: Any) -> Any:
        return numpy_helper.from_array(numpy_helper.to_array(tensor).astype(np.float32), tensor.name)

    graph = model.graph
    for i, init in enumerate(graph.initializer):
        if init.data_type == f16:
            graph.initializer[i].CopyFrom(as_float32(init))
    for node in graph.node:
        for attr in node.attribute:
            if node.op_type == "Cast" and attr.name == "to" and attr.i == f16:
                attr.i = f32
            elif attr.HasField("t") and attr.t.data_type == f16:
                attr.t.CopyFrom(as_float32(attr.t))
    for value in (*graph.input, *graph.output, *graph.value_info):
        if value.type.tensor_type.elem_type == f16:
            value.type.tensor_type.elem_type = f32
    return bytes(model.SerializeToString())
