"""Quality figures of the mesh swap that need no human judge, before and after the finishing steps.

    python tools/bench_quality.py [--json out/quality.json] [--quick]
    python tools/bench_quality.py --sheet docs/contact_sheet_finishing.jpg

(a) lighting ratio: one source swapped onto a left-lit and a right-lit copy of
    a target; the difference of the outputs' horizontal log-luminance slopes
    over the inner face divided by the same difference between the two targets
    (1.0 ideal), averaged over three source/target pairs.
(b) occluders kept: objects and skin-toned shapes drawn over the target's
    lower face after a second of clean video; the share of occluder pixels
    inside the face oval left within OCCLUDER_TOLERANCE of the input. Its guard,
    ``moving_swapped_share``: the share of the face the swap still changes on a
    moving clip with no occluder (a swap that kept everything would score 0).
(c) flicker: mean absolute frame-to-frame change inside the face oval on a
    still clip with sensor noise (the input's own figure for reference).
(d) seam: gradient energy in the mask's soft edge, output over target (1.0 =
    no edge added).
(e) cost: median time per face of the swap's stages on a 1280×720 frame (a face
    moving a little, so no step is skipped).

"before" is the swap with shading, occlusion, source cleaning and the two-band
blend off, which is the code path of the earlier release.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import replace
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from contact_sheet import SUBJECTS, face_cell, label, load_subject, write_jpeg

from realtime.blend import composite
from realtime.clock import now_ns, now_s
from realtime.faces import mesh_topology as topo
from realtime.faces.analyzer import FaceAnalyzer
from realtime.faces.types import Face
from realtime.frame import Frame
from realtime.occlusion import oval_mask
from realtime.swappers.mesh import MeshSwapOptions, MeshSwapper

BEFORE = MeshSwapOptions(shading=False, occlusion=False, clean_source=False, two_band=False)
AFTER = MeshSwapOptions()
PAIRS = ((1, 0), (0, 3), (2, 1))  # (source, target) indices into contact_sheet.SUBJECTS
OCCLUDER_TOLERANCE = 8  # levels: an occluder pixel within this of the input counts as kept
NOISE_SIGMA = 2.0
FPS = 30.0


def lit(image: np.ndarray, face: Face, direction: float) -> np.ndarray:
    """``image`` lit from one side: brightness × 2^(±x / face width) about the face centre."""
    x0, _, x1, _ = (float(v) for v in face.box)
    x = (np.arange(image.shape[1], dtype=np.float32) - (x0 + x1) / 2) / max(x1 - x0, 1.0)
    gain = np.power(2.0, direction * x).astype(np.float32)[None, :, None]
    return np.clip(image.astype(np.float32) * gain, 0, 255).astype(np.uint8)


def inner_face(face: Face, shape: tuple[int, ...]) -> np.ndarray:
    """Bool mask of the inner face: the oval's central 60 % across, from the brows to the mouth."""
    pts = face.landmarks[:, :2] if face.landmarks is not None else np.zeros((topo.NUM_POINTS, 2))
    mask = oval_mask((shape[0], shape[1]), pts) > 0
    x_lo, x_hi = pts[:, 0].min(), pts[:, 0].max()
    pad = 0.2 * (x_hi - x_lo)
    ys, xs = np.mgrid[0 : shape[0], 0 : shape[1]]
    top, bottom = pts[list(topo.RIGHT_BROW), 1].max(), pts[list(topo.LIPS_OUTER), 1].min()
    return mask & (xs > x_lo + pad) & (xs < x_hi - pad) & (ys > top) & (ys < bottom)


def log_slope(image: np.ndarray, mask: np.ndarray, face_w: float) -> float:
    """Least-squares slope of log luminance against x (in face widths) over ``mask``."""
    ys, xs = np.nonzero(mask)
    values = np.log(image[ys, xs].astype(np.float64).mean(axis=1) + 8.0)
    return float(np.polyfit(xs / face_w, values, 1)[0])


def lighting_ratio(analyzer: FaceAnalyzer, swapper: MeshSwapper, target: np.ndarray, face: Face) -> float:
    """(a) for one pair."""
    slopes_in, slopes_out = [], []
    mask = inner_face(face, target.shape)
    width = float(face.box[2] - face.box[0])
    for direction in (-1.0, 1.0):
        image = lit(target, face, direction)
        found = analyzer.analyze_still(image)
        out = image.copy()
        swapper.swap(out, found[0] if found else face)
        slopes_in.append(log_slope(image, mask, width))
        slopes_out.append(log_slope(out, mask, width))
    return (slopes_out[1] - slopes_out[0]) / (slopes_in[1] - slopes_in[0])


