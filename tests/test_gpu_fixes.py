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
