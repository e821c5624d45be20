"""The torch frame ops (realtime.gpu_ops) against the NumPy/OpenCV path, on CPU tensors.

Images are random noise with independent channels: a transform that is off by
one pixel (or half a pixel) or a swapped channel changes almost every value by
far more than one level, so the ≤ 1 level bound catches it — the
``*_detects_*`` tests prove that for each kind of mistake. OpenCV ≥ 4.11
samples ``warpAffine`` at exact float coordinates, like ``grid_sample``.
"""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="torch is not installed (pip install torch, CPU build is enough)")
cv2 = pytest.importorskip("cv2")

from realtime import gpu_ops  # noqa: E402

RNG = np.random.default_rng(1234)
FRAME = RNG.integers(0, 256, (360, 480, 3), dtype=np.uint8)


def similarity(scale: float, angle: float, tx: float, ty: float) -> np.ndarray:
    c, s = scale * np.cos(angle), scale * np.sin(angle)
    return np.array([[c, -s, tx], [s, c, ty]])


MATRICES = {
    "shrink-rotate": similarity(0.45, 0.3, -40.3, -20.7),
    "fractional-shift": similarity(1.0, 0.0, -100.25, -50.75),
    "enlarge-rotate": similarity(1.9, -0.5, -180.0, 160.0),
    "shear": np.array([[0.8, 0.2, -30.5], [-0.1, 0.7, -12.25]]),
    "over-the-corner": similarity(1.1, 0.1, 30.0, 20.5),  # the crop hangs over the frame's top-left corner
}


def max_diff(a: np.ndarray, b: np.ndarray) -> int:
    return int(np.abs(a.astype(np.int32) - b.astype(np.int32)).max())


def torch_crop_uint8(frame: np.ndarray, matrix: np.ndarray, dsize: tuple[int, int], **kw: object) -> np.ndarray:
    nchw = gpu_ops.crop_align(torch.from_numpy(frame), matrix, dsize, mean=0.0, std=1.0, **kw)  # type: ignore[arg-type]
    return gpu_ops.nchw_to_hwc_uint8(nchw, swap_rb=False, scale=1.0).numpy()


@pytest.mark.parametrize("name", sorted(MATRICES))
@pytest.mark.parametrize("border", ["constant", "replicate"])
def test_crop_matches_cv2_warp_affine(name: str, border: str) -> None:
    matrix = MATRICES[name]
    cv_border = cv2.BORDER_CONSTANT if border == "constant" else cv2.BORDER_REPLICATE
    expected = cv2.warpAffine(FRAME, matrix, (160, 128), flags=cv2.INTER_LINEAR, borderMode=cv_border)
    got = torch_crop_uint8(FRAME, matrix, (160, 128), swap_rb=False, border=border)
    assert got.shape == expected.shape
    assert max_diff(got, expected) <= 1


def test_crop_detects_one_pixel_shift() -> None:
    matrix = MATRICES["shrink-rotate"]
    expected = cv2.warpAffine(FRAME, matrix, (128, 128), flags=cv2.INTER_LINEAR)
    shifted = matrix.copy()
    shifted[0, 2] += 1.0
    assert max_diff(torch_crop_uint8(FRAME, shifted, (128, 128), swap_rb=False), expected) > 50
    half = matrix.copy()
    half[1, 2] += 0.5  # a pixel-centre convention error is half a pixel
    assert max_diff(torch_crop_uint8(FRAME, half, (128, 128), swap_rb=False), expected) > 20


def test_crop_align_swaps_to_rgb_and_normalises() -> None:
    matrix = MATRICES["shrink-rotate"]
    warped = cv2.warpAffine(FRAME, matrix, (128, 128), flags=cv2.INTER_LINEAR)
    rgb = warped[:, :, ::-1].astype(np.float32)
    mean, std = (127.5, 120.0, 110.0), (128.0, 64.0, 32.0)
    expected = ((rgb - np.array(mean, np.float32)) / np.array(std, np.float32)).transpose(2, 0, 1)[None]
    got = gpu_ops.crop_align(torch.from_numpy(FRAME), matrix, (128, 128), mean=mean, std=std).numpy()
    assert got.shape == (1, 3, 128, 128) and got.dtype == np.float32
    # one uint8 level of warp difference, divided by the smallest std
    assert np.abs(got - expected).max() <= 1.0 / 32.0 + 1e-4
    swapped_wrong = ((warped.astype(np.float32) - np.array(mean, np.float32)) / np.array(std, np.float32))
    assert np.abs(got - swapped_wrong.transpose(2, 0, 1)[None]).max() > 1.0


def test_default_normalisation_is_zero_to_one_rgb() -> None:
    identity = np.array([[1.0, 0, 0], [0, 1.0, 0]])
    got = gpu_ops.crop_align(torch.from_numpy(FRAME), identity, (480, 360)).numpy()[0]
    expected = FRAME[:, :, ::-1].transpose(2, 0, 1).astype(np.float32) / 255.0
    assert np.abs(got - expected).max() < 1e-4  # float32 grid rounding, < 0.03 of a level


def test_affine_theta_of_identity_is_identity() -> None:
    theta = gpu_ops.affine_theta(np.array([[1.0, 0, 0], [0, 1.0, 0]]), (640, 480), (640, 480))
    assert np.allclose(theta, [[1, 0, 0], [0, 1, 0]])


