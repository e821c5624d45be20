"""Bugs of the GPU path that show on the CPU too: the latent cache, hidden host synchronisations, the ONNX
Runtime IO binding's output copies, and --cuda-graph reaching the engines from the CLI."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

torch = pytest.importorskip("torch")


def test_device_latent_follows_each_new_source() -> None:
    """prepare → swap → prepare → prepare → swap: the second swap must upload the third source's latent,
    even when Python gives the new array the id of the first (which an id() key mistook for it).

    The device is "meta": like CUDA (and unlike the CPU, where the tensor shares the array's memory),
    the uploaded tensor keeps no reference to the array, so the first array is freed and its id reused.
    """
    from realtime.swappers.inswapper import DevicePath, InswapperOptions

    path = DevicePath(device=torch.device("meta"), options=InswapperOptions())

    class Swapper:
        latent: np.ndarray

    swapper = Swapper()
    stale = 0
    for trial in range(200):
        swapper.latent = np.full((1, 512), 3 * trial, np.float32)  # prepare
        first = path._latent_tensor(swapper.latent)  # swap
        swapper.latent = np.full((1, 512), 3 * trial + 1, np.float32)  # prepare
        swapper.latent = np.full((1, 512), 3 * trial + 2, np.float32)  # prepare again
        stale += path._latent_tensor(swapper.latent) is first  # swap: must be a fresh upload
    assert stale == 0, f"the old identity came back in {stale} of 200 trials"


SYNCING_OPS = ("aten._local_scalar_dense", "aten.item", "aten.nonzero", "aten.masked_select", "aten.index.Tensor")


def test_per_face_torch_ops_never_wait_for_the_device() -> None:
    """The per-face torch work (crop, colour transfer, paste maths) queues without host synchronisation.

    Run on "meta" tensors, which have no data: anything that needs a value on the host (int(t.sum()),
    boolean indexing, .item()) fails there, as it would stall the host on CUDA. Every host→device copy
    must be non-blocking (from pinned memory on CUDA)."""
    from torch.utils._python_dispatch import TorchDispatchMode

    from realtime import gpu_ops
    from realtime.swappers.inswapper.device import match_colors_torch

    seen: list[str] = []
    blocking: list[str] = []

    class Watch(TorchDispatchMode):
        def __torch_dispatch__(self, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
            kwargs = kwargs or {}
            name = str(func)
            seen.append(name)
            target = kwargs.get("device")
            if name.startswith("aten._to_copy") and args[0].device.type == "cpu" and target is not None \
                    and torch.device(target).type != "cpu" and not kwargs.get("non_blocking", False):
                blocking.append(f"{name} {kwargs}")
            return func(*args, **kwargs)

    meta = torch.device("meta")
    frame = torch.empty((300, 400, 3), dtype=torch.uint8, device=meta)
    matrix = np.array([[0.5, 0.1, -20.0], [-0.1, 0.5, -30.0]])
    with Watch():
        crop = gpu_ops.crop_align(frame, matrix, (128, 128), border="replicate")
        warped = gpu_ops.warp_affine(crop * 255.0, gpu_ops.invert_affine(matrix), (200, 160), border="replicate")[0]
        region = torch.empty((3, 160, 200), device=meta)
        weight = torch.empty((1, 160, 200), device=meta)
        out = match_colors_torch(warped, region, weight)
    assert out.shape == (3, 160, 200)
    assert not [op for op in seen if op.startswith(SYNCING_OPS)], sorted(set(seen))
    assert not blocking, blocking
