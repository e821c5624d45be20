"""A frame that fails part-way goes out exactly as captured; stage times add up across faces; the parts of a
run open together or not at all; sources and sinks are context managers; a close waits a bounded time."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
import pytest
from neural_standins import arcface, inswapper
from runtime_media import read_video

from realtime.config import PipelineConfig
from realtime.engines.ort import OrtEngine
from realtime.errors import OutputError
from realtime.faces.analyzer import FaceAnalyzer
from realtime.faces.types import Face
from realtime.faceswap import FaceSwapProcessor
from realtime.frame import Frame
from realtime.pipeline import Pipeline
from realtime.processors import Passthrough
from realtime.session import open_pipeline
from realtime.sinks.file import FileSink, file_settings
from realtime.sinks.h264 import H264Output
from realtime.sinks.null import NullSink
from realtime.sources.base import EndOfStream, Source
from realtime.sources.synthetic import SyntheticSource
from realtime.swappers.inswapper import ArcFace, Inswapper, InswapperOptions, InswapperSwapper
from realtime.swappers.mesh import MeshSwapper


class FailsOnSecondFace:
    """Swaps the first face of a frame with the real swapper, raises on the second."""

    def __init__(self, inner: MeshSwapper) -> None:
        self.inner, self.name, self.calls = inner, "fails-on-second", 0

    def prepare(self, image: np.ndarray, face: Face) -> None:
        self.inner.prepare(image, face)

    def swap(self, image: np.ndarray, face: Face, frame: Frame | None = None) -> None:
        self.calls += 1
        if self.calls == 2:
            raise RuntimeError("second face failed")
        self.inner.swap(image, face, frame)


class OneImage:
    """An offline source that yields one image once."""

    name, fps, live = "one", 30.0, False

    def __init__(self, image: np.ndarray) -> None:
        self.image = image
        self.height, self.width = image.shape[:2]
        self.done = False

    def read(self) -> np.ndarray:
        if self.done:
            raise EndOfStream("done")
        self.done = True
        return self.image.copy()

    def close(self) -> None:
        pass


class Keeper(NullSink):
    def __init__(self) -> None:
        super().__init__()
        self.images: list[np.ndarray] = []

    def write(self, frame: Frame) -> None:
        self.images.append(frame.image.copy())


def two_faces_and_a_swapper_failing_on_the_second(
        sample_image: Callable[[str], np.ndarray]) -> tuple[np.ndarray, FaceAnalyzer, FailsOnSecondFace]:
    """Newton and Gauss side by side (two faces found), an analyzer for two faces, and a mesh swapper
    with Newton's face that raises on the second face of a frame."""
    newton, gauss = sample_image("newton.png"), sample_image("gauss.png")
    height = 400
    two = np.hstack([cv2.resize(im, (round(im.shape[1] * height / im.shape[0]), height)) for im in (newton, gauss)])
    analyzer = FaceAnalyzer.open(max_faces=2)
    assert len(analyzer.analyze_still(two, max_faces=2)) == 2
    mesh = MeshSwapper()
    mesh.prepare(newton, analyzer.analyze_still(newton)[0])
    return two, analyzer, FailsOnSecondFace(mesh)


def test_a_frame_whose_second_face_fails_goes_out_exactly_as_captured(
        sample_image: Callable[[str], np.ndarray]) -> None:
    two, analyzer, swapper = two_faces_and_a_swapper_failing_on_the_second(sample_image)
    processor = FaceSwapProcessor(analyzer=analyzer, swapper=swapper, max_faces=2)  # type: ignore[arg-type]
    sink = Keeper()
    pipeline = Pipeline(source=OneImage(two), processor=processor, sinks=[sink], config=PipelineConfig())
    pipeline.run()
    assert swapper.calls == 2  # the first face was swapped, then the second one raised
    assert pipeline.summary()["errors"]["processor"] == 1
    assert len(sink.images) == 1 and np.array_equal(sink.images[0], two)


def test_frame_stage_adds_up_when_timed_again_in_the_same_frame() -> None:
    frame = Frame(image=np.zeros((4, 4, 3), np.uint8), seq=0, t_capture=0)
    for _ in range(3):
        with frame.stage("swap"):
            time.sleep(0.02)
    assert frame.stage_ms("swap") >= 60  # type: ignore[operator]


