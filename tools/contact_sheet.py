"""Before/after contact sheet of the mesh swap on the sample photos.

Rows are the target portraits; the first column is the original, each other
column the same portrait with the face from the photo named at its top. Made
with the real models and the real swapper, exactly as ``swapcam swap`` does it.

    python tools/contact_sheet.py [--output docs/contact_sheet.jpg] [--cell 200]
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from realtime.errors import SwapcamError
from realtime.faces.analyzer import FaceAnalyzer
from realtime.faces.types import Face
from realtime.images import load_image
from realtime.models import sample_path
from realtime.swappers.mesh import MeshSwapper

LABEL_PX = 28
MAX_BYTES = 500_000


@dataclass(frozen=True)
class Subject:
    """A portrait: a sample photo, or a region of one (x0, y0, x1, y1 in its pixels)."""

    label: str
    photo: str
    region: tuple[int, int, int, int] | None = None


# Front row of the 1927 Solvay conference photo: regions around two faces (facts of the pinned sample).
SUBJECTS = (
    Subject("Newton", "newton.png"),
    Subject("Gauss", "gauss.png"),
    Subject("Curie (Solvay 1927)", "solvay_conference_1927.jpg", (720, 1000, 1080, 1400)),
    Subject("Einstein (Solvay 1927)", "solvay_conference_1927.jpg", (1450, 990, 1820, 1390)),
)


def load_subject(subject: Subject) -> np.ndarray:
    """The subject's portrait as BGR."""
    image = load_image(sample_path(subject.photo), max_side=4096)
    if subject.region is None:
        return image
    x0, y0, x1, y1 = subject.region
    return np.ascontiguousarray(image[y0:y1, x0:x1])


def face_cell(image: np.ndarray, face: Face, size: int) -> np.ndarray:
    """A square around the face (1.7× its box), resized to ``size``."""
    x0, y0, x1, y1 = (float(v) for v in face.box)
    half = 0.85 * max(x1 - x0, y1 - y0)
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    scale = size / (2 * half)
    matrix = np.array([[scale, 0, size / 2 - cx * scale], [0, scale, size / 2 - cy * scale]], np.float32)
    return np.asarray(cv2.warpAffine(image, matrix, (size, size), flags=cv2.INTER_AREA,
                                     borderMode=cv2.BORDER_REPLICATE))


def label(width: int, text: str) -> np.ndarray:
    """A white strip with centred black text."""
    strip = np.full((LABEL_PX, width, 3), 255, np.uint8)
    scale = 0.45
    (w, h), _ = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, 1)
    cv2.putText(strip, text, ((width - w) // 2, (LABEL_PX + h) // 2), cv2.FONT_HERSHEY_SIMPLEX, scale,
                (0, 0, 0), 1, cv2.LINE_AA)
    return strip


def build_sheet(cell: int = 200) -> np.ndarray:
    """The contact sheet: header row of labels, then one row per target subject."""
    analyzer = FaceAnalyzer.open()
    images = [load_subject(s) for s in SUBJECTS]
    faces = []
    for subject, image in zip(SUBJECTS, images, strict=True):
        found = analyzer.analyze_still(image)
        if not found:
            raise SystemExit(f"no face found in {subject.label}")
        faces.append(found[0])
    swappers = []
    for image, face in zip(images, faces, strict=True):
        swapper = MeshSwapper()
        swapper.prepare(image, face)
        swappers.append(swapper)
    header = [label(cell, "target")] + [label(cell, f"face: {s.label}") for s in SUBJECTS]
    rows = [np.hstack(header)]
    for t, (target, face) in enumerate(zip(images, faces, strict=True)):
        cells = [face_cell(target, face, cell)]
        for s, swapper in enumerate(swappers):
            if s == t:
                cells.append(np.full((cell, cell, 3), 235, np.uint8))
                continue
            result = target.copy()
            swapper.swap(result, face)
            cells.append(face_cell(result, face, cell))
        rows.append(np.hstack(cells))
    return np.vstack(rows)


def write_jpeg(path: Path, image: np.ndarray) -> int:
    """Write ``image`` as the best-quality JPEG under MAX_BYTES; returns its size."""
    for quality in (90, 85, 80, 75, 70, 60):
        ok, data = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, quality])
        if ok and len(data) <= MAX_BYTES:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data.tobytes())
            return len(data)
    raise SystemExit(f"cannot fit the sheet in {MAX_BYTES} bytes; use a smaller --cell")


def main(argv: list[str] | None = None) -> int:
    """Command line: build the sheet and write it."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--output", type=Path, default=Path("docs/contact_sheet.jpg"))
    parser.add_argument("--cell", type=int, default=200, help="cell size in pixels (default 200)")
    args = parser.parse_args(argv)
    try:
        sheet = build_sheet(args.cell)
    except SwapcamError as exc:
        print(f"error: {exc.message()}", file=sys.stderr)
        return exc.exit_status
    size = write_jpeg(args.output, sheet)
    print(f"wrote {args.output}: {sheet.shape[1]}x{sheet.shape[0]}, {size // 1024} KB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
