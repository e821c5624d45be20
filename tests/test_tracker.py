"""Tracking and smoothing on rendered clips made from a real photo, plus the One Euro filter alone."""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Callable, Iterator

import numpy as np
import pytest

from realtime.engines.base import Engine
from realtime.faces.analyzer import FaceAnalyzer
from realtime.faces.background_check import BackgroundCheck
from realtime.faces.detector import ScrfdDetector
from realtime.faces.landmarks import FaceMesh
from realtime.faces.smoothing import OneEuroFilter, OneEuroParams
from realtime.faces.types import Face
from realtime.frame import Frame

FPS = 30.0
WINDOW = 640
# gauss.png (1024×1305): its face (≈ 290 px wide, like a webcam close-up at 1280×720) centred in a 640² window
FACE_CENTRE = (515, 385)


class RecordingDetector(ScrfdDetector):
    """The real detector, noting the input size of every call."""

    def __init__(self, engine: Engine) -> None:
        super().__init__(engine)
        self.calls: list[int | None] = []

    def detect(self, image_bgr: np.ndarray, *, size: int | None = None) -> list[Face]:
        self.calls.append(size)
        return super().detect(image_bgr, size=size)


def _analyzer(scrfd_engine: Engine, mesh_engine: Engine, **options: object) -> FaceAnalyzer:
    return FaceAnalyzer(detector=RecordingDetector(scrfd_engine), mesh=FaceMesh(mesh_engine), **options)  # type: ignore[arg-type]


def _clip(photo: np.ndarray, *, frames: int, shift_px: int = 0, noise: float = 0.0) -> Iterator[Frame]:
    """A 640² window on ``photo`` moving ``shift_px`` to the right per frame (so the face moves left),
    with Gaussian sensor noise of σ = ``noise`` grey levels, different in every frame."""
    x0 = FACE_CENTRE[0] - WINDOW // 2 - shift_px * frames // 2
    y0 = FACE_CENTRE[1] - WINDOW // 2
    for i in range(frames):
        x = x0 + shift_px * i
        image = photo[y0:y0 + WINDOW, x:x + WINDOW].astype(np.float32)
        if noise:
            image += np.random.default_rng(i).standard_normal(image.shape, dtype=np.float32) * noise
        yield Frame(image=np.clip(image, 0, 255).astype(np.uint8), seq=i, t_capture=round(i * 1e9 / FPS))


def _run(analyzer: FaceAnalyzer, clip: Iterator[Frame]) -> tuple[np.ndarray, list[Frame]]:
    """(frames × 468 × 2) landmark positions of the one tracked face, and the frames."""
    points, frames = [], []
    for frame in clip:
        faces = analyzer.track(frame.image, frame)
        assert len(faces) == 1, f"frame {frame.seq}: {len(faces)} faces"
        assert faces[0].landmarks is not None
        points.append(faces[0].landmarks[:, :2])
        frames.append(frame)
    return np.array(points), frames


def _jitter(points: np.ndarray) -> float:
    """RMS distance of each landmark from its own mean position over the clip."""
    return float(np.sqrt(((points - points.mean(axis=0)) ** 2).sum(axis=-1).mean()))


@pytest.fixture(scope="module")
def photo(sample_image: Callable[[str], np.ndarray]) -> np.ndarray:
    return sample_image("gauss.png")


def test_still_face_jitter_after_smoothing(scrfd_engine: Engine, mesh_engine: Engine, photo: np.ndarray) -> None:
    """60 frames of a still face with sensor noise σ = 8 grey levels (a webcam in dim light): after
    smoothing the landmarks jitter ≤ 0.5 px RMS; without smoothing they jitter more than that (measured
    0.83 → 0.34 px). The first 10 frames (1/3 s) are left out while the filter settles."""
    raw, _ = _run(_analyzer(scrfd_engine, mesh_engine, smoothing=False), _clip(photo, frames=60, noise=8.0))
    smooth, _ = _run(_analyzer(scrfd_engine, mesh_engine), _clip(photo, frames=60, noise=8.0))
    raw_jitter, smooth_jitter = _jitter(raw[10:]), _jitter(smooth[10:])
    assert smooth_jitter <= 0.5, (raw_jitter, smooth_jitter)
    assert raw_jitter > 0.5 and raw_jitter > 1.8 * smooth_jitter, (raw_jitter, smooth_jitter)


