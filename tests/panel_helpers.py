"""A real live pipeline with the panel on 127.0.0.1, for the API and browser tests.

The source is a still photo with a sequence stamp drawn per frame (so the preview visibly
changes and each output frame's expected input is known); a capture sink keeps the last
output frames, so tests check what the outputs got, not only what the page shows.
"""

from __future__ import annotations

import http.client
import json
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from realtime.config import PipelineConfig
from realtime.control.gallery import FaceGallery
from realtime.control.live import LiveController, LiveSwapProcessor, PreviewSlot
from realtime.control.recording import FrameFormat, Recorder
from realtime.control.server import PanelContext, PanelServer
from realtime.control.settings import LiveOptions
from realtime.faces.analyzer import FaceAnalyzer
from realtime.frame import Frame
from realtime.images import load_image
from realtime.pipeline import Pipeline
from realtime.sources.base import FrameClock
from realtime.sources.image import letterbox
from realtime.stamp import draw_stamp
from realtime.swappers.mesh import MeshSwapper

TOKEN = "test-token-0123456789"
WIDTH, HEIGHT, FPS = 480, 360, 15.0


class StampedStill:
    """A photo repeated at ``fps`` with the frame number stamped on it (a live source)."""

    live = True

    def __init__(self, image: np.ndarray, fps: float) -> None:
        self.base = image
        self.height, self.width = image.shape[:2]
        self.fps = fps
        self.name = "stamped-still"
        self._clock = FrameClock(fps)
        self._seq = 0

    def expected(self, seq: int) -> np.ndarray:
        """The frame with sequence number ``seq`` as read (what a pass-through outputs)."""
        image = self.base.copy()
        draw_stamp(image, seq)
        return image

    def read(self) -> np.ndarray:
        """The next stamped copy, when due."""
        self._clock.wait()
        image = self.expected(self._seq)
        self._seq += 1
        return image

    def close(self) -> None:
        """Nothing to release."""


class CaptureSink:
    """Keeps copies of the last output frames: (seq, image)."""

    name = "capture"

    def __init__(self) -> None:
        self.frames: deque[tuple[int, np.ndarray]] = deque(maxlen=30)
        self.arrived = threading.Condition()

    def write(self, frame: Frame) -> None:
        """Keep a copy (the pipeline may reuse nothing, but the test reads it later)."""
        with self.arrived:
            self.frames.append((frame.seq, frame.image.copy()))
            self.arrived.notify_all()

    def after(self, seq: int, timeout: float = 10.0) -> tuple[int, np.ndarray]:
        """The first kept frame with a sequence number above ``seq`` (waits for it)."""
        deadline = time.perf_counter() + timeout
        with self.arrived:
            while True:
                for kept in self.frames:
                    if kept[0] > seq:
                        return kept
                left = deadline - time.perf_counter()
                if left <= 0:
                    raise TimeoutError(f"no output frame after seq {seq} within {timeout} s")
                self.arrived.wait(left)

    def latest_seq(self) -> int:
        """The newest kept frame's sequence number (-1 before any)."""
        with self.arrived:
            return self.frames[-1][0] if self.frames else -1

    def close(self) -> None:
        """Nothing to release."""


@dataclass
class Harness:
    """A running pipeline + panel, and handles to check its outputs."""

    pipeline: Pipeline
    server: PanelServer
    controller: LiveController
    processor: LiveSwapProcessor
    capture: CaptureSink
    source: StampedStill
    recorder: Recorder
    analyzer: FaceAnalyzer
    folder: Path
    faces: dict[str, str]  # sample name → gallery id

    @property
    def port(self) -> int:
        """The panel's port."""
        return self.server.port

    @property
    def url(self) -> str:
        """The panel URL with the token."""
        return self.server.url

    def request(self, method: str, path: str, body: bytes | None = None,
                headers: dict[str, str] | None = None, *, token: bool = True) -> tuple[int, Any, Any]:
        """One HTTP request: (status, parsed JSON or raw bytes, response headers)."""
        return http_request(self.port, method, path, body, headers, token=TOKEN if token else None)

    def frame_after_change(self, timeout: float = 10.0) -> tuple[int, np.ndarray]:
        """An output frame captured after everything already in flight has left the pipeline."""
        return self.capture.after(self.source_seq() + 1, timeout)

    def source_seq(self) -> int:
        """The sequence number of the frame the source reads next (minus one)."""
        return self.source._seq

    def stop(self) -> None:
        """Stop the server and the pipeline."""
        self.server.stop()
        self.pipeline.stop()