def test_layout_round_trip_and_channel_order() -> None:
    nchw = gpu_ops.hwc_to_nchw(torch.from_numpy(FRAME))
    assert tuple(nchw.shape) == (1, 3, 360, 480)
    assert np.array_equal(nchw[0, 0].numpy(), FRAME[:, :, 2].astype(np.float32))  # R first
    back = gpu_ops.nchw_to_hwc_uint8(nchw, scale=1.0).numpy()
    assert np.array_equal(back, FRAME)
    assert np.array_equal(gpu_ops.swap_rb(torch.from_numpy(FRAME)).numpy(), FRAME[:, :, ::-1])


def numpy_paste_back(frame: np.ndarray, crop: np.ndarray, matrix: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """The reference CPU path: warp crop and mask back with cv2, blend in float, round."""
    inverse = cv2.invertAffineTransform(matrix)
    size = (frame.shape[1], frame.shape[0])
    crop_back = cv2.warpAffine(crop.astype(np.float32), inverse, size, flags=cv2.INTER_LINEAR)
    mask_back = cv2.warpAffine(mask, inverse, size, flags=cv2.INTER_LINEAR)[..., None]
    blended = mask_back * crop_back + (1 - mask_back) * frame.astype(np.float32)
    return np.clip(np.rint(blended), 0, 255).astype(np.uint8)


@pytest.mark.parametrize("name", ["shrink-rotate", "shear", "fractional-shift", "over-the-corner"])
def test_paste_back_matches_numpy_blend(name: str) -> None:
    matrix = MATRICES[name]
    crop = RNG.integers(0, 256, (128, 128, 3), dtype=np.uint8)
    mask = gpu_ops.feather_mask_numpy((128, 128), 12)
    expected = numpy_paste_back(FRAME, crop, matrix, mask)
    got = gpu_ops.paste_back(torch.from_numpy(FRAME), torch.from_numpy(crop), matrix,
                             torch.from_numpy(mask)).numpy()
    assert got.dtype == np.uint8 and got.shape == FRAME.shape
    assert (expected != FRAME).any(axis=2).sum() > 1000  # the paste really covers a region
    assert max_diff(got, expected) <= 1


def test_paste_back_detects_wrong_direction_and_leaves_outside_untouched() -> None:
    matrix = MATRICES["shrink-rotate"]
    crop = RNG.integers(0, 256, (128, 128, 3), dtype=np.uint8)
    mask = gpu_ops.feather_mask_numpy((128, 128), 12)
    expected = numpy_paste_back(FRAME, crop, matrix, mask)
    got = gpu_ops.paste_back(torch.from_numpy(FRAME), torch.from_numpy(crop), matrix,
                             torch.from_numpy(mask)).numpy()
    outside = (expected == FRAME).all(axis=2) & (got == FRAME).all(axis=2)
    assert outside.sum() > FRAME.shape[0] * FRAME.shape[1] // 2
    shifted = matrix.copy()
    shifted[0, 2] += 1.0
    wrong = gpu_ops.paste_back(torch.from_numpy(FRAME), torch.from_numpy(crop), shifted,
                               torch.from_numpy(mask)).numpy()
    assert max_diff(wrong, expected) > 50


def test_paste_back_of_crop_outside_frame_is_a_copy() -> None:
    far = similarity(1.0, 0.0, 5000.0, 5000.0)
    crop = np.full((64, 64, 3), 255, np.uint8)
    got = gpu_ops.paste_back(torch.from_numpy(FRAME), torch.from_numpy(crop), far,
                             torch.ones(64, 64)).numpy()
    assert np.array_equal(got, FRAME)


def test_feather_mask_shape_and_ramp() -> None:
    mask = gpu_ops.feather_mask((100, 80), 10).numpy()
    assert mask.shape == (80, 100)
    assert mask[0].max() == 0.0 and mask[40, 50] == 1.0
    assert np.isclose(mask[40, 5], 0.5)


def test_ycrcb_matches_cv2_on_uint8() -> None:
    expected = cv2.cvtColor(FRAME, cv2.COLOR_BGR2YCrCb)
    got = gpu_ops.bgr_to_ycrcb(torch.from_numpy(FRAME.astype(np.float32))).round().clamp(0, 255).numpy()
    assert max_diff(got, expected) <= 1
    back = gpu_ops.ycrcb_to_bgr(torch.from_numpy(expected.astype(np.float32))).round().clamp(0, 255).numpy()
    assert max_diff(back, cv2.cvtColor(expected, cv2.COLOR_YCrCb2BGR)) <= 1
    # swapped channel order in the input gives a different Y: the test would see it
    wrong = gpu_ops.bgr_to_ycrcb(torch.from_numpy(FRAME[:, :, ::-1].astype(np.float32))).round().numpy()
    assert max_diff(wrong, expected) > 20


def test_lab_close_to_cv2_and_round_trips() -> None:
    image = FRAME.astype(np.float32) / 255.0
    lab = gpu_ops.bgr_to_lab(torch.from_numpy(image))
    # cv2's float Lab interpolates a lookup table (steps of ~1/32); ours is the exact formula.
    assert np.abs(lab.numpy() - cv2.cvtColor(image, cv2.COLOR_BGR2Lab)).max() < 0.6
    assert np.abs(gpu_ops.lab_to_bgr(lab).numpy() - image).max() < 1e-3