def test_moving_face_is_tracked_without_lag(scrfd_engine: Engine, mesh_engine: Engine,
                                            photo: np.ndarray) -> None:
    """The face moves 3 px per frame (90 px/s) for 60 frames. The tracker follows it from its own
    landmarks (the detector runs on frame 1 and once more for the periodic check), the raw landmarks
    move with the image (mean error ≤ 1 px), and the smoothed ones trail the raw ones by at most half a
    frame of motion (1.5 px; measured ≈ 1.1 px)."""
    shift = 3
    tracker = _analyzer(scrfd_engine, mesh_engine, smoothing=False, redetect_every=30)
    raw, frames = _run(tracker, _clip(photo, frames=60, shift_px=shift))
    assert isinstance(tracker.detector, RecordingDetector)
    assert tracker.detector.calls == [None, tracker.options.check_size]  # full size once, then a check
    assert [f.seq for f in frames if "detect" in f.stages] == [0, 30]
    assert all("landmarks" in f.stages for f in frames)

    motion = -shift * np.arange(60, dtype=np.float32)  # the face moves left in the window
    centre_x = raw[:, :, 0].mean(axis=1)
    assert np.abs((centre_x - centre_x[0]) - motion).mean() <= 1.0

    smooth, _ = _run(_analyzer(scrfd_engine, mesh_engine, redetect_every=30), _clip(photo, frames=60,
                                                                                    shift_px=shift))
    lag = (smooth[10:, :, 0] - raw[10:, :, 0]).mean(axis=1)  # positive: behind a leftward motion
    assert np.abs(lag).max() <= shift / 2, lag
    assert lag.mean() > 0.1, "a filter that smooths must lag a little; none means it is off"


def test_lost_face_is_looked_for_on_the_same_frame(scrfd_engine: Engine, mesh_engine: Engine,
                                                   photo: np.ndarray) -> None:
    frames = list(_clip(photo, frames=6))
    for i in (3, 4):
        frames[i] = Frame(image=np.full((WINDOW, WINDOW, 3), 90, np.uint8), seq=i, t_capture=frames[i].t_capture)
    analyzer = _analyzer(scrfd_engine, mesh_engine)
    counts = [len(analyzer.track(f.image, f)) for f in frames]
    assert counts == [1, 1, 1, 0, 0, 1]
    assert [f.seq for f in frames if "detect" in f.stages] == [0, 3, 4, 5]
    analyzer.reset()
    assert len(analyzer.track(frames[0].image)) == 1
    assert isinstance(analyzer.detector, RecordingDetector)
    assert len(analyzer.detector.calls) == 5


def _two_faces(photo: np.ndarray, small: np.ndarray, *, with_small: bool, with_big: bool) -> np.ndarray:
    """A 480×960 canvas: the big face (480²) on the left, a small face (200²) on the right."""
    canvas = np.full((480, 960, 3), 90, np.uint8)
    if with_big:
        y, x = FACE_CENTRE[1] - 240, FACE_CENTRE[0] - 240
        canvas[:, :480] = photo[y:y + 480, x:x + 480]
    if with_small:
        canvas[140:340, 700:900] = small
    return canvas