class SlowEngine:
    """An ONNX Runtime engine that takes at least ``delay_s`` per run."""

    def __init__(self, inner: OrtEngine, delay_s: float) -> None:
        self.inner, self.delay_s = inner, delay_s
        self.backend, self.provider = inner.backend, inner.provider
        self.inputs, self.outputs = inner.inputs, inner.outputs

    def run(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        time.sleep(self.delay_s)
        return self.inner.run(feeds)


def test_inswapper_stage_times_add_up_across_faces(tmp_path: Path) -> None:
    """Each face's model run takes ≥ 50 ms: with two faces the frame's swap stage is ≥ 100 ms, not the
    last face's 50 ms."""
    model, arc = inswapper(tmp_path / "sw.onnx"), arcface(tmp_path / "arc.onnx")
    engine = SlowEngine(OrtEngine(model, providers=["CPUExecutionProvider"]), 0.05)
    swapper = InswapperSwapper(swapper=Inswapper.from_file(model, engine=engine),  # type: ignore[arg-type]
                               arcface=ArcFace(engine=OrtEngine(arc, providers=["CPUExecutionProvider"])),
                               options=InswapperOptions(color_correct=False, keep_mouth=False))
    kps = np.array([[90, 110], [150, 110], [120, 145], [95, 175], [145, 175]], np.float32)
    photo = np.full((300, 300, 3), 128, np.uint8)
    swapper.prepare(photo, Face(box=np.array([60, 60, 180, 220], np.float32), score=0.9, keypoints=kps))
    frame = Frame(image=np.full((300, 600, 3), 100, np.uint8), seq=0, t_capture=0)
    for dx in (0, 300):
        shifted = kps + np.array([dx, 0], np.float32)
        box = np.array([60 + dx, 60, 180 + dx, 220], np.float32)
        swapper.swap(frame.image, Face(box=box, score=0.9, keypoints=shifted), frame)
    assert frame.stage_ms("swap") >= 100, frame.stages  # type: ignore[operator]


class Opened:
    """Records what was opened and closed, in order."""

    def __init__(self) -> None:
        self.events: list[str] = []


def test_open_pipeline_closes_what_it_opened_when_a_sink_fails_to_open() -> None:
    log = Opened()

    class Src(SyntheticSource):
        def close(self) -> None:
            log.events.append("source closed")

    class Snk(NullSink):
        def __init__(self, name: str) -> None:
            super().__init__()
            self.name = name

        def close(self) -> None:
            log.events.append(f"{self.name} closed")

    class Proc(Passthrough):
        def close(self) -> None:
            log.events.append("processor closed")

    def failing(_source: Source) -> NullSink:
        raise OutputError("E14", "out.mp4: read-only")

    with pytest.raises(OutputError):
        open_pipeline(source=lambda: Src(width=64, height=48, fps=30), sinks=[lambda s: Snk("a"), failing],
                      processor=Proc(), config=PipelineConfig())
    assert log.events == ["a closed", "source closed", "processor closed"]
    pipeline = open_pipeline(source=lambda: Src(width=64, height=48, fps=30), sinks=[lambda s: Snk("b")],
                             processor=Proc(), config=PipelineConfig(max_frames=3))
    pipeline.run()
    assert sorted(log.events[3:]) == ["b closed", "processor closed", "source closed"]  # the outputs close in parallel


def test_sources_and_sinks_are_context_managers(tmp_path: Path) -> None:
    with SyntheticSource(width=64, height=48, fps=30) as source:
        image = source.read()
    path = tmp_path / "ctx.mp4"
    with FileSink(path, width=64, height=48, fps=30) as sink:
        sink.write(Frame(image=image, seq=0, t_capture=0))
    assert len(read_video(path)[0]) == 1  # written and finalised by the with block


def test_h264_close_waits_a_bounded_time_for_an_encode_in_progress(tmp_path: Path) -> None:
    """An encode holds the lock (here: the test holds it): close gives up after its timeout, and the encode
    in progress finalises the file as it ends."""
    path = tmp_path / "bounded.mp4"
    output = H264Output(str(path), container_format="mp4", settings=file_settings(path, width=64, height=48, fps=30))
    image = SyntheticSource(width=64, height=48, fps=30, paced=False).read()
    output.encode(image, 0)
    output._lock.acquire()  # stands for an encode that does not return
    start = time.perf_counter()
    closer = threading.Thread(target=lambda: results.append(output.close(timeout=0.3)))
    results: list[bool] = []
    closer.start()
    closer.join(2.0)
    assert results == [False] and time.perf_counter() - start < 1.0
    output._lock.release()
    assert output.encode(image, 3000)  # the encode "in progress" ends: it finalises the file
    assert not output.encode(image, 6000)  # closed now
    assert len(read_video(path)[0]) == 2


def test_a_live_frame_whose_second_face_fails_goes_out_exactly_as_captured(
        sample_image: Callable[[str], np.ndarray]) -> None:
    """The same promise for the live processor that `run` uses (panel, hotkeys)."""
    from types import SimpleNamespace

    from realtime.control.live import LiveSwapProcessor
    from realtime.control.settings import LiveOptions, LiveState

    two, analyzer, swapper = two_faces_and_a_swapper_failing_on_the_second(sample_image)
    state = LiveState(options=LiveOptions(max_faces=2), swapper=swapper, version=1)
    controller = SimpleNamespace(settings=SimpleNamespace(current=state), close=lambda: None)
    processor = LiveSwapProcessor(controller=controller, analyzer=analyzer)  # type: ignore[arg-type]
    sink = Keeper()
    pipeline = Pipeline(source=OneImage(two), processor=processor, sinks=[sink], config=PipelineConfig())
    pipeline.run()
    assert swapper.calls == 2
    assert pipeline.summary()["errors"]["processor"] == 1
    assert len(sink.images) == 1 and np.array_equal(sink.images[0], two)
