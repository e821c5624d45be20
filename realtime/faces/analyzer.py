"""Faces with landmarks, for photos (``analyze_still``) and for video frames (``track``).

Tracking: once a face is found, the next frame's mesh crop comes from this
frame's landmarks, so the detector is not needed per frame. It runs when
there is nothing to track, when a track's face-presence score drops, and
every ``redetect_every`` frames to pick up new faces. When every slot
(``max_faces``) is filled by a healthy track, that periodic check can only
find a bigger face entering, so it runs at the small ``check_size`` input —
and, with ``background_check`` (live video), on its own thread: its result is
taken in a frame or two later, and no frame waits for it. Inline, that check
was the slowest frame in every 30 and set the p99 latency.

Under memory pressure (the detector's engine is a FallbackEngine on a GPU),
a failed detection first steps the detector input down (half, to 160 px at
least) and retries; only then does the engine fall back to a lesser backend.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from realtime.clock import now_ns
from realtime.engines.fallback import FallbackEngine, ResourcePressure
from realtime.engines.opening import open_model
from realtime.errors import UsageError, warning_text
from realtime.faces.background_check import BackgroundCheck
from realtime.faces.detector import DEFAULT_INPUT_SIZE, ScrfdDetector, check_input_size, iou
from realtime.faces.keypoints import fit_offsets, keypoints
from realtime.faces.landmarks import (
    CropBox,
    FaceMesh,
    box_from_landmarks,
    crop_from_detection,
    crop_from_landmarks,
)
from realtime.faces.smoothing import OneEuroFilter, OneEuroParams
from realtime.faces.still import STILL_REUSE, StillCheck
from realtime.faces.types import Face
from realtime.frame import Frame, maybe_stage

log = logging.getLogger(__name__)

STILL_SIZE = 640  # photos: faces can be small, and one detection costs ≈0.1 s at most
CHECK_SIZE = 160  # ≈7 ms: enough to notice a new, bigger face while all slots are tracked
DUPLICATE_IOU = 0.5
RELIEF_FLOOR = 160  # under memory pressure the detector input steps down to this size at the least


@dataclass
class _Track:
    """One followed face: the crop for its next mesh run, its last raw landmarks, filter and scores."""

    crop: CropBox
    score: float
    smoother: OneEuroFilter
    points: np.ndarray = field(default_factory=lambda: np.zeros((0, 3), np.float32))
    presence: float = 0.0
    seen: int = -1  # the frame number the points are from: the mesh runs once per track per frame
    detected: np.ndarray | None = None  # SCRFD keypoints of this frame, to fit ``offsets`` on (faces/keypoints.py)
    offsets: np.ndarray | None = None  # mesh anchors → SCRFD's keypoints, in the face's frame
    ident: int = -1  # stable id, passed on as Face.track (swappers keep per-face state by it)
    still: StillCheck = field(default_factory=StillCheck)


@dataclass(frozen=True)
class TrackerOptions:
    """``max_faces``: faces followed, largest first; ``redetect_every``: frames between detector runs
    while tracking; ``presence_threshold``: a track whose mesh presence falls below it is dropped and
    the detector runs at once; ``smoothing``: One Euro filter on the landmarks (None = off);
    ``background_check``: run the periodic check (all slots tracked) on its own thread; ``reuse_still``: frames
    in a row a resting face keeps its landmarks when several share the frame time (faces/still.py; 0 = never)."""

    max_faces: int = 1
    redetect_every: int = 30
    presence_threshold: float = 0.5
    check_size: int = CHECK_SIZE
    still_size: int = STILL_SIZE
    smoothing: OneEuroParams | None = field(default_factory=OneEuroParams)
    background_check: bool = False
    reuse_still: int = STILL_REUSE

    def __post_init__(self) -> None:
        if self.max_faces < 1:
            raise UsageError("E01", f"--max-faces {self.max_faces}", remedy="use 1 or more faces")
        if self.redetect_every < 1:
            raise UsageError("E01", f"redetect every {self.redetect_every} frames",
                             remedy="use a positive number of frames, e.g. 30")
        check_input_size(self.check_size)
        check_input_size(self.still_size)


class FaceAnalyzer:
    """Detector + face mesh + tracker: faces carry 468-point ``landmarks``, largest first."""

    def __init__(self, *, detector: ScrfdDetector, mesh: FaceMesh, max_faces: int = 1,
                 redetect_every: int = 30, smoothing: bool = True,
                 smoothing_params: OneEuroParams | None = None, presence_threshold: float = 0.5,
                 check_size: int = CHECK_SIZE, still_size: int = STILL_SIZE,
                 background_check: bool = False) -> None:
        self.detector = detector
        self.mesh = mesh
        self.options = TrackerOptions(
            max_faces=max_faces, redetect_every=redetect_every, presence_threshold=presence_threshold,
            check_size=check_size, still_size=still_size, background_check=background_check,
            smoothing=(smoothing_params or OneEuroParams()) if smoothing else None)
        self._tracks: list[_Track] = []
        self._since_detect = 0
        self._frame_no = 0
        self._next_track = 0
        self.detections = 0  # detector runs while tracking (for tests and stats)
        self.size_cap: int | None = None  # detector input limit after out-of-memory step-downs
        self._detecting = 0  # the input size of the detection in progress
        self._detector_lock = threading.Lock()  # the background check and the tracking thread share it
        self._check = BackgroundCheck(lambda image: self._run_detector(image, self.options.check_size)) \
            if background_check else None
        if isinstance(detector.engine, FallbackEngine) and not detector.fixed_input:
            detector.engine.relief = self._shrink_detector

    @classmethod
    def open(cls, *, root: Path | None = None, backend: str = "auto", device: str = "auto",
             threads: int = 1, det_size: int | None = None, max_faces: int = 1, precision: str = "fp32",
             cuda_graph: bool = False, **options: Any) -> FaceAnalyzer:
        """Open the fetched models (E06/E07 when missing or corrupt) and build an analyzer.

        ``precision``/``cuda_graph``: see :func:`~realtime.engines.opening.open_model`."""
        detector = ScrfdDetector(open_model("scrfd", root=root, backend=backend, device=device, threads=threads,
                                            precision=precision), input_size=det_size or DEFAULT_INPUT_SIZE)
        mesh = FaceMesh(open_model("face_mesh", root=root, backend=backend, device=device, threads=threads,
                                   precision=precision, cuda_graph=cuda_graph))
        return cls(detector=detector, mesh=mesh, max_faces=max_faces, **options)

    # ------------------------------------------------------------ photos

    def analyze_still(self, image: np.ndarray, *, max_faces: int | None = None) -> list[Face]:
        """Every face in a photo (up to ``max_faces``), largest first, with landmarks.

        Detects at ``still_size``; the mesh runs twice per face, the second time on the crop its first
        landmarks give, which fits the model's training crops better than the detector box does.
        """
        faces = self._run_detector(image, max(self.options.still_size, self.detector.options.input_size))
        result = []
        for face in faces[:max_faces]:
            points, presence = self.mesh.landmarks(image, crop_from_detection(face.box, face.keypoints))
            points, presence = self.mesh.landmarks(image, crop_from_landmarks(points))
            result.append(replace(face, landmarks=points, presence=presence))
        return result

    # ------------------------------------------------------------ video

    def reset(self) -> None:
        """Forget every track (e.g. after a scene cut or a new input)."""
        self._tracks = []
        self._since_detect = 0
        if self._check is not None:
            self._check.discard()

    def close(self) -> None:
        """Stop the background check's thread, if there is one."""
        if self._check is not None:
            self._check.close()

    def track(self, image: np.ndarray, frame: Frame | None = None, *,
              timestamp_s: float | None = None) -> list[Face]:
        """Faces in one video frame, largest first, with smoothed landmarks.

        Times ``detect`` and ``landmarks`` on ``frame`` when given. The smoothing clock is
        ``timestamp_s`` if given (e.g. a video's presentation time when rendering offline), else the
        frame's capture time, else now.
        """
        if timestamp_s is None:
            timestamp_s = (frame.t_capture if frame is not None else now_ns()) / 1e9
        opts = self.options
        self._frame_no += 1
        self._since_detect += 1
        periodic = self._since_detect >= opts.redetect_every
        full = len(self._tracks) >= opts.max_faces
        detected = False
        checked = self._check.take() if self._check is not None else None
        if checked is not None:
            # Follow at once, so a track the new face pushes out of its slot does not count as lost below.
            self._adopt(checked)
            self._follow(image, frame)
        if not self._tracks or (periodic and not full):
            self._detect(image, frame, size=None)
            detected = True
        before = len(self._tracks)
        self._follow(image, frame)
        lost = len(self._tracks) < before
        if lost and not detected:
            # A face was lost on this frame: look again now rather than output a frame without it.
            self._detect(image, frame, size=None)
            self._follow(image, frame)
        elif periodic and full and not detected and self._tracks:
            # Every slot holds a healthy track: only a bigger face entering could take one, and the
            # small input sees a big face, for a fraction of the cost.
            if self._check is not None:
                self._since_detect = 0
                self._check.submit(image.copy())  # a copy: the swap edits this frame in place
            else:
                self._detect(image, frame, size=opts.check_size)
                self._follow(image, frame)
        return self._faces(timestamp_s)

    def _detect(self, image: np.ndarray, frame: Frame | None, *, size: int | None) -> None:
        """Run the detector; open a track (crop from the box) for each face not tracked yet that could
        win a slot: any while slots are free, else only one bigger than the smallest tracked face."""
        with maybe_stage(frame, "detect"):
            found = self._run_detector(image, size)
        self._adopt(found, refit=size is None)

    def _adopt(self, found: list[Face], *, refit: bool = False) -> None:
        """Open a track for each detected face that is not tracked yet and could win a slot."""
        self._since_detect = 0
        self.detections += 1
        free = self.options.max_faces - len(self._tracks)
        smallest = min((t.crop.size for t in self._tracks), default=0.0)
        for face in found:  # largest first
            crop = crop_from_detection(face.box, face.keypoints)
            tracked = [t for t in self._tracks if iou(crop.box(), t.crop.box()[None])[0] > DUPLICATE_IOU]
            if tracked:  # already tracked: a full-size detection of this frame refines its keypoint offsets
                if refit:
                    tracked[0].detected = face.keypoints
                continue
            if free <= 0 and crop.size <= smallest:
                break
            free -= 1
            self._next_track += 1
            self._tracks.append(_Track(crop=crop, score=face.score, detected=face.keypoints, ident=self._next_track,
                                       smoother=OneEuroFilter(params=self.options.smoothing or OneEuroParams())))

    def _run_detector(self, image: np.ndarray, size: int | None) -> list[Face]:
        """The detector at ``size`` px (None: its own input size), or at the smaller cap a memory shortage set."""
        with self._detector_lock:
            while True:
                wanted = size or self.detector.options.input_size
                self._detecting = min(wanted, self.size_cap or wanted)
                try:
                    return self.detector.detect(image, size=size if self._detecting == wanted else self._detecting)
                except ResourcePressure:
                    continue  # _shrink_detector lowered the cap: the retry is lighter (it ends at the floor)

    def _shrink_detector(self, exc: BaseException) -> bool:
        """Relief for the detector's engine: half the input size, down to RELIEF_FLOOR; False at the floor."""
        smaller = max(RELIEF_FLOOR, self._detecting // 2 // 32 * 32)
        if smaller >= self._detecting:
            return False
        log.warning("%s", warning_text("E20", f"face detector at {self._detecting} px: {type(exc).__name__} — "
                                              f"stepping down to {smaller} px, the stream goes on"))
        self.size_cap = smaller
        return True

    def _follow(self, image: np.ndarray, frame: Frame | None) -> None:
        """Run the mesh on each track not yet seen in this frame (crop from the previous frame's
        landmarks, or from the detector box for a new track); drop lost and duplicate tracks and keep
        the ``max_faces`` largest."""
        kept: list[_Track] = []
        with maybe_stage(frame, "landmarks"):
            self._run_mesh_all(image, [t for t in self._tracks if t.seen != self._frame_no])
            for track in self._tracks:
                if track.presence < self.options.presence_threshold:
                    continue
                if track.detected is not None:  # the detection and the points are both of this frame
                    track.offsets = fit_offsets(track.points, track.detected, track.offsets)
                    track.detected = None
                box = box_from_landmarks(track.points)
                if any(iou(box, box_from_landmarks(other.points)[None])[0] > DUPLICATE_IOU for other in kept):
                    continue  # two tracks on one face: keep the older
                track.crop = crop_from_landmarks(track.points)
                kept.append(track)
        if len(kept) > self.options.max_faces:
            biggest = sorted(kept, key=lambda t: t.crop.size, reverse=True)[: self.options.max_faces]
            kept = [t for t in kept if any(t is b for b in biggest)]
        self._tracks = kept

    def _run_mesh_all(self, image: np.ndarray, tracks: list[_Track]) -> None:
        """The mesh on every track that needs it, in one go (the calls overlap on an engine that can submit).

        With several faces, a face at rest keeps its landmarks for a few frames (faces/still.py)."""
        limit, ok = (self.options.reuse_still if len(self._tracks) > 1 else 0), self.options.presence_threshold
        runs: list[tuple[_Track, bool, int]] = []
        for track in tracks:
            still = limit > 0 and track.seen >= 0 and track.still.matches(image, track.crop)
            track.seen, seen = self._frame_no, track.seen
            if not (still and track.still.reuse(limit)):
                runs.append((track, still, seen))
        results = self.mesh.landmarks_all(image, [track.crop for track, _, _ in runs])
        fresh, new = [], []
        for (track, still, seen), (points, presence) in zip(runs, results, strict=True):
            track.presence = presence
            if still and track.presence >= ok and (settled := track.still.settle(points)) is not None:
                track.points = settled
                continue
            track.points = points
            fresh.append(track)
            if seen < 0 and track.presence >= ok:
                new.append(track)
        # A new track's crop comes from the detector box, which the mesh was not trained on: a
        # second pass on the landmark crop saves several frames of settling.
        again = self.mesh.landmarks_all(image, [crop_from_landmarks(track.points) for track in new])
        for track, (points, presence) in zip(new, again, strict=True):
            track.points, track.presence = points, presence
        for track in fresh:
            if limit > 0 and track.presence >= ok:
                track.still.restart(image, crop_from_landmarks(track.points), track.points,
                                    track.ident % (limit + 1))

    def _faces(self, timestamp_s: float) -> list[Face]:
        faces = []
        for track in self._tracks:
            points = track.points
            if self.options.smoothing is not None:
                if track.still.count > 1 and len(self._tracks) > 1:
                    track.smoother.reset()  # at rest the average of the mesh runs is smoother still: seed it
                scale = float(np.ptp(points[:, 0]))
                points = track.smoother(points, timestamp_s, scale=scale)
            faces.append(Face(box=box_from_landmarks(points), keypoints=keypoints(points, track.offsets),
                              score=track.score, landmarks=points, presence=track.presence,
                              track=track.ident))
        faces.sort(key=lambda face: face.area, reverse=True)
        return faces