def test_new_faces_are_picked_up(scrfd_engine: Engine, mesh_engine: Engine, photo: np.ndarray,
                                 sample_image: Callable[[str], np.ndarray]) -> None:
    """max_faces=2: a second face entering is tracked after at most ``redetect_every`` frames;
    max_faces=1: a bigger face entering replaces the tracked one at the periodic (small-input) check."""
    newton = sample_image("newton.png")[60:260, 286:486]  # 200² around Newton's face
    one = _two_faces(photo, newton, with_small=True, with_big=False)
    both = _two_faces(photo, newton, with_small=True, with_big=True)

    pair = _analyzer(scrfd_engine, mesh_engine, max_faces=2, redetect_every=5)
    counts = [len(pair.track(image, timestamp_s=i / FPS)) for i, image in enumerate([one] * 2 + [both] * 6)]
    assert counts[:2] == [1, 1] and counts[-1] == 2
    assert counts.index(2) <= 2 + 5

    single = _analyzer(scrfd_engine, mesh_engine, max_faces=1, redetect_every=5)
    faces = [single.track(image, timestamp_s=i / FPS) for i, image in enumerate([one] * 2 + [both] * 6)]
    assert all(len(f) == 1 for f in faces)
    assert faces[1][0].box[0] > 480  # the small face on the right
    assert faces[-1][0].box[2] < 480  # then the big face on the left
    assert isinstance(single.detector, RecordingDetector)
    assert single.options.check_size in single.detector.calls


def test_background_check_keeps_the_detector_off_tracked_frames(scrfd_engine: Engine, mesh_engine: Engine,
                                                                photo: np.ndarray) -> None:
    """Live video: the periodic check runs on its own thread; only the first frame (nothing to track
    yet) waits for the detector, yet the checks do run, at the small input."""
    analyzer = _analyzer(scrfd_engine, mesh_engine, redetect_every=5, background_check=True)
    try:
        frames = []
        for frame in _clip(photo, frames=40, shift_px=1):
            assert len(analyzer.track(frame.image, frame)) == 1
            frames.append(frame)
            time.sleep(0.005)  # a little of the time a live frame interval leaves
        assert [f.seq for f in frames if "detect" in f.stages] == [0]
        assert isinstance(analyzer.detector, RecordingDetector)
        assert analyzer.detector.calls[0] is None
        assert analyzer.detector.calls.count(analyzer.options.check_size) >= 2
        assert any(t.name == "swapcam-face-check" for t in threading.enumerate())
    finally:
        analyzer.close()
    assert not any(t.name == "swapcam-face-check" for t in threading.enumerate())


def test_background_check_picks_up_a_bigger_face(scrfd_engine: Engine, mesh_engine: Engine, photo: np.ndarray,
                                                 sample_image: Callable[[str], np.ndarray]) -> None:
    newton = sample_image("newton.png")[60:260, 286:486]
    one = _two_faces(photo, newton, with_small=True, with_big=False)
    both = _two_faces(photo, newton, with_small=True, with_big=True)
    single = _analyzer(scrfd_engine, mesh_engine, max_faces=1, redetect_every=5, background_check=True)
    try:
        assert single.track(one, timestamp_s=0.0)[0].box[0] > 480  # the small face on the right
        deadline = time.perf_counter() + 10
        switched = None
        for i in itertools.count(1):
            frame = Frame(image=both.copy(), seq=i, t_capture=round(i * 1e9 / FPS))
            faces = single.track(frame.image, frame)
            assert len(faces) == 1
            if faces[0].box[2] < 480:  # the big face on the left
                switched = frame
                break
            assert time.perf_counter() < deadline, "the bigger face was never picked up"
            time.sleep(0.01)
        assert "detect" not in switched.stages  # adopted from the check, without waiting on this frame
    finally:
        single.close()


def test_background_check_results_from_before_a_reset_are_dropped() -> None:
    started, release = threading.Event(), threading.Event()

    def slow_detect(image: np.ndarray) -> list[Face]:
        started.set()
        release.wait(5)
        return [Face(box=np.array([0, 0, 10, 10], np.float32), keypoints=np.zeros((5, 2), np.float32), score=0.9)]

    check = BackgroundCheck(slow_detect)
    image = np.zeros((8, 8, 3), np.uint8)
    assert check.submit(image)
    assert started.wait(5)
    assert not check.submit(image)  # one at a time: a check already runs
    check.discard()
    release.set()
    assert check.wait_idle(5)
    assert check.take() is None
    assert check.submit(image)
    assert check.wait_idle(5)
    found = check.take()
    assert found is not None and len(found) == 1
    assert check.take() is None  # handed over once
    check.close()


