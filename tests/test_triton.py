"""Triton backend against a real Triton Inference Server on 127.0.0.1 (the tritonserver nvidia-pytriton bundles).

One server serves scrfd and face_mesh for the whole module; the lost-server
test runs its own ``swapcam serve`` so it can stop and restart it.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from runtime_media import free_tcp_ports

from realtime import cli
from realtime.engines.onnx_graph import read_onnx
from realtime.engines.triton import TritonEngine, open_triton
from realtime.errors import BackendError, ModelError
from realtime.models import cached_sha256, sample_path
from realtime.triton.client import parse_url
from realtime.triton.repository import (
    ModelIO,
    RepositoryOptions,
    TensorIO,
    manifest_models,
    model_config,
    onnx_io,
    parse_config,
    write_repository,
)

pytest.importorskip("tritonclient.grpc", reason="tritonclient is not installed (pip install .[triton])")


def _server_available() -> str | None:
    from realtime.triton.server import find_distribution

    try:
        find_distribution()
    except BackendError as exc:
        return exc.message()
    return None


_NO_SERVER = _server_available()
needs_server = pytest.mark.skipif(_NO_SERVER is not None, reason=f"no tritonserver here: {_NO_SERVER}")


def swapcam(*argv: str | Path) -> int:
    with pytest.raises(SystemExit) as exited:
        cli.main([str(a) for a in argv])
    return int(exited.value.code or 0)


@pytest.fixture(scope="module")
def server(models_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str]]:
    """A real tritonserver serving scrfd and face_mesh: (grpc URL, http URL)."""
    if _NO_SERVER is not None:
        pytest.skip(f"no tritonserver here: {_NO_SERVER}")
    from realtime.triton.server import ServerConfig, TritonServer

    work = tmp_path_factory.mktemp("triton")
    sources = manifest_models(models_root, names=("scrfd", "face_mesh"))
    write_repository(work / "models", sources, RepositoryOptions(flavour="python", kind="cpu"), upcast=True)
    http, grpc, metrics = free_tcp_ports(3)
    triton = TritonServer(ServerConfig(repository=work / "models", http_port=http, grpc_port=grpc,
                                       metrics_port=metrics), workdir=work)
    triton.start(timeout_s=180)
    try:
        yield f"grpc://127.0.0.1:{grpc}", f"http://127.0.0.1:{http}"
    finally:
        triton.stop()
        assert not triton.running()


# ---------------------------------------------------------------- the engine


@pytest.mark.parametrize(("protocol", "shared_memory"), [("grpc", True), ("grpc", False), ("http", True),
                                                         ("http", False)])
def test_engine_matches_onnx_runtime(server: tuple[str, str], model_file, scrfd_engine, sample_image,
                                     protocol: str, shared_memory: bool) -> None:
    import cv2

    url = server[0] if protocol == "grpc" else server[1]
    engine = open_triton("scrfd", path=model_file("scrfd"), url=url, shared_memory=shared_memory)
    assert engine.shared_memory is shared_memory
    assert [s.name for s in engine.inputs] == [s.name for s in scrfd_engine.inputs]
    image = cv2.resize(sample_image("newton.png"), (320, 320)).astype(np.float32).transpose(2, 0, 1)[None] / 255
    feeds = {"input.1": np.ascontiguousarray(image)}
    local = scrfd_engine.run(feeds)
    for _ in range(2):  # the second call reuses the shared-memory regions
        remote = engine.run(feeds)
        assert remote.keys() == local.keys()
        for name, value in local.items():
            np.testing.assert_allclose(remote[name], value, atol=1e-5)
    engine.close()


def test_calls_overlap_through_submit(server: tuple[str, str], model_file) -> None:
    engine = open_triton("face_mesh", path=model_file("face_mesh"), url=server[0])
    crops = [np.full((1, 3, 192, 192), v, np.float32) for v in (0.2, 0.5, 0.8)]
    futures = [engine.submit({"input_1": crop}) for crop in crops]  # all in flight before any result is read
    results = [f.result(timeout=30) for f in futures]
    singles = [engine.run({"input_1": crop}) for crop in crops]
    for together, alone in zip(results, singles, strict=True):
        for name in alone:
            np.testing.assert_allclose(together[name], alone[name], atol=1e-5)
    engine.close()


def test_several_faces_mesh_calls_in_flight_together(server: tuple[str, str], model_file, mesh_engine,
                                                      sample_image, truth) -> None:
    from realtime.faces.landmarks import FaceMesh, crop_from_box

    image = sample_image("newton.png")
    box = np.asarray(truth["newton.png"][0]["box"], np.float64)
    boxes = [crop_from_box(box + shift) for shift in (0.0, 8.0, -6.0)]  # three crops of the face, like 3 tracks
    engine = open_triton("face_mesh", path=model_file("face_mesh"), url=server[0])
    sent = []
    submit = engine.submit
    engine.submit = lambda feeds: sent.append(submit(feeds)) or sent[-1]  # type: ignore[method-assign]
    remote = FaceMesh(engine).landmarks_all(image, boxes)
    assert len(sent) == len(boxes)
    local = [FaceMesh(mesh_engine).landmarks(image, box) for box in boxes]
    for (points, presence), (want_points, want_presence) in zip(remote, local, strict=True):
        np.testing.assert_allclose(points, want_points, atol=1e-3)
        assert presence == pytest.approx(want_presence, abs=1e-5)
    engine.close()


def test_photo_swap_through_triton_equals_local(server: tuple[str, str], models_root: Path, tmp_path: Path) -> None:
    import cv2

    args = ("swap", "--face", sample_path("gauss.png"), "--target", sample_path("newton.png"), "--swapper", "mesh")
    assert swapcam(*args, "--output", tmp_path / "local.png") == 0
    assert swapcam(*args, "--output", tmp_path / "triton.png", "--backend", "triton", "--triton-url", server[0]) == 0
    local, remote = cv2.imread(str(tmp_path / "local.png")), cv2.imread(str(tmp_path / "triton.png"))
    assert np.abs(local.astype(int) - remote.astype(int)).max() <= 2
    assert np.abs(local.astype(int) - cv2.imread(str(sample_path("newton.png"))).astype(int)).max() > 50


def test_short_pipeline_through_triton(server: tuple[str, str], models_root: Path, tmp_path: Path) -> None:
    import json

    stats = tmp_path / "stats.json"
    assert swapcam("run", "--image", sample_path("newton.png"), "--face", sample_path("gauss.png"), "--swapper",
                   "mesh", "--size", "640x480", "--frames", "30", "--backend", "triton", "--triton-url", server[1],
                   "--stats-json", stats) == 0
    data = json.loads(stats.read_text())
    assert data["frames"]["processed"] >= 20 and "landmarks" in data["stages_ms"]
    assert data["errors"]["processor"] == 0, data


# ---------------------------------------------------------------- faults


@pytest.mark.parametrize("scheme", ["grpc", "http"])
def test_unreachable_server_is_e30_within_5_s(scheme: str, capsys: pytest.CaptureFixture[str]) -> None:
    (port,) = free_tcp_ports(1)
    url = f"{scheme}://127.0.0.1:{port}"
    start = time.monotonic()
    status = swapcam("swap", "--face", sample_path("gauss.png"), "--target", sample_path("newton.png"),
                     "--output", "/nonexistent/x.png", "--swapper", "mesh", "--backend", "triton", "--triton-url", url)
    took = time.monotonic() - start
    assert status == 4
    err = capsys.readouterr().err
    assert "E30" in err and url in err
    assert took < 5.0


def test_model_missing_on_the_server_is_e06(server: tuple[str, str], model_file) -> None:
    with pytest.raises(ModelError) as raised:
        TritonEngine(name="scrfd_10g", target=parse_url(server[0]), expected=onnx_io(read_onnx(model_file("scrfd"))),
                     expected_sha256=None)
    assert raised.value.code == "E06" and "scrfd_10g" in str(raised.value) and server[0] in str(raised.value)


def test_server_model_differing_from_the_manifest_is_e31(server: tuple[str, str], model_file) -> None:
    mesh = model_file("face_mesh")
    with pytest.raises(ModelError) as raised:  # the server's scrfd checked against what face_mesh declares
        TritonEngine(name="scrfd", target=parse_url(server[0]), expected=onnx_io(read_onnx(mesh)),
                     expected_sha256=cached_sha256(mesh))
    message = str(raised.value)
    assert raised.value.code == "E31"
    assert "sha256" in message and "input 'input_1' missing on the server" in message
    assert "input 'input.1' not in the manifest's model" in message


def test_differences_name_what_differs() -> None:
    from realtime.triton.client import differences
    from realtime.triton.repository import ModelIO, TensorIO

    mine = ModelIO(inputs=(TensorIO("target", (1, 3, 128, 128), "TYPE_FP16"),),
                   outputs=(TensorIO("output", (1, 3, 128, 128), "TYPE_FP32"),))
    upcast = ModelIO(inputs=(TensorIO("target", (1, 3, 128, 128), "TYPE_FP32"),), outputs=mine.outputs)
    assert differences("m", mine, upcast, expected_sha256="a" * 64, served_sha256="a" * 64) == []
    other = ModelIO(inputs=(TensorIO("target", (1, 3, 112, 112), "TYPE_INT8"),),
                    outputs=(TensorIO("out", (1, -1), "TYPE_FP32"),))
    found = differences("m", mine, other, expected_sha256="a" * 64, served_sha256="b" * 64)
    assert found == ["sha256 bbbbbbbbbbbb… on the server ≠ aaaaaaaaaaaa… in the manifest",
                     "input 'target' dtype TYPE_INT8 ≠ TYPE_FP16", "input 'target' dims [1, 3, 112, 112] ≠ "
                     "[1, 3, 128, 128]", "output 'output' missing on the server",
                     "output 'out' not in the manifest's model"]


def test_serve_warns_before_opening_to_the_network(caplog: pytest.LogCaptureFixture,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    # An unknown model stops it before anything listens: the warning alone is under test.
    status = swapcam("serve", "--host", "0.0.0.0", "--model", "no_such_model")
    assert status == 2 and "E01" in capsys.readouterr().err
    assert any("serving on 0.0.0.0" in r.getMessage() and r.levelno == logging.WARNING for r in caplog.records)
    assert swapcam("serve", "--grpc-port", "8000") == 2  # the same port twice


def test_wrong_url_is_e01() -> None:
    for url in ("127.0.0.1:8001", "tcp://host:1", "grpc://", "grpc://h:99999"):
        with pytest.raises(ValueError):
            parse_url(url)


@needs_server
def test_serve_lost_and_back(models_root: Path, model_file, tmp_path: Path,
                             caplog: pytest.LogCaptureFixture) -> None:
    """`swapcam serve`: ready answers 200, Ctrl-C stops it; a client loses it, fails fast, and resumes."""
    http, grpc, metrics = free_tcp_ports(3)
    command = [sys.executable, "-c", "from realtime.cli import main; main()", "serve", "--model", "face_mesh",
               "--http-port", str(http), "--grpc-port", str(grpc), "--metrics-port", str(metrics)]
    env = {**os.environ, "SWAPCAM_MODELS": str(models_root)}

    def serve() -> subprocess.Popen[bytes]:
        process = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            assert process.poll() is None, process.stdout.read() if process.stdout else ""
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{http}/v2/health/ready", timeout=1) as answer:
                    if answer.status == 200:
                        return process
            except OSError:
                time.sleep(0.3)
        process.kill()
        pytest.fail("swapcam serve not ready in 180 s")

    def interrupt(process: subprocess.Popen[bytes]) -> None:
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=30) == 0

    crop = {"input_1": np.full((1, 3, 192, 192), 0.5, np.float32)}
    first = serve()
    try:
        engine = open_triton("face_mesh", path=model_file("face_mesh"), url=f"grpc://127.0.0.1:{grpc}")
        expected = engine.run(crop)
        interrupt(first)
        with socket.socket() as probe:  # really stopped: nothing listens any more
            assert probe.connect_ex(("127.0.0.1", grpc)) != 0
        caplog.set_level(logging.INFO, logger="realtime.engines.triton")
        with pytest.raises(BackendError) as lost:
            engine.run(crop)
        assert lost.value.code == "E30"
        start = time.monotonic()
        with pytest.raises(BackendError):  # within the backoff: no network call, no wait
            engine.run(crop)
        assert time.monotonic() - start < 0.05
        second = serve()
        try:
            deadline = time.monotonic() + 10
            while True:
                try:
                    again = engine.run(crop)
                    break
                except BackendError:
                    assert time.monotonic() < deadline
                    time.sleep(0.1)
            for name in expected:
                np.testing.assert_allclose(again[name], expected[name], atol=1e-5)
            warnings = [r for r in caplog.records if r.levelno == logging.WARNING and "E30" in r.getMessage()]
            assert len(warnings) == 1
            assert any("resumed" in r.getMessage() for r in caplog.records)
            engine.close()
        finally:
            interrupt(second)
    finally:
        if first.poll() is None:
            first.kill()


# ---------------------------------------------------------------- export


def test_export_repository_agrees_with_the_onnx(models_root: Path, tmp_path: Path) -> None:
    target = tmp_path / "repo"
    assert swapcam("triton", "export", target, "--instances", "2") == 0
    folders = sorted(p for p in target.iterdir() if p.is_dir())
    assert [p.name for p in folders] == ["face_mesh", "scrfd"] or len(folders) >= 2
    for folder in folders:
        config = parse_config((folder / "config.pbtxt").read_text())
        model = folder / "1" / "model.onnx"
        assert config.name == folder.name and config.backend == "onnxruntime"
        assert cached_sha256(model) == config.parameters["sha256"].string_value
        assert cached_sha256(model) == cached_sha256(models_root / model_path_name(folder.name))
        io = onnx_io(read_onnx(model))
        batch = config.max_batch_size > 0
        assert batch == io.batchable() and (config.HasField("dynamic_batching") == batch)
        assert not batch  # our graphs fix their batch at 1: the onnxruntime backend could not stack requests
        assert config.instance_group[0].count == 2
        for declared, tensors in ((config.input, io.inputs), (config.output, io.outputs)):
            assert [t.name for t in declared] == [t.name for t in tensors]
            for entry, tensor in zip(declared, tensors, strict=True):
                assert tuple(entry.dims) == (tensor.dims[1:] if batch else tensor.dims)
                from tritonclient.grpc import model_config_pb2 as pb

                assert pb.DataType.Name(entry.data_type) == tensor.data_type


def test_export_takes_a_matching_tensorrt_engine(models_root: Path, tmp_path: Path) -> None:
    """An engine built for exactly the fetched file becomes a tensorrt_plan model; one for another file does not."""
    from realtime.engines.sidecar import EngineSidecar, write_sidecar

    engines = tmp_path / "engines"
    engines.mkdir()
    for name, sha in (("face_mesh", cached_sha256(models_root / "face_mesh.onnx")), ("scrfd", "0" * 64)):
        engine = engines / f"{name}.engine"
        engine.write_bytes(b"plan bytes of " + name.encode())  # a plan's content is TensorRT's business
        write_sidecar(engine, EngineSidecar(model_name=name, model_sha256=sha, tensorrt_version="10.3.0",
                                            gpu_name="NVIDIA L4", compute_capability="8.9", precision="fp16"))
    target = tmp_path / "repo"
    assert swapcam("triton", "export", target, "--engines", engines) == 0
    mesh = parse_config((target / "face_mesh" / "config.pbtxt").read_text())
    assert mesh.platform == "tensorrt_plan" and mesh.max_batch_size == 0
    assert (target / "face_mesh" / "1" / "model.plan").read_bytes() == b"plan bytes of face_mesh"
    assert [t.name for t in mesh.input] == ["input_1"]
    scrfd = parse_config((target / "scrfd" / "config.pbtxt").read_text())
    assert scrfd.backend == "onnxruntime" and (target / "scrfd" / "1" / "model.onnx").is_file()


def model_path_name(name: str) -> str:
    from realtime.models import load_manifest

    manifest = load_manifest()
    entry = manifest.get("models", {}).get(name) or manifest["neural"][name]
    return str(entry["file"])


def test_serves_python_models_without_the_batchers_wait() -> None:
    """The Python backend runs grouped requests one by one, so `swapcam serve` gives them no batching window;
    an exported model whose batch dimension is dynamic is still batched for Triton's own backends."""
    dynamic = ModelIO(inputs=(TensorIO("x", (-1, 3, 8, 8), "TYPE_FP32"),),
                      outputs=(TensorIO("y", (-1, 4), "TYPE_FP32"),))
    served = model_config("m", dynamic, sha256="0" * 64, options=RepositoryOptions(flavour="python"))
    exported = model_config("m", dynamic, sha256="0" * 64, options=RepositoryOptions())
    assert served.max_batch_size == 0 and not served.HasField("dynamic_batching")
    assert exported.max_batch_size > 0 and exported.HasField("dynamic_batching")
    assert list(exported.input[0].dims) == [3, 8, 8]