def occluders(image: np.ndarray, face: Face) -> list[tuple[str, np.ndarray]]:
    """(name, occluded copy) for objects and skin-toned shapes over the lower face."""
    pts = face.landmarks[:, :2] if face.landmarks is not None else np.zeros((topo.NUM_POINTS, 2))
    w = float(pts[:, 0].max() - pts[:, 0].min())
    mouth = pts[list(topo.LIPS_OUTER)].mean(axis=0)
    cx, cy = int(mouth[0]), int(mouth[1])
    out = []

    def shaded(colour: tuple[int, int, int], draw: object) -> np.ndarray:
        layer = np.zeros(image.shape[:2], np.uint8)
        draw(layer)  # type: ignore[operator]
        x = (np.arange(image.shape[1], dtype=np.float32) - cx) / w
        shade = np.clip(1.0 - 0.6 * x**2, 0.6, 1.0)[None, :, None]  # a rounded, lit-from-the-front surface
        paint = np.broadcast_to((np.array(colour, np.float32) * shade).astype(np.uint8), image.shape)
        result = image.copy()
        result[layer > 0] = paint[layer > 0]
        return result

    r = int(0.22 * w)
    out.append(("mug (white)", shaded((235, 235, 240), lambda m: cv2.rectangle(
        m, (cx - r, cy - r // 2), (cx + r // 2, cy + 2 * r), 255, -1))))
    out.append(("microphone (dark)", shaded((40, 40, 45), lambda m: (
        cv2.circle(m, (cx, cy), r // 2, 255, -1),
        cv2.rectangle(m, (cx - r // 6, cy), (cx + r // 6, cy + 3 * r), 255, -1)))))
    out.append(("cup (blue)", shaded((180, 90, 40), lambda m: cv2.ellipse(
        m, (cx + r // 3, cy + r // 2), (r, r // 2), 20, 0, 360, 255, -1))))
    skin_tones = {"hand (light skin)": (150, 175, 225), "hand (medium skin)": (95, 130, 180),
                  "hand (dark skin)": (50, 70, 105)}
    for name, colour in skin_tones.items():
        out.append((name, shaded(colour, lambda m: _hand(m, cx, cy, r))))
    own = np.median(image[oval_mask(image.shape[:2], pts) > 0], axis=0).astype(int)
    out.append(("hand (target's own skin)", shaded((int(own[0]), int(own[1]), int(own[2])),
                                                   lambda m: _hand(m, cx, cy, r))))
    return out


def _hand(mask: np.ndarray, cx: int, cy: int, r: int) -> None:
    """Four fingers and a palm, from the lower right across the mouth."""
    for i in range(4):
        y = cy - r // 2 + i * (r // 2)
        cv2.rectangle(mask, (cx - r, y), (cx + 3 * r, y + r // 2 - 2), 255, -1)
        cv2.circle(mask, (cx - r, y + r // 4), r // 4 - 1, 255, -1)
    cv2.rectangle(mask, (cx + r, cy - r // 2), (cx + 3 * r, cy + 2 * r), 255, -1)


def noisy(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """``image`` with Gaussian sensor noise."""
    return np.clip(image + rng.normal(0, NOISE_SIGMA, image.shape), 0, 255).astype(np.uint8)


def run_clip(analyzer: FaceAnalyzer, swapper: MeshSwapper, frames: list[np.ndarray]) -> list[np.ndarray]:
    """Track and swap each frame as live video (30 fps clock); the swapped frames."""
    analyzer.reset()
    outs = []
    for i, image in enumerate(frames):
        out = image.copy()
        for face in analyzer.track(out, timestamp_s=i / FPS):
            swapper.swap(out, face)
        outs.append(out)
    return outs


def occluders_kept(analyzer: FaceAnalyzer, swapper: MeshSwapper, target: np.ndarray, face: Face,
                   rng: np.random.Generator, warmup: int) -> dict[str, float]:
    """(b) for one target: per occluder, the share of its pixels in the face oval left unchanged."""
    oval = oval_mask(target.shape[:2], face.landmarks[:, :2]) > 0 if face.landmarks is not None else None
    result = {}
    for name, occluded in occluders(target, face):
        drawn = np.any(occluded != target, axis=2) & (oval if oval is not None else True)
        clean = [noisy(target, rng) for _ in range(warmup)]
        shown = [occluded.copy() for _ in range(3)]
        outs = run_clip(analyzer, swapper, clean + shown)
        change = np.abs(outs[-1].astype(np.int16) - shown[-1].astype(np.int16)).max(axis=2)
        result[name] = float((change[drawn] <= OCCLUDER_TOLERANCE).mean())
    return result


def flicker(analyzer: FaceAnalyzer, swapper: MeshSwapper, target: np.ndarray, face: Face,
            rng: np.random.Generator, frames: int) -> tuple[float, float]:
    """(c): mean |frame-to-frame change| in the face oval on a still noisy clip: (output, input)."""
    clip = [noisy(target, rng) for _ in range(frames)]
    outs = run_clip(analyzer, swapper, clip)
    oval = oval_mask(target.shape[:2], face.landmarks[:, :2]) > 0 if face.landmarks is not None else None
    settle = frames // 3

    def mean_change(seq: list[np.ndarray]) -> float:
        diffs = [np.abs(b.astype(np.int16) - a.astype(np.int16))[oval].mean()
                 for a, b in zip(seq[settle:], seq[settle + 1 :], strict=False)]
        return float(np.mean(diffs))

    return mean_change(outs), mean_change(clip)


def moving_coverage(analyzer: FaceAnalyzer, swapper: MeshSwapper, target: np.ndarray, face: Face,
                    rng: np.random.Generator, frames: int) -> float:
    """Guard for (b): on a clip of the target panning, zooming and tilting (no occluder), the share of the
    face oval (mouth and eyes included) the swap covers (alpha > 50 %), averaged over frames. A swap
    that took everything for an occluder would keep (b) at 1.0 but score 0 here."""
    h, w = target.shape[:2]
    centre = (float(face.box[0] + face.box[2]) / 2, float(face.box[1] + face.box[3]) / 2)
    analyzer.reset()
    shares = []
    for i in range(frames):
        phase = 2 * np.pi * i / frames
        matrix = cv2.getRotationMatrix2D(centre, 6 * np.sin(phase), 1 + 0.08 * np.sin(2 * phase))
        matrix[0, 2] += 0.06 * w * np.sin(phase)
        image = noisy(cv2.warpAffine(target, matrix, (w, h), borderMode=cv2.BORDER_REFLECT), rng)
        for found in analyzer.track(image, timestamp_s=i / FPS)[:1]:
            patch = swapper.render(image, found)
            if patch is None or found.landmarks is None:
                continue
            alpha = np.zeros((h, w), np.uint8)
            ph, pw = patch.alpha.shape
            alpha[patch.y : patch.y + ph, patch.x : patch.x + pw] = patch.alpha
            shares.append(float((alpha[oval_mask((h, w), found.landmarks[:, :2]) > 0] > 128).mean()))
    return float(np.mean(shares)) if shares else float("nan")


def seam(swapper: MeshSwapper, target: np.ndarray, face: Face) -> float:
    """(d): Sobel gradient energy of the output over the target's, in the mask's soft edge."""
    patch = swapper.render(target, face)
    if patch is None:
        return float("nan")
    h, w = patch.alpha.shape
    region = target[patch.y : patch.y + h, patch.x : patch.x + w]
    out = region.copy()
    composite(out, patch.image, patch.alpha)
    band = (patch.alpha > 12) & (patch.alpha < 243)

    def energy(img: np.ndarray) -> float:
        gray = cv2.cvtColor(img, cv2.COLOR_BGR2GRAY).astype(np.float32)
        gx, gy = cv2.Sobel(gray, cv2.CV_32F, 1, 0), cv2.Sobel(gray, cv2.CV_32F, 0, 1)
        return float((gx**2 + gy**2)[band].mean())

    return energy(out) / max(energy(region), 1e-6)


def stage_cost(analyzer: FaceAnalyzer, swapper: MeshSwapper, rounds: int) -> dict[str, float]:
    """(e): median ms per face of each swap stage on the 1280×720 demo layout (Newton's portrait)."""
    image = load_subject(SUBJECTS[0])
    frame720 = np.zeros((720, 1280, 3), np.uint8)
    scale = min(600 / image.shape[0], 1200 / image.shape[1])
    small = cv2.resize(image, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
    y, x = (720 - small.shape[0]) // 2, (1280 - small.shape[1]) // 2
    frame720[y : y + small.shape[0], x : x + small.shape[1]] = small
    still = replace(analyzer.analyze_still(frame720)[0], track=1)
    assert still.landmarks is not None
    times: dict[str, list[float]] = {}
    for i in range(rounds):
        # A hundredth of a pixel of motion per frame: the full cost of a moving face (no warp reuse).
        face = replace(still, landmarks=still.landmarks + np.float32(0.01 * i))
        frame = Frame(image=frame720.copy(), seq=i, t_capture=now_ns())
        start = now_s()
        swapper.swap(frame.image, face, frame)
        times.setdefault("total", []).append((now_s() - start) * 1e3)
        for name in frame.stages:
            times.setdefault(name, []).append(frame.stage_ms(name) or 0.0)
    return {name: round(float(np.median(v)), 2) for name, v in times.items()}


def measure(options: MeshSwapOptions, analyzer: FaceAnalyzer, images: list[np.ndarray], faces: list[Face],
            quick: bool) -> dict[str, object]:
    """Every figure for one set of options."""
    rng = np.random.default_rng(0)
    swappers = {}
    for s in {p[0] for p in PAIRS}:
        swapper = MeshSwapper(options=options)
        swapper.prepare(images[s], faces[s])
        swappers[s] = swapper
    lighting = [lighting_ratio(analyzer, swappers[s], images[t], faces[t]) for s, t in PAIRS]
    kept: dict[str, list[float]] = {}
    for s, t in PAIRS[: 1 if quick else 3]:
        for name, share in occluders_kept(analyzer, swappers[s], images[t], faces[t], rng,
                                          warmup=10 if quick else 30).items():
            kept.setdefault(name, []).append(share)
    coverage = [moving_coverage(analyzer, swappers[s], images[t], faces[t], rng, 10 if quick else 30)
                for s, t in PAIRS[: 1 if quick else 3]]
    s, t = PAIRS[0]
    flick = flicker(analyzer, swappers[s], images[t], faces[t], rng, 15 if quick else 45)
    seams = [seam(swappers[s], images[t], faces[t]) for s, t in PAIRS]
    return {
        "lighting_ratio": [round(v, 3) for v in lighting],
        "lighting_ratio_mean": round(float(np.mean(lighting)), 3),
        "occluders_kept": {k: round(float(np.mean(v)), 3) for k, v in kept.items()},
        "occluders_kept_mean": round(float(np.mean([np.mean(v) for v in kept.values()])), 3),
        "moving_swapped_share": round(float(np.mean(coverage)), 3),
        "flicker_output": round(flick[0], 3), "flicker_input": round(flick[1], 3),
        "seam": [round(v, 3) for v in seams], "seam_mean": round(float(np.mean(seams)), 3),
        "cost_ms": stage_cost(analyzer, swappers[PAIRS[1][0]], 15 if quick else 60),
    }


def sheet(analyzer: FaceAnalyzer, images: list[np.ndarray], faces: list[Face], cell: int) -> np.ndarray:
    """Contact sheet, one row per pair: the target, the swap before and after; then the target lit from
    the left with a hand in its own skin tone over the mouth (after a second of clean video), before
    and after."""
    titles = ["target", "before", "after", "lit + hand", "before", "after"]
    rows = [np.hstack([label(cell, t) for t in titles])]
    for s, t in PAIRS:
        target, face = images[t], faces[t]
        lit_target = lit(target, face, -1.0)
        lit_face = analyzer.analyze_still(lit_target)[0]
        hand = dict(occluders(lit_target, lit_face))["hand (target's own skin)"]
        cells = [face_cell(target, face, cell)]
        for options in (BEFORE, AFTER):
            swapper = MeshSwapper(options=options)
            swapper.prepare(images[s], faces[s])
            out = target.copy()
            swapper.swap(out, face)
            cells.append(face_cell(out, face, cell))
        cells.append(face_cell(hand, face, cell))
        for options in (BEFORE, AFTER):
            swapper = MeshSwapper(options=options)
            swapper.prepare(images[s], faces[s])
            outs = run_clip(analyzer, swapper, [lit_target] * 10 + [hand] * 2)
            cells.append(face_cell(outs[-1], face, cell))
        rows.append(np.hstack(cells))
    return np.vstack(rows)


def main(argv: list[str] | None = None) -> int:
    """Command line: measure before and after, print and optionally write JSON."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--json", type=Path, help="also write the figures here")
    parser.add_argument("--quick", action="store_true", help="fewer frames and pairs (a smoke run)")
    parser.add_argument("--sheet", type=Path, help="write the before/after contact sheet here instead")
    args = parser.parse_args(argv)
    analyzer = FaceAnalyzer.open()
    images = [load_subject(s) for s in SUBJECTS]
    faces = [analyzer.analyze_still(image)[0] for image in images]
    if args.sheet:
        size = write_jpeg(args.sheet, sheet(analyzer, images, faces, 180))
        print(f"wrote {args.sheet}: {size // 1024} KB")
        return 0
    report = {"before": measure(BEFORE, analyzer, images, faces, args.quick),
              "after": measure(AFTER, analyzer, images, faces, args.quick)}
    text = json.dumps(report, indent=2)
    print(text)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