def test_a_failing_background_check_is_counted_and_the_next_one_runs() -> None:
    calls = []

    def flaky(image: np.ndarray) -> list[Face]:
        calls.append(1)
        if len(calls) == 1:
            raise RuntimeError("provider failure")
        return []

    check = BackgroundCheck(flaky)
    image = np.zeros((8, 8, 3), np.uint8)
    assert check.submit(image) and check.wait_idle(5)
    assert check.failures == 1 and check.take() is None
    assert check.submit(image) and check.wait_idle(5)
    assert check.take() == []
    check.close()


def test_analyze_still_returns_every_face_largest_first(scrfd_engine: Engine, mesh_engine: Engine,
                                                        sample_image: Callable[[str], np.ndarray]) -> None:
    analyzer = _analyzer(scrfd_engine, mesh_engine)
    faces = analyzer.analyze_still(sample_image("solvay_conference_1927.jpg"), max_faces=3)
    assert len(faces) == 3
    assert faces[0].area >= faces[1].area >= faces[2].area
    assert all(f.landmarks is not None and f.landmarks.shape == (468, 3) for f in faces)


# ---------------------------------------------------------------- the One Euro filter alone


def test_one_euro_passes_a_constant_and_settles_on_a_step() -> None:
    smoother = OneEuroFilter()
    still = np.full((468, 3), 5.0, np.float32)
    assert smoother(still, 0.0) == pytest.approx(still)
    assert smoother(still, 1 / FPS) == pytest.approx(still)
    moved = still + 10
    out = [smoother(moved, (2 + i) / FPS, scale=100.0) for i in range(30)]
    assert 5 < out[0][0, 0] < 15 and out[-1] == pytest.approx(moved, abs=0.05)


def test_one_euro_reduces_noise_and_follows_motion() -> None:
    rng = np.random.default_rng(0)
    times = np.arange(120) / FPS
    noisy = rng.normal(0, 1, (120, 468, 2))
    smoother = OneEuroFilter(params=OneEuroParams())
    out = np.array([smoother(p, t, scale=200.0) for p, t in zip(noisy, times, strict=True)])
    assert out[30:].std() < 0.5 * noisy[30:].std()

    fast = OneEuroFilter(params=OneEuroParams())
    ramp = (times * 300)[:, None, None] + np.zeros((1, 468, 2))  # 10 px per frame on a 200 px face
    followed = np.array([fast(p, t, scale=200.0) for p, t in zip(ramp, times, strict=True)])
    assert np.abs(followed[30:] - ramp[30:]).max() < 3.0  # less than a third of a frame behind
    no_beta = OneEuroFilter(params=OneEuroParams(beta=0.0))
    lagging = np.array([no_beta(p, t, scale=200.0) for p, t in zip(ramp, times, strict=True)])
    assert np.abs(lagging[30:] - ramp[30:]).max() > 20.0  # speed-adaptive cutoff is what removes lag


def test_one_euro_uses_timestamps() -> None:
    """The same step smoothed less when frames are further apart in time; a repeated time changes nothing."""
    step = np.ones((468, 2))
    slow, fast = OneEuroFilter(), OneEuroFilter()
    slow(np.zeros((468, 2)), 0.0)
    fast(np.zeros((468, 2)), 0.0)
    assert slow(step, 0.2)[0, 0] > fast(step, 0.01)[0, 0]
    before = fast(step, 0.02).copy()
    assert fast(step * 5, 0.02) == pytest.approx(before)
    fast.reset()
    assert fast(step * 5, 0.03) == pytest.approx(step * 5)