def http_request(port: int, method: str, path: str, body: bytes | None = None,
                 headers: dict[str, str] | None = None, *, token: str | None = TOKEN) -> tuple[int, Any, Any]:
    """One request to 127.0.0.1:``port`` with the bearer token (unless None)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    sent = dict(headers or {})
    if token is not None:
        sent.setdefault("Authorization", f"Bearer {token}")
    try:
        conn.request(method, path, body=body, headers=sent)
        response = conn.getresponse()
        data = response.read()
        kind = response.getheader("content-type", "")
        parsed = json.loads(data) if kind.startswith("application/json") else data
        return response.status, parsed, response.headers
    finally:
        conn.close()


def reference_swaps(sources: dict[str, Path], target: np.ndarray, analyzer: FaceAnalyzer) -> dict[str, np.ndarray]:
    """The target with each source's face swapped on by a fresh mesh swapper (no tracking)."""
    from realtime.faceswap import choose_face

    target_face = analyzer.analyze_still(target)[0]
    refs = {}
    for name, path in sources.items():
        image = load_image(path)
        swapper = MeshSwapper()
        swapper.prepare(image, choose_face(analyzer.analyze_still(image), path=path, face_index=None))
        out = target.copy()
        swapper.swap(out, target_face)
        refs[name] = out
    return refs


def nearest(image: np.ndarray, refs: dict[str, np.ndarray], box: tuple[int, int, int, int]) -> str:
    """Which reference ``image``'s face region is closest to."""
    x0, y0, x1, y1 = box
    crop = image[y0:y1, x0:x1].astype(np.float32)
    return min(refs, key=lambda name: float(np.abs(crop - refs[name][y0:y1, x0:x1]).mean()))


def start_harness(tmp: Path, models_root: Path, sample: Callable[[str], Path], *,
                  faces: tuple[str, ...] = ("gauss.png",)) -> Harness:
    """Start a live face swap on newton.png with the panel (token TOKEN) on a free port."""
    target = letterbox(load_image(sample("newton.png")), WIDTH, HEIGHT)
    analyzer = FaceAnalyzer.open(root=models_root, backend="onnxruntime", device="cpu", threads=1)
    controller = LiveController(analyzer=analyzer, gallery=FaceGallery(tmp / "faces"), options=LiveOptions())
    ids = {name: controller.add_file(sample(name)).id for name in faces}
    controller.change({"face": ids[faces[0]]})
    preview = PreviewSlot()
    processor = LiveSwapProcessor(controller=controller, analyzer=analyzer, preview=preview)
    source = StampedStill(target, FPS)
    capture = CaptureSink()
    pipeline = Pipeline(source=source, processor=processor, sinks=[capture, preview], config=PipelineConfig())
    recorder = Recorder(folder=tmp / "recordings", frame_format=FrameFormat(WIDTH, HEIGHT, FPS),
                        add_sink=pipeline.add_sink, remove_sink=pipeline.remove_sink)
    server = PanelServer(host="127.0.0.1", port=0)
    ctx = PanelContext(controller=controller, preview=preview, stats=pipeline.stats, recorder=recorder,
                       source_name=source.name, outputs=lambda: [s.name for s in pipeline.sinks if s is not preview])
    pipeline.start()
    server.start(ctx, token=TOKEN)
    return Harness(pipeline=pipeline, server=server, controller=controller, processor=processor, capture=capture,
                   source=source, recorder=recorder, analyzer=analyzer, folder=tmp, faces=ids)


def face_box(harness: Harness) -> tuple[int, int, int, int]:
    """The target face's box in the frame (from a still analysis), for comparing face regions."""
    face = harness.analyzer.analyze_still(harness.source.base)[0]
    x0, y0, x1, y1 = (int(v) for v in face.box)
    return max(0, x0), max(0, y0), x1, y1


def multipart(field: str, filename: str, data: bytes, content_type: str = "image/png") -> tuple[bytes, str]:
    """A multipart/form-data body with one file field, and its Content-Type."""
    boundary = "swapcamtestboundary7f3a"
    head = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"{field}\"; filename=\"{filename}\"\r\n"
            f"Content-Type: {content_type}\r\n\r\n").encode()
    return head + data + f"\r\n--{boundary}--\r\n".encode(), f"multipart/form-data; boundary={boundary}"
