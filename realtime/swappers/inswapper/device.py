"""The GPU path of the swap: crop → swap → paste with torch on the engine's device."""

from __future__ import annotations

from typing import Any

import numpy as np

from realtime import blend
from realtime.engines.base import Engine
from realtime.frame import Frame, maybe_stage
from realtime.swappers.inswapper.models import Inswapper
from realtime.swappers.inswapper.paste import InswapperOptions, Placement
from realtime.swappers.inswapper.preprocess import CROP


class DevicePath:
    """Crop → swap → paste with torch on the engine's device (C's ``realtime.gpu_ops``).

    Per face the frame region goes up once and comes back once; the crop, the
    model's input and output, the warp back, the colour correction and the
    blend stay on the device (the engine's ``run_torch`` takes and returns
    device tensors). Only the small uint8 alpha (computed with OpenCV from the
    landmarks) is uploaded besides. Runs on CPU tensors too, which is how the
    tests compare it with the NumPy/OpenCV path.
    """

    def __init__(self, *, device: Any, options: InswapperOptions) -> None:
        self.device = device
        self.options = options
        self._latent: tuple[np.ndarray, Any] | None = None

    @classmethod
    def create(cls, engine: Engine, options: InswapperOptions) -> DevicePath | None:
        """A device path when ``engine`` runs on CUDA with a torch path and torch sees the GPU; else None."""
        if not hasattr(engine, "run_torch"):
            return None
        try:
            import torch
        except ImportError:
            return None
        if not torch.cuda.is_available():
            return None
        device = getattr(engine, "device", None)  # TensorRT engines name their torch device
        if isinstance(device, torch.device) and device.type == "cuda":
            return cls(device=device, options=options)
        if getattr(engine, "device_type", "cpu") == "cuda":
            return cls(device=torch.device("cuda", getattr(engine, "device_id", 0)), options=options)
        return None

    def swap(self, image: np.ndarray, matrix: np.ndarray, place: Placement, model: Inswapper,
             latent: np.ndarray, alpha: np.ndarray, frame: Frame | None) -> None:
        """Swap one face: ``image`` is edited in place inside ``place`` (the face region)."""
        import torch

        from realtime import gpu_ops

        w, h = place.x1 - place.x0, place.y1 - place.y0
        roi_host = image[place.y0:place.y1, place.x0:place.x1]
        with torch.inference_mode():
            with maybe_stage(frame, "align"):
                roi = gpu_ops.upload(roi_host, self.device)
                to_crop = matrix.copy()
                to_crop[:, 2] += matrix[:, :2] @ np.array([place.x0, place.y0], np.float64)
                target = gpu_ops.crop_align(roi, to_crop, (CROP, CROP), border="replicate")
            with maybe_stage(frame, "swap"):
                out = model.run_torch(target, self._latent_tensor(latent))
            with maybe_stage(frame, "blend"):
                bgr = (out.clamp(0, 1) * 255.0).round().flip(1)  # 1×3×128×128, BGR, whole levels like the CPU path
                warped = gpu_ops.warp_affine(bgr, place.to_roi, (w, h), border="replicate")[0]
                weight = gpu_ops.upload(alpha, self.device).to(torch.float32)[None] / 255.0
                region = roi.permute(2, 0, 1).to(torch.float32)
                if self.options.color_correct:
                    warped = match_colors_torch(warped, region, weight)
                blended = weight * warped + (1.0 - weight) * region
                result = blended.round().clamp(0, 255).to(torch.uint8).permute(1, 2, 0)
                roi_host[:] = gpu_ops.download(result)

    def _latent_tensor(self, latent: np.ndarray) -> Any:
        """The latent on the device, uploaded once per prepared source."""
        import torch

        # Keyed on the array itself, held here: an id() alone can be reused by the next source's latent
        # once the old one is freed, and the old identity would come back.
        if self._latent is None or self._latent[0] is not latent:
            self._latent = (latent, torch.from_numpy(latent).to(self.device))
        return self._latent[1]


def match_colors_torch(src: Any, dst: Any, weight: Any) -> Any:
    """Torch twin of :func:`realtime.blend.match_colors`: move ``src``'s Lab mean/std to ``dst``'s.

    ``src``, ``dst``: 3×h×w BGR float in 0..255; ``weight``: 1×h×w in 0..1 (statistics
    where it is above one half). Same gain cap as the NumPy path.
    """
    import torch

    from realtime import gpu_ops

    # Masked statistics by weighting, not boolean indexing, and the "too few pixels" test as a torch.where:
    # int(mask.sum()) and tensor[mask] each wait for the GPU, for every face of every frame.
    inside = (weight[0] > 0.5).to(src.dtype)[..., None]
    count = inside.sum(dim=(0, 1))
    src_lab = gpu_ops.bgr_to_lab(src.permute(1, 2, 0) / 255.0)
    dst_lab = gpu_ops.bgr_to_lab(dst.permute(1, 2, 0) / 255.0)

    def stats(lab: Any) -> tuple[Any, Any]:
        mean = (lab * inside).sum(dim=(0, 1)) / count.clamp(min=1)
        var = (((lab - mean) ** 2) * inside).sum(dim=(0, 1)) / count.clamp(min=1)
        return mean, var.sqrt()

    (s_mean, s_std), (d_mean, d_std) = stats(src_lab), stats(dst_lab)
    floored = [std[:1].clamp(min=blend.MIN_STD * 100 / 255) for std in (d_std, s_std)]
    floored = [torch.cat([f, std[1:].clamp(min=blend.MIN_STD)]) for f, std in zip(floored, (d_std, s_std), strict=True)]
    gain = (floored[0] / floored[1]).clamp(blend.MIN_GAIN, blend.MAX_GAIN)
    moved = (src_lab - s_mean) * gain + d_mean
    return torch.where(count[0] >= 2, (gpu_ops.lab_to_bgr(moved) * 255.0).permute(2, 0, 1), src)
