"""Bugs of the GPU path that show on the CPU too: the latent cache, hidden host synchronisations, the ONNX
Runtime IO binding's output copies, and --cuda-graph reaching the engines from the CLI."""

from __future__ import annotations

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


def test_ort_io_binding_writes_outputs_into_torch_tensors(model_file: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """run_torch binds torch outputs: no device → host → device round trip, even on an ONNX Runtime
    without DLPack on OrtValue (simulated here by hiding it), except once for a new dynamic shape."""
    import onnxruntime

    from realtime.engines.ort import CPU_PROVIDER, OrtEngine

    monkeypatch.delattr(onnxruntime.OrtValue, "__dlpack__", raising=False)
    through_host: list[int] = []
    numpy = onnxruntime.OrtValue.numpy
    monkeypatch.setattr(onnxruntime.OrtValue, "numpy", lambda self: through_host.append(1) or numpy(self))
    mesh = OrtEngine(model_file("face_mesh"), providers=[CPU_PROVIDER], io_binding=True)
    crop = torch.rand(1, 3, 192, 192)
    expected = mesh.session.run(None, {"input_1": crop.numpy()})[0]
    for _ in range(2):
        got = mesh.run_torch({"input_1": crop})["conv2d_20"]
        assert isinstance(got, torch.Tensor)
        np.testing.assert_allclose(got.numpy(), expected, atol=1e-5)
    assert not through_host, "fixed-shape outputs went through the host"
    scrfd = OrtEngine(model_file("scrfd"), providers=[CPU_PROVIDER], io_binding=True)
    image = torch.rand(1, 3, 160, 192)
    first = scrfd.run_torch({"input.1": image})
    copies_for_a_new_shape = len(through_host)
    second = scrfd.run_torch({"input.1": image})
    assert len(through_host) == copies_for_a_new_shape, "a known shape went through the host again"
    for name, value in first.items():
        np.testing.assert_allclose(second[name].numpy(), value.numpy(), atol=1e-6)


def test_cuda_graph_and_precision_reach_the_engines_from_the_cli(models_root: Any, tmp_path: Any,
                                                                  capsys: pytest.CaptureFixture[str],
                                                                  caplog: pytest.LogCaptureFixture,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """--cuda-graph and --precision exist and go from the CLI to the engines: with --device cpu they are
    refused (E01); with --device auto on a machine without CUDA the torch engines say they run fp32 on the
    CPU. (A GPU run takes them; tools/gpu_check.py measures it.)"""
    import logging

    from realtime import cli
    from realtime.engines.torch_engine import torch_status
    from realtime.models import sample_path

    if torch_status()[2] is not None:
        pytest.skip(f"torch backend unavailable: {torch_status()[2]}")
    monkeypatch.setenv("SWAPCAM_MODELS", str(models_root))
    common = ["swap", "--face", str(sample_path("gauss.png", root=models_root)), "--target",
              str(sample_path("newton.png", root=models_root)), "--output", str(tmp_path / "out.png"),
              "--swapper", "mesh", "--backend", "torch"]
    for option in ("--cuda-graph", "--precision=fp16"):
        with pytest.raises(SystemExit) as exited:
            cli.main([*common, "--device", "cpu", option])
        err = capsys.readouterr().err
        assert exited.value.code != 0 and "E01" in err and "need a CUDA device" in err, err
    if torch.cuda.is_available():
        return
    with caplog.at_level(logging.INFO, logger="realtime.engines.selection"), pytest.raises(SystemExit) as exited:
        cli.main([*common, "--device", "auto", "--cuda-graph", "--precision", "fp16"])
    assert not exited.value.code
    assert "face_mesh: fp16 and CUDA graphs apply on CUDA only" in caplog.text
