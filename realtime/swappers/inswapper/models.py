"""The two neural models of the swap, each a small class around its engine."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from realtime.engines.base import Engine
from realtime.errors import ModelError
from realtime.faces import align
from realtime.swappers.inswapper.graph import load_emap, model_input
from realtime.swappers.inswapper.preprocess import ARCFACE_CROP, CROP, EMBEDDING, arcface_blob


class ArcFace:
    """ArcFace (w600k_r50): an aligned 112×112 face → a 512-value identity embedding."""

    def __init__(self, *, engine: Engine) -> None:
        self.engine = engine
        self.input = model_input(engine, engine.inputs[0].name, (1, 3, ARCFACE_CROP, ARCFACE_CROP), "ArcFace")
        self.output = engine.outputs[0].name

    def embed(self, image: np.ndarray, keypoints: np.ndarray) -> np.ndarray:
        """The raw (not normalised) embedding of the face with these 5 keypoints in a BGR image."""
        crop, _ = align.align_crop(image, keypoints, ARCFACE_CROP)
        blob = arcface_blob(crop).astype(self.input.dtype, copy=False)
        values = np.asarray(self.engine.run({self.input.name: blob})[self.output], dtype=np.float32).reshape(-1)
        if values.size != EMBEDDING:
            raise ModelError("E07", f"ArcFace gave {values.size} values, expected {EMBEDDING}")
        return values


class Inswapper:
    """inswapper_128: aligned target crop + source latent → swapped crop. Handles fp16 and fp32 files.

    Inputs are cast to the dtypes the engine declares, so a file converted to
    float16 with float16 inputs works as well as one that kept float32 inputs.
    """

    def __init__(self, *, engine: Engine, emap: np.ndarray) -> None:
        if emap.shape != (EMBEDDING, EMBEDDING):
            raise ValueError(f"emap must be 512×512, got {emap.shape}")
        self.engine = engine
        self.emap = emap
        self.target = model_input(engine, "target", (1, 3, CROP, CROP), "inswapper")
        self.source = model_input(engine, "source", (1, EMBEDDING), "inswapper")
        self.output = engine.outputs[0].name

    @classmethod
    def from_file(cls, path: Path, *, engine: Engine) -> Inswapper:
        """The model on ``engine`` with the emap read from the same ``path``."""
        return cls(engine=engine, emap=load_emap(path))

    @classmethod
    @classmethod
    def open(cls, path: Path, *, name: str | None = None, backend: str = "auto", device: str = "auto", threads: int = 1,
             upcast_fp16: bool = True, precision: str = "fp32", cuda_graph: bool = False) -> Inswapper:
        """Open ``path`` (manifest model ``name``, by default the file's stem) with
        :func:`~realtime.engines.opening.open_model`.

        ``upcast_fp16``: a float16 file runs upcast to float32 on ONNX Runtime (its float16 run of this
        graph is unreliable: onnxruntime#19437); TensorRT gets the file as it is.
        """
        from realtime.engines.opening import open_model

        engine = open_model(name or path.name.removesuffix(".onnx"), path=path, backend=backend, device=device,
                            threads=threads, upcast_fp16=upcast_fp16, precision=precision,
                            cuda_graph=cuda_graph)
        return cls.from_file(path, engine=engine)

    def run(self, target: np.ndarray, latent: np.ndarray) -> np.ndarray:
        """1×3×128×128 RGB [0, 1] target and 1×512 latent → 1×3×128×128 RGB [0, 1] (float32)."""
        feeds = {self.target.name: target.astype(self.target.dtype, copy=False),
                 self.source.name: latent.astype(self.source.dtype, copy=False)}
        return np.asarray(self.engine.run(feeds)[self.output], dtype=np.float32)

    def run_torch(self, target: Any, latent: Any) -> Any:
        """The same on torch tensors (engine with ``run_torch``; without one, through the host)."""
        import torch

        feeds = {self.target.name: target.to(_torch_dtype(self.target.dtype)).contiguous(),
                 self.source.name: latent.to(_torch_dtype(self.source.dtype)).contiguous()}
        if hasattr(self.engine, "run_torch"):
            out = self.engine.run_torch(feeds)[self.output]
        else:
            host = {k: v.cpu().numpy() for k, v in feeds.items()}
            out = torch.from_numpy(np.asarray(self.engine.run(host)[self.output])).to(target.device)
        return out.float()


def _torch_dtype(dtype: np.dtype) -> Any:
    import torch

    return torch.float16 if np.dtype(dtype) == np.float16 else torch.float32

