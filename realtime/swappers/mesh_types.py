"""The mesh swapper's data: its options, the prepared source face and the coarse grid its maps live on.

Apart from :mod:`realtime.swappers.mesh` so that the finishing steps (:mod:`realtime.swappers.mesh_look`)
can use them without importing the swapper.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from realtime import occlusion

GRID_PX = 48  # the coarse map has about this many points across the face (≤ 0.4 px error at 720p)


@dataclass(frozen=True)
class MeshSwapOptions:
    """Tuning of the mesh swap; sizes are fractions of the target face size."""

    keep_mouth: bool = True
    keep_eyes: bool = False
    erode: float = 0.04
    feather: float = 0.04
    hole_feather: float = 0.02
    color_match: bool = True
    color_strength: float = 1.0  # 0..1: how far colour matching moves the source towards the target's skin
    shading: bool = True  # the target's light and shade on the source's detail
    shade_sigma: float = 0.15  # of the face size: what counts as lighting (coarser) vs detail (finer)
    occlusion: bool = True  # keep what is in front of the target's face
    clean_source: bool = True  # leave out the source's hair, fringe, glasses and hard shadows
    two_band: bool = True  # blend the low band over a wider ramp than the high band (no seam)


@dataclass(frozen=True)
class PreparedSource:
    """The source face, computed once: its crop (BGR and 8-bit Lab), landmarks, triangles and the
    Lab mean/std of its skin (the face oval without the openings the options keep)."""

    bgr: np.ndarray
    lab: np.ndarray
    points: np.ndarray  # 468×2 float32 in crop pixels
    triangles: np.ndarray  # T×3 int32
    mean: np.ndarray
    std: np.ndarray
    clutter: np.ndarray | None = None  # uint8, crop-sized: 255 where the source is not face
    canon: Grid | None = None  # the canonical grid over the crop (occlusion texels)
    layout: occlusion.Layout | None = None


@dataclass(frozen=True)
class Grid:
    """A coarse grid over a region: point (i, j) sits at region pixel ((j+½)·sx − ½, (i+½)·sy − ½),
    the convention ``cv2.resize`` uses, so coarse maps and masks upsample in place."""

    width: int
    height: int
    cols: int
    rows: int

    @classmethod
    def over(cls, shape: tuple[int, int], face_px: float, *, across: int = GRID_PX) -> Grid:
        """A grid with about ``across`` points across a face of ``face_px`` pixels."""
        height, width = int(shape[0]), int(shape[1])
        step = max(1, round(face_px / across))
        return cls(width=width, height=height, cols=-(-width // step), rows=-(-height // step))

    @property
    def scale(self) -> tuple[float, float]:
        """Region pixels per grid point along x and y."""
        return self.width / self.cols, self.height / self.rows

    def to_grid(self, points: np.ndarray) -> np.ndarray:
        """Region pixel coordinates → grid coordinates."""
        return (points + 0.5) / np.array(self.scale, np.float32) - 0.5

    def centres(self) -> tuple[np.ndarray, np.ndarray]:
        """Region coordinates of the grid points: a 1×cols row of x and a rows×1 column of y."""
        sx, sy = (np.float32(v) for v in self.scale)
        xs = (np.arange(self.cols, dtype=np.float32) + np.float32(0.5)) * sx - np.float32(0.5)
        ys = (np.arange(self.rows, dtype=np.float32) + np.float32(0.5)) * sy - np.float32(0.5)
        return xs[None, :], ys[:, None]

    def upsample(self, coarse: np.ndarray) -> np.ndarray:
        """Bilinear upsampling of a rows×cols array to the region size."""
        if coarse.shape[:2] == (self.height, self.width):
            return coarse
        return cv2.resize(coarse, (self.width, self.height), interpolation=cv2.INTER_LINEAR)
